/**
 * A small pool of worker threads that run named tasks: CPU-heavy work (hashing many files,
 * compressing chunks) off the main thread, on every core.
 *
 * Tasks are given as JavaScript **source text**, not as imported modules: the SDK runs from
 * TypeScript sources in tests (vitest, tsx) and from compiled JavaScript when published, so there
 * is no worker file whose path is right in both. Each worker evaluates its code with
 * `new Worker(code, { eval: true })` (CommonJS: `require` is available) and loads native modules
 * through paths resolved in the main thread (`modules`).
 *
 * Workers start on demand up to `size`, are `unref`'d while idle (an idle pool never keeps the
 * process alive) and exit after `idleMs` without work.
 * @module
 */
import { availableParallelism } from 'node:os';
import { type Transferable, Worker } from 'node:worker_threads';

/** Options of {@link WorkerPool}. */
export interface WorkerPoolOptions {
  /**
   * Named tasks, each the source text of a JavaScript function `(input, env) => output` (or a
   * promise of it), evaluated in every worker. `env.modules[name]` holds the modules of
   * {@link WorkerPoolOptions.modules}, already required; `env.transfer(...buffers)` marks
   * ArrayBuffers (or views of whole ones) of the output to be moved, not copied, to the caller.
   * Plain CommonJS JavaScript: no TypeScript, no imports (`require('node:fs')` works).
   */
  tasks: Record<string, string>;
  /** Modules the tasks use, by name, as paths resolved in the main thread (`createRequire(import.meta.url).resolve(...)`). */
  modules?: Record<string, string>;
  /** Most threads at once. Default: `os.availableParallelism()`. */
  size?: number;
  /** A worker without work for this long exits. Default 10 s. */
  idleMs?: number;
}

interface Job {
  id: number;
  task: string;
  input: unknown;
  transfer: readonly Transferable[];
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

interface Slot {
  worker: Worker;
  job: Job | undefined;
  idleTimer: NodeJS.Timeout | undefined;
}

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: { name: string; message: string; code?: string; stack?: string } };

/** The code every worker runs: a dispatcher around the tasks. */
function workerSource(tasks: Record<string, string>): string {
  const table = Object.entries(tasks)
    .map(([name, src]) => `  ${JSON.stringify(name)}: (${src}),`)
    .join('\n');
  return `'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const modules = {};
for (const [name, path] of Object.entries(workerData.modules)) modules[name] = require(path);
const tasks = {
${table}
};
parentPort.on('message', async ({ id, task, input }) => {
  const transfers = [];
  const env = { modules, transfer: (...bufs) => { for (const b of bufs) transfers.push(ArrayBuffer.isView(b) ? b.buffer : b); } };
  try {
    const fn = tasks[task];
    if (!fn) throw new Error('unknown task ' + task);
    const value = await fn(input, env);
    parentPort.postMessage({ id, ok: true, value }, transfers);
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    parentPort.postMessage({ id, ok: false, error: { name: e.name, message: e.message, code: e.code, stack: e.stack } });
  }
});
`;
}

/**
 * Runs named tasks on a pool of worker threads.
 * @example
 * const pool = new WorkerPool({ tasks: { sum: '(xs) => xs.reduce((a, b) => a + b, 0)' } });
 * await pool.run('sum', [1, 2, 3]); // 6
 */
export class WorkerPool {
  /** Most threads this pool runs at once. */
  readonly size: number;
  private readonly code: string;
  private readonly modules: Record<string, string>;
  private readonly idleMs: number;
  private readonly slots = new Set<Slot>();
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;

  constructor(options: WorkerPoolOptions) {
    this.size = Math.max(1, Math.floor(options.size ?? availableParallelism()));
    this.idleMs = options.idleMs ?? 10_000;
    this.modules = options.modules ?? {};
    this.code = workerSource(options.tasks);
  }

  /** Threads currently started (busy or idle). */
  get threads(): number {
    return this.slots.size;
  }

  /**
   * Runs `task` with `input` (structured-cloned; ArrayBuffers in `transfer` are moved, and unusable
   * here afterwards) on the first free thread, starting one if fewer than `size` run.
   * Rejects with the task's error (same `name`, `message` and `code`).
   */
  run<T = unknown>(task: string, input: unknown, transfer: readonly Transferable[] = []): Promise<T> {
    if (this.closed) return Promise.reject(new Error('WorkerPool: run() after close()'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, task, input, transfer, resolve: resolve as (v: unknown) => void, reject });
      this.dispatch();
    });
  }

  /** Stops every thread; queued and running tasks are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error('WorkerPool closed'));
    await Promise.all([...this.slots].map((s) => this.retire(s, new Error('WorkerPool closed'))));
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let slot: Slot | undefined;
      for (const s of this.slots) {
        if (!s.job) {
          slot = s;
          break;
        }
      }
      if (!slot) {
        if (this.slots.size >= this.size) return;
        slot = this.spawn();
      }
      const job = this.queue.shift() as Job;
      if (slot.idleTimer) clearTimeout(slot.idleTimer);
      slot.idleTimer = undefined;
      slot.job = job;
      slot.worker.ref(); // a running task keeps the process alive, as pending I/O would
      slot.worker.postMessage({ id: job.id, task: job.task, input: job.input }, job.transfer);
    }
  }

  private spawn(): Slot {
    const worker = new Worker(this.code, { eval: true, workerData: { modules: this.modules } });
    const slot: Slot = { worker, job: undefined, idleTimer: undefined };
    worker.on('message', (reply: Reply) => {
      const job = slot.job;
      if (!job || job.id !== reply.id) return;
      slot.job = undefined;
      if (reply.ok) job.resolve(reply.value);
      else job.reject(Object.assign(new Error(reply.error.message), { name: reply.error.name, code: reply.error.code, workerStack: reply.error.stack }));
      this.idle(slot);
      this.dispatch();
    });
    worker.on('error', (err) => void this.retire(slot, err));
    worker.on('exit', (code) => void this.retire(slot, new Error(`WorkerPool: a worker exited with code ${code}`)));
    this.slots.add(slot);
    return slot;
  }

  private idle(slot: Slot): void {
    slot.worker.unref();
    slot.idleTimer = setTimeout(() => void this.retire(slot), this.idleMs);
    slot.idleTimer.unref();
  }

  /** Removes a thread: its running task (if any) fails with `err`; queued tasks go to other threads. */
  private async retire(slot: Slot, err?: unknown): Promise<void> {
    if (!this.slots.delete(slot)) return;
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    const job = slot.job;
    slot.job = undefined;
    if (job) job.reject(err ?? new Error('WorkerPool: worker stopped'));
    await slot.worker.terminate();
    if (!this.closed) this.dispatch();
  }
}

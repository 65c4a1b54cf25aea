/**
 * Worker threads that compress chunks, so a large payload uses every core. The workers
 * run {@link compressIfWorthIt} from its source text with the same codec libraries as the main thread,
 * so a chunk compresses to the same bytes wherever it is done.
 * @module
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { type CodecName, compressIfWorthIt } from '../compression.js';

const require = createRequire(import.meta.url);

/** A chunk to compress. */
export interface CompressTask {
  codec: Exclude<CodecName, 'none'>;
  level: number | undefined;
  threshold: number;
  minRatio: number;
  data: Uint8Array;
}
/**
 * What a compression returns: the stored form (`codec` 'none' when compression did not pay, with
 * `data` the input itself), and the input's memory handed back (`input`) for the caller to reuse.
 */
export interface ChunkResult {
  codec: CodecName;
  data: Uint8Array;
  input: Uint8Array;
}

function workerSource(): string {
  // Plain CommonJS evaluated in the worker (eval: true). `__name` covers tools that wrap functions
  // with a name helper (esbuild's keepNames, as tsx sets it) when compressIfWorthIt's source is taken.
  return `
const { parentPort, workerData } = require('node:worker_threads');
var __name = (f) => f;
const lz4 = require(workerData.lz4);
let zstd;
const compressIfWorthIt = (${compressIfWorthIt.toString()});
const codec = (name, level) =>
  name === 'lz4'
    ? { compress: (d) => lz4.compress(d) }
    : { compress: (d) => (zstd ??= require(workerData.zstd)).compress(d, { compressionLevel: level ?? 3 }) };
parentPort.on('message', ({ id, task }) => {
  // Every buffer goes back to the main thread (the input for reuse, the output to be written), so
  // nothing large is left here as garbage: a worker's collector runs rarely, and transferred buffers
  // would pile up between its runs.
  try {
    const c = codec(task.codec, task.level);
    const out = compressIfWorthIt(task.data, c.compress, task.threshold, task.minRatio);
    const transfer = [task.data.buffer];
    if (out && out.byteOffset === 0 && out.byteLength === out.buffer.byteLength) transfer.push(out.buffer);
    try {
      parentPort.postMessage({ id, codec: out ? task.codec : 'none', data: out || task.data, input: task.data }, transfer);
    } catch {
      parentPort.postMessage({ id, codec: out ? task.codec : 'none', data: out || task.data, input: task.data }, [task.data.buffer]);
    }
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message || err), input: task.data }, [task.data.buffer]);
  }
});`;
}

interface Slot {
  worker: Worker;
  busy: number;
}

/** A fixed set of worker threads; idle workers do not keep the process alive. */
export class CompressPool {
  /** Most workers this pool starts (grows when a cache asks for more). */
  size: number;
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, { resolve: (r: ChunkResult) => void; reject: (e: Error) => void; slot: Slot }>();
  private nextId = 0;
  private failed: Error | undefined;

  constructor(size: number) {
    this.size = size;
  }

  private spawn(): Slot {
    let zstd: string | undefined;
    try {
      zstd = require.resolve('zstd-napi');
    } catch {}
    const worker = new Worker(workerSource(), { eval: true, workerData: { lz4: require.resolve('lz4-wasm-nodejs'), zstd } });
    const slot: Slot = { worker, busy: 0 };
    worker.unref();
    worker.on('message', (m: { id: number; codec: CodecName; data: Uint8Array; input: Uint8Array; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (--slot.busy === 0) worker.unref();
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve({ codec: m.codec, data: m.data, input: m.input });
    });
    worker.on('error', (err) => this.fail(slot, err));
    worker.on('exit', (code) => this.fail(slot, new Error(`a compression worker exited (code ${code})`)));
    return slot;
  }

  private fail(slot: Slot, err: Error): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    for (const [id, p] of this.pending) {
      if (p.slot !== slot) continue;
      this.pending.delete(id);
      p.reject(err);
    }
    this.failed = err;
  }

  /**
   * Runs `task` on the least busy worker. `transfer` hands `task.data`'s memory to the worker (the
   * caller must not use it again); otherwise it is copied.
   */
  run(task: CompressTask, transfer: boolean): Promise<ChunkResult> {
    let slot = this.slots.find((s) => s.busy === 0);
    if (!slot && this.slots.length < this.size) {
      slot = this.spawn();
      this.slots.push(slot);
    }
    slot ??= this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.nextId++;
    const s = slot;
    return new Promise<ChunkResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, slot: s });
      if (s.busy++ === 0) s.worker.ref();
      const whole = task.data.byteOffset === 0 && task.data.byteLength === task.data.buffer.byteLength;
      // A view's postMessage copies its whole buffer: send only the view's bytes.
      const data = transfer && whole ? task.data : new Uint8Array(task.data);
      s.worker.postMessage({ id, task: { ...task, data } }, [data.buffer as ArrayBuffer]);
    });
  }

  /** The last worker failure, if any (the pool replaces failed workers on demand). */
  get lastError(): Error | undefined {
    return this.failed;
  }

  /** Stops every worker. */
  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}

let shared: CompressPool | undefined;

/** The process-wide pool, created on first use; it grows to the most `workers` any cache asked for. */
export function compressPool(workers: number): CompressPool {
  shared ??= new CompressPool(workers);
  shared.size = Math.max(shared.size, workers);
  return shared;
}

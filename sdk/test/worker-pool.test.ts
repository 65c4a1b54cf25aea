/** The generic worker pool: named tasks from source text, transfers, errors, limits, crashes. */
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { WorkerPool } from '../src/workers/pool.js';

const TASKS = {
  sum: '(xs) => xs.reduce((a, b) => a + b, 0)',
  later: '(ms) => new Promise((r) => setTimeout(() => r(ms), ms))',
  fail: "() => { const e = new Error('no luck'); e.code = 'EBAD'; throw e; }",
  crash: '() => process.exit(3)',
  threadId: "() => require('node:worker_threads').threadId",
  // fills a fresh buffer and moves it back instead of copying it
  fill: '(n, env) => { const b = new Uint8Array(n).fill(7); env.transfer(b); return b; }',
  // the input buffer arrives by transfer
  length: '(b) => b.byteLength',
  xxh: "(s, env) => env.modules.xxhash.XXHash128.hash(Buffer.from(s)).toString('hex')",
};

describe('WorkerPool', () => {
  let pool: WorkerPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it('runs named tasks, sync and async, and loads modules resolved in the main thread', async () => {
    pool = new WorkerPool({ tasks: TASKS, modules: { xxhash: createRequire(import.meta.url).resolve('xxhash-addon') }, size: 2 });
    expect(await pool.run('sum', [1, 2, 3])).toBe(6);
    expect(await pool.run('later', 5)).toBe(5);
    expect(await pool.run('xxh', 'abc')).toBe('06b05ab6733a618578af5f94892f3950');
  });

  it('moves transferred buffers both ways', async () => {
    pool = new WorkerPool({ tasks: TASKS, size: 1 });
    const out = await pool.run<Uint8Array>('fill', 1024);
    expect(out.byteLength).toBe(1024);
    expect(out[1023]).toBe(7);
    const input = new Uint8Array(4096);
    expect(await pool.run('length', input, [input.buffer])).toBe(4096);
    expect(input.byteLength).toBe(0); // detached: moved, not copied
  });

  it('rejects with the task error (message and code) and keeps serving', async () => {
    pool = new WorkerPool({ tasks: TASKS, size: 1 });
    await expect(pool.run('fail', null)).rejects.toMatchObject({ message: 'no luck', code: 'EBAD' });
    await expect(pool.run('nope', null)).rejects.toThrow(/unknown task nope/);
    expect(await pool.run('sum', [2, 2])).toBe(4);
  });

  it('never runs more than `size` threads, and queues the rest', async () => {
    pool = new WorkerPool({ tasks: TASKS, size: 2 });
    const ids = await Promise.all(Array.from({ length: 8 }, () => pool!.run<number>('later', 20).then(() => pool!.run<number>('threadId', null))));
    expect(new Set(ids).size).toBeLessThanOrEqual(2);
    expect(pool.threads).toBeLessThanOrEqual(2);
  });

  it('a crashing worker fails its task only; the next task gets a new thread', async () => {
    pool = new WorkerPool({ tasks: TASKS, size: 1 });
    await expect(pool.run('crash', null)).rejects.toThrow(/exited with code 3/);
    expect(await pool.run('sum', [1, 1])).toBe(2);
  });

  it('idle threads exit after idleMs', async () => {
    pool = new WorkerPool({ tasks: TASKS, size: 2, idleMs: 50 });
    await Promise.all([pool.run('later', 10), pool.run('later', 10)]);
    expect(pool.threads).toBe(2);
    await new Promise((r) => setTimeout(r, 300));
    expect(pool.threads).toBe(0);
  });

  it('close() rejects queued work and later runs', async () => {
    pool = new WorkerPool({ tasks: TASKS, size: 1 });
    const running = pool.run('later', 200);
    const queued = pool.run('sum', [1]);
    const checks = [expect(running).rejects.toThrow(/closed/), expect(queued).rejects.toThrow(/closed/)];
    await pool.close();
    await Promise.all(checks);
    await expect(pool.run('sum', [1])).rejects.toThrow(/after close/);
  });
});

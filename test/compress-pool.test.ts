/** Chunk compression on worker threads: the same bytes as in this thread, and memory ownership kept straight. */

import { afterAll, expect, it } from 'vitest';
import { CompressPool } from '../sdk/src/chunked/compress-pool.js';
import { compressIfWorthIt, compressorOf } from '../sdk/src/compression.js';

const pool = new CompressPool(2);
afterAll(() => pool.close());

/** 1 MiB that lz4 shrinks, in memory of its own (a whole ArrayBuffer, so it could be moved). */
function chunk(): Uint8Array {
  const b = new Uint8Array(1024 * 1024);
  for (let i = 0; i < b.length; i++) b[i] = (i >> 6) & 0xff;
  return b;
}
const task = (data: Uint8Array) => ({ codec: 'lz4' as const, level: undefined, threshold: 4096, minRatio: 0.9, data });

it('compresses to the bytes this thread would, and never detaches memory it was not given', async () => {
  const data = chunk();
  const r = await pool.run(task(data), false);
  expect(data.byteLength).toBe(1024 * 1024); // still the caller's
  expect(r.codec).toBe('lz4');
  const here = compressIfWorthIt(data, compressorOf('lz4', undefined), 4096, 0.9) as Uint8Array;
  expect(Buffer.from(r.data).equals(Buffer.from(here))).toBe(true);
});

it('moves memory it was given to the worker and hands it back as input', async () => {
  const data = chunk();
  const copy = Buffer.from(data);
  const r = await pool.run(task(data), true);
  expect(data.byteLength).toBe(0); // moved
  expect(Buffer.from(r.input).equals(copy)).toBe(true); // and back, unchanged, for reuse
});

it('returns incompressible input as is, with codec none', async () => {
  const noise = new Uint8Array(256 * 1024).map(() => Math.floor(Math.random() * 256));
  const r = await pool.run(task(noise), false);
  expect(r.codec).toBe('none');
  expect(Buffer.from(r.data).equals(Buffer.from(noise))).toBe(true);
});

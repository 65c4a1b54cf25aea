/**
 * Large-value throughput: cacheness put/get of one big Buffer against fs.promises.writeFile/readFile
 * of the same bytes in the same directory, interleaved round by round.
 * @module
 */
import { randomFillSync } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Cache, createCache } from '../sdk/src/index.js';
import { median } from './stats.js';

/** Throughputs (MB/s, 1 MB = 10^6 bytes) of each round. */
export interface Throughput {
  rounds: number[];
  best: number;
  median: number;
}

export interface LargeCase {
  label: string;
  bytes: number;
  /** Bytes cacheness stored (after compression). */
  storedSize: number;
  codec: string;
  put: Throughput;
  get: Throughput;
  fsWrite: Throughput;
  fsRead: Throughput;
}

export function throughput(rounds: number[]): Throughput {
  return { rounds, best: Math.max(...rounds), median: median(rounds) };
}

/** `size` random bytes. */
export function randomBytesOf(size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  // randomFillSync fills at most 2^31-1 bytes per call.
  for (let off = 0; off < size; off += 1 << 30) randomFillSync(buf, off, Math.min(1 << 30, size - off));
  return buf;
}

/** The bytes of a smooth Float32Array signal quantized to 1/8 steps (sensor-like data; lz4 gets it to about a third). */
export function signalBytesOf(size: number): Buffer {
  const f = new Float32Array(Math.floor(size / 4));
  for (let i = 0; i < f.length; i++) f[i] = Math.round(Math.sin(i / 1000) * 1000) / 8;
  return Buffer.from(f.buffer, 0, f.byteLength);
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { value, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

/**
 * Puts and gets `data` `rounds` times (after one untimed warm-up round), each round also writing and
 * reading the same bytes with raw fs. The first bytes change every round so the content-addressed blob
 * store cannot skip the write, the previous round's entry and file are removed before the next round
 * (untimed), and the order of cacheness and fs alternates between rounds.
 */
export async function runLargeCase(cache: Cache, dir: string, label: string, data: Buffer, rounds: number): Promise<LargeCase> {
  const file = join(dir, `${label.replace(/\W+/g, '-')}.bin`);
  const mb = data.length / 1e6;
  const put: number[] = [];
  const get: number[] = [];
  const fsWrite: number[] = [];
  const fsRead: number[] = [];
  let storedSize = 0;
  let codec = '';
  // Round -1 is an untimed warm-up at full size (first-touch page cache and allocator costs).
  for (let r = -1; r < rounds; r++) {
    const keep = r >= 0;
    data.writeUInt32LE(r + 2, 0);
    const key = `bench/${label}/round-${r + 1}`;
    await rm(file, { force: true });

    const fsPut = async () => {
      const { seconds } = await timed(() => writeFile(file, data));
      if (keep) fsWrite.push(mb / seconds);
    };
    const cachePut = async () => {
      const { value: info, seconds } = await timed(() => cache.put(data, key));
      if (keep) put.push(mb / seconds);
      storedSize = info.storedSize;
      codec = info.codec;
      if (info.size !== data.length) throw new Error(`${label}: put recorded ${info.size} bytes, expected ${data.length}`);
    };
    const fsGet = async () => {
      const { value, seconds } = await timed(() => readFile(file));
      if (keep) fsRead.push(mb / seconds);
      if (!value.equals(data)) throw new Error(`${label}: fs read back different bytes`);
    };
    const cacheGet = async () => {
      const { value, seconds } = await timed(() => cache.get(key));
      if (keep) get.push(mb / seconds);
      if (!Buffer.isBuffer(value) || !value.equals(data)) throw new Error(`${label}: cacheness read back different bytes in round ${r + 1}`);
    };

    if (r % 2 === 0) {
      await fsPut();
      await cachePut();
      await fsGet();
      await cacheGet();
    } else {
      await cachePut();
      await fsPut();
      await cacheGet();
      await fsGet();
    }
    await cache.delete(key);
  }
  await rm(file, { force: true });
  return {
    label,
    bytes: data.length,
    storedSize,
    codec,
    put: throughput(put),
    get: throughput(get),
    fsWrite: throughput(fsWrite),
    fsRead: throughput(fsRead),
  };
}

export interface LargeResults {
  bytes: number;
  rounds: number;
  random: LargeCase;
  signal: LargeCase;
}

/** Random bytes (incompressible: stored raw) and a compressible signal, in one cache with `maxSize: null`. */
export async function runLarge(root: string, mib: number, rounds: number): Promise<LargeResults> {
  const size = Math.round(mib * 1024 ** 2);
  const dir = join(root, 'large');
  mkdirSync(dir, { recursive: true });
  const cache = createCache({ dir: join(dir, 'cache'), maxSize: null });
  try {
    // Warm-up: one small blob through every path (blob write, read, hash, delete).
    const warm = randomBytesOf(1024 ** 2);
    await cache.put(warm, 'bench/warm-up');
    if (!(await cache.get('bench/warm-up'))) throw new Error('warm-up read missed');
    await cache.delete('bench/warm-up');

    let data: Buffer | undefined = randomBytesOf(size);
    const random = await runLargeCase(cache, dir, 'random', data, rounds);
    data = undefined;
    const signal = await runLargeCase(cache, dir, 'signal', signalBytesOf(size), rounds);
    return { bytes: size, rounds, random, signal };
  } finally {
    await cache.close();
  }
}

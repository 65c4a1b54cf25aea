/**
 * Typed-array throughput (issue 5): `cache.put`/`cache.get` of a large `Float32Array` through the
 * `ndarray` value handler, against raw fs and against the SDK's own pieces with and without the
 * byte shuffle.
 *
 * 1. Codec `none`: a smooth `Float32Array` put and get, against `fs.promises.writeFile`/`readFile`
 *    of the same element bytes, interleaved round by round (target ≥ 0.8× fs).
 * 2. For a smooth signal and for "embeddings" (normal values, 768-dim rows), each one dataset at a time:
 *    - `shuffle` and `unshuffle` alone, against a plain copy (`Uint8Array.set`) of the same bytes;
 *    - the SDK's `maybeCompress`/`decompress` (lz4, zstd) on the raw element bytes and on the shuffled
 *      bytes, so the only difference is the shuffle;
 *    - end to end: `cache.put`/`cache.get` of the array (ndarray handler: shuffled) and of its raw bytes
 *      as a `Buffer` (bytes handler: not shuffled), in a cache with that codec and default settings.
 * @module
 */
import { mkdirSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { decompress, maybeCompress, resolveCompression } from '../sdk/src/compression.js';
import { type CodecName, createCache } from '../sdk/src/index.js';
import { shuffle, unshuffle } from '../sdk/src/values/index.js';
import { type Throughput, throughput } from './large.js';

/** Row length of the "embeddings" dataset. */
export const EMBEDDING_DIM = 768;

// Between steps the benchmark drops its references to gigabyte buffers and collects them, so one
// step's garbage does not inflate the next step's peak. `--expose-gc` at run time gives access to gc().
let collect: (() => void) | undefined;
function gc(): void {
  if (!collect) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  }
  collect();
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A smooth sensor-like signal: three sines (periods of 10 000, 1 337 and 211 samples, amplitudes 1,
 * 0.5 and 0.25) plus uniform noise of ±0.001. The sines advance by rotation and are re-anchored with
 * Math.sin/cos every 4096 samples (a plain Math.sin per sample takes ~25 s per GiB here).
 */
export function signalOf(bytes: number): Float32Array {
  const f = new Float32Array(Math.floor(bytes / 4));
  const rand = prng(1);
  const waves = [
    { w: (2 * Math.PI) / 10_000, amp: 1 },
    { w: (2 * Math.PI) / 1337, amp: 0.5 },
    { w: (2 * Math.PI) / 211, amp: 0.25 },
  ].map((x) => ({ ...x, cw: Math.cos(x.w), sw: Math.sin(x.w), s: 0, c: 1 }));
  for (let i = 0; i < f.length; i++) {
    let v = 0;
    for (const x of waves) {
      if ((i & 4095) === 0) {
        x.s = Math.sin(x.w * i);
        x.c = Math.cos(x.w * i);
      }
      v += x.amp * x.s;
      const s = x.s * x.cw + x.c * x.sw;
      x.c = x.c * x.cw - x.s * x.sw;
      x.s = s;
    }
    f[i] = v + (rand() - 0.5) * 0.002;
  }
  return f;
}

/** "Embeddings": rows of 768 normal values with standard deviation 1/√768 (rows of about unit length), by the Box-Muller polar method. */
export function embeddingsOf(bytes: number): { data: Float32Array; shape: number[] } {
  const rows = Math.floor(bytes / (4 * EMBEDDING_DIM));
  const f = new Float32Array(rows * EMBEDDING_DIM);
  const rand = prng(2);
  const scale = 1 / Math.sqrt(EMBEDDING_DIM);
  for (let i = 0; i < f.length; i += 2) {
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * rand() - 1;
      v = 2 * rand() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const m = Math.sqrt((-2 * Math.log(s)) / s) * scale;
    f[i] = u * m;
    f[i + 1] = v * m; // the length is even (768 per row)
  }
  return { data: f, shape: [rows, EMBEDDING_DIM] };
}

const bytesOf = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function seconds(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function timed<T>(fn: () => Promise<T> | T): Promise<{ value: T; seconds: number }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { value, seconds: seconds(t0) };
}

function sameBytes(label: string, got: unknown, want: Buffer): void {
  const view = ArrayBuffer.isView(got) ? got : typeof got === 'object' && got !== null && 'data' in got && ArrayBuffer.isView(got.data) ? got.data : undefined;
  if (!view || !bytesOf(view).equals(want)) throw new Error(`${label}: read back different bytes`);
}

export interface NoneCase {
  bytes: number;
  put: Throughput;
  get: Throughput;
  fsWrite: Throughput;
  fsRead: Throughput;
}

export interface ShuffleFigures {
  /** MB/s of `shuffle(src, 4, dst)`, `unshuffle(...)` and of the `dst.set(src)` baseline, into preallocated, already touched buffers. */
  shuffle: number;
  unshuffle: number;
  copy: number;
}

export interface CodecFigures {
  codec: CodecName;
  layout: 'raw' | 'shuffled';
  storedBytes: number;
  compress: number;
  decompress: number;
}

export interface CacheFigures {
  codec: CodecName;
  /** Compression worker threads (`createCache({ workers })`). */
  workers: number;
  /** `ndarray`: the typed array itself (shuffled); `bytes`: its element bytes as a Buffer (not shuffled). */
  handler: 'ndarray' | 'bytes';
  storedCodec: string;
  storedBytes: number;
  put: number;
  get: number;
}

export interface DatasetFigures {
  label: string;
  /** What was put through the ndarray handler: `Float32Array` or `{ data, shape }`. */
  valueKind: string;
  bytes: number;
  shuffle: ShuffleFigures;
  codecs: CodecFigures[];
  cache: CacheFigures[];
}

export interface ArrayResults {
  bytes: number;
  rounds: number;
  none: NoneCase;
  datasets: DatasetFigures[];
  /** Peak RSS after each part (bytes). */
  rss: { label: string; bytes: number }[];
}

const peakRss = () => process.resourceUsage().maxRSS * 1024;

/**
 * Part 1: codec `none`, `rounds` timed rounds after one untimed warm-up round, cacheness and fs
 * alternating first; the first element changes every round so the blob store cannot skip a write.
 */
async function runNone(dir: string, signal: Float32Array, rounds: number): Promise<NoneCase> {
  const raw = bytesOf(signal);
  const mb = raw.length / 1e6;
  const file = join(dir, 'none.bin');
  const cache = createCache({ dir: join(dir, 'cache-none'), maxSize: null, compression: { codec: 'none' } });
  const put: number[] = [];
  const get: number[] = [];
  const fsWrite: number[] = [];
  const fsRead: number[] = [];
  const first = signal[0] as number;
  try {
    for (let r = -1; r < rounds; r++) {
      const keep = r >= 0;
      signal[0] = first + r + 2;
      const key = `bench/array-none/round-${r + 1}`;
      await rm(file, { force: true });
      gc();
      const fsPut = async () => {
        const t = await timed(() => writeFile(file, raw));
        if (keep) fsWrite.push(mb / t.seconds);
      };
      const cachePut = async () => {
        const t = await timed(() => cache.put(signal, key));
        if (keep) put.push(mb / t.seconds);
        // Above the chunk size the payload is a chunked container of raw chunks: the bytes plus a small index.
        if (t.value.codec !== 'none' && (t.value.codec !== 'chunked' || t.value.storedSize > t.value.size * 1.001)) {
          throw new Error(`array none: stored with codec ${t.value.codec}, ${t.value.storedSize} bytes`);
        }
      };
      const fsGet = async () => {
        const t = await timed(() => readFile(file));
        if (keep) fsRead.push(mb / t.seconds);
        if (!t.value.equals(raw)) throw new Error('array none: fs read back different bytes');
      };
      const cacheGet = async () => {
        const t = await timed(() => cache.get(key));
        if (keep) get.push(mb / t.seconds);
        if (!(t.value instanceof Float32Array)) throw new Error('array none: get did not return a Float32Array');
        sameBytes(`array none round ${r + 1}`, t.value, raw);
      };
      if (r % 2 === 0) {
        await fsPut();
        await cachePut();
        gc();
        await fsGet();
        gc();
        await cacheGet();
      } else {
        await cachePut();
        gc();
        await fsPut();
        await cacheGet();
        gc();
        await fsGet();
      }
      await cache.delete(key);
    }
  } finally {
    signal[0] = first;
    await rm(file, { force: true });
    await cache.close();
  }
  return { bytes: raw.length, put: throughput(put), get: throughput(get), fsWrite: throughput(fsWrite), fsRead: throughput(fsRead) };
}

/** Part 2 for one dataset. The value is a Float32Array or `{ data, shape }`. */
async function runDataset(dir: string, label: string, value: Float32Array | { data: Float32Array; shape: number[] }, log: (s: string) => void): Promise<DatasetFigures> {
  const data = value instanceof Float32Array ? value : value.data;
  const raw = bytesOf(data);
  const mb = raw.length / 1e6;

  // Shuffle alone, into preallocated buffers touched beforehand (page faults are not the shuffle's cost).
  let shuffled: Buffer | undefined = Buffer.alloc(raw.length, 1);
  let scratch: Buffer | undefined = Buffer.alloc(raw.length, 1);
  shuffle(raw.subarray(0, 1 << 20), 4, shuffled); // JIT warm-up
  unshuffle(shuffled.subarray(0, 1 << 20), 4, scratch);
  let t0 = process.hrtime.bigint();
  scratch.set(raw);
  const copy = mb / seconds(t0);
  t0 = process.hrtime.bigint();
  shuffle(raw, 4, shuffled);
  const shuffleMBs = mb / seconds(t0);
  scratch.fill(0);
  t0 = process.hrtime.bigint();
  unshuffle(shuffled, 4, scratch);
  const unshuffleMBs = mb / seconds(t0);
  if (!scratch.equals(raw)) throw new Error(`${label}: unshuffle(shuffle(x)) differs from x`);
  scratch = undefined;
  gc();
  log(`${label}: shuffle ${shuffleMBs.toFixed(0)} MB/s, unshuffle ${unshuffleMBs.toFixed(0)} MB/s, copy ${copy.toFixed(0)} MB/s`);

  // The codecs alone on the raw and the shuffled bytes. minRatio 2 keeps every output, so the
  // stored size is the codec's real output even where the cache would store the bytes raw.
  const codecs: CodecFigures[] = [];
  for (const codec of ['lz4', 'zstd'] as const) {
    const opts = resolveCompression({ codec, minRatio: 2 });
    for (const layout of ['raw', 'shuffled'] as const) {
      const input = layout === 'raw' ? raw : (shuffled as Buffer);
      t0 = process.hrtime.bigint();
      let c: ReturnType<typeof maybeCompress> | undefined = maybeCompress(input, opts);
      const compress = mb / seconds(t0);
      if (c.codec !== codec) throw new Error(`${label}: ${codec} was not applied`);
      const storedBytes = c.bytes.length;
      t0 = process.hrtime.bigint();
      let d: Uint8Array | undefined = decompress(c.codec, c.bytes, input.length);
      const decompressMBs = mb / seconds(t0);
      if (!bytesOf(d).equals(input)) throw new Error(`${label}: ${codec} ${layout} decompressed to different bytes`);
      c = undefined;
      d = undefined;
      gc();
      codecs.push({ codec, layout, storedBytes, compress, decompress: decompressMBs });
      log(`${label}: ${codec} ${layout} ${((100 * storedBytes) / raw.length).toFixed(1)}%, ${compress.toFixed(0)} / ${decompressMBs.toFixed(0)} MB/s`);
    }
  }
  shuffled = undefined;
  gc();

  // End to end, in a cache with that codec and default settings.
  const cache: CacheFigures[] = [];
  const configs = [
    { codec: 'lz4', workers: 0 },
    { codec: 'lz4', workers: 2 },
    { codec: 'zstd', workers: 0 },
    { codec: 'zstd', workers: 2 },
  ] as const;
  for (const { codec, workers } of configs) {
    const c = createCache({ dir: join(dir, `cache-${label}-${codec}-${workers}`), maxSize: null, compression: { codec }, workers });
    try {
      for (const handler of workers ? (['ndarray'] as const) : (['ndarray', 'bytes'] as const)) {
        const key = `bench/${label}/${codec}/${workers}/${handler}`;
        const put = await timed(() => c.put(handler === 'ndarray' ? value : raw, key));
        gc();
        const got = await timed(() => c.get(key));
        if (handler === 'ndarray') {
          if (value instanceof Float32Array ? !(got.value instanceof Float32Array) : JSON.stringify((got.value as { shape?: unknown }).shape) !== JSON.stringify(value.shape)) {
            throw new Error(`${label}: ${codec} get returned another class or shape`);
          }
        }
        sameBytes(`${label} ${codec} ${handler}`, got.value, raw);
        await c.delete(key);
        gc();
        const fig: CacheFigures = { codec, workers, handler, storedCodec: put.value.codec, storedBytes: put.value.storedSize, put: mb / put.seconds, get: mb / got.seconds };
        cache.push(fig);
        log(
          `${label}: cache ${codec} workers ${workers} ${handler} stored ${fig.storedCodec} ${((100 * fig.storedBytes) / raw.length).toFixed(1)}%, put ${fig.put.toFixed(0)}, get ${fig.get.toFixed(0)} MB/s`,
        );
      }
    } finally {
      await c.close();
    }
  }
  return {
    label,
    valueKind: value instanceof Float32Array ? 'Float32Array' : '{ data, shape }',
    bytes: raw.length,
    shuffle: { shuffle: shuffleMBs, unshuffle: unshuffleMBs, copy },
    codecs,
    cache,
  };
}

/**
 * Runs both parts with arrays of about `mib` MiB. `log` gets a line after each step (progress on stderr).
 * One dataset lives at a time; every step drops its buffers and collects them before the next.
 */
export async function runArrays(root: string, mib: number, rounds: number, log: (s: string) => void = () => {}): Promise<ArrayResults> {
  const size = Math.round(mib * 1024 ** 2);
  const dir = join(root, 'arrays');
  mkdirSync(dir, { recursive: true });
  const rss: ArrayResults['rss'] = [];
  // Untimed warm-up of both codecs at full size: lz4-wasm grows its linear memory on the first big
  // call (and never shrinks it), which would otherwise land on whichever step runs first.
  {
    let warm: Buffer | undefined = Buffer.alloc(size, 7);
    for (const codec of ['lz4', 'zstd'] as const) {
      const c = maybeCompress(warm, resolveCompression({ codec, minRatio: 2 }));
      decompress(c.codec, c.bytes, warm.length);
    }
    warm = undefined;
    gc();
    log(`arrays: codec warm-up done`);
  }
  let signal: Float32Array | undefined = signalOf(size);
  const none = await runNone(dir, signal, rounds);
  rss.push({ label: 'after codec none', bytes: peakRss() });
  log(`arrays: codec none done`);
  const datasets: DatasetFigures[] = [];
  datasets.push(await runDataset(dir, 'signal', signal, log));
  signal = undefined;
  gc();
  rss.push({ label: 'after signal', bytes: peakRss() });
  datasets.push(await runDataset(dir, 'embeddings', embeddingsOf(size), log));
  gc();
  rss.push({ label: 'after embeddings', bytes: peakRss() });
  return { bytes: size, rounds, none, datasets, rss };
}

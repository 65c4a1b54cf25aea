/**
 * Small-value latency: cacheness put/get of ~100-byte plain objects (key params and string keys)
 * against a bare better-sqlite3 insert/select of 100-byte blobs, every operation timed on its own.
 * @module
 */
import { deepStrictEqual } from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createCache, type Key } from '../sdk/src/index.js';
import { type LatencySummary, summarize, usSince } from './stats.js';

/** The small value of index `i`: ~100 bytes as JSON. */
export interface SmallValue {
  id: number;
  name: string;
  email: string;
  tags: string[];
  score: number;
  active: boolean;
}

export function smallValue(i: number): SmallValue {
  return { id: i, name: `user-${i}`, email: `user-${i}@example.com`, tags: ['a', 'b'], score: i * 1.5, active: true };
}

export interface PutGetSeries {
  label: string;
  put: LatencySummary;
  get: LatencySummary;
  /** Gets through a second cache on the same directory (a fresh connection, nothing memoized): the cost of reading what another process wrote. */
  coldGet?: LatencySummary;
  /** Mean bytes per stored value. */
  bytes: number;
}

export interface SmallResults {
  n: number;
  warmup: number;
  jsonBytes: number;
  /** Mean serialized size of a value as cacheness stores it (EntryInfo.size). */
  storedBytes: number;
  timerOverheadUs: number;
  baseline: PutGetSeries;
  params: PutGetSeries;
  strings: PutGetSeries;
}

/** Deterministic permutation of 0..n-1 (mulberry32-driven Fisher-Yates), so every series reads in the same order. */
export function shuffled(n: number, seed = 0x5eed): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const tmp = out[i] as number;
    out[i] = out[j] as number;
    out[j] = tmp;
  }
  return out;
}

/** Median cost of one `process.hrtime.bigint()` pair, i.e. what every per-op sample carries on top of the operation. */
export function timerOverheadUs(): number {
  const n = 100_000;
  const s = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    s[i] = usSince(t0);
  }
  return summarize(s).median;
}

/** How many warm-up operations precede each measured phase. */
export function warmupCount(n: number): number {
  return Math.min(2000, Math.max(200, Math.floor(n / 10)));
}

/** Bare better-sqlite3: the pragmas of the cacheness store, a text primary key and a 100-byte blob. */
function runBaseline(dir: string, n: number, warm: number, order: Uint32Array): PutGetSeries {
  const db = new Database(join(dir, 'kv.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('cache_size = -16000');
    db.pragma('temp_store = MEMORY');
    db.exec('CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)');
    const insert = db.prepare('INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)');
    const select = db.prepare('SELECT value FROM kv WHERE key = ?').pluck();
    const blobs = randomFillSync(Buffer.alloc(100 * n));
    const blob = (i: number) => blobs.subarray(100 * i, 100 * i + 100);
    const keys = Array.from({ length: n }, (_, i) => `user:${i}`);

    for (let i = 0; i < warm; i++) insert.run(`warm:${i}`, blob(i % n));
    for (let i = 0; i < warm; i++) select.get(`warm:${i}`);

    const put = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      insert.run(keys[i], blob(i));
      put[i] = usSince(t0);
    }
    const get = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      const i = order[j] as number;
      const t0 = process.hrtime.bigint();
      const v = select.get(keys[i]) as Buffer | undefined;
      get[j] = usSince(t0);
      if (!v || !blob(i).equals(v)) throw new Error(`baseline: key ${keys[i]} read back different bytes`);
    }
    return { label: 'better-sqlite3 (bare insert/select)', put: summarize(put), get: summarize(get), bytes: 100 };
  } finally {
    db.close();
  }
}

/** cacheness with its defaults (lz4 above 4 KiB, 1 GiB maxSize with LRU, integrity checks on). */
async function runCacheness(dir: string, label: string, keys: Key[], warmKeys: Key[], values: SmallValue[], order: Uint32Array): Promise<PutGetSeries> {
  const n = keys.length;
  const cache = createCache({ dir });
  try {
    for (let i = 0; i < warmKeys.length; i++) await cache.put(values[i % n], warmKeys[i] as Key);
    for (let i = 0; i < warmKeys.length; i++) await cache.get(warmKeys[i] as Key);

    const put = new Float64Array(n);
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      const info = await cache.put(values[i], keys[i] as Key);
      put[i] = usSince(t0);
      bytes += info.size;
    }
    const get = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      const i = order[j] as number;
      const t0 = process.hrtime.bigint();
      const v = (await cache.get(keys[i] as Key)) as SmallValue | undefined;
      get[j] = usSince(t0);
      // Every read must be a hit on the right value; a sample is compared in full.
      if (v?.id !== i) throw new Error(`${label}: key ${JSON.stringify(keys[i])} read back ${JSON.stringify(v)}`);
      if (j % 97 === 0) deepStrictEqual(v, values[i], `${label}: value ${i} read back different`);
    }
    // The same reads from a second connection, whose in-process row memo is empty.
    const other = createCache({ dir });
    const cold = new Float64Array(n);
    try {
      for (let j = 0; j < n; j++) {
        const i = order[j] as number;
        const t0 = process.hrtime.bigint();
        const v = (await other.get(keys[i] as Key)) as SmallValue | undefined;
        cold[j] = usSince(t0);
        if (v?.id !== i) throw new Error(`${label} (cold): key ${JSON.stringify(keys[i])} read back ${JSON.stringify(v)}`);
      }
    } finally {
      await other.close();
    }
    return { label, put: summarize(put), get: summarize(get), coldGet: summarize(cold), bytes: bytes / n };
  } finally {
    await cache.close();
  }
}

/** Runs the baseline and both cacheness key variants, each in a fresh directory under `root`. */
export async function runSmall(root: string, n: number): Promise<SmallResults> {
  const warm = warmupCount(n);
  const order = shuffled(n);
  const values = Array.from({ length: n }, (_, i) => smallValue(i));
  const dirs = ['baseline', 'params', 'strings'].map((d) => join(root, d));
  for (const d of dirs) mkdirSync(d, { recursive: true });
  const overhead = timerOverheadUs();

  const baseline = runBaseline(dirs[0] as string, n, warm, order);
  const params = await runCacheness(
    dirs[1] as string,
    'cacheness, key params {user: i}',
    Array.from({ length: n }, (_, i) => ({ user: i })),
    Array.from({ length: warm }, (_, i) => ({ warm: i })),
    values,
    order,
  );
  const strings = await runCacheness(
    dirs[2] as string,
    "cacheness, string keys 'user:i'",
    Array.from({ length: n }, (_, i) => `user:${i}`),
    Array.from({ length: warm }, (_, i) => `warm:${i}`),
    values,
    order,
  );
  let json = 0;
  for (const v of values) json += JSON.stringify(v).length;
  return { n, warmup: warm, jsonBytes: json / n, storedBytes: params.bytes, timerOverheadUs: overhead, baseline, params, strings };
}

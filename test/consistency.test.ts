/**
 * Randomized consistency checks (seeded, so a failure replays: CACHENESS_SEED=<n> npm test).
 * Two caches with read memos and one without share a directory while random puts, deletes, touches,
 * cleanups, prefix deletes, clears and table changes run through them; every read must agree with the
 * memo-less reference, and the store's bookkeeping must add up at the end.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { type Cache, createCache } from 'cacheness';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { blobFiles } from './fixtures/files.js';

const SEED = Number(process.env.CACHENESS_SEED ?? 20261121);

/** mulberry32: small, seeded, good enough to pick operations. */
function prng(seed: number) {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

let dir: string;
const opened: Cache[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cacheness-consistency-'));
});
afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
  await rm(dir, { recursive: true, force: true });
});

it(`stays consistent under random operations from several connections (seed ${SEED})`, async () => {
  const rnd = prng(SEED);
  let now = 1_700_000_000_000;
  const opts = { dir, maxSize: 300_000, clock: () => now, onError: (e: Error) => errors.push(e) };
  const errors: Error[] = [];
  const [a, b, ref] = [createCache(opts), createCache(opts), createCache({ ...opts, readCacheBytes: 0 })];
  opened.push(a, b, ref);
  const columns: Record<string, 'integer' | 'text'> = { v: 'integer' };
  await a.defineTable('t', columns, { unique: ['v'] });
  const blobs = Array.from({ length: 5 }, (_, i) => randomBytes(40_000 + i)); // shared payloads exercise dedup
  let reads = 0;
  for (let step = 0; step < 3000; step++) {
    const c = rnd(2) ? a : b;
    const k = `k${rnd(25)}`;
    now += rnd(400);
    const op = rnd(14);
    try {
      if (op < 6) {
        const value = rnd(3) === 0 ? blobs[rnd(5)] : { step, pad: 'x'.repeat(rnd(3000)) };
        await c.put(value, k, { ttl: rnd(3) ? null : rnd(4), tables: rnd(4) ? undefined : { t: { v: rnd(15) } } });
      } else if (op === 6) await c.delete(k);
      else if (op === 7) await c.touch(k, { ttl: rnd(5) });
      else if (op === 8 && rnd(40) === 0) await c.cleanup();
      else if (op === 9 && rnd(60) === 0) await c.deletePrefix('k1');
      else if (op === 10 && rnd(300) === 0) await c.clear();
      else if (op === 11 && rnd(100) === 0) {
        columns[`c${rnd(3)}`] = 'text'; // definitions may only grow
        await c.defineTable('t', columns, { unique: ['v'] });
      }
    } catch (err) {
      if ((err as { code?: string }).code !== 'ECONSTRAINT') throw err;
    }
    const rk = `k${rnd(25)}`;
    const [va, vb, vr] = [await a.get(rk), await b.get(rk), await ref.get(rk)];
    expect(isDeepStrictEqual(va, vr) && isDeepStrictEqual(vb, vr), `step ${step}: ${rk} read differently through a memo`).toBe(true);
    if (vr !== undefined) reads++;
  }
  expect(reads).toBeGreaterThan(300); // the run kept enough live entries to compare
  expect(errors).toEqual([]);

  await a.cleanup();
  const one = async (sql: string) => ((await ref.sql(sql)) as Record<string, number>[])[0];
  expect(await one('SELECT count(*) AS n FROM _blobs b WHERE b.refs <> (SELECT count(*) FROM entries e WHERE e.blob_id = b.id)')).toEqual({ n: 0 });
  expect(await one('SELECT count(*) AS n FROM entries e WHERE blob_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM _blobs b WHERE b.id = e.blob_id)')).toEqual({ n: 0 });
  const counters = await one(
    "SELECT (SELECT value FROM _counters WHERE name = 'entries') - (SELECT count(*) FROM entries) AS entries, (SELECT value FROM _counters WHERE name = 'bytes') - (SELECT coalesce(sum(stored_size), 0) FROM entries) AS bytes",
  );
  expect(counters).toEqual({ entries: 0, bytes: 0 });
  expect(await one('SELECT (SELECT count(*) FROM _access) - (SELECT count(*) FROM entries) AS n')).toEqual({ n: 0 });
  expect(await one('SELECT count(*) AS n FROM _pins')).toEqual({ n: 0 });
  expect(await one('SELECT count(*) AS n FROM t WHERE key NOT IN (SELECT key FROM entries)')).toEqual({ n: 0 });
  expect(await a.verify()).toMatchObject({ dangling: [], mismatched: [], orphans: [] });
  const [{ n }] = (await ref.sql('SELECT count(DISTINCT blob_id) AS n FROM entries WHERE blob_id IS NOT NULL')) as [{ n: number }];
  expect(await blobFiles(dir)).toHaveLength(n);
});

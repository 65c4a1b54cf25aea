/**
 * Concurrent writers on one namespace (several store instances, as several Lambda containers have):
 * no deadlocks, no lost counts, and the bookkeeping adds up. Real PostgreSQL, real concurrency.
 */
import { randomBytes } from 'node:crypto';
import type { EntryRecord } from 'cacheness';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PostgresMetadataStore } from '../src/postgres/index.js';
import { type PostgresHarness, startPostgres } from './postgres-server.js';

let pg: PostgresHarness;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(() => pg.stop());

const T0 = 1_700_000_000_000;
const record = (key: string, over: Partial<EntryRecord> = {}): EntryRecord => ({
  key,
  params: null,
  handler: 'h',
  type: 't',
  codec: 'none',
  size: 10,
  storedSize: 10,
  contentHash: '0'.repeat(32),
  blobId: null,
  inline: Buffer.alloc(10),
  createdAt: T0,
  accessedAt: T0,
  expiresAt: null,
  hits: 0,
  description: null,
  metadata: null,
  ...over,
});
const ns = () => `c-${randomBytes(4).toString('hex')}`;

async function invariants(namespace: string) {
  const [r] = await pg.sql`
    SELECT
      (SELECT count(*)::int FROM blobs b WHERE b.namespace = ${namespace} AND b.refs <> (SELECT count(*) FROM entries e WHERE e.namespace = b.namespace AND e.blob_id = b.id)) AS refs_drift,
      (SELECT coalesce((SELECT value FROM counters WHERE namespace = ${namespace} AND name = 'entries'), 0) - (SELECT count(*) FROM entries WHERE namespace = ${namespace}))::int AS entries_drift,
      (SELECT coalesce((SELECT value FROM counters WHERE namespace = ${namespace} AND name = 'bytes'), 0) - (SELECT coalesce(sum(stored_size), 0) FROM entries WHERE namespace = ${namespace}))::int AS bytes_drift,
      (SELECT (SELECT count(*) FROM access WHERE namespace = ${namespace}) - (SELECT count(*) FROM entries WHERE namespace = ${namespace}))::int AS access_drift`;
  return r;
}

it('puts that reuse a blob race deletes of other entries on it without deadlocks', async () => {
  const n = ns();
  const [s1, s2] = [new PostgresMetadataStore({ sql: pg.sql, namespace: n }), new PostgresMetadataStore({ sql: pg.sql, namespace: n })];
  const X = 'ab'.repeat(16);
  for (let i = 0; i < 100; i++) {
    const r = await s1.acquireBlob(X, 10, T0, 'o');
    await s1.put(record(`b${i}`, { blobId: X, inline: null }), { pin: r.pin, blobName: r.name });
  }
  const errors: string[] = [];
  const ops: Promise<unknown>[] = [];
  for (let i = 0; i < 100; i++) {
    ops.push(
      (async () => {
        const r = await s1.acquireBlob(X, 10, T0, 'o');
        await s1.put(record(`a${i}`, { blobId: X, inline: null }), { pin: r.pin, blobName: r.name });
      })().catch((e) => errors.push(String(e.message))),
    );
    ops.push(s2.delete(`b${i}`).catch((e) => errors.push(String(e.message))));
    if (i % 10 === 0) ops.push(s2.evict('lru', 10_000, T0).catch((e) => errors.push(String(e.message))));
  }
  await Promise.all(ops);
  expect(errors).toEqual([]);
  expect(await invariants(n)).toEqual({ refs_drift: 0, entries_drift: 0, bytes_drift: 0, access_drift: 0 });
});

it('overlapping access flushes from many instances neither deadlock nor lose hits', async () => {
  const n = ns();
  const seed = new PostgresMetadataStore({ sql: pg.sql, namespace: n });
  for (let i = 0; i < 200; i++) await seed.put(record(`k${i}`));
  const stores = Array.from({ length: 8 }, () => new PostgresMetadataStore({ sql: pg.sql, namespace: n }));
  let expected = 0;
  await Promise.all(
    stores.map(async (s, j) => {
      for (let round = 0; round < 10; round++) {
        // Different orders per instance, and a key twice in one batch.
        const keys = Array.from({ length: 60 }, (_, i) => `k${(i * (j + 3) + round) % 200}`);
        keys.push(keys[0] as string);
        expected += keys.length;
        await s.recordAccess(
          keys.map((key) => ({ key, hits: 1, accessedAt: T0 + round })),
          { hits: keys.length },
        );
      }
    }),
  );
  const [r] = await pg.sql`SELECT sum(hits)::int AS hits FROM access WHERE namespace = ${n}`;
  expect(r?.hits).toBe(expected);
  expect((await seed.counters()).hits).toBe(expected);
});

it('single reads take no write lock: they finish while a writer holds the namespace, and none is lost beside batches, puts and deletes', async () => {
  const n = ns();
  const store = new PostgresMetadataStore({ sql: pg.sql, namespace: n });
  for (let i = 0; i < 20; i++) await store.put(record(`k${i}`));
  // A writer holds the namespace lock (as a put or a sweeper batch does) for as long as this test likes.
  let release: () => void = () => {};
  const held = new Promise<void>((r) => {
    release = r;
  });
  let locked: () => void = () => {};
  const isLocked = new Promise<void>((r) => {
    locked = r;
  });
  const writer = pg.sql.begin(async (tx) => {
    await tx`SELECT namespace FROM namespaces WHERE namespace = ${n} FOR UPDATE`;
    locked();
    await held;
  });
  await isLocked;
  await store.recordAccess([{ key: 'k1', hits: 1, accessedAt: T0 + 1 }], { hits: 1 }); // would wait for the writer if it took the lock
  await store.recordAccess([], { misses: 1 });
  release();
  await writer;

  // Many single reads from many instances, racing batch flushes (which do lock), re-puts and deletes.
  const stores = Array.from({ length: 8 }, () => new PostgresMetadataStore({ sql: pg.sql, namespace: n }));
  let hits = 1;
  let misses = 1;
  await Promise.all([
    ...stores.map(async (s, j) => {
      for (let i = 0; i < 40; i++) {
        const key = `k${(i * (j + 1)) % 10}`;
        if (i % 5 === 4) {
          misses++;
          await s.recordAccess([], { misses: 1 });
        } else if (i % 7 === 6) {
          hits += 2;
          await s.recordAccess(
            [
              { key: `k${(i + 3) % 10}`, hits: 1, accessedAt: T0 },
              { key, hits: 1, accessedAt: T0 },
            ],
            { hits: 2 },
          );
        } else {
          hits++;
          await s.recordAccess([{ key, hits: 1, accessedAt: T0 + i }], { hits: 1 });
        }
      }
    }),
    (async () => {
      for (let i = 10; i < 20; i++) {
        await store.put(record(`k${i}`, { createdAt: T0 + 5 }));
        await store.delete(`k${i}`);
      }
    })(),
  ]);
  const c = await store.counters();
  expect({ hits: c.hits, misses: c.misses }).toEqual({ hits, misses });
  const [r] = await pg.sql`SELECT sum(hits)::int AS hits FROM access WHERE namespace = ${n} AND key IN ('k0','k1','k2','k3','k4','k5','k6','k7','k8','k9')`;
  expect(r?.hits).toBe(hits);
  expect(await invariants(n)).toEqual({ refs_drift: 0, entries_drift: 0, bytes_drift: 0, access_drift: 0 });
});

it('keeps the bookkeeping exact through statements of thousands of rows (inserts, updates that move blobs, expiry, clear)', async () => {
  const n = ns();
  const other = ns();
  const store = new PostgresMetadataStore({ sql: pg.sql, namespace: n });
  const bystander = new PostgresMetadataStore({ sql: pg.sql, namespace: other });
  await bystander.put(record('mine'));
  await store.defineTable('runs', { score: 'real' });
  for (let b = 0; b < 30; b++) await pg.sql`INSERT INTO blobs (namespace, id, gen, size) VALUES (${n}, ${`b${b}`}, 'g', 100)`;
  // One statement of 3,000 rows: a third inline, the rest over 30 blobs; half expire at T0 + 1 s.
  await pg.sql`
    INSERT INTO entries (namespace, key, handler, type, codec, size, stored_size, content_hash, blob_id, inline, created_at, expires_at)
    SELECT ${n}, 'k' || g, 'h', 't', 'none', g, g, 'x', CASE WHEN g % 3 = 0 THEN NULL ELSE 'b' || (g % 30) END,
           CASE WHEN g % 3 = 0 THEN decode('00', 'hex') END, ${new Date(T0)}::timestamptz, CASE WHEN g % 2 = 0 THEN ${new Date(T0 + 1000)}::timestamptz END
    FROM generate_series(1, 3000) g`;
  const [t] = await pg.sql`SELECT id FROM custom_tables WHERE namespace = ${n}`;
  await pg.sql.unsafe(`INSERT INTO ct_${t?.id} (namespace, key, score) SELECT $1, 'k' || g, g FROM generate_series(1, 3000, 7) g`, [n]);
  expect(await invariants(n)).toEqual({ refs_drift: 0, entries_drift: 0, bytes_drift: 0, access_drift: 0 });
  expect((await store.counters()).entries).toBe(3000);
  // One UPDATE moving 1,000 entries between blobs, to inline and back, and resizing them.
  await pg.sql`
    UPDATE entries SET blob_id = CASE WHEN blob_id IS NULL THEN 'b7' WHEN key < 'k2' THEN NULL ELSE 'b' || ((substr(key, 2)::int + 1) % 30) END, stored_size = stored_size * 2
    WHERE namespace = ${n} AND substr(key, 2)::int % 3 <> 1`;
  expect(await invariants(n)).toEqual({ refs_drift: 0, entries_drift: 0, bytes_drift: 0, access_drift: 0 });
  expect(await store.deleteExpired(T0 + 2000, 100_000)).toBe(1500);
  expect(await invariants(n)).toEqual({ refs_drift: 0, entries_drift: 0, bytes_drift: 0, access_drift: 0 });
  const [rows] = await pg.sql.unsafe(`SELECT count(*)::int AS n FROM ct_${t?.id} c WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.namespace = c.namespace AND e.key = c.key)`);
  expect(rows?.n).toBe(0); // rows of expired entries went with them
  expect(await store.clear()).toBe(1500);
  expect(await invariants(n)).toEqual({ refs_drift: 0, entries_drift: 0, bytes_drift: 0, access_drift: 0 });
  const c = await store.counters();
  expect({ entries: c.entries, bytes: c.bytes }).toEqual({ entries: 0, bytes: 0 });
  const [left] = await pg.sql.unsafe(`SELECT count(*)::int AS n FROM ct_${t?.id}`);
  expect(left?.n).toBe(0);
  expect(await bystander.head('mine')).toBeDefined(); // the other tenant is untouched
  expect((await bystander.counters()).entries).toBe(1);
});

it("one tenant's custom tables do not slow or block another tenant's deletes", async () => {
  const busy = new PostgresMetadataStore({ sql: pg.sql, namespace: ns() });
  for (let i = 0; i < 30; i++) await busy.defineTable(`t${i}`, { v: 'integer' });
  const quiet = new PostgresMetadataStore({ sql: pg.sql, namespace: ns() });
  await quiet.defineTable('mine', { v: 'integer' });
  await quiet.put(record('k'), { tables: { mine: [{ v: 1 }] } });
  await busy.put(record('k'), { tables: { t0: [{ v: 1 }] } });
  expect(await quiet.delete('k')).toBe(true);
  expect(await quiet.query('mine', { now: T0, includeExpired: true })).toEqual([]);
  expect(await busy.query('t0', { now: T0 })).toEqual([{ key: 'k', v: 1 }]); // the other tenant's row with the same key is untouched
  const [fk] = await pg.sql`SELECT count(*)::int AS n FROM pg_constraint WHERE contype = 'f' AND confrelid = 'entries'::regclass`;
  expect(fk?.n).toBe(0); // no tenant table hangs a cascade trigger on the shared entries table
});

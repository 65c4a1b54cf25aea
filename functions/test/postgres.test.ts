import { randomBytes } from 'node:crypto';
import type { EntryRecord } from 'cacheness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS, migrate, PostgresMetadataStore } from '../src/postgres/index.js';
import { type PostgresHarness, startPostgres } from './postgres-server.js';

let pg: PostgresHarness;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(() => pg.stop());

const T0 = 1_700_000_000_000;
const record = (key: string, over: Partial<EntryRecord> = {}): EntryRecord => ({
  key,
  params: { p: key },
  handler: 'structured@1',
  type: 'object',
  codec: 'none',
  size: 3,
  storedSize: 3,
  contentHash: '0'.repeat(32),
  blobId: null,
  inline: Buffer.from('abc'),
  createdAt: T0,
  accessedAt: T0,
  expiresAt: null,
  hits: 0,
  description: null,
  metadata: { owner: key },
  ...over,
});

describe('migrations', () => {
  it('apply once, even when several deploys run them at the same time', async () => {
    expect(await migrate(pg.sql)).toEqual([]); // the harness already migrated
    const results = await Promise.all([migrate(pg.sql), migrate(pg.sql), migrate(pg.sql)]);
    expect(results).toEqual([[], [], []]);
    const rows = await pg.sql`SELECT version FROM schema_migrations ORDER BY version`;
    expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('refuse a database migrated by newer code (an older deploy must not run against it), changing nothing', async () => {
    const older = MIGRATIONS.slice(0, -1);
    await expect(migrate(pg.sql, older)).rejects.toMatchObject({ code: 'ESTORE', message: expect.stringContaining('newer than this code') });
    const rows = await pg.sql`SELECT version FROM schema_migrations ORDER BY version`;
    expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
  });
});

describe('tenant isolation', () => {
  const ns = () => `t-${randomBytes(6).toString('hex')}`;

  it('keeps one namespace from reading, listing, querying, overwriting or deleting another', async () => {
    const a = new PostgresMetadataStore({ sql: pg.sql, namespace: ns() });
    const b = new PostgresMetadataStore({ sql: pg.sql, namespace: ns() });
    await a.defineTable('runs', { name: 'text' }, { unique: ['name'] });
    await b.defineTable('runs', { name: 'text' }, { unique: ['name'] });
    await a.put(record('shared-key'), { tables: { runs: [{ name: 'r1' }] } });

    expect(await b.read('shared-key')).toBeUndefined();
    expect(await b.get('shared-key')).toBeUndefined();
    expect(await b.list({ limit: 10, now: T0 })).toEqual([]);
    expect(await b.count({ now: T0, where: { metadata: { owner: 'shared-key' } } })).toBe(0);
    expect(await b.query('runs', { now: T0 })).toEqual([]);
    expect(await b.delete('shared-key')).toBe(false);
    expect(await b.deletePrefix('shared')).toBe(0);
    expect(await b.clear()).toBe(0);
    // Same key and same unique value in b: its own entry, no conflict with a's.
    await b.put(record('shared-key', { description: 'b' }), { tables: { runs: [{ name: 'r1' }] } });
    expect((await a.head('shared-key'))?.description).toBeNull();
    expect((await b.head('shared-key'))?.description).toBe('b');
    expect((await a.counters()).entries).toBe(1);
    expect((await b.counters()).entries).toBe(1);
    await b.evict('lru', 0, T0);
    expect(await a.read('shared-key')).toBeDefined();
  });

  it('keeps blobs, pins and garbage per namespace', async () => {
    const a = new PostgresMetadataStore({ sql: pg.sql, namespace: ns() });
    const b = new PostgresMetadataStore({ sql: pg.sql, namespace: ns() });
    const id = 'ab'.repeat(16);
    const ra = await a.acquireBlob(id, 10, T0, 'h:1');
    await a.put(record('k', { blobId: id, inline: null }), { pin: ra.pin, blobName: ra.name });
    const rb = await b.acquireBlob(id, 10, T0, 'h:1');
    expect(rb.ready).toBe(false); // b has no such blob, whatever a stores
    await b.releasePin(rb.pin);
    expect(await b.claimGarbage(T0 + 1, 10)).toEqual([rb.name]);
    expect(await a.claimGarbage(T0 + 1, 10)).toEqual([]);
    expect(await b.isLiveBlob(ra.name)).toBe(false);
    expect(await a.isLiveBlob(ra.name)).toBe(true);
  });

  it('binds hostile keys, namespaces and where values as data', async () => {
    const evil = "x'); DROP TABLE entries; --";
    const s = new PostgresMetadataStore({ sql: pg.sql, namespace: evil });
    await s.put(record(evil, { metadata: { owner: evil } }));
    expect((await s.list({ limit: 5, now: T0, where: { metadata: { owner: evil } } })).map((e) => e.key)).toEqual([evil]);
    expect(await s.list({ limit: 5, now: T0, where: { metadata: { "owner') OR true --": 'x' } } })).toEqual([]);
    const [row] = await pg.sql`SELECT count(*)::int AS n FROM entries`;
    expect(row?.n).toBeGreaterThan(0);
  });
});

describe('staged blobs (streamed uploads)', () => {
  const ns = () => `s-${randomBytes(6).toString('hex')}`;
  const hex = () => randomBytes(16).toString('hex');

  it('deduplicate only against a ready blob of the same size, and answer a repeated adoption the same way', async () => {
    const store = new PostgresMetadataStore({ sql: pg.sql, namespace: ns() });
    const content = hex();
    const held = await store.acquireBlob(content, 10, T0, 'test:1');
    await store.put(record('held', { blobId: content, inline: null, storedSize: 10 }), { pin: held.pin, blobName: held.name });

    const wrongSize = await store.acquireBlob(hex(), 0, T0, 'test:1');
    const apart = await store.adoptStagedBlob(wrongSize.name, wrongSize.pin, content, 20);
    expect(apart).toEqual({ blobId: wrongSize.name.split('.')[0], name: wrongSize.name, deduplicated: false });

    const same = await store.acquireBlob(hex(), 0, T0, 'test:1');
    const first = await store.adoptStagedBlob(same.name, same.pin, content, 10);
    expect(first).toEqual({ blobId: content, name: held.name, deduplicated: true });
    expect(await store.adoptStagedBlob(same.name, same.pin, content, 10)).toEqual(first); // a retried completion

    const fresh = await store.acquireBlob(hex(), 0, T0, 'test:1');
    const newId = hex();
    const adopted = await store.adoptStagedBlob(fresh.name, fresh.pin, newId, 7);
    expect(adopted).toEqual({ blobId: newId, name: fresh.name, deduplicated: false });
    expect(await store.adoptStagedBlob(fresh.name, fresh.pin, newId, 7)).toEqual(adopted);
    await store.put(record('adopted', { blobId: newId, inline: null, storedSize: 7 }), { pin: fresh.pin, blobName: fresh.name });
    expect((await store.get('adopted'))?.blobName).toBe(fresh.name);
    expect(await store.isLiveBlob(fresh.name)).toBe(true);
    await expect(store.adoptStagedBlob(fresh.name, 'no-such-pin', newId, 7)).rejects.toMatchObject({ code: 'ESTORE' });
  });

  it('remember the object of a doomed blob renamed before its sweeper finished, and never offer a live name', async () => {
    const store = new PostgresMetadataStore({ sql: pg.sql, namespace: ns() });
    const id = hex();
    const r1 = await store.acquireBlob(id, 5, T0, 'test:1');
    await store.put(record('k', { blobId: id, inline: null, storedSize: 5 }), { pin: r1.pin, blobName: r1.name });
    await store.delete('k');
    expect(await store.claimGarbage(T0, 10)).toEqual([r1.name]); // a sweeper claims it, then fails to finish
    const r2 = await store.acquireBlob(id, 5, T0, 'test:2'); // new bytes with the same content arrive
    expect(r2.name).not.toBe(r1.name);
    expect(await store.buried(10)).toEqual([r1.name]);
    expect(await store.dropGarbage([r1.name])).toBe(0); // the row now names r2: nothing to drop
    expect(await store.forgetBuried([r1.name])).toBe(1);
    expect(await store.buried(10)).toEqual([]);
    await store.releasePin(r2.pin);
  });
});

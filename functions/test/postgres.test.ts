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

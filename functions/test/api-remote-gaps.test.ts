/**
 * The API additions the SDK's remote mode needs: uncounted reads and batched access reports, count,
 * delete by prefix, table listings and an entry's rows, dated writes (later write wins, also at upload
 * completion), absolute expiry, conditional deletes. Against real PostgreSQL and a real S3-protocol server.
 */
import { randomBytes } from 'node:crypto';
import type { CreateEntryRequest, WireEntry } from 'cacheness/model';
import { xxh128Hex } from 'cacheness/stores';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/api/index.js';
import { createApiKey } from '../src/postgres/index.js';
import { inlineEntry, uploadEntry } from './entry-bodies.js';
import { type PostgresHarness, startPostgres } from './postgres-server.js';
import { type S3Harness, startS3 } from './s3-server.js';

let pg: PostgresHarness;
let s3: S3Harness;
let app: ReturnType<typeof createApp>;
let now = 1_700_000_000_000;
let tenants = 0;

const iso = (ms: number) => new Date(ms).toISOString();
const HOUR = 3_600_000;

beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  app = createApp({ sql: pg.sql, s3: s3.client, bucket: s3.bucket, clock: () => now });
});
afterAll(async () => {
  await Promise.all([pg?.stop(), s3?.stop()]);
});

type Json = Record<string, unknown>;
interface ErrorBody {
  error: { code: string; message: string; details?: Json };
}

/** A fresh namespace (so its counters start at 0), with a read-write and a read-only key. */
async function tenant() {
  const namespace = `gaps-${++tenants}`;
  const rw = (await createApiKey(pg.sql, { namespace, scopes: ['read', 'write'] })).key;
  const ro = (await createApiKey(pg.sql, { namespace, scopes: ['read'] })).key;
  const send = (method: string, path: string, body?: unknown, key = rw) =>
    app.request(path, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const entry = (key: string) => `/v1/entries/${encodeURIComponent(key)}`;
  return {
    namespace,
    ro,
    send,
    entry,
    put: (key: string, body: CreateEntryRequest) => send('PUT', entry(key), body),
    /** The stored entry, read without counting. */
    head: async (key: string) => {
      const res = await send('GET', `${entry(key)}?payload=0`);
      return res.status === 404 ? undefined : ((await res.json()) as { entry: WireEntry }).entry;
    },
    stats: async () => (await (await send('GET', '/v1/stats')).json()) as { hits: number; misses: number; entries: number },
  };
}

const errorOf = async (res: Response) => [res.status, ((await res.json()) as ErrorBody).error.code];
const text = (s: string) => Buffer.from(s);
const bodyOf = async (res: Response) => Buffer.from(((await res.json()) as { body: string }).body, 'base64').toString();

describe('reads that count nothing', () => {
  it('count=0 reads the entry without counting a hit or a miss; a plain read counts', async () => {
    const t = await tenant();
    expect((await t.put('k', inlineEntry(text('value')))).status).toBe(201);
    const quiet = await t.send('GET', '/v1/entries/k?count=0');
    expect(quiet.status).toBe(200);
    const got = (await quiet.json()) as { entry: WireEntry; body: string };
    expect([Buffer.from(got.body, 'base64').toString(), got.entry.hits]).toEqual(['value', 0]);
    expect(await errorOf(await t.send('GET', '/v1/entries/missing?count=0'))).toEqual([404, 'ENOTFOUND']);
    expect(await t.stats()).toMatchObject({ hits: 0, misses: 0 });
    expect((await t.head('k'))?.hits).toBe(0);

    expect(await bodyOf(await t.send('GET', '/v1/entries/k?count=1'))).toBe('value');
    expect((await t.send('GET', '/v1/entries/missing')).status).toBe(404);
    expect(await t.stats()).toMatchObject({ hits: 1, misses: 1 });
    expect((await t.head('k'))?.hits).toBe(1);
    expect(await errorOf(await t.send('GET', '/v1/entries/k?count=no'))).toEqual([400, 'EVALIDATION']);
  });

  it('payload=0 answers the entry alone (no body, no URL, nothing presigned) and counts nothing', async () => {
    const t = await tenant();
    await t.put('small', inlineEntry(text('inline bytes')));
    const bytes = randomBytes(2000);
    const { upload } = (await (await t.put('blob', uploadEntry(bytes))).json()) as { upload: { id: string; url: string } };
    expect((await fetch(upload.url, { method: 'PUT', body: bytes })).status).toBe(200);
    expect((await t.send('POST', `/v1/uploads/${upload.id}/complete`)).status).toBe(201);
    for (const [key, blobId] of [
      ['small', null],
      ['blob', xxh128Hex(bytes)],
    ] as const) {
      const res = await t.send('GET', `/v1/entries/${key}?payload=0`);
      expect(res.status).toBe(200);
      const got = (await res.json()) as Json;
      expect(Object.keys(got).sort()).toEqual(['blobId', 'entry']);
      expect(got.blobId).toBe(blobId);
      expect(got.entry).toMatchObject({ key, hits: 0 });
    }
    expect(await errorOf(await t.send('GET', '/v1/entries/gone?payload=0'))).toEqual([404, 'ENOTFOUND']);
    expect(await t.stats()).toMatchObject({ hits: 0, misses: 0 });
    // A normal read of the same blob entry does presign.
    const read = (await (await t.send('GET', '/v1/entries/blob')).json()) as Json;
    expect(Object.keys(read).sort()).toEqual(['blobId', 'entry', 'url']);
    expect(read.blobId).toBe(xxh128Hex(bytes)); // the hash a download is checked against
  });

  it('POST /v1/access applies batched hits, access times and counters', async () => {
    const t = await tenant();
    await t.put('a', inlineEntry(text('a')));
    await t.put('b', inlineEntry(text('b')));
    const created = now;
    expect((await t.head('a'))?.accessedAt).toBe(iso(created));
    now += 5000;
    const res = await t.send(
      'POST',
      '/v1/access',
      {
        accesses: [
          { key: 'a', hits: 3, accessedAt: iso(created - 10_000) }, // older than the entry: the access time keeps the latest
          { key: 'a', hits: 2, accessedAt: iso(now - 1000) },
          { key: 'b', hits: 1, accessedAt: iso(now + HOUR) }, // ahead of the server's clock: counts as now
          { key: 'unknown', hits: 9, accessedAt: iso(now) },
        ],
        hits: 6,
        misses: 4,
      },
      t.ro, // reporting reads needs only the read scope
    );
    expect([res.status, await res.json()]).toEqual([200, { recorded: true }]);
    expect(await t.head('a')).toMatchObject({ hits: 5, accessedAt: iso(now - 1000) });
    expect(await t.head('b')).toMatchObject({ hits: 1, accessedAt: iso(now) });
    expect(await t.stats()).toMatchObject({ hits: 6, misses: 4, entries: 2 });

    now += 1000;
    await t.send('POST', '/v1/access', { accesses: [{ key: 'b', hits: 1, accessedAt: iso(now) }] });
    expect(await t.head('b')).toMatchObject({ hits: 2, accessedAt: iso(now) });
    expect(await t.stats()).toMatchObject({ hits: 6, misses: 4 }); // no counters given: none bumped
  });

  it('refuses malformed access reports', async () => {
    const t = await tenant();
    const at = iso(now);
    for (const body of [
      {},
      { accesses: [{ key: 'a', hits: -1, accessedAt: at }] },
      { accesses: [{ key: 'a', hits: 1.5, accessedAt: at }] },
      { accesses: [{ key: 'a', hits: 1, accessedAt: 'yesterday' }] },
      { accesses: [], hits: -2 },
      { accesses: Array.from({ length: 10_001 }, () => ({ key: 'a', hits: 1, accessedAt: at })) },
    ]) {
      expect(await errorOf(await t.send('POST', '/v1/access', body))).toEqual([400, 'EVALIDATION']);
    }
    const max = Array.from({ length: 10_000 }, (_, i) => ({ key: `k${i}`, hits: 1, accessedAt: at }));
    expect((await t.send('POST', '/v1/access', { accesses: max })).status).toBe(200);
  });
});

describe('count, delete by prefix, tables and rows', () => {
  it('counts entries matching a prefix and a where filter, live ones unless includeExpired', async () => {
    const t = await tenant();
    for (let i = 0; i < 5; i++) await t.put(`runs/${i}`, inlineEntry(text(`r${i}`), { metadata: { even: i % 2 === 0 } }));
    await t.put('other', inlineEntry(text('o')));
    await t.put('runs/old', inlineEntry(text('old'), { ttl: 10 }));
    now += 20_000;
    const count = async (body: Json) => ((await (await t.send('POST', '/v1/entries/count', body, t.ro)).json()) as { count: number }).count;
    expect(await count({})).toBe(6);
    expect(await count({ prefix: 'runs/' })).toBe(5);
    expect(await count({ prefix: 'runs/', includeExpired: true })).toBe(6);
    expect(await count({ prefix: 'runs/', where: { metadata: { even: true } } })).toBe(3);
    expect(await count({ where: { size: { gt: 2 } } })).toBe(0);
    expect(await errorOf(await t.send('POST', '/v1/entries/count', { where: { nope: 1 } }))).toEqual([400, 'ECOLUMN']);
    expect(await errorOf(await t.send('POST', '/v1/entries/count', { limit: 1 }))).toEqual([400, 'EVALIDATION']);
  });

  it("deletes by prefix, '' deleting everything, next to single-entry routes of keys named like the routes", async () => {
    const t = await tenant();
    for (const key of ['p/1', 'p/2', 'pq', 'q/1', 'delete', 'count', 'list']) expect((await t.put(key, inlineEntry(text(key)))).status).toBe(201);
    expect(await errorOf(await t.send('POST', '/v1/entries/delete', { prefix: 'p/' }, t.ro))).toEqual([403, 'EFORBIDDEN']);
    expect(await errorOf(await t.send('POST', '/v1/entries/delete', {}))).toEqual([400, 'EVALIDATION']);
    expect(await (await t.send('POST', '/v1/entries/delete', { prefix: 'p/' })).json()).toEqual({ deleted: 2 });
    expect([await t.head('p/1'), await t.head('p/2')]).toEqual([undefined, undefined]);
    expect((await t.head('pq'))?.key).toBe('pq');
    // Entries whose keys are the words of the POST routes still have their own GET and DELETE.
    expect(await bodyOf(await t.send('GET', '/v1/entries/count'))).toBe('count');
    expect(await bodyOf(await t.send('GET', '/v1/entries/list'))).toBe('list');
    expect(await (await t.send('DELETE', '/v1/entries/delete')).json()).toEqual({ deleted: true });
    expect(await (await t.send('POST', '/v1/entries/delete', { prefix: '' })).json()).toEqual({ deleted: 4 });
    expect(await t.stats()).toMatchObject({ entries: 0 });
    expect(((await (await t.send('POST', '/v1/entries/list', {})).json()) as { entries: unknown[] }).entries).toEqual([]);
  });

  it("lists every table's definition, and an entry's rows in each table", async () => {
    const t = await tenant();
    expect(await (await t.send('GET', '/v1/tables', undefined, t.ro)).json()).toEqual({ tables: {} });
    expect((await t.send('PUT', '/v1/tables/runs', { columns: { name: 'text', score: 'real' }, unique: ['name'] })).status).toBe(200);
    expect((await t.send('PUT', '/v1/tables/tags', { columns: { tag: 'text', at: 'timestamp' }, index: ['tag'] })).status).toBe(200);
    const { tables } = (await (await t.send('GET', '/v1/tables', undefined, t.ro)).json()) as { tables: Record<string, { columns: Json; unique: unknown; index: unknown }> };
    expect(Object.keys(tables).sort()).toEqual(['runs', 'tags']);
    expect(tables.runs).toMatchObject({ columns: { name: 'text', score: 'real' }, unique: [['name']] });
    expect(tables.tags).toMatchObject({ columns: { tag: 'text', at: 'timestamp' }, index: [['tag']] });

    const key = 'models/churn/v3'; // sent URL-encoded: one path segment
    const at = iso(now - HOUR);
    const rows = {
      runs: { name: 'r1', score: 0.5 },
      tags: [
        { tag: 'a', at },
        { tag: 'b', at: null },
      ],
    };
    expect((await t.put(key, inlineEntry(text('model'), { tables: rows }))).status).toBe(201);
    await t.put('plain', inlineEntry(text('plain')));
    const res = await t.send('GET', `${t.entry(key)}/rows`, undefined, t.ro);
    expect(res.status).toBe(200);
    const got = (await res.json()) as { tables: Record<string, Json[]> };
    expect(got.tables.runs).toEqual([{ name: 'r1', score: 0.5 }]);
    expect(got.tables.tags?.sort((x, y) => String(x.tag).localeCompare(String(y.tag)))).toEqual([
      { tag: 'a', at },
      { tag: 'b', at: null },
    ]);
    expect(await (await t.send('GET', '/v1/entries/plain/rows')).json()).toEqual({ tables: {} });
    expect(await (await t.send('GET', '/v1/entries/absent/rows')).json()).toEqual({ tables: {} });
    expect(await bodyOf(await t.send('GET', t.entry(key)))).toBe('model'); // the entry route still answers for the key
    expect(await t.stats()).toMatchObject({ hits: 1, misses: 0 }); // rows are not reads
  });

  it('accepts list pages of up to 10,000 entries', async () => {
    const t = await tenant();
    expect((await t.send('POST', '/v1/entries/list', { limit: 5000 })).status).toBe(200);
    expect((await t.send('POST', '/v1/entries/list', { limit: 10_000 })).status).toBe(200);
    expect(await errorOf(await t.send('POST', '/v1/entries/list', { limit: 10_001 }))).toEqual([400, 'EVALIDATION']);
  });
});

describe('dated writes: the later write wins', () => {
  it('refuses a write older than the stored one (409 ECONFLICT, nothing changes); a newer or equal one replaces it', async () => {
    const t = await tenant();
    const t0 = now - 30 * 60_000;
    const first = await t.put('k', inlineEntry(text('first'), { writtenAt: iso(t0 + 2000), ttl: '1h' }));
    expect(first.status).toBe(201);
    expect(((await first.json()) as { entry: WireEntry }).entry).toMatchObject({ createdAt: iso(t0 + 2000), accessedAt: iso(t0 + 2000), expiresAt: iso(t0 + 2000 + HOUR) });

    const older = await t.put('k', inlineEntry(text('older'), { writtenAt: iso(t0 + 1000) }));
    expect(older.status).toBe(409);
    expect(await older.json()).toMatchObject({ error: { code: 'ECONFLICT', details: { storedAt: iso(t0 + 2000), writtenAt: iso(t0 + 1000) } } });
    expect(await bodyOf(await t.send('GET', '/v1/entries/k?count=0'))).toBe('first');

    // Its expiry counts from its own write time; once it has passed, an expired entry never wins.
    now += HOUR;
    expect((await t.put('k', inlineEntry(text('older, over an expired one'), { writtenAt: iso(t0 + 1000) }))).status).toBe(201);
    expect((await t.put('k', inlineEntry(text('same time'), { writtenAt: iso(t0 + 1000) }))).status).toBe(201); // equal: the new one wins
    expect(await bodyOf(await t.send('GET', '/v1/entries/k?count=0'))).toBe('same time');
    const newer = await t.put('k', inlineEntry(text('newer'), { writtenAt: iso(t0 + 5000) }));
    expect(newer.status).toBe(201);
    expect(await t.head('k')).toMatchObject({ createdAt: iso(t0 + 5000), expiresAt: null });
    expect(await bodyOf(await t.send('GET', '/v1/entries/k?count=0'))).toBe('newer');
    // An undated write happens now, after every dated one.
    expect((await t.put('k', inlineEntry(text('now')))).status).toBe(201);
    expect((await t.head('k'))?.createdAt).toBe(iso(now));
  });

  it("clamps a writtenAt ahead of the server's clock to the server's clock", async () => {
    const t = await tenant();
    const res = await t.put('future', inlineEntry(text('x'), { writtenAt: iso(now + 5 * HOUR), ttl: 60 }));
    expect(((await res.json()) as { entry: WireEntry }).entry).toMatchObject({ createdAt: iso(now), expiresAt: iso(now + 60_000) });
    // So a later write from a correct clock is not locked out by it.
    now += 1000;
    expect((await t.put('future', inlineEntry(text('y'), { writtenAt: iso(now) }))).status).toBe(201);
  });

  it('refuses dated writes older than the stored entry on the deduplicated and upload paths too, leaving no pin or pending upload', async () => {
    const t = await tenant();
    const bytes = randomBytes(3000);
    const { upload } = (await (await t.put('blob', uploadEntry(bytes))).json()) as { upload: { id: string; url: string } };
    await fetch(upload.url, { method: 'PUT', body: bytes });
    expect((await t.send('POST', `/v1/uploads/${upload.id}/complete`)).status).toBe(201);
    const stored = (await t.head('blob'))?.createdAt;
    const old = iso(now - HOUR);
    expect(await errorOf(await t.put('blob', uploadEntry(bytes, { writtenAt: old })))).toEqual([409, 'ECONFLICT']); // bytes held: would deduplicate
    expect(await errorOf(await t.put('blob', uploadEntry(randomBytes(3000), { writtenAt: old })))).toEqual([409, 'ECONFLICT']); // new bytes: would upload
    expect(await errorOf(await t.put('blob', { handler: 'bytes@1', type: 'Buffer', codec: 'lz4', writtenAt: old }))).toEqual([409, 'ECONFLICT']); // streamed
    expect((await t.head('blob'))?.createdAt).toBe(stored);
    const [pins] = await pg.sql`SELECT count(*)::int AS n FROM pins WHERE namespace = ${t.namespace}`;
    const [uploads] = await pg.sql`SELECT count(*)::int AS n FROM uploads WHERE namespace = ${t.namespace}`;
    expect([pins?.n, uploads?.n]).toEqual([0, 0]);
  });

  it('takes an absolute expiresAt instead of a ttl, never both', async () => {
    const t = await tenant();
    const at = now + 2 * HOUR;
    expect(((await (await t.put('abs', inlineEntry(text('x'), { expiresAt: iso(at) }))).json()) as { entry: WireEntry }).entry.expiresAt).toBe(iso(at));
    expect((await t.head('abs'))?.expiresAt).toBe(iso(at));
    expect(await errorOf(await t.put('abs', inlineEntry(text('y'), { ttl: 60, expiresAt: iso(at) })))).toEqual([400, 'EVALIDATION']);
    expect(await errorOf(await t.put('abs', inlineEntry(text('y'), { ttl: null, expiresAt: null })))).toEqual([400, 'EVALIDATION']);
    expect(await errorOf(await t.put('abs', inlineEntry(text('y'), { expiresAt: 'tomorrow' })))).toEqual([400, 'EVALIDATION']);
    expect((await t.head('abs'))?.expiresAt).toBe(iso(at));
    expect((await t.put('never', inlineEntry(text('x'), { expiresAt: null }))).status).toBe(201);
    expect((await t.head('never'))?.expiresAt).toBeNull();

    // An undated upload is written at completion, but an absolute expiry stays where it was put.
    const bytes = randomBytes(2000);
    const { upload } = (await (await t.put('abs-upload', uploadEntry(bytes, { expiresAt: iso(at) }))).json()) as { upload: { id: string; url: string } };
    await fetch(upload.url, { method: 'PUT', body: bytes });
    now += 7000;
    const done = await t.send('POST', `/v1/uploads/${upload.id}/complete`);
    expect(((await done.json()) as { entry: WireEntry }).entry).toMatchObject({ createdAt: iso(now), expiresAt: iso(at) });
  });
});

describe('dated uploads', () => {
  it('keep their createdAt and expiry at completion', async () => {
    const t = await tenant();
    const t1 = now - HOUR;
    const bytes = randomBytes(4000);
    const { upload } = (await (await t.put('dated', uploadEntry(bytes, { writtenAt: iso(t1), ttl: '2h' }))).json()) as { upload: { id: string; url: string } };
    await fetch(upload.url, { method: 'PUT', body: bytes });
    now += 60_000;
    const done = await t.send('POST', `/v1/uploads/${upload.id}/complete`);
    expect(done.status).toBe(201);
    expect(((await done.json()) as { entry: WireEntry }).entry).toMatchObject({ createdAt: iso(t1), accessedAt: iso(t1), expiresAt: iso(t1 + 2 * HOUR) });
    expect(await t.head('dated')).toMatchObject({ createdAt: iso(t1), expiresAt: iso(t1 + 2 * HOUR) });
  });

  it('refuses completion when a later write was stored meanwhile: 409 ECONFLICT, the upload is over and leaves nothing behind', async () => {
    const t = await tenant();
    const t1 = now - 2 * HOUR;
    const bytes = randomBytes(5000);
    const { upload } = (await (await t.put('race', uploadEntry(bytes, { writtenAt: iso(t1) }))).json()) as { upload: { id: string; url: string } };
    expect((await t.put('race', inlineEntry(text('later'), { writtenAt: iso(t1 + 1000) }))).status).toBe(201);
    expect((await fetch(upload.url, { method: 'PUT', body: bytes })).status).toBe(200);
    const done = await t.send('POST', `/v1/uploads/${upload.id}/complete`);
    expect(done.status).toBe(409);
    expect(await done.json()).toMatchObject({ error: { code: 'ECONFLICT', details: { storedAt: iso(t1 + 1000), writtenAt: iso(t1) } } });
    expect(await bodyOf(await t.send('GET', '/v1/entries/race?count=0'))).toBe('later');
    expect(await errorOf(await t.send('POST', `/v1/uploads/${upload.id}/complete`))).toEqual([410, 'EUPLOADGONE']);
    const [uploads] = await pg.sql`SELECT count(*)::int AS n FROM uploads WHERE id = ${upload.id}`;
    const [pins] = await pg.sql`SELECT count(*)::int AS n FROM pins WHERE namespace = ${t.namespace}`;
    expect([uploads?.n, pins?.n]).toEqual([0, 0]);
  });
});

describe('conditional deletes and touch', () => {
  it('deletes with writtenAt only the version written at or before then', async () => {
    const t = await tenant();
    const written = now - HOUR;
    await t.put('k', inlineEntry(text('v'), { writtenAt: iso(written) }));
    expect(await (await t.send('DELETE', `/v1/entries/k?writtenAt=${encodeURIComponent(iso(written - 1))}`)).json()).toEqual({ deleted: false });
    expect((await t.head('k'))?.createdAt).toBe(iso(written));
    expect(await errorOf(await t.send('DELETE', '/v1/entries/k?writtenAt=last-week'))).toEqual([400, 'EVALIDATION']);
    expect(await errorOf(await t.send('DELETE', '/v1/entries/k?writtenAt=2024-05-01'))).toEqual([400, 'EVALIDATION']); // no time of day
    expect((await t.head('k'))?.createdAt).toBe(iso(written));
    expect(await (await t.send('DELETE', `/v1/entries/k?writtenAt=${encodeURIComponent(iso(written))}`)).json()).toEqual({ deleted: true });
    expect(await t.head('k')).toBeUndefined();
    expect(await (await t.send('DELETE', `/v1/entries/k?writtenAt=${encodeURIComponent(iso(now))}`)).json()).toEqual({ deleted: false });

    await t.put('k2', inlineEntry(text('v')));
    expect(await (await t.send('DELETE', `/v1/entries/k2?writtenAt=${encodeURIComponent(iso(now + HOUR))}`)).json()).toEqual({ deleted: true });
    await t.put('k3', inlineEntry(text('v')));
    expect(await (await t.send('DELETE', '/v1/entries/k3')).json()).toEqual({ deleted: true }); // undated: as before
  });

  it('touches with an absolute expiresAt (or null), never together with a ttl', async () => {
    const t = await tenant();
    await t.put('k', inlineEntry(text('v'), { ttl: 10 }));
    const at = now + 3 * HOUR;
    expect(await (await t.send('POST', '/v1/entries/k/touch', { expiresAt: iso(at) })).json()).toEqual({ touched: true, expiresAt: iso(at) });
    expect((await t.head('k'))?.expiresAt).toBe(iso(at));
    expect(await (await t.send('POST', '/v1/entries/k/touch', { expiresAt: null })).json()).toEqual({ touched: true, expiresAt: null });
    expect((await t.head('k'))?.expiresAt).toBeNull();
    expect(await errorOf(await t.send('POST', '/v1/entries/k/touch', { ttl: 5, expiresAt: iso(at) }))).toEqual([400, 'EVALIDATION']);
    expect(await errorOf(await t.send('POST', '/v1/entries/k/touch', { expiresAt: 'soon' }))).toEqual([400, 'EVALIDATION']);
    expect((await t.head('k'))?.expiresAt).toBeNull();
    expect(await (await t.send('POST', '/v1/entries/k/touch', { ttl: 60 })).json()).toEqual({ touched: true, expiresAt: iso(now + 60_000) });
  });
});

describe('replayed touches and prefix deletes, and whoami', () => {
  it('a dated touch leaves alone an entry written after it (409 ECONFLICT) and touches an older one', async () => {
    const t = await tenant();
    await t.put('k', inlineEntry(text('v'), { writtenAt: iso(now - HOUR) }));
    const later = now + 2 * HOUR;
    expect(await errorOf(await t.send('POST', '/v1/entries/k/touch', { expiresAt: iso(later), writtenAt: iso(now - 2 * HOUR) }))).toEqual([409, 'ECONFLICT']);
    expect((await t.head('k'))?.expiresAt).toBeNull();
    expect(await (await t.send('POST', '/v1/entries/k/touch', { expiresAt: iso(later), writtenAt: iso(now - HOUR) })).json()).toEqual({ touched: true, expiresAt: iso(later) });
    expect(await errorOf(await t.send('POST', '/v1/entries/k/touch', { expiresAt: null, writtenAt: 'yesterday' }))).toEqual([400, 'EVALIDATION']);
  });

  it('a dated prefix delete removes only entries written at or before it', async () => {
    const t = await tenant();
    await t.put('p/old', inlineEntry(text('1'), { writtenAt: iso(now - 2 * HOUR) }));
    await t.put('p/new', inlineEntry(text('2'), { writtenAt: iso(now) }));
    await t.put('q/old', inlineEntry(text('3'), { writtenAt: iso(now - 2 * HOUR) }));
    expect(await (await t.send('POST', '/v1/entries/delete', { prefix: 'p/', writtenAt: iso(now - HOUR) })).json()).toEqual({ deleted: 1 });
    expect(await t.head('p/old')).toBeUndefined();
    expect(await t.head('p/new')).toBeDefined();
    expect(await t.head('q/old')).toBeDefined();
    expect(await (await t.send('POST', '/v1/entries/delete', { prefix: '', writtenAt: iso(now + HOUR) })).json()).toEqual({ deleted: 2 }); // clamped to now: all are older
  });

  it('tells a key its namespace, whatever its scopes', async () => {
    const t = await tenant();
    const res = await t.send('GET', '/v1/whoami', undefined, t.ro);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ namespace: t.namespace, scopes: ['read'] });
    expect((await app.request('/v1/whoami')).status).toBe(401);
  });
});

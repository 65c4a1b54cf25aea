import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { serve } from '@hono/node-server';
import type { EntryRecord } from 'cacheness';
import { MAX_TYPE_LENGTH } from 'cacheness/model';
import { xxh128Hex } from 'cacheness/stores';
import { handle } from 'hono/aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobObjectKey, createApp, sweep } from '../src/api/index.js';
import { connectDatabase, createApiKey, PostgresMetadataStore } from '../src/postgres/index.js';
import { S3BlobStore } from '../src/s3/index.js';
import { describeBytes, inlineEntry, uploadEntry } from './entry-bodies.js';
import { apiGatewayEvent } from './lambda-harness.js';
import { type PostgresHarness, startPostgres } from './postgres-server.js';
import { type S3Harness, startS3 } from './s3-server.js';

let pg: PostgresHarness;
let s3: S3Harness;
let base: string;
let close: () => void;
const keys: Record<string, string> = {};
let now = 1_700_000_000_000;
const blobBytes = randomBytes(50_000);

const record = (key: string, over: Partial<EntryRecord> = {}): EntryRecord => ({
  key,
  params: null,
  handler: 'bytes@1',
  type: 'Buffer',
  codec: 'none',
  size: 5,
  storedSize: 5,
  contentHash: 'f'.repeat(32),
  blobId: null,
  inline: Buffer.from('hello'),
  createdAt: now,
  accessedAt: now,
  expiresAt: null,
  hits: 0,
  description: null,
  metadata: null,
  ...over,
});

beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  keys.a = (await createApiKey(pg.sql, { namespace: 'team-a', scopes: ['read', 'write'] })).key;
  keys.aRead = (await createApiKey(pg.sql, { namespace: 'team-a', scopes: ['read'] })).key;
  keys.b = (await createApiKey(pg.sql, { namespace: 'team-b', scopes: ['read', 'write'] })).key;
  const a = new PostgresMetadataStore({ sql: pg.sql, namespace: 'team-a' });
  await a.put(record('small'));
  await a.put(record('models/churn/v3', { inline: Buffer.from('model') }));
  await a.put(record('old', { expiresAt: now - 1 }));
  // A blob entry: bytes under the tenant's prefix, the record committed with its pin.
  const id = xxh128Hex(blobBytes);
  const res = await a.acquireBlob(id, blobBytes.length, now, 'test:1');
  await new S3BlobStore({ client: s3.client, bucket: s3.bucket, prefix: blobObjectKey('team-a', '') }).write(res.name, blobBytes);
  await a.put(record('big', { blobId: id, inline: null, size: blobBytes.length, storedSize: blobBytes.length, contentHash: id }), { pin: res.pin, blobName: res.name });

  const app = createApp({ sql: pg.sql, s3: s3.client, bucket: s3.bucket, clock: () => now, maxBodyBytes: 64 * 1024 });
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () => server.close();
});
afterAll(async () => {
  close();
  await Promise.all([pg.stop(), s3.stop()]);
});

const call = (path: string, key?: string, init: RequestInit = {}) =>
  fetch(`${base}${path}`, { ...init, headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(init.headers ?? {}) } });

describe('cloud API over real HTTP', () => {
  it('answers health without a key', async () => {
    expect(await (await call('/v1/health')).json()).toEqual({ ok: true });
  });

  it('refuses missing, malformed and unknown keys with one error shape', async () => {
    for (const key of [undefined, 'nope', `ck_${'0'.repeat(12)}_${'A'.repeat(43)}`]) {
      const res = await call('/v1/stats', key);
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: { code: 'EUNAUTHORIZED', message: expect.any(String) } });
    }
  });

  it('reads an inline entry, counting the hit', async () => {
    const res = await call('/v1/entries/small', keys.a);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { entry: { key: string; hits: number }; body: string };
    expect(Buffer.from(body.body, 'base64').toString()).toBe('hello');
    expect(body.entry).toMatchObject({ key: 'small', hits: 1 });
    expect(await (await call('/v1/stats', keys.a)).json()).toMatchObject({ hits: 1 });
  });

  it('reads a blob entry as a presigned URL that serves the bytes', async () => {
    const { url } = (await (await call('/v1/entries/big', keys.a)).json()) as { url: string };
    expect(url).toContain(`/ns/team-a/blobs/`);
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(blobBytes)).toBe(true);
  });

  it('takes keys with slashes, URL-encoded', async () => {
    const res = await call(`/v1/entries/${encodeURIComponent('models/churn/v3')}`, keys.a);
    expect(Buffer.from(((await res.json()) as { body: string }).body, 'base64').toString()).toBe('model');
  });

  it('answers 404 for missing and expired entries, counting misses', async () => {
    const before = ((await (await call('/v1/stats', keys.a)).json()) as { misses: number }).misses;
    for (const key of ['missing', 'old']) {
      const res = await call(`/v1/entries/${key}`, keys.a);
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ error: { code: 'ENOTFOUND' } });
    }
    expect(((await (await call('/v1/stats', keys.a)).json()) as { misses: number }).misses).toBe(before + 2);
    expect((await call('/v1/entries/old', keys.a, { method: 'HEAD' })).status).toBe(404);
    const hitsBefore = ((await (await call('/v1/stats', keys.a)).json()) as { hits: number }).hits;
    const head = await call('/v1/entries/small', keys.a, { method: 'HEAD' });
    expect([head.status, head.headers.get('x-cacheness-content-hash'), head.headers.get('x-cacheness-size')]).toEqual([200, 'f'.repeat(32), '5']);
    expect(((await (await call('/v1/stats', keys.a)).json()) as { hits: number }).hits).toBe(hitsBefore); // HEAD is not a read
  });

  it("keeps tenants apart: another namespace's key neither reads nor deletes", async () => {
    expect((await call('/v1/entries/small', keys.b)).status).toBe(404);
    expect(await (await call('/v1/entries/small', keys.b, { method: 'DELETE' })).json()).toEqual({ deleted: false });
    expect((await call('/v1/entries/small', keys.a)).status).toBe(200);
  });

  it('enforces scopes', async () => {
    const res = await call('/v1/entries/small', keys.aRead, { method: 'DELETE' });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { code: 'EFORBIDDEN' } });
    expect((await call('/v1/entries/small', keys.aRead)).status).toBe(200);
  });

  it('deletes with a write key', async () => {
    await new PostgresMetadataStore({ sql: pg.sql, namespace: 'team-a' }).put(record('doomed'));
    expect(await (await call('/v1/entries/doomed', keys.a, { method: 'DELETE' })).json()).toEqual({ deleted: true });
    expect((await call('/v1/entries/doomed', keys.a)).status).toBe(404);
  });

  it('answers unknown routes and oversized bodies with JSON errors', async () => {
    const res = await call('/v1/nothing-here', keys.a);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 'ENOTFOUND' } });
    const big = await call('/v1/entries/x', keys.a, { method: 'DELETE', body: Buffer.alloc(100 * 1024), headers: { 'content-type': 'application/octet-stream' } });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error: { code: 'ETOOLARGE' } });
  });
});

describe('creating entries', () => {
  const json = (body: unknown) => ({ method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

  it('stores small payloads inline at once', async () => {
    const bytes = Buffer.from('tiny payload');
    const res = await call('/v1/entries/inline-1', keys.a, json({ ...describeBytes(bytes), body: bytes.toString('base64'), ttl: '1h', metadata: { owner: 'ana' } }));
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ entry: { key: 'inline-1', size: bytes.length, metadata: { owner: 'ana' }, expiresAt: new Date(now + 3_600_000).toISOString() } });
    const got = (await (await call('/v1/entries/inline-1', keys.a)).json()) as { body: string };
    expect(Buffer.from(got.body, 'base64').equals(bytes)).toBe(true);
  });

  it('refuses bad input with clear 4xx errors and stores nothing', async () => {
    const bytes = Buffer.from('x');
    const cases: [RequestInit, number, string][] = [
      [{ method: 'PUT', body: '{not json', headers: { 'content-type': 'application/json' } }, 400, 'EVALIDATION'],
      [json({ ...describeBytes(bytes), size: -1, body: 'eA==' }), 400, 'EVALIDATION'],
      [json({ ...describeBytes(bytes), body: 'eA==', surprise: 1 }), 400, 'EVALIDATION'],
      [json({ ...describeBytes(bytes), contentHash: 'a'.repeat(32), body: 'eA==' }), 422, 'EINTEGRITY'],
      [json({ ...describeBytes(bytes), storedSize: 2, body: 'eA==' }), 422, 'EINTEGRITY'],
      [json({ ...describeBytes(bytes), body: 'eA==', ttl: 'soon' }), 400, 'ETTL'],
      [json({ ...describeBytes(bytes), body: 'eA==', tables: { nope: { a: 1 } } }), 404, 'ETABLE'],
      [json({ ...describeBytes(bytes) }), 400, 'EVALIDATION'], // neither body nor blobId
    ];
    for (const [init, status, code] of cases) {
      const res = await call('/v1/entries/bad-input', keys.a, init);
      expect([res.status, ((await res.json()) as { error: { code: string } }).error.code], JSON.stringify(init.body)).toEqual([status, code]);
    }
    expect((await call(`/v1/entries/${encodeURIComponent('badkey')}`, keys.a, json({ ...describeBytes(bytes), body: 'eA==' }))).status).toBe(400);
    expect((await call('/v1/entries/bad-input', keys.aRead, json({ ...describeBytes(bytes), body: 'eA==' }))).status).toBe(403);
    expect((await call('/v1/entries/bad-input', keys.a)).status).toBe(404);
  });

  it('takes entry types up to MAX_TYPE_LENGTH characters (a wide table records its schema there), and no longer', async () => {
    const bytes = Buffer.from('table');
    const type = `arrow.Table{"rows":1,"columns":1,"schema":[["${'é'.repeat(MAX_TYPE_LENGTH)}`.slice(0, MAX_TYPE_LENGTH);
    const res = await call('/v1/entries/wide-type', keys.a, json(inlineEntry(bytes, { type })));
    expect(res.status).toBe(201);
    expect(((await (await call('/v1/entries/wide-type', keys.a)).json()) as { entry: { type: string } }).entry.type).toBe(type);
    const longer = await call('/v1/entries/wider-type', keys.a, json(inlineEntry(bytes, { type: `${type}x` })));
    expect([longer.status, ((await longer.json()) as { error: { code: string } }).error.code]).toEqual([400, 'EVALIDATION']);
  });

  it('uploads larger payloads through a presigned PUT; the entry is invisible until completed', async () => {
    const bytes = randomBytes(300_000);
    const res = await call('/v1/entries/uploaded', keys.a, json(uploadEntry(bytes, { ttl: 60 })));
    expect(res.status).toBe(202);
    const { upload } = (await res.json()) as { upload: { id: string; url: string; method: string } };
    expect(upload.method).toBe('PUT');
    expect((await call('/v1/entries/uploaded', keys.a)).status).toBe(404); // pending
    expect((await call(`/v1/uploads/${upload.id}/complete`, keys.a, { method: 'POST' })).status).toBe(409); // bytes not there yet
    expect((await fetch(upload.url, { method: 'PUT', body: bytes })).status).toBe(200);
    expect((await call(`/v1/uploads/${upload.id}/complete`, keys.b, { method: 'POST' })).status).toBe(410); // another tenant
    now += 5000;
    const done = await call(`/v1/uploads/${upload.id}/complete`, keys.a, { method: 'POST' });
    expect(done.status).toBe(201);
    expect(await done.json()).toMatchObject({ entry: { createdAt: new Date(now).toISOString(), expiresAt: new Date(now + 60_000).toISOString() } });
    const { url } = (await (await call('/v1/entries/uploaded', keys.a)).json()) as { url: string };
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(bytes)).toBe(true);
    expect((await call(`/v1/uploads/${upload.id}/complete`, keys.a, { method: 'POST' })).status).toBe(410); // once
  });

  it('skips the upload when the namespace already has the bytes', async () => {
    const res = await call('/v1/entries/same-as-big', keys.a, json(uploadEntry(blobBytes)));
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ deduplicated: true, entry: { key: 'same-as-big' } });
    const other = await call('/v1/entries/same-as-big', keys.b, json(uploadEntry(blobBytes)));
    expect(other.status).toBe(202); // no dedup across tenants
  });

  it('rejects an object of the wrong size at completion, and aborts uploads', async () => {
    const bytes = randomBytes(100_000);
    const start = await call('/v1/entries/wrong-size', keys.a, json(uploadEntry(bytes)));
    const { upload } = (await start.json()) as { upload: { id: string; url: string } };
    const objectKey = decodeURIComponent(new URL(upload.url).pathname).split('/').slice(2).join('/');
    // Bytes arriving outside the signed URL (which would refuse another length).
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: objectKey, Body: bytes.subarray(0, 10) }));
    const done = await call(`/v1/uploads/${upload.id}/complete`, keys.a, { method: 'POST' });
    expect([done.status, ((await done.json()) as { error: { code: string } }).error.code]).toEqual([422, 'EINTEGRITY']);
    expect(await (await call(`/v1/uploads/${upload.id}`, keys.a, { method: 'DELETE' })).json()).toEqual({ aborted: true });
    expect((await call(`/v1/uploads/${upload.id}/complete`, keys.a, { method: 'POST' })).status).toBe(410);
    expect((await call('/v1/entries/wrong-size', keys.a)).status).toBe(404);
  });
});

describe('touch, list and custom tables', () => {
  const post = (path: string, body: unknown, key = keys.a, method = 'POST') =>
    call(path, key, { method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  const create = (key: string, extra: Record<string, unknown> = {}) => {
    const bytes = Buffer.from(key);
    return post(`/v1/entries/${encodeURIComponent(key)}`, inlineEntry(bytes, extra), keys.a, 'PUT');
  };

  it('touches live entries with a new ttl', async () => {
    await create('touch-me', { ttl: 10 });
    const res = await post('/v1/entries/touch-me/touch', { ttl: '1h' });
    expect(await res.json()).toEqual({ touched: true, expiresAt: new Date(now + 3_600_000).toISOString() });
    expect((await post('/v1/entries/missing/touch', {})).status).toBe(404);
    expect((await post('/v1/entries/touch-me/touch', { ttl: 'never-ish' })).status).toBe(400);
  });

  it('lists with prefix, where and a cursor', async () => {
    for (let i = 0; i < 5; i++) await create(`runs/${i}`, { metadata: { even: i % 2 === 0 } });
    const first = (await (await post('/v1/entries/list', { prefix: 'runs/', limit: 2 })).json()) as { entries: { key: string }[]; cursor?: string };
    expect(first.entries.map((e) => e.key)).toEqual(['runs/0', 'runs/1']);
    const rest = (await (await post('/v1/entries/list', { prefix: 'runs/', limit: 10, cursor: first.cursor })).json()) as { entries: { key: string }[]; cursor?: string };
    expect(rest.entries.map((e) => e.key)).toEqual(['runs/2', 'runs/3', 'runs/4']);
    expect(rest.cursor).toBeUndefined();
    const even = (await (await post('/v1/entries/list', { prefix: 'runs/', where: { metadata: { even: true } } })).json()) as { entries: { key: string }[] };
    expect(even.entries.map((e) => e.key)).toEqual(['runs/0', 'runs/2', 'runs/4']);
    expect(((await (await post('/v1/entries/list', { prefix: 'runs/' }, keys.b)).json()) as { entries: unknown[] }).entries).toEqual([]);
    const bad = await post('/v1/entries/list', { where: { 'size; DROP TABLE entries': 1 } });
    expect([bad.status, ((await bad.json()) as { error: { code: string } }).error.code]).toEqual([400, 'ECOLUMN']);
  });

  it('defines custom tables, attaches rows on create, and queries them', async () => {
    const def = await post('/v1/tables/experiments', { columns: { name: 'text', accuracy: 'real' }, unique: ['name'] }, keys.a, 'PUT');
    expect(def.status).toBe(200);
    await create('model-1', { tables: { experiments: { name: 'e1', accuracy: 0.91 } } });
    await create('model-2', { tables: { experiments: { name: 'e2', accuracy: 0.72 } } });
    const dup = await create('model-3', { tables: { experiments: { name: 'e1', accuracy: 0.5 } } });
    expect([dup.status, ((await dup.json()) as { error: { code: string } }).error.code]).toEqual([409, 'ECONSTRAINT']);
    const rows = (await (await post('/v1/tables/experiments/query', { where: { accuracy: { gte: 0.9 } }, orderBy: { accuracy: 'desc' } })).json()) as { rows: unknown[] };
    expect(rows.rows).toEqual([{ key: 'model-1', name: 'e1', accuracy: 0.91 }]);
    expect((await post('/v1/tables/experiments/query', {}, keys.b)).status).toBe(404); // b has no such table
    expect((await post('/v1/tables/x%22%3B%20DROP/query', {})).status).toBe(404); // a hostile name is just an unknown table
    expect((await post('/v1/tables/experiments', { columns: { name: 'varchar' } }, keys.a, 'PUT')).status).toBe(400);
    expect((await post('/v1/tables/experiments', { columns: { name: 'text' } }, keys.aRead, 'PUT')).status).toBe(403);
  });
});

describe('hostile input', () => {
  const json = (body: unknown, method = 'PUT') => ({ method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

  it('treats path traversal in keys as plain key text; object keys stay server-chosen', async () => {
    const evilKey = '../../team-b/secrets';
    const bytes = randomBytes(1000);
    const small = Buffer.from('x');
    const inline = await call(`/v1/entries/${encodeURIComponent(evilKey)}`, keys.a, json(inlineEntry(small)));
    expect(inline.status).toBe(201);
    expect((await call(`/v1/entries/${encodeURIComponent(evilKey)}`, keys.b)).status).toBe(404);
    const upload = await call(`/v1/entries/${encodeURIComponent(`${evilKey}-big`)}`, keys.a, json(uploadEntry(bytes)));
    const { upload: u } = (await upload.json()) as { upload: { url: string } };
    expect(new URL(u.url).pathname).toMatch(new RegExp(`^/${s3.bucket}/ns/team-a/blobs/[0-9a-f]{32}\\.[0-9a-f]+$`));
  });

  it('binds SQL-looking values and names as data', async () => {
    await call('/v1/tables/runs2', keys.a, json({ columns: { name: 'text' } }));
    const rows = await call('/v1/tables/runs2/query', keys.a, json({ where: { name: "' OR 1=1 --" } }, 'POST'));
    expect(await rows.json()).toEqual({ rows: [] });
    const badColumn = await call('/v1/tables/runs2/query', keys.a, json({ where: { 'name" OR 1=1 --': 'x' } }, 'POST'));
    expect([badColumn.status, ((await badColumn.json()) as { error: { code: string } }).error.code]).toEqual([400, 'ECOLUMN']);
    const badOrder = await call('/v1/tables/runs2/query', keys.a, json({ orderBy: { 'name; DROP TABLE entries': 'asc' } }, 'POST'));
    expect(badOrder.status).toBe(400);
    const badDef = await call('/v1/tables/runs3', keys.a, json({ columns: { 'a" text); DROP TABLE entries; --': 'text' } }));
    expect([badDef.status, ((await badDef.json()) as { error: { code: string } }).error.code]).toEqual([400, 'ECOLUMN']);
    expect((await call('/v1/stats', keys.a)).status).toBe(200); // everything still there
  });

  it('refuses the NUL character, which PostgreSQL cannot store, with a 400 that says so, and stores nothing', async () => {
    const body = Buffer.from('x');
    const entry = inlineEntry(body);
    for (const extra of [{ metadata: { note: 'a\u0000b' } }, { params: { 'k\u0000': 1 } }, { description: 'nul \u0000 here' }]) {
      const res = await call('/v1/entries/nul', keys.a, json({ ...entry, ...extra }));
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: 'EVALUETYPE', message: expect.stringContaining('NUL character') } });
      expect((await call('/v1/entries/nul', keys.a, { method: 'HEAD' })).status).toBe(404);
    }
  });
});

describe('key administration', () => {
  it('lets an admin key create, list and revoke keys of its own namespace only', async () => {
    const admin = (await createApiKey(pg.sql, { namespace: 'team-admin', scopes: ['admin'] })).key;
    const made = await call('/v1/keys', admin, { method: 'POST', body: JSON.stringify({ scopes: ['read'], name: 'reader' }), headers: { 'content-type': 'application/json' } });
    expect(made.status).toBe(201);
    const { key, info } = (await made.json()) as { key: string; info: { keyId: string; namespace: string } };
    expect(info.namespace).toBe('team-admin');
    expect((await call('/v1/stats', key)).status).toBe(200);
    const listed = (await (await call('/v1/keys', admin)).json()) as { keys: { keyId: string }[] };
    expect(listed.keys.map((k) => k.keyId)).toContain(info.keyId);
    expect(JSON.stringify(listed)).not.toContain(key.slice(16));
    expect((await call('/v1/keys', keys.a)).status).toBe(403); // read/write key, not admin
    const otherAdmin = (await createApiKey(pg.sql, { namespace: 'team-else', scopes: ['admin'] })).key;
    expect(await (await call(`/v1/keys/${info.keyId}`, otherAdmin, { method: 'DELETE' })).json()).toEqual({ revoked: false });
    expect(await (await call(`/v1/keys/${info.keyId}`, admin, { method: 'DELETE' })).json()).toEqual({ revoked: true });
    expect((await call('/v1/stats', key)).status).toBe(401);
  });
});

describe('multipart uploads', () => {
  let mpBase: string;
  let mpClose: () => void;
  beforeAll(async () => {
    // Everything above 6 MiB goes multipart, in 5 MiB parts.
    const app = createApp({ sql: pg.sql, s3: s3.client, bucket: s3.bucket, clock: () => now, singlePutMaxBytes: 6 * 1024 * 1024, preferredPartBytes: 5 * 1024 * 1024 });
    const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
    await new Promise((r) => server.once('listening', r));
    mpBase = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    mpClose = () => server.close();
  });
  afterAll(() => mpClose());
  const mp = (path: string, body?: unknown, method = 'POST') =>
    fetch(`${mpBase}${path}`, {
      method,
      headers: { authorization: `Bearer ${keys.a}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  it('plans parts, signs more on request, and completes only with every part', async () => {
    const bytes = randomBytes(10 * 1024 * 1024 + 4321);
    const start = await mp('/v1/entries/multi', uploadEntry(bytes), 'PUT');
    expect(start.status).toBe(202);
    const { upload } = (await start.json()) as { upload: { id: string; method: string; partSize: number; partCount: number; parts: { partNumber: number; url: string }[] } };
    expect(upload).toMatchObject({ method: 'MULTIPART', partSize: 5 * 1024 * 1024, partCount: 3 });
    expect(upload.parts.map((p) => p.partNumber)).toEqual([1, 2, 3]);
    const again = (await (await mp(`/v1/uploads/${upload.id}/parts`, { partNumbers: [3] })).json()) as { parts: { partNumber: number; url: string }[] };
    expect(again.parts[0]?.partNumber).toBe(3);
    expect((await mp(`/v1/uploads/${upload.id}/parts`, { partNumbers: [4] })).status).toBe(400);
    const etags = [];
    for (const { partNumber, url } of [upload.parts[0], upload.parts[1], again.parts[0]] as { partNumber: number; url: string }[]) {
      const chunk = bytes.subarray((partNumber - 1) * upload.partSize, partNumber * upload.partSize);
      const res = await fetch(url, { method: 'PUT', body: chunk });
      etags.push({ partNumber, etag: res.headers.get('etag') as string });
    }
    const missing = await mp(`/v1/uploads/${upload.id}/complete`, { parts: etags.slice(0, 2) });
    expect([missing.status, ((await missing.json()) as { error: { code: string } }).error.code]).toEqual([422, 'EUPLOADINCOMPLETE']);
    expect((await mp(`/v1/uploads/${upload.id}/complete`, {})).status).toBe(400);
    const done = await mp(`/v1/uploads/${upload.id}/complete`, { parts: [...etags].reverse() });
    expect(done.status).toBe(201);
    const { url } = (await (await mp('/v1/entries/multi', undefined, 'GET')).json()) as { url: string };
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(bytes)).toBe(true);
  });

  type Plan = { id: string; method: string; size: number | null; maxSize: number; partSize: number; partCount: number; parts: { partNumber: number; url: string }[] };
  const describeStream = { handler: 'bytes@1', type: 'Buffer', codec: 'lz4' };
  /** PUTs `bytes` to a plan's part URLs in partSize pieces; returns the parts for completion. */
  async function putParts(plan: Plan, bytes: Buffer, partSize = plan.partSize) {
    const parts = [];
    for (let n = 1; (n - 1) * partSize < bytes.length; n++) {
      const url = plan.parts.find((p) => p.partNumber === n)?.url as string;
      const res = await fetch(url, { method: 'PUT', body: bytes.subarray((n - 1) * partSize, n * partSize) });
      expect(res.status).toBe(200);
      parts.push({ partNumber: n, etag: res.headers.get('etag') as string });
    }
    return parts;
  }
  const objectOf = (url: string) => decodeURIComponent(new URL(url).pathname).split('/').slice(2).join('/');
  const exists = (key: string) =>
    s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key })).then(
      () => true,
      () => false,
    );
  const streamed = randomBytes(5 * 1024 * 1024 + 1234);

  it('streams an upload of unknown size: planned for its bound, invisible until completed with its sizes and hash', async () => {
    const unbounded = (await (await mp('/v1/entries/stream-huge', describeStream, 'PUT')).json()) as { upload: Plan };
    expect(unbounded.upload.maxSize).toBe(5 * 1024 ** 4); // no bound given: any object S3 allows fits
    expect(unbounded.upload.partCount).toBeLessThanOrEqual(10_000);
    expect(unbounded.upload.partSize * unbounded.upload.partCount).toBeGreaterThanOrEqual(5 * 1024 ** 4);
    expect((await mp(`/v1/uploads/${unbounded.upload.id}`, undefined, 'DELETE')).status).toBe(200);

    const start = await mp('/v1/entries/stream', { ...describeStream, maxStoredSize: 50 * 1024 * 1024, ttl: 3600 }, 'PUT');
    expect(start.status).toBe(202);
    const { upload } = (await start.json()) as { upload: Plan };
    expect(upload).toMatchObject({ method: 'MULTIPART', size: null, maxSize: 50 * 1024 * 1024, partSize: 5 * 1024 * 1024, partCount: 10 });
    const parts = await putParts(upload, streamed);
    expect(parts).toHaveLength(2);
    expect((await mp('/v1/entries/stream', undefined, 'GET')).status).toBe(404); // pending: invisible
    const facts = { size: 3 * streamed.length, storedSize: streamed.length, contentHash: xxh128Hex(Buffer.from('original')), blobId: xxh128Hex(streamed) };
    expect((await mp(`/v1/uploads/${upload.id}/complete`, { parts })).status).toBe(400); // the sizes and hash are missing
    expect((await mp(`/v1/uploads/${upload.id}/complete`, { parts: parts.slice(1), ...facts })).status).toBe(422); // parts must run from 1
    const done = await mp(`/v1/uploads/${upload.id}/complete`, { parts, ...facts });
    expect(done.status).toBe(201);
    expect(((await done.json()) as { entry: unknown }).entry).toMatchObject({ key: 'stream', size: facts.size, storedSize: facts.storedSize, contentHash: facts.contentHash });
    const read = (await (await mp('/v1/entries/stream', undefined, 'GET')).json()) as { url: string; entry: { expiresAt: string } };
    expect(Buffer.from(await (await fetch(read.url)).arrayBuffer()).equals(streamed)).toBe(true);
    expect(read.entry.expiresAt).toBe(new Date(now + 3_600_000).toISOString());
    // The bytes became the content's blob: a sized upload of the same bytes needs no upload at all.
    const again = await mp('/v1/entries/stream-sized', { ...describeStream, size: 1, storedSize: streamed.length, contentHash: facts.contentHash, blobId: facts.blobId }, 'PUT');
    expect(again.status).toBe(201);
    expect(await again.json()).toMatchObject({ deduplicated: true });
    expect(objectOf(((await (await mp('/v1/entries/stream-sized', undefined, 'GET')).json()) as { url: string }).url)).toBe(objectOf(read.url));
  });

  it('deduplicates a streamed upload against bytes the namespace holds; the sweeper deletes the staged copy, never the shared one', async () => {
    const { upload } = (await (await mp('/v1/entries/stream-dup', describeStream, 'PUT')).json()) as { upload: Plan };
    const staged = objectOf(upload.parts[0]?.url as string);
    const parts = await putParts(upload, streamed);
    const done = await mp(`/v1/uploads/${upload.id}/complete`, { parts, size: 1, storedSize: streamed.length, contentHash: xxh128Hex(streamed), blobId: xxh128Hex(streamed) });
    expect(done.status).toBe(201);
    expect(await done.json()).toMatchObject({ deduplicated: true });
    const shared = objectOf(((await (await mp('/v1/entries/stream', undefined, 'GET')).json()) as { url: string }).url);
    const { url } = (await (await mp('/v1/entries/stream-dup', undefined, 'GET')).json()) as { url: string };
    expect(objectOf(url)).toBe(shared);
    expect(staged).not.toBe(shared);
    expect(await exists(staged)).toBe(true);
    await sweep({ sql: pg.sql, s3: s3.client, bucket: s3.bucket, now });
    expect([await exists(staged), await exists(shared)]).toEqual([false, true]);
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(streamed)).toBe(true);
  });

  it('refuses a streamed upload over its bound or of another size than claimed, and reclaims its object', async () => {
    for (const [claim, bound] of [
      [streamed.length, 5 * 1024 * 1024], // over the bound: a one-part plan, and a part larger than planned (part sizes are not signed)
      [streamed.length - 1, undefined], // the object is not the size the client claims
    ] as const) {
      const { upload } = (await (await mp('/v1/entries/stream-bad', { ...describeStream, maxStoredSize: bound }, 'PUT')).json()) as { upload: Plan };
      const staged = objectOf(upload.parts[0]?.url as string);
      const parts = await putParts(upload, streamed, bound === undefined ? upload.partSize : streamed.length);
      const res = await mp(`/v1/uploads/${upload.id}/complete`, { parts, size: 1, storedSize: claim, contentHash: xxh128Hex(streamed), blobId: xxh128Hex(streamed) });
      expect(res.status).toBe(422);
      expect(await res.json()).toMatchObject({ error: { code: 'EINTEGRITY' } });
      expect((await mp(`/v1/uploads/${upload.id}/parts`, { partNumbers: [1] })).status).toBe(410); // the upload is over
      expect((await mp('/v1/entries/stream-bad', undefined, 'GET')).status).toBe(404);
      expect(await exists(staged)).toBe(true);
      await sweep({ sql: pg.sql, s3: s3.client, bucket: s3.bucket, now });
      expect(await exists(staged)).toBe(false);
    }
  });

  it('completes a streamed upload again after its entry write failed (a conflicting table row), without re-sending bytes', async () => {
    expect((await mp('/v1/tables/uniq', { columns: { v: 'text' }, unique: ['v'] }, 'PUT')).status).toBe(200);
    const small = Buffer.from('holder');
    const holder = inlineEntry(small);
    expect((await mp('/v1/entries/holder', { ...holder, tables: { uniq: { v: 'taken' } } }, 'PUT')).status).toBe(201);
    const bytes = randomBytes(6 * 1024 * 1024);
    const { upload } = (await (await mp('/v1/entries/stream-retry', { ...describeStream, tables: { uniq: { v: 'taken' } } }, 'PUT')).json()) as { upload: Plan };
    const parts = await putParts(upload, bytes);
    const facts = { parts, size: 1, storedSize: bytes.length, contentHash: xxh128Hex(bytes), blobId: xxh128Hex(bytes) };
    const conflict = await mp(`/v1/uploads/${upload.id}/complete`, facts);
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toMatchObject({ error: { code: 'ECONSTRAINT' } });
    expect((await mp('/v1/entries/holder', undefined, 'DELETE')).status).toBe(200);
    const retried = await mp(`/v1/uploads/${upload.id}/complete`, facts);
    expect(retried.status).toBe(201);
    const { url } = (await (await mp('/v1/entries/stream-retry', undefined, 'GET')).json()) as { url: string };
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(bytes)).toBe(true);
    const rows = (await (await mp('/v1/tables/uniq/query', { where: { v: 'taken' } })).json()) as { rows: { _key: string }[] };
    expect(rows.rows).toHaveLength(1);
  });

  it("with codec 'none', refuses sizes or hashes that cannot both be right", async () => {
    const bytes = randomBytes(100);
    const sized = await mp(
      '/v1/entries/none-bad',
      { handler: 'bytes@1', type: 'Buffer', codec: 'none', size: 100, storedSize: 100, contentHash: xxh128Hex(bytes), blobId: xxh128Hex(randomBytes(100)) },
      'PUT',
    );
    expect(sized.status).toBe(400);
    const { upload } = (await (await mp('/v1/entries/none-stream', { handler: 'bytes@1', type: 'Buffer', codec: 'none' }, 'PUT')).json()) as { upload: Plan };
    const parts = await putParts(upload, bytes);
    const res = await mp(`/v1/uploads/${upload.id}/complete`, { parts, size: 99, storedSize: 100, contentHash: xxh128Hex(bytes), blobId: xxh128Hex(bytes) });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'EVALIDATION', message: expect.stringContaining("codec 'none'") } });
  });

  it('refuses half-described entries: sizes without a blobId, or a bound on a sized upload', async () => {
    for (const body of [
      { ...describeStream, storedSize: 10 },
      { ...describeStream, size: 10, storedSize: 10, contentHash: xxh128Hex(streamed) },
      { ...describeStream, maxStoredSize: 10, size: 10, storedSize: 10, contentHash: xxh128Hex(streamed), blobId: xxh128Hex(streamed) },
    ]) {
      const res = await mp('/v1/entries/half', body, 'PUT');
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: 'EVALIDATION' } });
    }
  });

  it('aborts a multipart upload', async () => {
    const bytes = randomBytes(7 * 1024 * 1024);
    const start = await mp('/v1/entries/multi-abort', uploadEntry(bytes), 'PUT');
    const { upload } = (await start.json()) as { upload: { id: string } };
    expect(await (await mp(`/v1/uploads/${upload.id}`, undefined, 'DELETE')).json()).toEqual({ aborted: true });
    expect((await mp(`/v1/uploads/${upload.id}/parts`, { partNumbers: [1] })).status).toBe(410);
  });
});

describe('when the database is unreachable', () => {
  it('answers 503 with Retry-After, not a 500', async () => {
    const down = connectDatabase('postgres://postgres@127.0.0.1:1/none', { connectTimeoutSeconds: 2 });
    const app = createApp({ sql: down, s3: s3.client, bucket: s3.bucket });
    const res = await app.request('/v1/stats', { headers: { authorization: `Bearer ${keys.a}` } });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('15');
    expect(await res.json()).toMatchObject({ error: { code: 'EUNAVAILABLE' } });
    await down.end();
  });
});

describe('cloud API as a Lambda handler', () => {
  it('serves an API Gateway v2 event', async () => {
    const handler = handle(createApp({ sql: pg.sql, s3: s3.client, bucket: s3.bucket, clock: () => now }));
    const event = apiGatewayEvent('GET', '/v1/entries/small', { key: keys.a });
    const res = (await handler(event as never, {} as never)) as { statusCode: number; body: string };
    expect(res.statusCode).toBe(200);
    expect(Buffer.from((JSON.parse(res.body) as { body: string }).body, 'base64').toString()).toBe('hello');
  });
});

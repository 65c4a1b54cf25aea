/**
 * Remote caches beyond the contract suite: the offline fallback and sync of mode `auto`, resumable
 * uploads across a killed process, parallel downloads, a tampered object, and memoized calls. All
 * against the cloud API over real HTTP, PostgreSQL and the S3-protocol server; outages are a real
 * proxy refusing connections.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import { type Cache, CachenessError, type CacheOptions, cached, createCache, type Progress } from 'cacheness';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApi } from './fixtures/api-server.js';
import { type HttpProxy, startHttpProxy } from './fixtures/http-proxy.js';

const PART = 5 * 1024 * 1024;
let api: ApiServer;
let apiProxy: HttpProxy;
const dirs: string[] = [];
const caches: Cache[] = [];

beforeAll(async () => {
  // Small parts (S3's smallest) so a modest file makes a multipart upload of many parts.
  api = await startApi({ rateLimit: false, preferredPartBytes: PART, singlePutMaxBytes: PART, s3Proxy: true });
  apiProxy = await startHttpProxy(api.base);
});
afterAll(async () => {
  await apiProxy?.close().catch(() => {});
  await api?.stop();
});
afterEach(async () => {
  await Promise.all(caches.splice(0).map((c) => c.close()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  if (api.s3Proxy) api.s3Proxy.hold = undefined;
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'cacheness-rm-'));
  dirs.push(d);
  return d;
}

/** Resolves once the clock shows a later millisecond than now (so writes after it are later by the clock). */
async function nextMillisecond(): Promise<void> {
  const now = Date.now();
  while (Date.now() <= now) await new Promise<void>((r) => setImmediate(r));
}

async function newKey(): Promise<string> {
  return api.key(`rm-${randomBytes(5).toString('hex')}`, ['read', 'write']);
}

/** A cache on the API through the proxy (which tests close to cut the network). */
async function open(apiKey: string, o: CacheOptions & { dir?: string } = {}): Promise<Cache> {
  const c = createCache({ dir: o.dir ?? (await tempDir()), ...o, remote: { endpoint: apiProxy.url, apiKey, ...o.remote } });
  caches.push(c);
  return c;
}

describe("mode 'auto'", () => {
  it('falls back to the local store when the API is unreachable, queues writes durably, and pushes them in order once it is back', async () => {
    const key = await newKey();
    const dir = await tempDir();
    const errors: CachenessError[] = [];
    let cache = await open(key, { mode: 'auto', dir, onError: (e) => errors.push(e) });
    await cache.put({ v: 'before' }, 'kept');
    await cache.put({ v: 'old' }, 'changed');
    expect(cache.status()).toMatchObject({ mode: 'auto', state: 'online', queued: 0 });

    await apiProxy.close();
    const big = randomBytes(300_000); // a blob, uploaded later from the outbox's own copy
    await cache.put(big, 'offline-blob');
    expect(cache.status()).toMatchObject({ state: 'offline', queued: 1 });
    const asked = apiProxy.forwarded.length;
    await cache.put({ v: 'offline' }, 'offline-small', { tables: undefined });
    await cache.put({ v: 'new' }, 'changed');
    await cache.put({ v: 'newer' }, 'changed'); // supersedes the one before it in the outbox
    expect(await cache.delete('kept')).toBe(true);
    expect(await cache.get('offline-small')).toEqual({ v: 'offline' }); // from the local store
    expect((await cache.list()).entries.map((e) => e.key).sort()).toEqual(['changed', 'offline-blob', 'offline-small']);
    expect(apiProxy.forwarded.length).toBe(asked); // offline: no call tried the network
    expect(cache.status()).toMatchObject({ state: 'offline', queued: 5 });

    // Nothing queued is lost across a restart.
    await cache.close();
    caches.splice(caches.indexOf(cache), 1);
    cache = await open(key, { mode: 'auto', dir, onError: (e) => errors.push(e) });
    expect(cache.status().queued).toBe(5);

    await apiProxy.reopen();
    const r = await cache.sync();
    expect(r).toEqual({ pushed: 4, superseded: 1, refused: 0, queued: 0 });
    expect(cache.status()).toMatchObject({ state: 'online', queued: 0 });

    // Another machine (its own local tier) sees every offline write.
    const other = await open(key, { mode: 'remote' });
    expect(Buffer.compare((await other.get('offline-blob')) as Buffer, big)).toBe(0);
    expect(await other.get('offline-small')).toEqual({ v: 'offline' });
    expect(await other.get('changed')).toEqual({ v: 'newer' });
    expect(await other.has('kept')).toBe(false);
    expect(errors).toEqual([]);
  });

  it('lets the later write win when the cloud changed while offline', async () => {
    const key = await newKey();
    let now = Date.now();
    const cache = await open(key, { mode: 'auto', clock: () => now });
    const other = await open(key, { mode: 'remote', clock: () => now });
    await cache.put('first', 'k');
    await apiProxy.close();
    await cache.put('offline, earlier', 'k');
    await cache.put('offline, survives', 'k2');
    now += 1000;
    await apiProxy.reopen();
    await other.put('online, later', 'k'); // written after the offline write: it wins
    expect(await cache.sync()).toMatchObject({ pushed: 1, superseded: 1, queued: 0 });
    expect(await other.get('k')).toBe('online, later');
    expect(await other.get('k2')).toBe('offline, survives');
    expect(await cache.get('k')).toBe('online, later'); // the losing write left the local tier too
  });

  it('replays a clear and a touch made offline without touching what was written after them', async () => {
    const key = await newKey();
    const cache = await open(key, { mode: 'auto' });
    const other = await open(key, { mode: 'remote' });
    await cache.put('old', 'x/1');
    await cache.put('t', 't');
    await apiProxy.close();
    await cache.clear();
    await cache.put('t again', 't');
    expect(await cache.touch('t', { ttl: '1m' })).toBe(true);
    await nextMillisecond(); // the writes below come after these by the clock, as later writes do
    await apiProxy.reopen();
    await other.put('written later', 'x/2');
    await other.put('rewritten later', 't', { ttl: null });
    expect(await cache.sync()).toMatchObject({ queued: 0 });
    expect(await other.has('x/1')).toBe(false); // older than the clear
    expect(await other.get('x/2')).toBe('written later');
    expect((await other.getEntry('t'))?.expiresAt).toBeNull(); // the touch was older than this write
  });

  it('pushes a put whose process died mid-upload, from the write-ahead queue', async () => {
    const key = await newKey();
    const dir = await tempDir();
    const data = randomBytes(1_000_000); // one presigned PUT
    const src = join(await tempDir(), 'v.bin');
    await writeFile(src, data);
    const proxy = api.s3Proxy as HttpProxy;
    const heldBefore = proxy.held;
    proxy.hold = (method) => method === 'PUT';
    const script = fileURLToPath(new URL('./fixtures/remote-put.ts', import.meta.url));
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', script, dir, apiProxy.url, key, src, 'v', 'auto'], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    for (const deadline = Date.now() + 60_000; proxy.held === heldBefore; ) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error('the upload never started');
      await sleep(20);
    }
    child.kill('SIGKILL');
    await exited;
    proxy.hold = undefined;
    const cache = await open(key, { mode: 'auto', dir, maxSize: null });
    expect(cache.status().queued).toBe(1);
    expect(await cache.sync()).toMatchObject({ pushed: 1, queued: 0 });
    const other = await open(key, { mode: 'remote' });
    expect(Buffer.compare((await other.get('v')) as Buffer, data)).toBe(0);
  });

  it('keeps queued writes when the API refuses the key, and pushes them once the key is fixed', async () => {
    const namespace = `rm-${randomBytes(5).toString('hex')}`;
    const writer = await api.key(namespace, ['read', 'write']);
    const reader = await api.key(namespace, ['read']);
    const dir = await tempDir();
    let cache = await open(writer, { mode: 'auto', dir });
    await cache.put(0, 'warm'); // binds the directory to the namespace
    await apiProxy.close();
    await cache.put('queued', 'q');
    await cache.close();
    caches.splice(caches.indexOf(cache), 1);
    await apiProxy.reopen();
    const errors: CachenessError[] = [];
    cache = await open(reader, { mode: 'auto', dir, onError: (e) => errors.push(e) });
    expect(await cache.sync()).toMatchObject({ pushed: 0, refused: 0, queued: 1 });
    expect(errors.at(-1)?.message).toMatch(/stay queued/);
    await cache.close();
    caches.splice(caches.indexOf(cache), 1);
    cache = await open(writer, { mode: 'auto', dir });
    expect(await cache.sync()).toMatchObject({ pushed: 1, queued: 0 });
    expect(await (await open(writer, { mode: 'remote' })).get('q')).toBe('queued');
  });

  it("keeps a directory to one namespace, and refuses a local cache's directory", async () => {
    const dir = await tempDir();
    const a = await open(await newKey(), { mode: 'auto', dir });
    await a.put('a', 'shared-name');
    await a.close();
    caches.splice(caches.indexOf(a), 1);
    const b = await open(await newKey(), { mode: 'auto', dir });
    await expect(b.get('shared-name')).rejects.toMatchObject({ code: 'EOPTION', message: expect.stringMatching(/another cloud namespace/) });
    const localDir = await tempDir();
    const local = createCache({ dir: localDir });
    await local.put(1, 'k');
    await local.close();
    expect(() => createCache({ mode: 'auto', dir: localDir, remote: { endpoint: apiProxy.url, apiKey: 'ck_x' } })).toThrow(
      expect.objectContaining({ code: 'EOPTION', message: expect.stringMatching(/local cache/) }),
    );
  });

  it('lets many concurrent puts through a small local tier without losing any', async () => {
    const key = await newKey();
    const cache = await open(key, { mode: 'auto', maxSize: 200_000 });
    const values = Array.from({ length: 30 }, () => randomBytes(40_000));
    await Promise.all(values.map((v, i) => cache.put(v, `c${i}`)));
    await apiProxy.close();
    const offline = Array.from({ length: 30 }, () => randomBytes(40_000));
    await Promise.all(offline.map((v, i) => cache.put(v, `o${i}`)));
    await apiProxy.reopen();
    expect(await cache.sync()).toMatchObject({ pushed: 30, queued: 0 });
    const other = await open(key, { mode: 'remote', maxSize: null });
    for (const [i, v] of values.entries()) expect(Buffer.compare((await other.get(`c${i}`)) as Buffer, v)).toBe(0);
    for (const [i, v] of offline.entries()) expect(Buffer.compare((await other.get(`o${i}`)) as Buffer, v)).toBe(0);
  });

  it('answers from its local copy without the network, and reads through to the cloud on a local miss', async () => {
    const key = await newKey();
    const writer = await open(key, { mode: 'remote' });
    await writer.put({ n: 1 }, 'small');
    const data = randomBytes(200_000);
    await writer.put(data, 'blob');
    const reader = await open(key, { mode: 'auto' });
    expect(await reader.get('small')).toEqual({ n: 1 }); // from the cloud, kept locally
    expect(Buffer.compare((await reader.get('blob')) as Buffer, data)).toBe(0);
    const asked = apiProxy.forwarded.length;
    expect(await reader.get('small')).toEqual({ n: 1 });
    expect(Buffer.compare((await reader.get('blob')) as Buffer, data)).toBe(0);
    expect(apiProxy.forwarded.length).toBe(asked); // local hits
  });
});

describe("mode 'remote'", () => {
  it('fails with EUNREACHABLE when the API is unreachable, and writes nothing it reports as stored', async () => {
    const key = await newKey();
    const cache = await open(key, { mode: 'remote', remote: { retries: 0 } });
    await apiProxy.close();
    try {
      await expect(cache.put(1, 'k')).rejects.toMatchObject({ code: 'EUNREACHABLE' });
      await expect(cache.get('k')).rejects.toMatchObject({ code: 'EUNREACHABLE' });
      expect(cache.status()).toMatchObject({ mode: 'remote', state: 'online', queued: 0 });
    } finally {
      await apiProxy.reopen();
    }
    expect(await cache.has('k')).toBe(false);
  });

  it('lets a client whose clock runs behind overwrite and delete what others wrote (live writes take the server time)', async () => {
    const key = await newKey();
    const a = await open(key, { mode: 'remote' });
    const b = await open(key, { mode: 'remote', clock: () => Date.now() - 60_000 });
    await a.put('from a', 'k');
    await b.put('from b', 'k');
    expect(await a.get('k')).toBe('from b');
    expect(await b.delete('k')).toBe(true);
    expect(await a.has('k')).toBe(false);
  });

  it('runs a memoized function once for a burst of concurrent calls with one key', async () => {
    const cache = await open(await newKey(), { mode: 'remote' });
    let runs = 0;
    const slow = cached(
      async (x: number) => {
        runs++;
        return { square: x * x };
      },
      { cache },
    );
    // All 20 calls are made in one tick, before the first can ask the cloud, let alone finish.
    const results = await Promise.all(Array.from({ length: 20 }, () => slow(7)));
    expect(results.every((r) => r.square === 49)).toBe(true);
    expect(runs).toBe(1);
    expect(await slow(7)).toEqual({ square: 49 });
    expect(runs).toBe(1);
  });

  it('downloads large values with parallel ranged reads, byte for byte, and reads ranges without the rest', async () => {
    const key = await newKey();
    const writer = await open(key, { mode: 'remote', maxSize: null });
    const data = randomBytes(24 * 1024 * 1024 + 123);
    const src = join(await tempDir(), 'in.bin');
    await writeFile(src, data);
    await writer.putFile(src, 'big');

    const ranged = api.s3Proxy?.forwarded.length ?? 0;
    // A local tier too small to keep it: byte ranges come straight from S3.
    const small = await open(key, { mode: 'remote', maxSize: 1024 * 1024 });
    const part = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      void small.getStream('big', { start: 10_000_000, end: 10_000_099 }).then((s) => {
        s?.on('data', (c: Buffer) => chunks.push(c));
        s?.on('end', () => resolve(Buffer.concat(chunks)));
        s?.on('error', reject);
      });
    });
    expect(part.equals(data.subarray(10_000_000, 10_000_100))).toBe(true);
    const gets = (api.s3Proxy?.forwarded ?? []).slice(ranged).filter((l) => l.startsWith('GET'));
    expect(gets.length).toBeGreaterThan(0);
    expect(gets.length).toBeLessThan(5); // the index and the chunk holding the range, not 24 MiB

    const fresh = await open(key, { mode: 'remote', maxSize: null });
    const dest = join(await tempDir(), 'out.bin');
    expect(await fresh.getFile('big', dest)).toBe(true);
    expect((await readFile(dest)).equals(data)).toBe(true);
  });

  it('detects a tampered object, reads it once more, then reports it and keeps the shared entry', async () => {
    const namespace = `rm-${randomBytes(5).toString('hex')}`;
    const key = await api.key(namespace, ['read', 'write']);
    const objects = async () => (await api.s3.client.send(new ListObjectsV2Command({ Bucket: api.s3.bucket, Prefix: `ns/${namespace}/` }))).Contents ?? [];
    const writer = await open(key, { mode: 'remote' });
    const data = randomBytes(100_000);
    await writer.put(data, 'victim');
    // Change the stored object in S3 (same length) behind the API's back.
    const object = (await objects()).find((o) => o.Size === data.length);
    expect(object?.Key).toBeDefined();
    await api.s3.client.send(new PutObjectCommand({ Bucket: api.s3.bucket, Key: object?.Key, Body: randomBytes(data.length) }));

    const errors: CachenessError[] = [];
    const reader = await open(key, { mode: 'remote', onError: (e) => errors.push(e) });
    const before = api.s3Proxy?.forwarded.length ?? 0;
    expect(await reader.get('victim')).toBeUndefined();
    expect(errors.map((e) => e.code)).toEqual(['EINTEGRITY']);
    const downloads = (api.s3Proxy?.forwarded ?? []).slice(before).filter((l) => l.startsWith('GET'));
    expect(downloads.length).toBe(2); // read once more before giving up
    expect(await reader.has('victim')).toBe(true); // the cloud's entry stays: other readers may have a good path

    // A chunked value read into a file: checked chunk by chunk, read once more, then reported.
    const big = randomBytes(3 * 1024 * 1024);
    await writer.put(big, 'chunked');
    const container = (await objects()).find((o) => (o.Size ?? 0) > big.length);
    expect(container?.Key).toBeDefined();
    const bytes = randomBytes(container?.Size ?? 0);
    await api.s3.client.send(new PutObjectCommand({ Bucket: api.s3.bucket, Key: container?.Key, Body: bytes }));
    const fresh = await open(key, { mode: 'remote', onError: (e) => errors.push(e) });
    const start = api.s3Proxy?.forwarded.length ?? 0;
    await expect(fresh.getFile('chunked', join(await tempDir(), 'x.bin'))).rejects.toMatchObject({ code: 'EINTEGRITY' });
    expect((api.s3Proxy?.forwarded ?? []).slice(start).filter((l) => l.startsWith('GET')).length).toBe(2);
    expect(await fresh.has('chunked')).toBe(true);

    // One chunk changed, the index intact: the download piped to the file finds it by that chunk's hash.
    const other = randomBytes(3 * 1024 * 1024);
    const had = new Set((await objects()).map((o) => o.Key));
    await writer.put(other, 'one-chunk');
    const target = (await objects()).find((o) => !had.has(o.Key))?.Key;
    const { Body } = await api.s3.client.send(new GetObjectCommand({ Bucket: api.s3.bucket, Key: target }));
    const changed = Buffer.from(await (Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    expect(changed.subarray(0, other.length).equals(other)).toBe(true); // a raw container: the payload, then the index
    changed[1024 * 1024 + 5] = (changed[1024 * 1024 + 5] as number) ^ 0xff;
    await api.s3.client.send(new PutObjectCommand({ Bucket: api.s3.bucket, Key: target, Body: changed }));
    const destDir = await tempDir();
    const third = await open(key, { mode: 'remote', onError: (e) => errors.push(e) });
    const from = api.s3Proxy?.forwarded.length ?? 0;
    errors.length = 0;
    await expect(third.getFile('one-chunk', join(destDir, 'y.bin'))).rejects.toMatchObject({
      code: 'EINTEGRITY',
      message: expect.stringContaining('chunk 1 does not match its hash'),
    });
    expect((api.s3Proxy?.forwarded ?? []).slice(from).filter((l) => l.startsWith('GET')).length).toBe(4); // index and chunks, twice
    expect(errors.map((e) => e.code)).toEqual(['EINTEGRITY']);
    expect(await readdir(destDir)).toEqual([]); // neither the file nor its temporary
  });
});

describe('resumable uploads', () => {
  it('resumes a multipart upload of a killed process, sending only the parts S3 lacks', async () => {
    const key = await newKey();
    const dir = await tempDir();
    const data = randomBytes(200 * 1024 * 1024);
    const src = join(await tempDir(), 'model.bin');
    await writeFile(src, data);
    const proxy = api.s3Proxy as HttpProxy;
    const isPart = (method: string, url: string) => method === 'PUT' && url.includes('partNumber=');
    // Let 6 parts through, then hold every other part: the child is stuck mid-upload.
    let let_through = 6;
    proxy.hold = (method, url) => isPart(method, url) && let_through-- <= 0;

    const script = fileURLToPath(new URL('./fixtures/remote-put.ts', import.meta.url));
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', script, dir, apiProxy.url, key, src, 'model'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise((r) => child.once('exit', r));
    // Wait until the journal holds the 6 parts that got through (polling the child's state on disk).
    const journal = join(dir, 'remote.db');
    const upload = () => {
      try {
        const db = new Database(journal, { readonly: true, fileMustExist: true });
        try {
          const row = db.prepare('SELECT parts, part_count FROM uploads').get() as { parts: string; part_count: number } | undefined;
          return row ? { done: (JSON.parse(row.parts) as unknown[]).length, count: row.part_count } : { done: 0, count: 0 };
        } finally {
          db.close();
        }
      } catch {
        return { done: 0, count: 0 };
      }
    };
    for (const deadline = Date.now() + 120_000; upload().done < 6; ) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the upload never got 6 parts in (${stderr})`);
      await sleep(25);
    }
    child.kill('SIGKILL');
    await exited;
    proxy.hold = undefined;
    const { count } = upload();
    expect(count).toBeGreaterThanOrEqual(Math.ceil(data.length / PART)); // the data plus the container's index

    const before = proxy.forwarded.length;
    const cache = await open(key, { mode: 'remote', dir, maxSize: null });
    expect(cache.status().uploads).toBe(1);
    expect(await cache.resumeUploads()).toBe(1);
    expect(cache.status().uploads).toBe(0);
    const sent = proxy.forwarded.slice(before).filter((l) => isPart(l.split(' ')[0] as string, l));
    expect(sent.length).toBe(count - 6); // only the missing parts
    expect(sent.some((l) => /partNumber=[1-6](&|$)/.test(l))).toBe(false);

    const elsewhere = await open(key, { mode: 'remote', maxSize: null });
    const dest = join(await tempDir(), 'out.bin');
    expect(await elsewhere.getFile('model', dest)).toBe(true);
    expect((await readFile(dest)).equals(data)).toBe(true);
  }, 240_000);
});

describe('resumable uploads, in one process', () => {
  it('resumes an upload cut off by the network when the same value is put again', async () => {
    const key = await newKey();
    const proxy = api.s3Proxy as HttpProxy;
    const dir = await tempDir();
    // Quick to give up, so the held parts end the first put soon.
    const impatient = await open(key, { mode: 'remote', dir, maxSize: null, remote: { retries: 0, responseTimeoutMs: 500, concurrency: 2 } });
    const data = randomBytes(12 * PART);
    let through = 4;
    proxy.hold = (method, url) => method === 'PUT' && url.includes('partNumber=') && through-- <= 0;
    await expect(impatient.put(data, 'weights')).rejects.toMatchObject({ code: 'EUNREACHABLE' });
    expect(impatient.status().uploads).toBe(1);
    await impatient.close();
    proxy.hold = undefined;
    const before = proxy.forwarded.length;
    const cache = await open(key, { mode: 'remote', dir, maxSize: null });
    await cache.put(data, 'weights');
    const parts = proxy.forwarded.slice(before).filter((l) => l.startsWith('PUT') && l.includes('partNumber='));
    expect(parts.some((l) => /partNumber=[1-4](&|$)/.test(l))).toBe(false); // the 4 that got through are not sent again
    expect(cache.status().uploads).toBe(0);
    const other = await open(key, { mode: 'remote', maxSize: null });
    expect(Buffer.compare((await other.get('weights')) as Buffer, data)).toBe(0);
  });
});

describe('progress and abort', () => {
  it('reports a local put and stops it on abort, storing nothing', async () => {
    const cache = createCache({ dir: await tempDir(), chunkSize: 64 * 1024 });
    caches.push(cache);
    await cache.put('previous', 'k');
    const seen: Progress[] = [];
    const ac = new AbortController();
    const source = (async function* () {
      for (let i = 0; i < 50; i++) yield randomBytes(64 * 1024);
    })();
    const put = cache.put(source, 'k', {
      signal: ac.signal,
      onProgress: (p) => {
        seen.push(p);
        if (p.bytes >= 5 * 64 * 1024) ac.abort();
      },
    });
    await expect(put).rejects.toMatchObject({ code: 'EABORTED' });
    expect(await cache.get('k')).toBe('previous');
    expect(seen.length).toBeGreaterThanOrEqual(5);
    expect(seen.every((p) => p.phase === 'write' && p.total === null)).toBe(true);

    const file = join(await tempDir(), 'f.bin');
    await writeFile(file, randomBytes(1_000_000));
    const reports: Progress[] = [];
    await cache.putFile(file, 'file', { onProgress: (p) => reports.push(p) });
    expect(reports.at(-1)).toEqual({ phase: 'write', bytes: 1_000_000, total: 1_000_000 });
    expect(reports.map((p) => p.bytes)).toEqual([...reports.map((p) => p.bytes)].sort((a, b) => a - b));
  });

  it('reports an upload, and aborts it on the server too when the caller aborts', async () => {
    const key = await newKey();
    const dir = await tempDir();
    const cache = await open(key, { mode: 'remote', dir, maxSize: null });
    const file = join(await tempDir(), 'big.bin');
    await writeFile(file, randomBytes(40 * 1024 * 1024));
    const phases = new Set<string>();
    const ac = new AbortController();
    const before = apiProxy.forwarded.length;
    const put = cache.putFile(file, 'big', {
      signal: ac.signal,
      onProgress: (p) => {
        phases.add(p.phase);
        if (p.phase === 'upload' && p.bytes >= 2 * PART) ac.abort();
      },
    });
    await expect(put).rejects.toMatchObject({ code: 'EABORTED' });
    expect([...phases].sort()).toEqual(['upload', 'write']);
    expect(apiProxy.forwarded.slice(before).some((l) => l.startsWith('DELETE /v1/uploads/'))).toBe(true);
    expect(cache.status().uploads).toBe(0);
    expect(await cache.has('big')).toBe(false);

    // A complete upload reports its last byte, and a download reports both phases.
    const reports: Progress[] = [];
    await cache.putFile(file, 'big', { onProgress: (p) => reports.push(p) });
    const uploads = reports.filter((p) => p.phase === 'upload');
    expect(uploads.at(-1)?.bytes).toBe(uploads.at(-1)?.total);
    const reader = await open(key, { mode: 'remote', maxSize: null });
    const got: Progress[] = [];
    const dest = join(await tempDir(), 'out.bin');
    expect(await reader.getFile('big', dest, { onProgress: (p) => got.push(p) })).toBe(true);
    expect([...new Set(got.map((p) => p.phase))]).toEqual(['download', 'read']);
    expect(got.at(-1)).toEqual({ phase: 'read', bytes: 40 * 1024 * 1024, total: 40 * 1024 * 1024 });
    const downloaded = got.filter((p) => p.phase === 'download');
    expect(downloaded.at(-1)?.bytes).toBe(downloaded.at(-1)?.total); // the index and every chunk, each counted once
    // Piped (random bytes are stored raw): progress as each piece arrives, not once per 16 MiB window.
    expect(downloaded.length).toBeGreaterThan(40);

    const stopped = new AbortController();
    stopped.abort();
    await expect(reader.getFile('big', join(await tempDir(), 'never.bin'), { signal: stopped.signal })).rejects.toMatchObject({ code: 'EABORTED' });
  });
});

describe('configuration', () => {
  it('takes the endpoint, key, dir and mode from the environment, and explains what is missing', async () => {
    const key = await newKey();
    const dir = await tempDir();
    const saved = { ...process.env };
    try {
      Object.assign(process.env, { CACHENESS_ENDPOINT: apiProxy.url, CACHENESS_API_KEY: key, CACHENESS_DIR: dir, CACHENESS_MODE: 'auto' });
      const c = createCache();
      caches.push(c);
      expect(c.status()).toMatchObject({ mode: 'auto', state: 'online' });
      await c.put(1, 'env');
      expect(c.location).toContain(dir);
      delete process.env.CACHENESS_ENDPOINT;
      expect(() => createCache()).toThrow(expect.objectContaining({ code: 'EOPTION', message: expect.stringMatching(/CACHENESS_ENDPOINT/) }));
      process.env.CACHENESS_MODE = 'cloud';
      expect(() => createCache()).toThrow(expect.objectContaining({ code: 'EOPTION' }));
    } finally {
      process.env = saved;
    }
    expect(() => createCache({ mode: 'remote', store: 'memory', remote: { endpoint: apiProxy.url, apiKey: key } })).toThrow(CachenessError);
    const local = createCache({ dir: await tempDir() });
    caches.push(local);
    expect(local.status()).toEqual({ mode: 'local', state: 'local', queued: 0, uploads: 0 });
    expect(await local.sync()).toEqual({ pushed: 0, superseded: 0, refused: 0, queued: 0 });
  });
});

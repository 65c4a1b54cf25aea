import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/api/index.js';
import { RateLimiter } from '../src/api/rate-limit.js';
import { createApiKey } from '../src/postgres/index.js';
import { lastServerUrl, type PostgresHarness, startPostgres } from './postgres-server.js';
import { type S3Harness, startS3 } from './s3-server.js';

describe('RateLimiter', () => {
  it('allows a burst, then the average rate, and says how long to wait', () => {
    let t = 0;
    const limiter = new RateLimiter({ requestsPerSecond: 2, burst: 3, clock: () => t });
    expect([1, 2, 3, 4].map(() => limiter.take('k').ok)).toEqual([true, true, true, false]);
    expect(limiter.take('k')).toEqual({ ok: false, retryAfterSeconds: 1 });
    expect(limiter.take('other').ok).toBe(true); // buckets are per key
    t += 500; // one token back at 2 per second
    expect([limiter.take('k').ok, limiter.take('k').ok]).toEqual([true, false]);
    t += 60_000; // refills to the burst, not beyond
    expect([1, 2, 3, 4].map(() => limiter.take('k').ok)).toEqual([true, true, true, false]);
  });

  it('asks slow limits to wait several seconds, and forgets the least recent keys beyond maxKeys', () => {
    let t = 0;
    const slow = new RateLimiter({ requestsPerSecond: 0.25, burst: 1, clock: () => t });
    expect(slow.take('k').ok).toBe(true);
    expect(slow.take('k')).toEqual({ ok: false, retryAfterSeconds: 4 });
    t += 4000;
    expect(slow.take('k').ok).toBe(true);
    const few = new RateLimiter({ requestsPerSecond: 1, burst: 1, maxKeys: 2, clock: () => t });
    for (const k of ['a', 'b', 'c']) expect(few.take(k).ok).toBe(true);
    expect(few.take('c').ok).toBe(false); // still tracked
    expect(few.take('a').ok).toBe(true); // forgotten, so full again
  });

  it('refuses settings that cannot work', () => {
    for (const bad of [{ requestsPerSecond: 0 }, { requestsPerSecond: Number.NaN }, { requestsPerSecond: 1, burst: 0.5 }, { requestsPerSecond: Infinity }]) {
      expect(() => new RateLimiter(bad)).toThrow(RangeError);
    }
  });
});

describe('the API under a rate limit', () => {
  let pg: PostgresHarness;
  let s3: S3Harness;
  let base: string;
  let close: () => void;
  let t = 0;
  const keys: string[] = [];
  beforeAll(async () => {
    [pg, s3] = await Promise.all([startPostgres(), startS3()]);
    for (const ns of ['rl-a', 'rl-a', 'rl-b']) keys.push((await createApiKey(pg.sql, { namespace: ns, scopes: ['read', 'write'] })).key);
    const app = createApp({ sql: pg.sql, s3: s3.client, bucket: s3.bucket, rateLimit: { requestsPerSecond: 1, burst: 2, clock: () => t }, maxObjectBytes: 1024 ** 3 });
    const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => server.close();
  });
  afterAll(async () => {
    close?.();
    await Promise.all([pg?.stop(), s3?.stop()]);
  });
  const stats = (key: string) => fetch(`${base}/v1/stats`, { headers: { authorization: `Bearer ${key}` } });

  it('answers 429 with Retry-After per API key, and serves again once the bucket refills', async () => {
    const [a1, a2] = keys as [string, string];
    expect([(await stats(a1)).status, (await stats(a1)).status]).toEqual([200, 200]);
    const limited = await stats(a1);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(await limited.json()).toEqual({ error: { code: 'ERATELIMIT', message: expect.stringContaining('retry in 1 s') } });
    expect((await stats(a2)).status).toBe(200); // another key of the same namespace has its own bucket
    expect((await fetch(`${base}/v1/health`)).status).toBe(200); // health needs no key and is not limited
    t += 1000;
    expect((await stats(a1)).status).toBe(200);
  });

  it('answers 429 without a database query once a key is out of tokens; wrong secrets spend nothing', async () => {
    let queries = 0;
    const counting = postgres(lastServerUrl(), { max: 1, onnotice: () => {}, connection: { search_path: pg.schema }, debug: () => void queries++ });
    let now = 0;
    const app = createApp({ sql: counting, s3: s3.client, bucket: s3.bucket, rateLimit: { requestsPerSecond: 1, burst: 1, clock: () => now } });
    const key = keys[2] as string;
    const get = (k: string) => app.request('/v1/stats', { headers: { authorization: `Bearer ${k}` } });
    try {
      const forged = `${key.slice(0, 16)}${key.slice(16).split('').reverse().join('')}`; // same key id, wrong secret
      expect((await get(forged)).status).toBe(401);
      expect((await get(key)).status).toBe(200); // the forgery did not spend the key's only token
      const before = queries;
      const limited = await get(key);
      expect(limited.status).toBe(429);
      expect(queries).toBe(before);
      now += 1000;
      expect((await get(key)).status).toBe(200);
    } finally {
      await counting.end();
    }
  });

  it('refuses objects over maxObjectBytes with 413, sized or streamed', async () => {
    const key = keys[2] as string;
    const put = (body: unknown) =>
      fetch(`${base}/v1/entries/big`, { method: 'PUT', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const entry = { handler: 'bytes@1', type: 'Buffer', codec: 'none' };
    const sized = await put({ ...entry, size: 1024 ** 3 + 1, storedSize: 1024 ** 3 + 1, contentHash: 'a'.repeat(32), blobId: 'a'.repeat(32) });
    expect(sized.status).toBe(413);
    expect(await sized.json()).toMatchObject({ error: { code: 'ETOOLARGE', details: { maxObjectBytes: 1024 ** 3 } } });
    t += 10_000;
    expect((await put({ ...entry, maxStoredSize: 1024 ** 3 + 1 })).status).toBe(413);
    const streamed = await put(entry); // no bound given: the plan is for the limit, not for 5 TiB
    expect(streamed.status).toBe(202);
    expect(((await streamed.json()) as { upload: { maxSize: number } }).upload.maxSize).toBe(1024 ** 3);
  });
});

describe('limits from the environment', () => {
  it('reads RATE_LIMIT_RPS, RATE_LIMIT_BURST, MAX_OBJECT_BYTES and INLINE_MAX_BYTES; empty means unset; 0 turns rate limiting off', async () => {
    const { apiLimitsFromEnv } = await import('../src/api/index.js');
    expect(apiLimitsFromEnv({})).toEqual({});
    expect(apiLimitsFromEnv({ RATE_LIMIT_RPS: '', MAX_OBJECT_BYTES: ' ' })).toEqual({});
    expect(apiLimitsFromEnv({ RATE_LIMIT_RPS: '0' })).toEqual({ rateLimit: false });
    expect(apiLimitsFromEnv({ RATE_LIMIT_RPS: '50', RATE_LIMIT_BURST: '10', MAX_OBJECT_BYTES: '1000', INLINE_MAX_BYTES: '10' })).toEqual({
      rateLimit: { requestsPerSecond: 50, burst: 10 },
      maxObjectBytes: 1000,
      inlineMaxBytes: 10,
    });
    expect(apiLimitsFromEnv({ RATE_LIMIT_BURST: '5' })).toEqual({ rateLimit: { requestsPerSecond: 200, burst: 5 } });
    for (const bad of ['-1', 'lots', 'NaN']) expect(() => apiLimitsFromEnv({ RATE_LIMIT_RPS: bad })).toThrow(/RATE_LIMIT_RPS must be a number of at least 0/);
    expect(() => apiLimitsFromEnv({ RATE_LIMIT_BURST: '0.5' })).toThrow(/RATE_LIMIT_BURST must be a number of at least 1/);
    expect(() => apiLimitsFromEnv({ MAX_OBJECT_BYTES: '1.5' })).toThrow(/MAX_OBJECT_BYTES must be a whole number/);
    expect(() => apiLimitsFromEnv({ INLINE_MAX_BYTES: '-2' })).toThrow(/INLINE_MAX_BYTES must be a whole number of at least 0/);
  });
});

/**
 * The cloud API as a hono app. The factory takes its stores and clock, so Lambda, the local stack and
 * tests each inject their own. Every /v1 route except health needs `Authorization: Bearer <api key>`;
 * the key's namespace scopes everything the request touches.
 * @module
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { isExpired, toEntryInfo } from 'cacheness/stores';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Sql } from 'postgres';
import { type Principal, type Scope, verifyApiKey } from '../postgres/api-keys.js';
import { PostgresMetadataStore } from '../postgres/metadata-store.js';
import { presignGet } from '../s3/presign.js';
import { ApiError, toErrorResponse } from './errors.js';

/** What the API runs on. */
export interface ApiDeps {
  sql: Sql;
  s3: S3Client;
  bucket: string;
  /** Milliseconds since the epoch. Default `Date.now`. */
  clock?: () => number;
  /** Largest request body accepted, in bytes. Default 6 MiB (API Gateway's limit). */
  maxBodyBytes?: number;
}

type Env = { Variables: { principal: Principal; store: PostgresMetadataStore } };

/** Object key of a blob: chosen by the server, under the tenant's prefix. */
export function blobObjectKey(namespace: string, blobName: string): string {
  return `ns/${namespace}/blobs/${blobName}`;
}

export function createApp(deps: ApiDeps): Hono<Env> {
  const clock = deps.clock ?? Date.now;
  const app = new Hono<Env>();

  app.onError((err, c) => {
    const { status, body } = toErrorResponse(err);
    return c.json(body, status as 400);
  });
  app.notFound((c) => c.json({ error: { code: 'ENOTFOUND', message: `No route ${c.req.method} ${c.req.path}.` } }, 404));
  app.use(
    '*',
    bodyLimit({
      maxSize: deps.maxBodyBytes ?? 6 * 1024 * 1024,
      onError: () => {
        throw new ApiError(413, 'ETOOLARGE', 'Request body too large: send large payloads through a presigned upload.');
      },
    }),
  );

  app.get('/v1/health', (c) => c.json({ ok: true }));

  app.use('/v1/*', async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer (\S+)$/.exec(header);
    if (!match) throw new ApiError(401, 'EUNAUTHORIZED', 'Send an API key: Authorization: Bearer <key>.');
    const principal = await verifyApiKey(deps.sql, match[1] as string);
    if (!principal) throw new ApiError(401, 'EUNAUTHORIZED', 'This API key is not valid (unknown, revoked or malformed).');
    c.set('principal', principal);
    c.set('store', new PostgresMetadataStore({ sql: deps.sql, namespace: principal.namespace }));
    await next();
  });

  const need = (principal: Principal, scope: Scope) => {
    if (!principal.scopes.includes(scope) && !principal.scopes.includes('admin')) {
      throw new ApiError(403, 'EFORBIDDEN', `This API key lacks the '${scope}' scope.`);
    }
  };

  app.get('/v1/stats', async (c) => {
    need(c.get('principal'), 'read');
    const counters = await c.get('store').counters();
    const reads = counters.hits + counters.misses;
    return c.json({ ...counters, hitRate: reads === 0 ? 0 : counters.hits / reads });
  });

  app.get('/v1/entries/:key', async (c) => {
    need(c.get('principal'), 'read');
    const store = c.get('store');
    const key = c.req.param('key');
    const now = clock();
    if (c.req.method === 'HEAD') {
      // hono routes HEAD here: answer from metadata alone, without counting a read.
      const e = await store.head(key);
      if (!e || isExpired(e, now)) return c.body(null, 404);
      c.header('x-cacheness-size', String(e.size));
      c.header('x-cacheness-content-hash', e.contentHash);
      return c.body(null, 200);
    }
    const e = await store.get(key);
    if (!e || isExpired(e, now)) {
      await store.recordAccess([], { misses: 1 });
      throw new ApiError(404, 'ENOTFOUND', `No entry '${key}'.`);
    }
    await store.recordAccess([{ key, hits: 1, accessedAt: now }], { hits: 1 });
    const entry = { ...toEntryInfo(e), hits: e.hits + 1 };
    if (e.inline) return c.json({ entry, body: Buffer.from(e.inline).toString('base64') });
    if (!e.blobName) throw new ApiError(503, 'EUNAVAILABLE', 'This entry has no payload yet; try again.');
    const url = await presignGet(deps.s3, { bucket: deps.bucket, key: blobObjectKey(c.get('principal').namespace, e.blobName) });
    return c.json({ entry, url });
  });

  app.delete('/v1/entries/:key', async (c) => {
    need(c.get('principal'), 'write');
    const deleted = await c.get('store').delete(c.req.param('key'));
    return c.json({ deleted });
  });

  return app;
}

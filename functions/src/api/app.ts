/**
 * The cloud API as a hono app. The factory takes its stores and clock, so Lambda, the local stack and
 * tests each inject their own. Every /v1 route except health needs `Authorization: Bearer <api key>`;
 * the key's namespace scopes everything the request touches.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  type AbortUploadResponse,
  type AccessResponse,
  type CompleteUploadResponse,
  type CountResponse,
  type CreateEntryResponse,
  type DefineTableResponse,
  type DeletePrefixResponse,
  type DeleteResponse,
  type EntryOnlyResponse,
  type EntryRecord,
  type GetEntryResponse,
  type HealthResponse,
  isExpired,
  type ListKeysResponse,
  type ListResponse,
  type MultipartPlan,
  type NewKeyResponse,
  type PartUrlsResponse,
  type QueryResponse,
  type RevokeKeyResponse,
  type RowsResponse,
  type StatsResponse,
  type TablesResponse,
  type TouchResponse,
  toEntryInfo,
  toWireEntry,
  ttlToMs,
  validateStringKey,
  type Where,
  type WhoAmIResponse,
  type WireKeyInfo,
} from 'cacheness/model';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Sql } from 'postgres';
import * as z from 'zod';
import { contentHashHex } from '../content-hash.js';
import { blobObjectKey } from '../object-keys.js';
import { type ApiKeyInfo, createApiKey, listApiKeys, type Principal, revokeApiKey, type Scope, verifyApiKey } from '../postgres/api-keys.js';
import { generationOf, isDroppedConnection, reconnectIfPossible, retryOnDroppedConnection } from '../postgres/connect.js';
import { PostgresMetadataStore } from '../postgres/metadata-store.js';
import { createUpload, deleteUpload, getUpload } from '../postgres/uploads.js';
import { type PartPlan, planParts, S3_LIMITS } from '../s3/multipart-plan.js';
import { abortMultipart, completeMultipart, presignGet, presignParts, presignPut, startMultipart } from '../s3/presign.js';
import { ApiError, toErrorResponse } from './errors.js';
import { openApiDocument } from './openapi.js';
import { DEFAULT_RATE_LIMIT, type RateDecision, RateLimiter, type RateLimitOptions } from './rate-limit.js';
import { Access, CompleteParts, Count, CreateEntry, DefineTable, DeletePrefix, IsoTime, List, NewKey, PartNumbers, Query, Touch } from './schemas.js';

/** What the API runs on. */
export interface ApiDeps {
  sql: Sql;
  s3: S3Client;
  bucket: string;
  /** Milliseconds since the epoch. Default `Date.now`. */
  clock?: () => number;
  /** Largest request body accepted, in bytes. Default 6 MiB (API Gateway's limit). */
  maxBodyBytes?: number;
  /** Largest payload sent inline in a create request. Default 256 KiB. */
  inlineMaxBytes?: number;
  /** Largest payload uploaded with one presigned PUT; larger ones go multipart. Default 100 MiB (AWS's advice). */
  singlePutMaxBytes?: number;
  /** Preferred multipart part size. Default 16 MiB. */
  preferredPartBytes?: number;
  /** Largest object an entry may store, in bytes (413 beyond). Default 5 TiB (S3's limit). */
  maxObjectBytes?: number;
  /** Requests per API key (429 with Retry-After beyond), per process; `false` for none. Default {@link DEFAULT_RATE_LIMIT}. */
  rateLimit?: RateLimitOptions | false;
  /** Called when the database refuses the password (it was rotated): forget cached credentials. */
  onDatabaseAuthFailure?: () => void;
}

type Env = { Variables: { principal: Principal; store: PostgresMetadataStore; dbGeneration: number | undefined } };

/** How long a pending upload may take before the sweeper abandons it. */
const UPLOAD_TTL_MS = 24 * 3_600_000;
/** Part URLs handed out per request (they live 15 minutes: a long upload asks for more). */
const PART_URL_BATCH = 100;

/** An API key's description with its dates as ISO strings. */
function wireKey(info: ApiKeyInfo): WireKeyInfo {
  return { ...info, createdAt: info.createdAt.toISOString(), revokedAt: info.revokedAt === null ? null : info.revokedAt.toISOString() };
}

/** With codec 'none' the stored bytes are the content, so their sizes and hashes must agree. */
function checkPlainCodec(codec: string, d: { size?: number; storedSize?: number; contentHash?: string; blobId?: string }): void {
  if (codec === 'none' && (d.size !== d.storedSize || d.contentHash !== d.blobId)) {
    throw new ApiError(400, 'EVALIDATION', "With codec 'none' the stored bytes are the content: size must equal storedSize and contentHash equal blobId.");
  }
}

/** A `0` / `1` query flag; absent means 1. */
function queryFlag(value: string | undefined, name: string): boolean {
  if (value === undefined || value === '1') return true;
  if (value === '0') return false;
  throw new ApiError(400, 'EVALIDATION', `Query parameter '${name}' is 0 or 1 (got '${value}').`);
}

/** `ttl` and an absolute `expiresAt` are two ways to say one thing: a request may use one of them. */
function checkOneExpiry(d: { ttl?: unknown; expiresAt?: unknown }): void {
  if (d.ttl !== undefined && d.expiresAt !== undefined) {
    throw new ApiError(400, 'EVALIDATION', 'Send ttl (relative) or expiresAt (absolute ISO 8601, or null for never), not both.');
  }
}

/**
 * Later write wins: a write dated `writtenAt` (ms) must not replace a live entry written after it
 * (409 `ECONFLICT`, nothing changes); at equal times the new write wins. This runs just before the
 * write, not in its transaction (the store's put takes no condition), so a write committed in between
 * can still be replaced: a narrow race, accepted.
 */
async function refuseIfLaterStored(store: PostgresMetadataStore, key: string, writtenAt: number, now: number): Promise<void> {
  const stored = await store.head(key);
  if (!stored || isExpired(stored, now) || stored.createdAt <= writtenAt) return;
  const storedAt = new Date(stored.createdAt).toISOString();
  const at = new Date(writtenAt).toISOString();
  throw new ApiError(
    409,
    'ECONFLICT',
    `Entry '${key}' was written at ${storedAt}, after this write (${at}); the later write wins, so nothing changed. Read the entry for its current value.`,
    { storedAt, writtenAt: at },
  );
}

async function objectSize(s3: S3Client, bucket: string, key: string): Promise<number | undefined> {
  try {
    return (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentLength;
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
    throw err;
  }
}

export function createApp(deps: ApiDeps): Hono<Env> {
  const clock = deps.clock ?? Date.now;
  const inlineMax = deps.inlineMaxBytes ?? 256 * 1024;
  const singlePutMax = Math.min(deps.singlePutMaxBytes ?? 100 * 1024 ** 2, S3_LIMITS.maxPartSize);
  const maxObject = Math.min(deps.maxObjectBytes ?? S3_LIMITS.maxObjectSize, S3_LIMITS.maxObjectSize);
  const tooLarge = () => new ApiError(413, 'ETOOLARGE', `Objects are at most ${maxObject} bytes here.`, { maxObjectBytes: maxObject });
  const limiter = deps.rateLimit === false ? undefined : new RateLimiter(deps.rateLimit ?? DEFAULT_RATE_LIMIT);
  const app = new Hono<Env>();

  app.onError((err, c) => {
    // A connection that broke mid-request is replaced, so the next request runs (this one answers 503).
    if (isDroppedConnection(err)) reconnectIfPossible(deps.sql, c.get('dbGeneration'));
    if ((err as { code?: unknown }).code === '28P01') {
      // A rotated password: new connections read the secret again (this request answers 503, Retry-After).
      deps.onDatabaseAuthFailure?.();
      reconnectIfPossible(deps.sql, c.get('dbGeneration'));
    }
    const { status, body, retryAfter } = toErrorResponse(err);
    // Clients get no internals; operators get the error in the log (CloudWatch on Lambda).
    if (status >= 500) console.error(`${c.req.method} ${c.req.path} -> ${status}:`, err);
    if (retryAfter !== undefined) c.header('retry-after', String(retryAfter));
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

  app.get('/v1/health', (c) => c.json({ ok: true } satisfies HealthResponse));
  app.get('/v1/openapi.json', (c) => c.json(openApiDocument()));

  app.use('/v1/*', async (c, next) => {
    if (c.req.path === '/v1/openapi.json') return next();
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer (\S+)$/.exec(header);
    if (!match) throw new ApiError(401, 'EUNAUTHORIZED', 'Send an API key: Authorization: Bearer <key>.');
    const limited = (d: RateDecision | undefined) => {
      if (d && !d.ok) throw new ApiError(429, 'ERATELIMIT', `Too many requests with this API key; retry in ${d.retryAfterSeconds} s.`, undefined, d.retryAfterSeconds);
    };
    const claimedId = /^ck_([a-z0-9]{12})_/.exec(match[1] as string)?.[1];
    if (claimedId) limited(limiter?.peek(claimedId));
    // A request's first statement: a connection that went stale while the container was frozen fails
    // here, before anything was done, so it is safe to try once more on a fresh connection.
    const principal = await retryOnDroppedConnection(deps.sql, () => verifyApiKey(deps.sql, match[1] as string));
    c.set('dbGeneration', generationOf(deps.sql)); // the pool this request's later statements use
    if (!principal) throw new ApiError(401, 'EUNAUTHORIZED', 'This API key is not valid (unknown, revoked or malformed).');
    limited(limiter?.take(principal.keyId));
    c.set('principal', principal);
    c.set('store', new PostgresMetadataStore({ sql: deps.sql, namespace: principal.namespace }));
    await next();
  });

  /** A multipart plan for the client, with the first batch of part URLs. */
  const multipartPlan = async (
    id: string,
    expiresAt: number,
    objectKey: string,
    uploadId: string,
    plan: PartPlan,
    sizes: { size: number | null; maxSize?: number },
  ): Promise<MultipartPlan> => {
    const first = Array.from({ length: Math.min(plan.partCount, PART_URL_BATCH) }, (_, i) => i + 1);
    const parts = await presignParts(deps.s3, { bucket: deps.bucket, key: objectKey, uploadId, partNumbers: first });
    return { id, method: 'MULTIPART', ...sizes, partSize: plan.partSize, partCount: plan.partCount, parts, expiresAt: new Date(expiresAt).toISOString() };
  };

  const need = (principal: Principal, scope: Scope) => {
    if (!principal.scopes.includes(scope) && !principal.scopes.includes('admin')) {
      throw new ApiError(403, 'EFORBIDDEN', `This API key lacks the '${scope}' scope.`);
    }
  };

  app.get('/v1/stats', async (c) => {
    need(c.get('principal'), 'read');
    const counters = await c.get('store').counters();
    const reads = counters.hits + counters.misses;
    return c.json({ ...counters, hitRate: reads === 0 ? 0 : counters.hits / reads } satisfies StatsResponse);
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
    // count=0: the client counts its reads itself (POST /v1/access); payload=0: metadata alone, never counted.
    const payload = queryFlag(c.req.query('payload'), 'payload');
    const counted = queryFlag(c.req.query('count'), 'count') && payload;
    const e = payload ? await store.get(key) : await store.head(key);
    if (!e || isExpired(e, now)) {
      if (counted) await store.recordAccess([], { misses: 1 });
      throw new ApiError(404, 'ENOTFOUND', `No entry '${key}'.`);
    }
    if (counted) await store.recordAccess([{ key, hits: 1, accessedAt: now }], { hits: 1 });
    const entry = toWireEntry({ ...toEntryInfo(e), hits: e.hits + (counted ? 1 : 0) });
    if (!payload) return c.json({ entry, blobId: e.inline ? null : e.blobId } satisfies EntryOnlyResponse);
    if (e.inline) return c.json({ entry, body: Buffer.from(e.inline).toString('base64') } satisfies GetEntryResponse);
    if (!e.blobName) throw new ApiError(503, 'EUNAVAILABLE', 'This entry has no payload yet; try again.');
    const url = await presignGet(deps.s3, { bucket: deps.bucket, key: blobObjectKey(c.get('principal').namespace, e.blobName) });
    return c.json({ entry, url, ...(e.blobId ? { blobId: e.blobId } : {}) } satisfies GetEntryResponse);
  });

  app.put('/v1/entries/:key', async (c) => {
    need(c.get('principal'), 'write');
    const store = c.get('store');
    const namespace = c.get('principal').namespace;
    const key = validateStringKey(c.req.param('key'));
    const parsed = CreateEntry.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) throw new ApiError(400, 'EVALIDATION', `Invalid entry: ${z.prettifyError(parsed.error)}`, { issues: parsed.error.issues });
    const body = parsed.data;
    checkOneExpiry(body);
    const now = clock();
    // A client's own write time (a replayed offline write), never later than the server's clock.
    const writtenAt = body.writtenAt === undefined ? undefined : Math.min(Date.parse(body.writtenAt), now);
    const createdAt = writtenAt ?? now;
    const ttlMs = body.ttl === undefined ? null : ttlToMs(body.ttl);
    const expiresAt = body.expiresAt !== undefined ? (body.expiresAt === null ? null : Date.parse(body.expiresAt)) : ttlMs === null ? null : createdAt + ttlMs;
    const record: EntryRecord = {
      key,
      params: (body.params ?? null) as EntryRecord['params'],
      handler: body.handler,
      type: body.type,
      codec: body.codec,
      // A streamed upload's sizes and hash arrive at completion.
      size: body.size ?? 0,
      storedSize: body.storedSize ?? 0,
      contentHash: body.contentHash ?? '',
      blobId: null,
      inline: null,
      createdAt,
      accessedAt: createdAt,
      expiresAt,
      hits: 0,
      description: body.description ?? null,
      metadata: (body.metadata ?? null) as EntryRecord['metadata'],
    };
    const tables = body.tables ? Object.fromEntries(Object.entries(body.tables).map(([t, rows]) => [t, Array.isArray(rows) ? rows : [rows]])) : undefined;

    const described = [body.size, body.storedSize, body.contentHash].filter((v) => v !== undefined).length;
    const streamed = described === 0 && body.blobId === undefined && body.body === undefined;
    if (!streamed && described < 3) {
      throw new ApiError(400, 'EVALIDATION', 'Send size, storedSize and contentHash (with body or blobId), or none of them (and no blobId) to stream an upload of unknown size.');
    }
    if (!streamed && body.maxStoredSize !== undefined) throw new ApiError(400, 'EVALIDATION', 'maxStoredSize is for streamed uploads (unknown size); this upload has storedSize.');
    /** Later write wins, for writes dated by the client (undated writes happen now: nothing stored is later). */
    const checkLaterWrite = () => (writtenAt === undefined ? Promise.resolve() : refuseIfLaterStored(store, key, writtenAt, now));
    /** What completion needs to know of a dated write or an absolute expiry. */
    const dated = { writtenAt: writtenAt ?? null, fixedExpiry: body.expiresAt !== undefined };

    if (body.body !== undefined) {
      const bytes = Buffer.from(body.body, 'base64');
      if (bytes.length > inlineMax) throw new ApiError(413, 'ETOOLARGE', `Inline payloads are at most ${inlineMax} bytes; upload larger ones (omit body).`);
      if (bytes.length !== record.storedSize) throw new ApiError(422, 'EINTEGRITY', `The body has ${bytes.length} bytes but storedSize says ${record.storedSize}.`);
      if (body.codec === 'none' && (await contentHashHex(bytes)) !== body.contentHash) throw new ApiError(422, 'EINTEGRITY', 'The body does not match contentHash.');
      record.inline = bytes;
      await checkLaterWrite();
      await store.put(record, { tables });
      return c.json({ entry: toWireEntry(toEntryInfo(record)) } satisfies CreateEntryResponse, 201);
    }

    if (streamed) {
      // Bytes of unknown size: staged under a random blob id (pinned), planned for the worst case.
      if (body.maxStoredSize !== undefined && body.maxStoredSize > maxObject) throw tooLarge();
      await checkLaterWrite();
      const plan = planParts({ maxSize: body.maxStoredSize ?? maxObject, preferredPartSize: deps.preferredPartBytes });
      const staged = await store.acquireBlob(randomBytes(16).toString('hex'), 0, now, `upload:${namespace}`);
      const objectKey = blobObjectKey(namespace, staged.name);
      const maxSize = body.maxStoredSize ?? maxObject;
      const s3UploadId = await startMultipart(deps.s3, { bucket: deps.bucket, key: objectKey });
      const upload = await createUpload(deps.sql, {
        namespace,
        key,
        record,
        tables: tables ?? null,
        blobName: staged.name,
        pin: staged.pin,
        multipart: { s3UploadId, partSize: plan.partSize, partCount: plan.partCount },
        maxSize,
        ...dated,
        createdAt: now,
        expiresAt: now + UPLOAD_TTL_MS,
      }).catch(async (err) => {
        // As below: abort the multipart upload no row names; the staged pin is then stale garbage.
        await abortMultipart(deps.s3, { bucket: deps.bucket, key: objectKey, uploadId: s3UploadId }).catch(() => {});
        await store.releasePin(staged.pin).catch(() => {});
        throw err;
      });
      return c.json({ upload: await multipartPlan(upload.id, upload.expiresAt, objectKey, s3UploadId, plan, { size: null, maxSize }) } satisfies CreateEntryResponse, 202);
    }
    if (!body.blobId) throw new ApiError(400, 'EVALIDATION', 'An upload needs blobId (the XXH3-128 of the stored bytes).');
    checkPlainCodec(body.codec, body);
    if (record.storedSize > maxObject) throw tooLarge();
    record.blobId = body.blobId;
    // Before the reservation, so a refused write leaves no pin (this covers the deduplicated path too).
    await checkLaterWrite();
    const reservation = await store.acquireBlob(body.blobId, record.storedSize, now, `upload:${namespace}`);
    const objectKey = blobObjectKey(namespace, reservation.name);
    if (reservation.ready && (await objectSize(deps.s3, deps.bucket, objectKey)) === record.storedSize) {
      // The namespace already holds these bytes: no upload, the entry just references them.
      await store.put(record, { tables, pin: reservation.pin, blobName: reservation.name });
      return c.json({ entry: toWireEntry(toEntryInfo(record)), deduplicated: true } satisfies CreateEntryResponse, 201);
    }
    const pending = {
      namespace,
      key,
      record,
      tables: tables ?? null,
      blobName: reservation.name,
      pin: reservation.pin,
      maxSize: null,
      ...dated,
      createdAt: now,
      expiresAt: now + UPLOAD_TTL_MS,
    };
    if (record.storedSize <= singlePutMax) {
      const upload = await createUpload(deps.sql, { ...pending, multipart: null });
      const url = await presignPut(deps.s3, { bucket: deps.bucket, key: objectKey, size: record.storedSize });
      return c.json(
        { upload: { id: upload.id, method: 'PUT', url, size: record.storedSize, expiresAt: new Date(upload.expiresAt).toISOString() } } satisfies CreateEntryResponse,
        202,
      );
    }
    // Multipart: equal parts sized so the object fits in 10,000; part URLs come in batches.
    const plan = planParts({ size: record.storedSize, preferredPartSize: deps.preferredPartBytes });
    const s3UploadId = await startMultipart(deps.s3, { bucket: deps.bucket, key: objectKey });
    const upload = await createUpload(deps.sql, { ...pending, multipart: { s3UploadId, partSize: plan.partSize, partCount: plan.partCount } }).catch(async (err) => {
      // No row will ever name this multipart upload: abort it now (best effort; the sweeper and the bucket's lifecycle rule catch what this misses).
      await abortMultipart(deps.s3, { bucket: deps.bucket, key: objectKey, uploadId: s3UploadId }).catch(() => {});
      throw err;
    });
    return c.json({ upload: await multipartPlan(upload.id, upload.expiresAt, objectKey, s3UploadId, plan, { size: record.storedSize }) } satisfies CreateEntryResponse, 202);
  });

  app.post('/v1/uploads/:id/parts', async (c) => {
    need(c.get('principal'), 'write');
    const { namespace } = c.get('principal');
    const upload = await getUpload(deps.sql, namespace, c.req.param('id'), clock());
    if (!upload) throw new ApiError(410, 'EUPLOADGONE', 'No such pending upload (completed, aborted or expired): start a new one.');
    if (!upload.multipart) throw new ApiError(409, 'ENOTMULTIPART', 'This upload is a single PUT; it has no parts.');
    const parsed = PartNumbers.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) throw new ApiError(400, 'EVALIDATION', `Invalid part request: ${z.prettifyError(parsed.error)}`);
    const { partCount, s3UploadId } = upload.multipart;
    const bad = parsed.data.partNumbers.find((n) => n > partCount);
    if (bad !== undefined) throw new ApiError(400, 'EVALIDATION', `Part ${bad} is beyond this upload's ${partCount} parts.`);
    const parts = await presignParts(deps.s3, { bucket: deps.bucket, key: blobObjectKey(namespace, upload.blobName), uploadId: s3UploadId, partNumbers: parsed.data.partNumbers });
    return c.json({ parts } satisfies PartUrlsResponse);
  });

  app.post('/v1/uploads/:id/complete', async (c) => {
    need(c.get('principal'), 'write');
    const { namespace } = c.get('principal');
    const upload = await getUpload(deps.sql, namespace, c.req.param('id'), clock());
    if (!upload) throw new ApiError(410, 'EUPLOADGONE', 'No such pending upload (completed, aborted or expired): start a new one.');
    const objectKey = blobObjectKey(namespace, upload.blobName);
    const parsed = CompleteParts.safeParse(await c.req.json().catch(() => ({})));
    if (!parsed.success) throw new ApiError(400, 'EVALIDATION', `Invalid completion: ${z.prettifyError(parsed.error)}`);
    const done = parsed.data;
    const streamed = upload.maxSize !== null;
    const facts = [done.size, done.storedSize, done.contentHash, done.blobId];
    if (streamed) checkPlainCodec(upload.record.codec, done);
    if (streamed && facts.some((v) => v === undefined)) {
      throw new ApiError(400, 'EVALIDATION', 'A streamed upload completes with its size, storedSize, contentHash and blobId (the XXH3-128 of the stored bytes).');
    }
    if (!streamed && facts.some((v) => v !== undefined)) throw new ApiError(400, 'EVALIDATION', "This upload's sizes and hashes were given when it started; send only its parts.");
    if (upload.multipart) {
      if (!done.parts) throw new ApiError(400, 'EVALIDATION', 'Completing a multipart upload needs its parts: [{ partNumber, etag }].');
      const numbers = done.parts.map((p) => p.partNumber).sort((a, b) => a - b);
      const { partCount } = upload.multipart;
      const expectedParts = streamed ? numbers.length : partCount;
      if (numbers.length !== expectedParts || numbers.length > partCount || numbers.some((n, i) => n !== i + 1)) {
        throw new ApiError(
          422,
          'EUPLOADINCOMPLETE',
          streamed ? `Send the parts numbered 1 to n (n at most ${partCount}), each once.` : `Send all ${partCount} parts, numbered 1 to ${partCount}, each once.`,
        );
      }
      const expectedSize = streamed ? done.storedSize : upload.record.storedSize;
      await completeMultipart(deps.s3, { bucket: deps.bucket, key: objectKey, uploadId: upload.multipart.s3UploadId, parts: done.parts }).catch(async (err) => {
        // A retried completion (the first completed the object, then failed to record the entry): S3 no
        // longer knows the upload (NoSuchUpload; the local stand-in answers 500), but the object is there.
        if ((await objectSize(deps.s3, deps.bucket, objectKey)) !== expectedSize) throw err;
      });
    }
    const size = await objectSize(deps.s3, deps.bucket, objectKey);
    if (size === undefined) throw new ApiError(409, 'EUPLOADINCOMPLETE', 'The bytes have not arrived: PUT them to the upload URL first.');
    const announced = streamed ? (done.storedSize as number) : upload.record.storedSize;
    if (size !== announced || (streamed && size > (upload.maxSize as number))) {
      if (streamed) {
        // The parts are one object now: nothing can be resent. Its staged blob, unpinned, is garbage for the sweeper.
        await c.get('store').releasePin(upload.pin);
        await deleteUpload(deps.sql, namespace, upload.id);
      }
      const limit = streamed && size > (upload.maxSize as number) ? `, over this upload's limit of ${upload.maxSize}` : '';
      throw new ApiError(422, 'EINTEGRITY', `The uploaded object has ${size} bytes${limit}; ${announced} were announced.${streamed ? ' Start a new upload.' : ''}`);
    }
    const now = clock();
    const store = c.get('store');
    let record: EntryRecord;
    if (upload.writtenAt != null) {
      // A write dated by its client keeps its times; a later write stored meanwhile wins, and this upload is over.
      record = { ...upload.record };
      await refuseIfLaterStored(store, upload.key, upload.writtenAt, now).catch(async (err) => {
        // As for EINTEGRITY above: the unpinned blob is garbage for the sweeper; no pending row is left.
        await store.releasePin(upload.pin);
        await deleteUpload(deps.sql, namespace, upload.id);
        throw err;
      });
    } else {
      // The write happens now: creation time and a ttl count from completion, not from the announcement.
      const ttl = upload.record.expiresAt === null ? null : upload.record.expiresAt - upload.record.createdAt;
      const expiresAt = upload.fixedExpiry || ttl === null ? upload.record.expiresAt : now + ttl;
      record = { ...upload.record, createdAt: now, accessedAt: now, expiresAt };
    }
    let blobName = upload.blobName;
    let deduplicated = false;
    if (streamed) {
      const adopted = await store.adoptStagedBlob(upload.blobName, upload.pin, done.blobId as string, size);
      Object.assign(record, { size: done.size, storedSize: size, contentHash: done.contentHash, blobId: adopted.blobId });
      blobName = adopted.name;
      deduplicated = adopted.deduplicated;
    }
    await store.put(record, { tables: upload.tables ?? undefined, pin: upload.pin, blobName });
    await deleteUpload(deps.sql, namespace, upload.id);
    return c.json({ entry: toWireEntry(toEntryInfo(record)), ...(deduplicated ? { deduplicated: true as const } : {}) } satisfies CompleteUploadResponse, 201);
  });

  app.delete('/v1/uploads/:id', async (c) => {
    need(c.get('principal'), 'write');
    const { namespace } = c.get('principal');
    const upload = await getUpload(deps.sql, namespace, c.req.param('id'), 0);
    if (!upload) return c.json({ aborted: false } satisfies AbortUploadResponse);
    if (upload.multipart) {
      await abortMultipart(deps.s3, { bucket: deps.bucket, key: blobObjectKey(namespace, upload.blobName), uploadId: upload.multipart.s3UploadId }).catch(
        (err: { name?: string }) => {
          // S3 implements AbortMultipartUpload; the local stand-in answers 405 or 501 (its parts then wait for the sweeper).
          if (err.name !== 'NotImplemented' && err.name !== 'MethodNotAllowed') throw err;
        },
      );
    }
    await c.get('store').releasePin(upload.pin);
    await deleteUpload(deps.sql, namespace, upload.id);
    return c.json({ aborted: true } satisfies AbortUploadResponse);
  });

  /** A new expiry for a live entry: `ttl` from now, or an absolute `expiresAt` (null: never). */
  app.post('/v1/entries/:key/touch', async (c) => {
    need(c.get('principal'), 'write');
    const parsed = Touch.safeParse(await c.req.json().catch(() => ({})));
    if (!parsed.success) throw new ApiError(400, 'EVALIDATION', `Invalid touch: ${z.prettifyError(parsed.error)}`);
    const q = parsed.data;
    checkOneExpiry(q);
    const now = clock();
    const ttlMs = q.ttl === undefined || q.ttl === null ? null : ttlToMs(q.ttl);
    const expiresAt = q.expiresAt !== undefined ? (q.expiresAt === null ? null : Date.parse(q.expiresAt)) : ttlMs === null ? null : now + ttlMs;
    if (q.writtenAt !== undefined) {
      // A replayed touch leaves alone an entry written after it (later write wins).
      const e = await c.get('store').head(c.req.param('key'));
      if (e && !isExpired(e, now) && e.createdAt > Math.min(Date.parse(q.writtenAt), now)) {
        throw new ApiError(409, 'ECONFLICT', `'${c.req.param('key')}' was written after this touch; the later write wins.`, {
          storedAt: new Date(e.createdAt).toISOString(),
          writtenAt: q.writtenAt,
        });
      }
    }
    const touched = await c.get('store').touch(c.req.param('key'), expiresAt, now);
    if (!touched) throw new ApiError(404, 'ENOTFOUND', `No live entry '${c.req.param('key')}'.`);
    return c.json({ touched: true, expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString() } satisfies TouchResponse);
  });

  /** Reads a client counted itself (`GET ?count=0`), in batches: hit counts, access times and the hits/misses counters. */
  app.post('/v1/access', async (c) => {
    need(c.get('principal'), 'read');
    const parsed = Access.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) throw new ApiError(400, 'EVALIDATION', `Invalid access report: ${z.prettifyError(parsed.error)}`);
    const q = parsed.data;
    const now = clock();
    // Access times from a client's clock, never later than the server's (a clock ahead would skew LRU).
    const accesses = q.accesses.map((a) => ({ key: a.key, hits: a.hits, accessedAt: Math.min(Date.parse(a.accessedAt), now) }));
    await c.get('store').recordAccess(accesses, { ...(q.hits ? { hits: q.hits } : {}), ...(q.misses ? { misses: q.misses } : {}) });
    return c.json({ recorded: true } satisfies AccessResponse);
  });

  /** How many entries match a list filter (prefix, where; live ones unless includeExpired). */
  app.post('/v1/entries/count', async (c) => {
    need(c.get('principal'), 'read');
    const parsed = Count.safeParse(await c.req.json().catch(() => ({})));
    if (!parsed.success) throw new ApiError(400, 'EVALIDATION', `Invalid count request: ${z.prettifyError(parsed.error)}`);
    const q = parsed.data;
    const count = await c.get('store').count({ prefix: q.prefix, where: q.where as Where | undefined, includeExpired: q.includeExpired, now: clock() });
    return c.json({ count } satisfies CountResponse);
  });

  /** Deletes every entry whose key starts with `prefix`; `''` deletes them all. */
  app.post('/v1/entries/delete', async (c) => {
    need(c.get('principal'), 'write');
    const parsed = DeletePrefix.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) throw new ApiError(400, 'EVALIDATION', `Invalid delete request (send { prefix }, '' for every entry): ${z.prettifyError(parsed.error)}`);
    const { prefix, writtenAt } = parsed.data;
    const store = c.get('store');
    if (writtenAt === undefined) return c.json({ deleted: await store.deletePrefix(prefix) } satisfies DeletePrefixResponse);
    // A replayed delete keeps entries written after it: each older one goes only in the version seen.
    const before = new Date(Math.min(Date.parse(writtenAt), clock()));
    let deleted = 0;
    for (let after: string | undefined; ; ) {
      const page = await store.list({ prefix, where: { createdAt: { lte: before } }, limit: 1000, after, includeExpired: true, now: clock() });
      for (const e of page) if (await store.delete(e.key, 'delete', e)) deleted++;
      if (page.length < 1000) break;
      after = page.at(-1)?.key;
    }
    return c.json({ deleted } satisfies DeletePrefixResponse);
  });

  /** The caller's key and the namespace it scopes everything to (any valid key; no scope needed). */
  app.get('/v1/whoami', (c) => {
    const { keyId, namespace, scopes } = c.get('principal');
    return c.json({ keyId, namespace, scopes } satisfies WhoAmIResponse);
  });

  /** An entry's rows in every custom table (for export); `{}` when it has none or does not exist. */
  app.get('/v1/entries/:key/rows', async (c) => {
    need(c.get('principal'), 'read');
    return c.json({ tables: await c.get('store').rowsOf(c.req.param('key')) } satisfies RowsResponse);
  });

  app.post('/v1/entries/list', async (c) => {
    need(c.get('principal'), 'read');
    const parsed = List.safeParse(await c.req.json().catch(() => ({})));
    if (!parsed.success) throw new ApiError(400, 'EVALIDATION', `Invalid list request: ${z.prettifyError(parsed.error)}`);
    const q = parsed.data;
    const limit = q.limit ?? 100;
    const after = q.cursor === undefined ? undefined : Buffer.from(q.cursor, 'base64url').toString('utf8');
    const rows = await c.get('store').list({ prefix: q.prefix, where: q.where as Where | undefined, limit: limit + 1, after, includeExpired: q.includeExpired, now: clock() });
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return c.json({
      entries: page.map((r) => toWireEntry(toEntryInfo(r))),
      ...(rows.length > limit && last ? { cursor: Buffer.from(last.key, 'utf8').toString('base64url') } : {}),
    } satisfies ListResponse);
  });

  /** Every custom table's definition, by name. */
  app.get('/v1/tables', async (c) => {
    need(c.get('principal'), 'read');
    return c.json({ tables: await c.get('store').tables() } satisfies TablesResponse);
  });

  app.put('/v1/tables/:name', async (c) => {
    need(c.get('principal'), 'write');
    const parsed = DefineTable.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) throw new ApiError(400, 'EVALIDATION', `Invalid table definition: ${z.prettifyError(parsed.error)}`);
    const def = await c.get('store').defineTable(c.req.param('name'), parsed.data.columns, { unique: parsed.data.unique, index: parsed.data.index });
    return c.json({ table: def } satisfies DefineTableResponse);
  });

  app.post('/v1/tables/:name/query', async (c) => {
    need(c.get('principal'), 'read');
    const parsed = Query.safeParse(await c.req.json().catch(() => ({})));
    if (!parsed.success) throw new ApiError(400, 'EVALIDATION', `Invalid query: ${z.prettifyError(parsed.error)}`);
    const q = parsed.data;
    const rows = await c
      .get('store')
      .query(c.req.param('name'), { where: q.where as Where | undefined, orderBy: q.orderBy, limit: q.limit, offset: q.offset, includeExpired: q.includeExpired, now: clock() });
    return c.json({ rows } satisfies QueryResponse);
  });

  // Key administration, within the caller's own namespace.
  app.post('/v1/keys', async (c) => {
    need(c.get('principal'), 'admin');
    const parsed = NewKey.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) throw new ApiError(400, 'EVALIDATION', `Invalid key request: ${z.prettifyError(parsed.error)}`);
    const { key, info } = await createApiKey(deps.sql, { namespace: c.get('principal').namespace, scopes: parsed.data.scopes, name: parsed.data.name });
    return c.json({ key, info: wireKey(info) } satisfies NewKeyResponse, 201);
  });

  app.get('/v1/keys', async (c) => {
    need(c.get('principal'), 'admin');
    return c.json({ keys: (await listApiKeys(deps.sql, c.get('principal').namespace)).map(wireKey) } satisfies ListKeysResponse);
  });

  app.delete('/v1/keys/:id', async (c) => {
    need(c.get('principal'), 'admin');
    return c.json({ revoked: await revokeApiKey(deps.sql, c.get('principal').namespace, c.req.param('id')) } satisfies RevokeKeyResponse);
  });

  /**
   * Deletes an entry. With `?writtenAt=<ISO 8601>` (a replayed offline delete), only if the stored
   * version was written at or before that time, and only that version: a later write survives.
   */
  app.delete('/v1/entries/:key', async (c) => {
    need(c.get('principal'), 'write');
    const store = c.get('store');
    const key = c.req.param('key');
    const raw = c.req.query('writtenAt');
    if (raw === undefined) return c.json({ deleted: await store.delete(key) } satisfies DeleteResponse);
    if (!IsoTime.safeParse(raw).success) {
      throw new ApiError(400, 'EVALIDATION', `writtenAt must be an ISO 8601 time with a time zone, like 2024-05-01T12:00:00.000Z (got '${raw}').`);
    }
    const writtenAt = Date.parse(raw);
    const stored = await store.head(key);
    if (!stored || stored.createdAt > writtenAt) return c.json({ deleted: false } satisfies DeleteResponse);
    const version = { createdAt: stored.createdAt, contentHash: stored.contentHash, blobId: stored.blobId };
    return c.json({ deleted: await store.delete(key, 'delete', version) } satisfies DeleteResponse);
  });

  return app;
}

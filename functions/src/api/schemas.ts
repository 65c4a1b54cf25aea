/**
 * Request bodies of the API, as zod schemas: the routes validate with them and the OpenAPI document
 * is generated from them, so the two cannot disagree; each is type-checked against the wire types the
 * SDK declares (`cacheness/model`), so the client cannot disagree either.
 * @module
 */
import {
  type AccessRequest,
  type CompleteUploadRequest,
  type CountRequest,
  type CreateEntryRequest,
  type DefineTableRequest,
  type DeletePrefixRequest,
  type ListRequest,
  MAX_KEY_LENGTH,
  MAX_TYPE_LENGTH,
  type NewKeyRequest,
  type PartUrlsRequest,
  type QueryRequest,
  type TouchRequest,
} from 'cacheness/model';
import * as z from 'zod';

const Hash = z.string().regex(/^[0-9a-f]{32}$/);
const ByteCount = z.number().int().nonnegative();
/** An instant as ISO 8601 with a time zone (`2024-05-01T12:00:00.000Z`, or an offset). */
export const IsoTime = z.iso.datetime({ offset: true });
const Ttl = z.union([z.number().nonnegative(), z.string().max(32), z.null()]);
const Prefix = z.string().max(1024);

/**
 * The body of `PUT /v1/entries/:key`: the entry's description, plus its bytes when they are small.
 * Three forms: inline (`body` with `size`, `storedSize`, `contentHash`); a sized upload (`blobId`
 * with the same three); a streamed upload of unknown size (none of the five; optionally
 * `maxStoredSize`), whose sizes and hashes come with `POST /v1/uploads/:id/complete`.
 */
export const CreateEntry = z.strictObject({
  params: z.unknown().optional(),
  handler: z.string().min(1).max(200),
  type: z.string().min(1).max(MAX_TYPE_LENGTH), // a table's schema or an array's shape is recorded there
  codec: z.enum(['none', 'lz4', 'zstd', 'chunked']),
  size: ByteCount.optional(),
  storedSize: ByteCount.optional(),
  contentHash: Hash.optional(),
  blobId: Hash.optional(),
  /** Streamed uploads: an upper bound of the stored size, if known (default 5 TiB); it sets the part size. */
  maxStoredSize: ByteCount.optional(),
  ttl: Ttl.optional(),
  /** Absolute expiry, or null for never; instead of `ttl`. */
  expiresAt: IsoTime.nullable().optional(),
  /** When the client wrote the value: the entry's createdAt (clamped to the server's clock); a later stored write wins (409). */
  writtenAt: IsoTime.optional(),
  metadata: z.record(z.string(), z.unknown()).nullable().optional(),
  description: z.string().max(10_000).nullable().optional(),
  tables: z.record(z.string(), z.union([z.record(z.string(), z.unknown()), z.array(z.record(z.string(), z.unknown()))])).optional(),
  /** Stored bytes, base64, for payloads up to the inline limit. */
  body: z
    .string()
    .max(4 * 1024 * 1024)
    .optional(),
}) satisfies z.ZodType<CreateEntryRequest>;

/** The body of `POST /v1/entries/:key/touch`: `ttl` (from now) or an absolute `expiresAt`, not both. */
export const Touch = z.strictObject({ ttl: Ttl.optional(), expiresAt: IsoTime.nullable().optional(), writtenAt: IsoTime.optional() }) satisfies z.ZodType<TouchRequest>;

export const WhereSchema = z.record(z.string(), z.unknown());

export const List = z.strictObject({
  prefix: Prefix.optional(),
  where: WhereSchema.optional(),
  limit: z.number().int().min(1).max(10_000).optional(),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]*$/)
    .max(2000)
    .optional(),
  includeExpired: z.boolean().optional(),
}) satisfies z.ZodType<ListRequest>;

/** The body of `POST /v1/entries/count`: a list filter without paging. */
export const Count = z.strictObject({
  prefix: Prefix.optional(),
  where: WhereSchema.optional(),
  includeExpired: z.boolean().optional(),
}) satisfies z.ZodType<CountRequest>;

/** The body of `POST /v1/entries/delete`: every entry whose key starts with `prefix` (`''`: all). */
export const DeletePrefix = z.strictObject({ prefix: Prefix, writtenAt: IsoTime.optional() }) satisfies z.ZodType<DeletePrefixRequest>;

const HitCount = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** The body of `POST /v1/access`: reads a client counted itself, in batches of at most 10,000 keys. */
export const Access = z.strictObject({
  accesses: z.array(z.strictObject({ key: z.string().min(1).max(MAX_KEY_LENGTH), hits: HitCount, accessedAt: IsoTime })).max(10_000),
  hits: HitCount.optional(),
  misses: HitCount.optional(),
}) satisfies z.ZodType<AccessRequest>;

export const ColumnGroups = z
  .array(z.union([z.string(), z.array(z.string())]))
  .max(32)
  .optional();

export const DefineTable = z.strictObject({
  columns: z.record(z.string(), z.enum(['text', 'integer', 'real', 'boolean', 'timestamp', 'json'])),
  unique: ColumnGroups,
  index: ColumnGroups,
}) satisfies z.ZodType<DefineTableRequest>;

/** Directions are checked by the store (EQUERY, the same error as in every other mode), not here: typed as the store takes them. */
export const Order = z.record(z.string(), z.string().max(16)) as unknown as z.ZodType<Record<string, 'asc' | 'desc'>>;

export const Query = z.strictObject({
  where: WhereSchema.optional(),
  orderBy: z.union([Order, z.array(Order)]).optional(),
  limit: z.number().int().min(0).max(10_000).optional(),
  offset: z.number().int().min(0).optional(),
  includeExpired: z.boolean().optional(),
}) satisfies z.ZodType<QueryRequest>;

export const NewKey = z.strictObject({ scopes: z.array(z.enum(['read', 'write', 'admin'])).min(1), name: z.string().max(200).optional() }) satisfies z.ZodType<NewKeyRequest>;

export const PartNumbers = z.strictObject({ partNumbers: z.array(z.number().int().min(1).max(10_000)).min(1).max(1000) }) satisfies z.ZodType<PartUrlsRequest>;

/** The body of `POST /v1/uploads/:id/complete`: a multipart upload's parts; a streamed upload also its sizes and hashes. */
export const CompleteParts = z.strictObject({
  parts: z
    .array(z.strictObject({ partNumber: z.number().int().min(1).max(10_000), etag: z.string().min(1).max(200) }))
    .min(1)
    .max(10_000)
    .optional(),
  size: ByteCount.optional(),
  storedSize: ByteCount.optional(),
  contentHash: Hash.optional(),
  blobId: Hash.optional(),
}) satisfies z.ZodType<CompleteUploadRequest>;

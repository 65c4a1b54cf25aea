/**
 * The cloud API's wire format: the JSON bodies of `/v1` requests and responses. The API validates
 * requests with zod schemas that are type-checked against these interfaces, and builds its responses
 * as these types, so the SDK's remote client and the server cannot disagree. Dates travel as ISO 8601
 * strings; byte payloads as base64.
 * @module
 */
import type { StoredCodec } from './compression.js';
import type { Ttl } from './duration.js';
import type { EntryInfo } from './entry.js';
import type { StoreCounters } from './stores/types.js';
import type { ColumnType, TableDefinition } from './tables/schema.js';
import type { OrderBy } from './tables/where.js';

/** An entry as the API returns it: {@link EntryInfo} with its dates as ISO 8601 strings. */
export type WireEntry = Omit<EntryInfo, 'createdAt' | 'accessedAt' | 'expiresAt'> & { createdAt: string; accessedAt: string; expiresAt: string | null };

/** An entry in its wire form. */
export function toWireEntry(e: EntryInfo): WireEntry {
  return { ...e, createdAt: e.createdAt.toISOString(), accessedAt: e.accessedAt.toISOString(), expiresAt: e.expiresAt === null ? null : e.expiresAt.toISOString() };
}

/** An entry read from the wire. */
export function fromWireEntry(e: WireEntry): EntryInfo {
  return { ...e, createdAt: new Date(e.createdAt), accessedAt: new Date(e.accessedAt), expiresAt: e.expiresAt === null ? null : new Date(e.expiresAt) };
}

/** `{ error }`: the body of every error response. */
export interface ErrorResponse {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

/**
 * `PUT /v1/entries/:key`. Inline: `body` with `size`, `storedSize`, `contentHash`. Sized upload:
 * `blobId` with the same three. Streamed upload (unknown size): none of the four, optionally
 * `maxStoredSize`.
 */
export interface CreateEntryRequest {
  params?: unknown;
  handler: string;
  type: string;
  codec: StoredCodec;
  size?: number;
  storedSize?: number;
  contentHash?: string;
  blobId?: string;
  maxStoredSize?: number;
  ttl?: Ttl;
  /** Absolute expiry (ISO 8601), or null for never; instead of `ttl` (a replayed offline write keeps its expiry). */
  expiresAt?: string | null;
  /**
   * When the client wrote the value (ISO 8601): the entry's `createdAt`, clamped to the server's clock.
   * Later write wins: if the stored entry was written after this, nothing changes and the answer is 409
   * `ECONFLICT` (`details.storedAt`). Checked again when an upload completes. Default: now.
   */
  writtenAt?: string;
  metadata?: Record<string, unknown> | null;
  description?: string | null;
  /** Custom-table rows to attach: one row or several per table. */
  tables?: Record<string, Record<string, unknown> | Record<string, unknown>[]>;
  /** The stored bytes, base64 (inline payloads only). */
  body?: string;
}

/** A presigned URL for one part of a multipart upload. */
export interface PartUrl {
  partNumber: number;
  url: string;
}

/** A pending upload: one presigned PUT. */
export interface SinglePutPlan {
  id: string;
  method: 'PUT';
  url: string;
  size: number;
  expiresAt: string;
}

/** A pending upload: a multipart plan (equal parts but the last). For a streamed upload `size` is null. */
export interface MultipartPlan {
  id: string;
  method: 'MULTIPART';
  size: number | null;
  /** Streamed uploads: the largest stored size accepted at completion. */
  maxSize?: number;
  partSize: number;
  /** Parts of a sized upload; the most parts a streamed upload may use. */
  partCount: number;
  /** The first part URLs (more from `POST /v1/uploads/:id/parts`). */
  parts: PartUrl[];
  expiresAt: string;
}

/** `PUT /v1/entries/:key` answers: 201 stored (inline or deduplicated), or 202 with an upload to perform. */
export type CreateEntryResponse = { entry: WireEntry; deduplicated?: true } | { upload: SinglePutPlan | MultipartPlan };

/** `POST /v1/uploads/:id/parts`. */
export interface PartUrlsRequest {
  partNumbers: number[];
}
/** Answer to {@link PartUrlsRequest}. */
export interface PartUrlsResponse {
  parts: PartUrl[];
}

/** `POST /v1/uploads/:id/complete`: the parts of a multipart upload; a streamed upload also its sizes and hashes. */
export interface CompleteUploadRequest {
  parts?: { partNumber: number; etag: string }[];
  size?: number;
  storedSize?: number;
  contentHash?: string;
  blobId?: string;
}
/** Answer to {@link CompleteUploadRequest} (201). */
export interface CompleteUploadResponse {
  entry: WireEntry;
  deduplicated?: true;
}

/**
 * `GET /v1/entries/:key`: the entry with its bytes inline (base64), or a presigned GET URL (Range
 * allowed) and the blob id of the stored bytes (their XXH3-128, which the client checks a download
 * against).
 */
export type GetEntryResponse = { entry: WireEntry; body: string; blobId?: null } | { entry: WireEntry; url: string; blobId?: string };

/**
 * `GET /v1/entries/:key` query flags: `count=0` reads without counting a hit or miss (the SDK counts
 * its own reads and reports them with `POST /v1/access`); `payload=0` answers the entry alone
 * ({@link EntryOnlyResponse}), with no bytes and no URL.
 */
export interface EntryOnlyResponse {
  entry: WireEntry;
  /** The blob id of an entry stored as a blob; null for an inline one. */
  blobId?: string | null;
}

/** `POST /v1/entries/:key/touch`: a new expiry from `ttl` (from now), or an absolute `expiresAt`. */
export interface TouchRequest {
  ttl?: Ttl;
  /** ISO 8601, or null for never; instead of `ttl`. */
  expiresAt?: string | null;
  /** When the touch was made (a replayed offline touch): an entry written later is left alone (409 `ECONFLICT`). */
  writtenAt?: string;
}
export interface TouchResponse {
  touched: true;
  expiresAt: string | null;
}

/** `POST /v1/entries/list`. */
export interface ListRequest {
  prefix?: string;
  where?: Record<string, unknown>;
  limit?: number;
  cursor?: string;
  includeExpired?: boolean;
}
export interface ListResponse {
  entries: WireEntry[];
  /** Present when more entries follow: pass it back for the next page. */
  cursor?: string;
}

/** `POST /v1/entries/count`: entries matching a list filter. */
export interface CountRequest {
  prefix?: string;
  where?: Record<string, unknown>;
  includeExpired?: boolean;
}
export interface CountResponse {
  count: number;
}

/** `POST /v1/entries/delete`: deletes every entry whose key starts with `prefix` (`''`: all of them). */
export interface DeletePrefixRequest {
  prefix: string;
  /** When the delete was made (a replayed offline clear): entries written later are kept. */
  writtenAt?: string;
}

/** `GET /v1/whoami`: the caller's API key, and the namespace it scopes everything to. */
export interface WhoAmIResponse {
  keyId: string;
  namespace: string;
  scopes: ('read' | 'write' | 'admin')[];
}
export interface DeletePrefixResponse {
  deleted: number;
}

/** `POST /v1/access`: reads a client counted itself (batched), applied to hit counts, access times and counters. */
export interface AccessRequest {
  /** At most 10,000 per request. */
  accesses: { key: string; hits: number; accessedAt: string }[];
  hits?: number;
  misses?: number;
}
export interface AccessResponse {
  recorded: true;
}

/** `GET /v1/tables`: every custom table's definition, by name. */
export interface TablesResponse {
  tables: Record<string, TableDefinition>;
}

/** `GET /v1/entries/:key/rows`: the entry's rows in every custom table (for export); `{}` when it has none or is absent. */
export interface RowsResponse {
  tables: Record<string, Record<string, unknown>[]>;
}

/** `GET /v1/stats`. */
export type StatsResponse = StoreCounters & { hitRate: number };

/** `PUT /v1/tables/:name`. */
export interface DefineTableRequest {
  columns: Record<string, ColumnType>;
  unique?: (string | string[])[];
  index?: (string | string[])[];
}

/** `POST /v1/tables/:name/query`. */
export interface QueryRequest {
  where?: Record<string, unknown>;
  orderBy?: OrderBy;
  limit?: number;
  offset?: number;
  includeExpired?: boolean;
}
export interface QueryResponse {
  rows: Record<string, unknown>[];
}

/**
 * `DELETE /v1/entries/:key`, optionally `?writtenAt=<ISO 8601>`: then the entry is deleted only if it
 * was written at or before that time (a replayed offline delete never removes a later write).
 */
export interface DeleteResponse {
  deleted: boolean;
}

/** `DELETE /v1/uploads/:id`. */
export interface AbortUploadResponse {
  aborted: boolean;
}

/** `POST /v1/keys` (admin). */
export interface NewKeyRequest {
  scopes: ('read' | 'write' | 'admin')[];
  name?: string;
}

/** `GET /v1/health`. */
export interface HealthResponse {
  ok: true;
}

/** `PUT /v1/tables/:name`: the table as defined now. */
export interface DefineTableResponse {
  table: TableDefinition;
}

/** An API key's public description (never its secret). */
export interface WireKeyInfo {
  keyId: string;
  namespace: string;
  scopes: ('read' | 'write' | 'admin')[];
  name: string;
  createdAt: string;
  revokedAt: string | null;
}

/** `POST /v1/keys` (201): the key itself, shown this once. */
export interface NewKeyResponse {
  key: string;
  info: WireKeyInfo;
}

/** `GET /v1/keys`. */
export interface ListKeysResponse {
  keys: WireKeyInfo[];
}

/** `DELETE /v1/keys/:id`. */
export interface RevokeKeyResponse {
  revoked: boolean;
}

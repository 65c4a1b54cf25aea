/**
 * The entry model: one definition, used by every store, the cache, and (later) the cloud API.
 * @module
 */
import type { StoredCodec } from './compression.js';
import type { Json } from './key/projection.js';

/**
 * Longest entry `type` the built-in handlers record and the cloud API accepts, in characters. Types
 * that describe their value (a table's schema, an n-d array's shape) stay within it.
 */
export const MAX_TYPE_LENGTH = 4096;

/** JSON object (user metadata). */
export type JsonObject = { [k: string]: Json };

/** An entry as stores keep it. Times are milliseconds since the Unix epoch. */
export interface EntryRecord {
  /** Stored key: a verbatim string key, or 16 hex characters for key params. */
  key: string;
  /** JSON projection of the key params (null for string keys or `storeKeyParams: false`). */
  params: Json | null;
  /** Value handler and format version, `name@version` (e.g. `structured@1`). */
  handler: string;
  /** Concrete type the value reads back as (e.g. `object`, `Buffer`, `Map`). */
  type: string;
  /** Codec of the stored bytes. */
  codec: StoredCodec;
  /** Logical (serialized, uncompressed) size in bytes. */
  size: number;
  /** Bytes actually stored (after compression). */
  storedSize: number;
  /** XXH3-128 (hex) of the serialized, uncompressed bytes. */
  contentHash: string;
  /** Content-addressed blob id (XXH3-128 hex of the stored bytes) when the value lives in the blob store. */
  blobId: string | null;
  /** Stored bytes, when the value lives inline in the metadata store. */
  inline: Uint8Array | null;
  createdAt: number;
  accessedAt: number;
  /** Absolute expiry time, or null for never. */
  expiresAt: number | null;
  hits: number;
  description: string | null;
  metadata: JsonObject | null;
}

/** A stored record as read back: for blob values, `blobName` locates the blob in its store. */
export interface StoredEntry extends EntryRecord {
  blobName: string | null;
}

/** Public description of an entry (`put`, `getEntry`, `list`). */
export interface EntryInfo {
  key: string;
  /** JSON projection of the key params, when stored (see docs/key-format.md). */
  params: Json | null;
  /** Logical size in bytes (serialized, before compression). */
  size: number;
  /** Bytes used in the store (after compression). */
  storedSize: number;
  /** Concrete type the value reads back as. */
  type: string;
  /** Value handler that wrote it, `name@version`. */
  handler: string;
  codec: StoredCodec;
  contentHash: string;
  createdAt: Date;
  accessedAt: Date;
  expiresAt: Date | null;
  hits: number;
  description: string | null;
  metadata: JsonObject | null;
  /**
   * What the value is, as its handler tells from the entry alone (the value is not read): an array's
   * `dtype` and `shape`, an Arrow table's or polars DataFrame's `rows`, `columns` and `schema` (see
   * docs/data-types.md). Absent for values with nothing to tell (structured values, bytes) and for
   * entries written before their handler recorded it.
   */
  valueInfo?: JsonObject;
}

/** Converts a stored record to its public form. */
export function toEntryInfo(r: EntryRecord): EntryInfo {
  return {
    key: r.key,
    params: r.params,
    size: r.size,
    storedSize: r.storedSize,
    type: r.type,
    handler: r.handler,
    codec: r.codec,
    contentHash: r.contentHash,
    createdAt: new Date(r.createdAt),
    accessedAt: new Date(r.accessedAt),
    expiresAt: r.expiresAt === null ? null : new Date(r.expiresAt),
    hits: r.hits,
    description: r.description,
    metadata: r.metadata,
  };
}

/** True when the entry has expired at `now`. The one expiry rule used on every read path. */
export function isExpired(r: { expiresAt: number | null }, now: number): boolean {
  return r.expiresAt !== null && r.expiresAt <= now;
}

/**
 * Value handlers turn values into bytes and back. Built in: raw bytes and byte streams, typed and n-d
 * arrays, Arrow tables, and structured values (the fallback); users add their own with `registerHandler` (see
 * docs/data-types.md).
 * @module
 */

import type { JsonObject } from '../entry.js';

/** What a handler may know about how its bytes will be stored. */
export interface HandlerContext {
  /** True when the cache will try to compress the bytes (a handler may then reorder them to help). */
  compress: boolean;
  /** Payloads smaller than this are never compressed. */
  minCompressBytes: number;
}

/** What `serialize` returns: the bytes, or a stream of them ({@link SerializedStream}). */
export type Serialized = SerializedBytes | SerializedStream;

/** A value serialized to one buffer. */
export interface SerializedBytes {
  bytes: Uint8Array;
  type: string;
  /**
   * Another encoding of the same value to store instead when compression does not pay (the bytes are
   * stored raw): e.g. the elements in their natural order rather than shuffled for the compressor,
   * so that reading them back needs no unshuffle.
   */
  ifStoredRaw?: { bytes: Uint8Array; type: string };
}

/**
 * A value serialized as a stream of byte pieces of any sizes, for values too large to hold in memory
 * twice: the cache cuts it into chunks, compresses them in parallel and writes them as they come.
 */
export interface SerializedStream {
  stream: AsyncIterable<Uint8Array>;
  type: string;
}

/** Serializes one family of values. */
export interface ValueHandler {
  /** Recorded per entry; reading an entry needs a handler of this name. */
  readonly name: string;
  /** Format version, recorded per entry as `name@version` in `EntryInfo.handler`. */
  readonly version: number;
  /** True when this handler stores `value`. */
  canHandle(value: unknown): boolean;
  /** Encodes `value`; `type` names the concrete type so it reads back as the same class. May be asynchronous. */
  serialize(value: unknown, context?: HandlerContext): Serialized | Promise<Serialized>;
  /** Decodes bytes written by `serialize` (any version up to `version`). May return a promise. */
  deserialize(bytes: Uint8Array, type: string, version: number): unknown;
  /**
   * Optional: decodes a value from its bytes as a stream of pieces, so a large value never sits in
   * memory as one buffer. Used for entries stored in chunks (payloads larger than one chunk); the
   * pieces are verified before they are passed on. May return a promise.
   */
  deserializeStream?(pieces: AsyncIterable<Uint8Array>, type: string, version: number): unknown;
  /**
   * Describes a stored value from its entry alone, without reading the payload: reported as
   * `EntryInfo.valueInfo` by `put`, `getEntry` and `list` (e.g. an array's dtype and shape, a table's
   * rows and schema). Whatever it reports must be recorded in `type` by `serialize`, since that is
   * all it gets besides the payload's logical `size` in bytes. Returns undefined when the type holds
   * nothing to report (entries written before the handler recorded it, say).
   */
  describe?(type: string, version: number, size: number): JsonObject | undefined;
}

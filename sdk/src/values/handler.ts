/**
 * Value handlers turn values into bytes and back. Built in: raw bytes, typed and n-d arrays, and
 * structured values (the fallback); users add their own with `registerHandler` (see
 * docs/data-types.md).
 * @module
 */

/** What a handler may know about how its bytes will be stored. */
export interface HandlerContext {
  /** True when the cache will try to compress the bytes (a handler may then reorder them to help). */
  compress: boolean;
  /** Payloads smaller than this are never compressed. */
  minCompressBytes: number;
}

/** What `serialize` returns. */
export interface Serialized {
  bytes: Uint8Array;
  type: string;
  /**
   * Another encoding of the same value to store instead when compression does not pay (the bytes are
   * stored raw): e.g. the elements in their natural order rather than shuffled for the compressor,
   * so that reading them back needs no unshuffle.
   */
  ifStoredRaw?: { bytes: Uint8Array; type: string };
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
}

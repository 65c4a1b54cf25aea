/**
 * The chunked container: how payloads larger than one chunk are stored. Specified in
 * docs/storage.md; any change to these bytes needs a new magic.
 *
 * ```
 * chunk 0 | chunk 1 | ... | chunk n-1 | index (n × 32 bytes) | trailer (24 bytes)
 * ```
 * Each chunk holds one slice of the payload (`chunkSize`, 1 MiB by default), compressed on its own or stored raw. An index
 * record is `rawSize u32 | storedSize u32 | codec u8 | 7 zero bytes | XXH3-128 of the stored chunk
 * (16 bytes, big-endian)`; the trailer is `count u32 | chunkSize u32 | rawTotal u64 | magic
 * "cnschnk1"`, little-endian. The entry's `blobId` is the XXH3-128 of index + trailer: it covers
 * every chunk through their hashes, so one chunk can be read and verified without the others.
 * @module
 */
import type { CodecName } from '../compression.js';
import { IntegrityError } from '../errors.js';
import { xxh128Bytes, xxh128Hex } from '../hash.js';

/** One chunk of a container. */
export interface ChunkRecord {
  rawSize: number;
  storedSize: number;
  codec: CodecName;
  /** XXH3-128 of the stored bytes, 16 bytes. */
  hash: Uint8Array;
}

/** A parsed index with each chunk's offsets. */
export interface ChunkIndex {
  chunkSize: number;
  rawTotal: number;
  chunks: (ChunkRecord & { rawOffset: number; storedOffset: number })[];
  /** Bytes of index + trailer at the end of the container. */
  tailSize: number;
}

/**
 * Raw bytes per chunk unless `createCache({ chunkSize })` says otherwise. 1 MiB keeps what a stream
 * holds at a time small (a few chunks, and the codec's working memory, which grows with the chunk) at
 * no cost in speed or lz4 ratio (lz4 looks back 64 KiB); docs/storage.md has the measurements.
 */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;

export const RECORD_SIZE = 32;
export const TRAILER_SIZE = 24;
const MAGIC = Buffer.from('cnschnk1', 'latin1');
const CODECS: readonly CodecName[] = ['none', 'lz4', 'zstd'];

/** Encodes the index and trailer that end a container. */
export function encodeTail(chunks: readonly ChunkRecord[], chunkSize: number): Buffer {
  const out = Buffer.alloc(chunks.length * RECORD_SIZE + TRAILER_SIZE);
  let rawTotal = 0;
  chunks.forEach((c, i) => {
    const at = i * RECORD_SIZE;
    out.writeUInt32LE(c.rawSize, at);
    out.writeUInt32LE(c.storedSize, at + 4);
    out.writeUInt8(CODECS.indexOf(c.codec), at + 8);
    out.set(c.hash, at + 16);
    rawTotal += c.rawSize;
  });
  const t = chunks.length * RECORD_SIZE;
  out.writeUInt32LE(chunks.length, t);
  out.writeUInt32LE(chunkSize, t + 4);
  out.writeBigUInt64LE(BigInt(rawTotal), t + 8);
  out.set(MAGIC, t + 16);
  return out;
}

/** The blob id of a container: the hash of its tail. */
export function tailId(tail: Uint8Array): string {
  return xxh128Hex(tail);
}

/** The error for a damaged container. */
export function damaged(why: string): IntegrityError {
  return new IntegrityError('EINTEGRITY', `The stored chunked payload is damaged: ${why}.`);
}

/** Bytes of the tail of a container with `count` chunks. */
export function tailSizeOf(count: number): number {
  return count * RECORD_SIZE + TRAILER_SIZE;
}

/** Reads the chunk count from the last {@link TRAILER_SIZE} bytes. */
export function chunkCount(trailer: Uint8Array): number {
  const b = Buffer.from(trailer.buffer, trailer.byteOffset, trailer.byteLength);
  if (b.length < TRAILER_SIZE || !b.subarray(b.length - 8).equals(MAGIC)) throw damaged('its trailer is missing');
  return b.readUInt32LE(b.length - TRAILER_SIZE);
}

/**
 * Parses a container's tail (index + trailer, exactly {@link tailSizeOf} bytes) of a container of
 * `storedSize` bytes. With `blobId`, checks the tail against it first.
 */
export function parseTail(tail: Uint8Array, storedSize: number, blobId: string | null): ChunkIndex {
  if (blobId !== null && tailId(tail) !== blobId) throw damaged('its index does not match its hash');
  const b = Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength);
  const count = chunkCount(b);
  if (b.length !== tailSizeOf(count)) throw damaged('its index has the wrong size');
  const t = count * RECORD_SIZE;
  const chunkSize = b.readUInt32LE(t + 4);
  const rawTotal = Number(b.readBigUInt64LE(t + 8));
  const chunks: ChunkIndex['chunks'] = [];
  let rawOffset = 0;
  let storedOffset = 0;
  for (let i = 0; i < count; i++) {
    const at = i * RECORD_SIZE;
    const codec = CODECS[b.readUInt8(at + 8)];
    if (!codec) throw damaged(`chunk ${i} names an unknown codec`);
    if (codec === 'none' && b.readUInt32LE(at) !== b.readUInt32LE(at + 4)) throw damaged(`raw chunk ${i} has two sizes`);
    const c = { rawSize: b.readUInt32LE(at), storedSize: b.readUInt32LE(at + 4), codec, hash: b.subarray(at + 16, at + 32), rawOffset, storedOffset };
    chunks.push(c);
    rawOffset += c.rawSize;
    storedOffset += c.storedSize;
  }
  if (rawOffset !== rawTotal || storedOffset + b.length !== storedSize) throw damaged('its index does not add up to its size');
  return { chunkSize, rawTotal, chunks, tailSize: b.length };
}

/** Checks one stored chunk against its index record. */
export function checkChunk(c: ChunkRecord, stored: Uint8Array, i: number): void {
  if (stored.length !== c.storedSize) throw damaged(`chunk ${i} is ${stored.length} bytes, ${c.storedSize} were stored`);
  if (!Buffer.from(c.hash).equals(xxh128Bytes(stored))) throw damaged(`chunk ${i} does not match its hash`);
}

/** Index of the first chunk whose raw bytes reach past `offset` (binary search). */
export function chunkAt(index: ChunkIndex, offset: number): number {
  let lo = 0;
  let hi = index.chunks.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = index.chunks[mid] as ChunkIndex['chunks'][number];
    if (c.rawOffset + c.rawSize <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

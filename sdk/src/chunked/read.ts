/**
 * Reads chunked containers (see format.ts): whole, or a byte range of the payload chunk by chunk,
 * each chunk verified against its hash before it is decompressed.
 * @module
 */
import { decompress } from '../compression.js';
import type { BlobReader } from '../stores/types.js';
import { type ChunkIndex, type ChunkRecord, checkChunk, chunkAt, chunkCount, damaged, parseTail, TRAILER_SIZE, tailSizeOf } from './format.js';
import { orderedMap } from './ordered-map.js';

/** Where a container is and how to check it. */
export interface ContainerRef {
  storedSize: number;
  /** The entry's blob id (the hash of the container's tail). */
  blobId: string | null;
}

/**
 * Decodes a whole container to its payload. With `verify`, checks the index against `blobId` and
 * every chunk against its hash. Payloads stored raw come back as a view of `stored`, without a copy.
 */
export function decodeChunked(stored: Uint8Array, ref: ContainerRef, verify: boolean): Uint8Array {
  const count = chunkCount(stored.subarray(Math.max(0, stored.length - TRAILER_SIZE)));
  const tailSize = tailSizeOf(count);
  const index = parseTail(stored.subarray(Math.max(0, stored.length - tailSize)), ref.storedSize, verify ? ref.blobId : null);
  const raw = index.chunks.every((c) => c.codec === 'none');
  const out = raw ? Buffer.from(stored.buffer, stored.byteOffset, index.rawTotal) : Buffer.allocUnsafe(index.rawTotal);
  index.chunks.forEach((c, i) => {
    const bytes = stored.subarray(c.storedOffset, c.storedOffset + c.storedSize);
    if (raw) {
      if (verify) checkChunk(c, bytes, i);
    } else out.set(decodeChunk(c, bytes, i, verify), c.rawOffset);
  });
  return out;
}

/** One chunk's payload bytes from its stored bytes: checked against its hash (with `verify`) and its size. */
function decodeChunk(c: ChunkRecord, stored: Uint8Array, i: number, verify: boolean): Uint8Array {
  if (verify) checkChunk(c, stored, i);
  const raw = c.codec === 'none' ? stored : decompress(c.codec, stored, c.rawSize);
  if (raw.length !== c.rawSize) throw damaged(`chunk ${i} decoded to ${raw.length} bytes, not ${c.rawSize}`);
  return raw;
}

/** Reads a container's index through `reader`. */
export async function readIndex(reader: BlobReader, ref: ContainerRef, verify: boolean): Promise<ChunkIndex> {
  // One read usually gets the whole tail: 64 KiB holds the index of 2,000 chunks (8 GiB in 4 MiB chunks).
  const guess = Math.min(ref.storedSize, 64 * 1024);
  let tail = await reader.read(ref.storedSize - guess, guess);
  const tailSize = tailSizeOf(chunkCount(tail.subarray(Math.max(0, tail.length - TRAILER_SIZE))));
  if (tailSize > ref.storedSize) throw damaged('its trailer counts more chunks than it can hold');
  if (tailSize > tail.length) tail = await reader.read(ref.storedSize - tailSize, tailSize);
  return parseTail(tail.subarray(tail.length - tailSize), ref.storedSize, verify ? ref.blobId : null);
}

/** Options of {@link readChunkedRange}. */
export interface RangeReadOptions {
  /** First payload byte (inclusive). */
  start: number;
  /** End of the range (exclusive). */
  end: number;
  verify: boolean;
  /** Chunks read ahead of the consumer. Default 2. */
  readAhead?: number;
}

/**
 * Yields the payload bytes `[start, end)` of a container, reading only the chunks that hold them.
 * Chunks are decompressed in this thread: lz4 decodes at several GB/s, and handing chunks to workers
 * measured slower here (docs/benchmarks.md).
 */
export async function* readChunkedRange(reader: BlobReader, index: ChunkIndex, o: RangeReadOptions): AsyncGenerator<Uint8Array> {
  if (o.end <= o.start) return;
  const first = chunkAt(index, o.start);
  const last = chunkAt(index, o.end - 1);
  const ids = Array.from({ length: Math.max(0, last - first + 1) }, (_, i) => first + i);
  const load = async (i: number): Promise<Uint8Array> => {
    const c = index.chunks[i] as ChunkIndex['chunks'][number];
    const raw = decodeChunk(c, await reader.read(c.storedOffset, c.storedSize), i, o.verify);
    const from = Math.max(0, o.start - c.rawOffset);
    const to = Math.min(c.rawSize, o.end - c.rawOffset);
    return from === 0 && to === c.rawSize ? raw : raw.subarray(from, to);
  };
  yield* orderedMap(ids, load, o.readAhead ?? 2);
}

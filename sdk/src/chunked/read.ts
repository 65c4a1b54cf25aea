/**
 * Reads chunked containers (see format.ts): whole, or a byte range of the payload chunk by chunk,
 * each chunk verified against its hash before it is decompressed.
 * @module
 */
import { decompress } from '../compression.js';
import { CachenessError } from '../errors.js';
import { xxh128Stream } from '../hash.js';
import type { BlobReader } from '../stores/types.js';
import { ChunkBuffers } from './buffers.js';
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
    } else {
      const into = out.subarray(c.rawOffset, c.rawOffset + c.rawSize);
      const decoded = decodeChunk(c, bytes, i, verify, into);
      if (decoded.buffer !== into.buffer || decoded.byteOffset !== into.byteOffset) into.set(decoded); // a raw chunk, or a codec that could not decode in place
    }
  });
  return out;
}

/**
 * One chunk's payload bytes from its stored bytes: checked against its hash (with `verify`) and its
 * size. Compressed chunks are decoded into `into` when given (at least `rawSize` bytes). A chunk that
 * does not decode is damage.
 */
function decodeChunk(c: ChunkRecord, stored: Uint8Array, i: number, verify: boolean, into?: Uint8Array): Uint8Array {
  if (verify) checkChunk(c, stored, i);
  let raw: Uint8Array;
  try {
    raw = c.codec === 'none' ? stored : decompress(c.codec, stored, c.rawSize, into);
  } catch (cause) {
    // Out of memory, or a codec this process lacks (zstd-napi not installed): not damage.
    if (cause instanceof RangeError || cause instanceof CachenessError) throw cause;
    throw damaged(`chunk ${i} does not decompress (${(cause as Error)?.message ?? String(cause)})`);
  }
  if (raw.length !== c.rawSize) throw damaged(`chunk ${i} decoded to ${raw.length} bytes, not ${c.rawSize}`);
  return raw;
}

/** Reads a container's index through `reader`. */
export async function readIndex(reader: BlobReader, ref: ContainerRef, verify: boolean): Promise<ChunkIndex> {
  // One read usually gets the whole tail: 256 KiB holds the index of 8,000 chunks (8 GiB in 1 MiB chunks).
  const guess = Math.min(ref.storedSize, 256 * 1024);
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
  /**
   * Yield views of memory that is reused once the consumer asks for the next piece, so a long read
   * allocates nothing per chunk. Only for consumers done with each piece before asking for the next
   * (writing it to a file, hashing it). Default false: each piece is the consumer's to keep.
   */
  reuse?: boolean;
}

/**
 * Yields the payload bytes `[start, end)` of a container, reading only the chunks that hold them.
 * Stored chunks are read ahead into reused memory; each is decoded only when the consumer asks for
 * it, into the memory handed out. So per chunk nothing is allocated but the piece yielded (with
 * `reuse`, not even that), and at most one such piece is in flight: pieces that outlive a young
 * garbage collection are kept until a full one, which V8 starts only after tens of MiB of them.
 * Chunks are decompressed in this thread: lz4 decodes at several GB/s, and handing chunks to workers
 * measured slower here (docs/benchmarks.md).
 */
export async function* readChunkedRange(reader: BlobReader, index: ChunkIndex, o: RangeReadOptions): AsyncGenerator<Uint8Array> {
  if (o.end <= o.start) return;
  const first = chunkAt(index, o.start);
  const last = chunkAt(index, o.end - 1);
  const ids = Array.from({ length: Math.max(0, last - first + 1) }, (_, i) => first + i);
  const readAhead = o.readAhead ?? 2;
  // Sized by the chunks themselves, not the trailer's nominal chunk size, which only an intact index vouches for.
  let storedMost = 0;
  let rawMost = 0;
  for (const i of ids) {
    const c = index.chunks[i] as ChunkRecord;
    storedMost = Math.max(storedMost, c.storedSize);
    rawMost = Math.max(rawMost, c.rawSize);
  }
  const storedMemory = new ChunkBuffers(storedMost, readAhead + 1); // those read ahead, and the one being decoded
  const rawMemory = new ChunkBuffers(rawMost, 1);
  const load = async (i: number) => {
    const c = index.chunks[i] as ChunkIndex['chunks'][number];
    const memory = storedMemory.take(c.storedSize);
    try {
      return { i, c, memory, stored: await reader.read(c.storedOffset, c.storedSize, memory) };
    } catch (err) {
      storedMemory.release(memory);
      throw err;
    }
  };
  for await (const { i, c, memory, stored } of orderedMap(ids, load, readAhead)) {
    let raw: Uint8Array;
    let handedOut: Uint8Array | undefined; // reused memory to take back once the consumer is done
    try {
      if (c.codec === 'none' && o.reuse) {
        raw = decodeChunk(c, stored, i, o.verify);
        handedOut = memory;
      } else {
        const out = o.reuse ? rawMemory.take(c.rawSize) : Buffer.allocUnsafeSlow(c.rawSize);
        raw = decodeChunk(c, stored, i, o.verify, out);
        if (c.codec === 'none') {
          out.set(raw); // the piece is the consumer's: a copy of the reused read memory
          raw = out.subarray(0, raw.length);
        }
        if (o.reuse) handedOut = out;
      }
    } finally {
      if (handedOut !== memory) storedMemory.release(memory);
    }
    const from = Math.max(0, o.start - c.rawOffset);
    const to = Math.min(c.rawSize, o.end - c.rawOffset);
    yield from === 0 && to === c.rawSize ? raw : raw.subarray(from, to);
    if (handedOut === memory) storedMemory.release(memory);
    else if (handedOut) rawMemory.release(handedOut);
  }
}

/** Whether every chunk of a container is stored raw, so its payload bytes lie in it as they are, from offset 0. */
export function isRawContainer(index: ChunkIndex): boolean {
  return index.chunks.every((c) => c.codec === 'none' && c.storedOffset === c.rawOffset && c.storedSize === c.rawSize);
}

/** Options of {@link pipeRawRange}. */
export interface PipeRangeOptions {
  /** First payload byte (inclusive). */
  start: number;
  /** End of the range (exclusive). */
  end: number;
  verify: boolean;
  /** Bytes of whole chunks per range (at least one chunk). Default 16 MiB: as a prefetch window, few requests per GiB. */
  rangeBytes?: number;
  /** Takes payload bytes for offset `at` of the output (0 is the payload's byte `start`); the piece is the writer's only until its promise settles. */
  write: (piece: Uint8Array, at: number) => Promise<void>;
}

/**
 * Copies the payload bytes `[start, end)` of a raw container (see {@link isRawContainer}) to
 * `o.write` as `reader.pipe` delivers them: ranges of whole chunks in parallel, no window of memory
 * and no copy. Each chunk is hashed on the way (with `verify`), so damage is reported once its chunk
 * has arrived: bytes may have been written by then, and a caller whose output must never hold damaged
 * bytes writes somewhere it discards on failure (getFile's temporary file).
 */
export async function pipeRawRange(reader: BlobReader, index: ChunkIndex, o: PipeRangeOptions): Promise<void> {
  if (!reader.pipe) throw new TypeError('pipeRawRange needs a reader with pipe()');
  if (o.end <= o.start) return;
  const last = chunkAt(index, o.end - 1);
  const most = o.rangeBytes ?? 16 * 1024 * 1024;
  // Ranges of whole chunks, so each chunk is hashed by one range, in order.
  const ranges: { offset: number; length: number; chunk: number }[] = [];
  for (let i = chunkAt(index, o.start); i <= last; ) {
    const first = i;
    const offset = (index.chunks[i] as ChunkIndex['chunks'][number]).storedOffset;
    let length = 0;
    do length += (index.chunks[i++] as ChunkIndex['chunks'][number]).storedSize;
    while (i <= last && length + (index.chunks[i] as ChunkIndex['chunks'][number]).storedSize <= most);
    ranges.push({ offset, length, chunk: first });
  }
  // Per range: the chunk being hashed, and its hash so far.
  const state = ranges.map((r) => ({ chunk: r.chunk, hasher: o.verify ? xxh128Stream() : undefined }));
  await reader.pipe(ranges, async (piece, position, range) => {
    const s = state[range] as (typeof state)[number];
    if (s.hasher) {
      for (let at = 0; at < piece.length; ) {
        const c = index.chunks[s.chunk] as ChunkIndex['chunks'][number];
        const take = Math.min(piece.length - at, c.storedOffset + c.storedSize - (position + at));
        s.hasher.update(piece.subarray(at, at + take));
        at += take;
        if (position + at === c.storedOffset + c.storedSize) {
          if (!Buffer.from(c.hash).equals(s.hasher.digest())) throw damaged(`chunk ${s.chunk} does not match its hash`);
          s.chunk++;
          s.hasher = xxh128Stream();
        }
      }
    }
    // Only the payload bytes asked for: the first and last chunks may hold more.
    const from = Math.max(position, o.start);
    const to = Math.min(position + piece.length, o.end);
    if (to > from) await o.write(piece.subarray(from - position, to - position), from - o.start);
  });
}

/**
 * Writes a payload as a chunked container (see format.ts) into a blob stage: chunks are compressed in
 * parallel (worker threads) and written in order, so memory holds only the chunks in flight.
 * @module
 */
import { type CodecName, compressIfWorthIt, compressorOf, type ResolvedCompression } from '../compression.js';
import { ValueError } from '../errors.js';
import { xxh128Bytes, xxh128Stream } from '../hash.js';
import type { BlobStage } from '../stores/types.js';
import type { ChunkBuffers } from './buffers.js';
import { type CompressPool, compressPool } from './compress-pool.js';
import { type ChunkRecord, encodeTail, tailId } from './format.js';
import { orderedMap } from './ordered-map.js';

/** Options of {@link writeChunked}. */
export interface ChunkedWriteOptions {
  /** Nominal raw bytes per chunk (the last may be shorter). */
  chunkSize: number;
  compression: ResolvedCompression;
  /** Compression workers; 0 compresses in this thread. */
  workers: number;
  /** True when the chunks' memory is ours to hand to a worker and reuse (not the caller's value). */
  owned: boolean;
  /** Takes back an owned chunk's memory once it is written (see {@link ChunkBuffers}). */
  release?: (chunk: Uint8Array) => void;
  /** Fail with `EVALUETOOLARGE` as soon as the container would exceed this many bytes. */
  maxStoredSize: number | null;
  /** For error messages. */
  key: string;
}

/** What was written. */
export interface ChunkedWriteResult {
  /** Raw payload bytes. */
  size: number;
  /** Container bytes. */
  storedSize: number;
  /** XXH3-128 of the raw payload. */
  contentHash: string;
  /** XXH3-128 of the container's tail. */
  blobId: string;
  chunks: number;
}

/**
 * Streams `chunks` (each at most `chunkSize` bytes, in order) into `stage` as a container. The stage
 * is left for the caller to publish or abort.
 */
export async function writeChunked(chunks: AsyncIterable<Uint8Array>, stage: BlobStage, o: ChunkedWriteOptions): Promise<ChunkedWriteResult> {
  const content = xxh128Stream();
  const records: ChunkRecord[] = [];
  let size = 0;
  const codec = o.compression.codec;
  const pool: CompressPool | undefined = codec !== 'none' && o.workers > 0 ? compressPool(o.workers) : undefined;
  // In this thread chunks are compressed one at a time while the one before is written, so two output
  // buffers, used in turn, serve them all (each a bound of the compressed size of a chunk, for lz4 and zstd).
  const outputs = codec === 'none' || pool ? [] : [0, 1].map(() => compressorOf(codec, o.compression.level, Buffer.allocUnsafeSlow(o.chunkSize + (o.chunkSize >>> 3) + 1024)));
  let turn = 0;
  type Encoded = { codec: CodecName; data: Uint8Array; rawSize: number; input: Uint8Array };
  const encode = async (raw: Uint8Array): Promise<Encoded> => {
    const rawSize = raw.length;
    if (codec === 'none') return { codec: 'none', data: raw, rawSize, input: raw };
    if (pool) {
      const task = { codec, level: o.compression.level, threshold: o.compression.threshold, minRatio: o.compression.minRatio, data: raw };
      return { ...(await pool.run(task, o.owned)), rawSize };
    }
    const local = outputs[turn++ % 2] as (typeof outputs)[number];
    const out = compressIfWorthIt(raw, local, o.compression.threshold, o.compression.minRatio);
    return { codec: out ? codec : 'none', data: out ?? raw, rawSize, input: raw };
  };
  // The content hash is taken in order, before a chunk is handed to a worker.
  const hashed = async function* () {
    for await (const raw of chunks) {
      content.update(raw);
      size += raw.length;
      yield raw;
    }
  };
  // One write in flight while the next chunk is hashed and compressed. Without workers, encode runs one
  // chunk at a time (concurrency 1), which the two output buffers above depend on.
  let writing: { done: Promise<void>; input: Uint8Array } | undefined;
  const written = async () => {
    if (!writing) return;
    const w = writing;
    writing = undefined;
    await w.done;
    if (o.owned) o.release?.(w.input);
  };
  let storedSize = 0;
  try {
    for await (const c of orderedMap(hashed(), encode, pool ? o.workers + 1 : 1)) {
      storedSize += c.data.length;
      if (o.maxStoredSize !== null && storedSize > o.maxStoredSize) throw tooLarge(o.key, storedSize, o.maxStoredSize);
      records.push({ rawSize: c.rawSize, storedSize: c.data.length, codec: c.codec, hash: xxh128Bytes(c.data) });
      await written();
      writing = { done: stage.write(c.data), input: c.input };
      writing.done.catch(() => {}); // awaited in turn; this only keeps it from counting as unhandled meanwhile
    }
    await written();
  } finally {
    await writing?.done.catch(() => {}); // a failure elsewhere: let the write settle before the stage is aborted
  }
  const tail = encodeTail(records, o.chunkSize);
  if (o.maxStoredSize !== null && stage.size + tail.length > o.maxStoredSize) throw tooLarge(o.key, stage.size + tail.length, o.maxStoredSize);
  await stage.write(tail);
  return { size, storedSize: stage.size, contentHash: content.digestHex(), blobId: tailId(tail), chunks: records.length };
}

/** The error for a value whose stored bytes would exceed `maxSize`. */
export function tooLarge(key: string, size: number, max: number): ValueError {
  return new ValueError('EVALUETOOLARGE', `The value needs ${size} bytes or more but maxSize is ${max}; raise maxSize, or pass maxSize: null for an unbounded store.`, {
    details: { key, size },
  });
}

/**
 * Cuts a stream of byte pieces of any sizes into chunks of exactly `buffers.size` bytes (the last
 * may be shorter), each in memory of its own. Rejects pieces that are not bytes.
 */
export async function* rechunk(source: AsyncIterable<unknown>, buffers: ChunkBuffers): AsyncGenerator<Buffer> {
  const chunkSize = buffers.size;
  let cur = buffers.take();
  let fill = 0;
  for await (const piece of guarded(source)) {
    if (!(piece instanceof Uint8Array)) {
      throw new ValueError(
        'EVALUETYPE',
        `A stream given to put() must yield bytes (Buffer or Uint8Array); it yielded ${typeof piece === 'string' ? 'a string (do not set an encoding on the stream)' : typeof piece}.`,
      );
    }
    for (let off = 0; off < piece.length; ) {
      const n = Math.min(chunkSize - fill, piece.length - off);
      cur.set(piece.subarray(off, off + n), fill);
      fill += n;
      off += n;
      if (fill === chunkSize) {
        yield cur;
        cur = buffers.take();
        fill = 0;
      }
    }
  }
  if (fill > 0) yield cur.subarray(0, fill);
}

/** Passes `source` through, turning its own failures into `ESTREAM` errors; closes it if the consumer stops early. */
async function* guarded<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  let finished = false;
  try {
    for (;;) {
      let n: IteratorResult<T>;
      try {
        n = await it.next();
      } catch (cause) {
        finished = true;
        throw new ValueError('ESTREAM', `The stream given to put() failed: ${(cause as Error)?.message ?? String(cause)}. Nothing was stored.`, { cause });
      }
      if (n.done) {
        finished = true;
        return;
      }
      yield n.value;
    }
  } finally {
    if (!finished) await it.return?.();
  }
}

/** Views of `bytes`, `chunkSize` at a time (no copies). */
export function* slices(bytes: Uint8Array, chunkSize: number): Generator<Uint8Array> {
  for (let off = 0; off < bytes.length; off += chunkSize) yield bytes.subarray(off, Math.min(bytes.length, off + chunkSize));
}

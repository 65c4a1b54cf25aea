/**
 * Chunk memory: what readChunkedRange hands out (pieces the consumer keeps, or reused memory with
 * `reuse`), chunk buffers, and files read straight into chunk memory.
 */

import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkBuffers } from '../sdk/src/chunked/buffers.js';
import { FileSource } from '../sdk/src/chunked/file-source.js';
import { readChunkedRange, readIndex } from '../sdk/src/chunked/read.js';
import { rechunk, writeChunked } from '../sdk/src/chunked/write.js';
import { type CodecName, resolveCompression } from '../sdk/src/compression.js';
import { MemoryBlobStore } from '../sdk/src/stores/memory-blobs.js';
import type { BlobStage } from '../sdk/src/stores/types.js';
import { storedContainer } from './fixtures/containers.js';

const CHUNK = 64 * 1024;

/** 10.5 chunks: compressible runs with a counter, so every chunk differs. */
function payload(): Buffer {
  const b = Buffer.alloc(CHUNK * 10 + CHUNK / 2);
  for (let i = 0; i < b.length; i += 4) b.writeUInt32LE(Math.floor(i / 64), i);
  return b;
}

async function stored(codec: CodecName) {
  const data = payload();
  const { blobs, ref } = await storedContainer(data, codec, CHUNK);
  const reader = (await blobs.open('b'))!;
  const index = await readIndex(reader, ref, true);
  return { data, reader, index };
}

describe.each(['none', 'lz4'] as const)('readChunkedRange, codec %s', (codec) => {
  it('hands out pieces the consumer may keep: later chunks never overwrite earlier ones', async () => {
    const { data, reader, index } = await stored(codec);
    expect(index.chunks.some((c) => c.codec === codec)).toBe(true);
    const kept: Uint8Array[] = [];
    for await (const p of readChunkedRange(reader, index, { start: 0, end: data.length, verify: true })) kept.push(p);
    expect(kept.length).toBe(11);
    expect(new Set(kept.map((p) => p.buffer)).size).toBe(11); // memory of their own
    expect(Buffer.concat(kept).equals(data)).toBe(true);
  });

  it('with reuse, cycles through a few buffers, each piece right while it is the current one', async () => {
    const { data, reader, index } = await stored(codec);
    const copies: Buffer[] = [];
    const memory = new Set<ArrayBufferLike>();
    for await (const p of readChunkedRange(reader, index, { start: 100, end: data.length - 100, verify: true, reuse: true })) {
      copies.push(Buffer.from(p));
      memory.add(p.buffer);
    }
    expect(Buffer.concat(copies).equals(data.subarray(100, data.length - 100))).toBe(true);
    expect(memory.size).toBeLessThanOrEqual(4);
  });
});

describe('writeChunked', () => {
  it.each(['none', 'lz4'] as const)('keeps each chunk intact until its write is done, while the next one is prepared (codec %s)', async (codec) => {
    // A stage that reads the bytes it was given only later, as an asynchronous write does: a chunk whose
    // memory were reused before its write finished would be stored with the next chunk's bytes.
    const blobs = new MemoryBlobStore();
    const real = await blobs.stage();
    let size = 0;
    const slow: BlobStage = {
      get size() {
        return size;
      },
      write: async (data) => {
        await new Promise((r) => setImmediate(r));
        await real.write(data);
        size += data.length;
      },
      publish: (name) => real.publish(name),
      abort: () => real.abort(),
    };
    const data = payload();
    const buffers = new ChunkBuffers(CHUNK, 4);
    const pieces = (async function* () {
      for (let off = 0; off < data.length; off += 10_000) yield Buffer.from(data.subarray(off, off + 10_000));
    })();
    const r = await writeChunked(rechunk(pieces, buffers), slow, {
      chunkSize: CHUNK,
      compression: resolveCompression({ codec }),
      workers: 0,
      owned: true,
      release: buffers.release,
      maxStoredSize: null,
      key: 'k',
    });
    await slow.publish('b');
    const reader = (await blobs.open('b'))!;
    const index = await readIndex(reader, { storedSize: r.storedSize, blobId: r.blobId }, true);
    expect(index.chunks.every((c) => c.codec === codec)).toBe(true);
    const back: Uint8Array[] = [];
    for await (const p of readChunkedRange(reader, index, { start: 0, end: data.length, verify: true })) back.push(p);
    expect(Buffer.concat(back).equals(data)).toBe(true);
  });
});

describe('ChunkBuffers', () => {
  it('reuses what it handed out, and only that', () => {
    const b = new ChunkBuffers(1024, 2);
    const one = b.take();
    b.release(one);
    expect(b.take().buffer === one.buffer).toBe(true);
    const big = b.take(4096); // more than its size: memory of its own, not kept
    expect(big.length).toBe(4096);
    b.release(big);
    const view = Buffer.alloc(1024).subarray(0, 10);
    b.release(view); // a view: ignored
    const x = b.take();
    const y = b.take();
    expect(x.length).toBe(1024);
    expect(x.buffer === y.buffer).toBe(false);
    expect(x.buffer === view.buffer || y.buffer === view.buffer).toBe(false);
  });

  it('never keeps one buffer twice', () => {
    const b = new ChunkBuffers(1024, 4);
    const one = b.take();
    b.release(one);
    b.release(one);
    const first = b.take();
    const second = b.take();
    expect(first.buffer === second.buffer).toBe(false);
  });
});

describe('FileSource', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cacheness-filesource-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads a file in chunks of exactly the buffer size into the given memory, the last one short', async () => {
    const data = payload();
    const path = join(dir, 'f.bin');
    await writeFile(path, data);
    const fh = await open(path, 'r');
    try {
      const buffers = new ChunkBuffers(CHUNK * 3, 4);
      const sizes: number[] = [];
      const copies: Buffer[] = [];
      for await (const c of new FileSource(fh, path).chunks(buffers)) {
        sizes.push(c.length);
        copies.push(Buffer.from(c));
        buffers.release(c);
      }
      expect(sizes).toEqual([CHUNK * 3, CHUNK * 3, CHUNK * 3, CHUNK * 1.5]);
      expect(Buffer.concat(copies).equals(data)).toBe(true);
      const plain: Uint8Array[] = [];
      for await (const p of new FileSource(fh, path)) plain.push(p); // as any byte stream: pieces of its own
      expect(Buffer.concat(plain).equals(data)).toBe(true);
    } finally {
      await fh.close();
    }
  });

  it('yields nothing for an empty file, and turns a failed read into ESTREAM', async () => {
    const path = join(dir, 'empty.bin');
    await writeFile(path, '');
    const fh = await open(path, 'r');
    const got: Uint8Array[] = [];
    for await (const p of new FileSource(fh, path)) got.push(p);
    expect(got).toEqual([]);
    await fh.close();
    // A closed handle is the read failure we can cause for real.
    await expect(new FileSource(fh, path).chunks(new ChunkBuffers(16)).next()).rejects.toMatchObject({ code: 'ESTREAM' });
  });
});

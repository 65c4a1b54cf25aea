/**
 * Transfers straight between the SDK and S3 through the API's presigned URLs: multipart uploads
 * (parallel, resumable, refilling and refreshing part URLs), streamed single PUTs, and ranged reads,
 * against the real API, Postgres and the S3-protocol server.
 */

import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CompleteUploadResponse, CreateEntryResponse, GetEntryResponse, MultipartPlan, SinglePutPlan } from 'cacheness/model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadEntry } from '../functions/test/entry-bodies.js';
import { isRawContainer, pipeRawRange, readIndex } from '../sdk/src/chunked/read.js';
import type { CodecName } from '../sdk/src/compression.js';
import { ApiClient } from '../sdk/src/remote/client.js';
import { type ByteSource, downloadToFile, openUrl, prefetching, readParallel, type SentPart, uploadParts, uploadSingle } from '../sdk/src/remote/transfer.js';
import { type ApiServer, startApi } from './fixtures/api-server.js';
import { storedContainer } from './fixtures/containers.js';

const MiB = 1024 * 1024;
let server: ApiServer;
let api: ApiClient;

beforeAll(async () => {
  // Parts of 5 MiB (S3's least), and multipart from 6 MiB, so a test payload has a few parts.
  server = await startApi({ preferredPartBytes: 5 * MiB, singlePutMaxBytes: 6 * MiB });
  api = new ApiClient({ endpoint: server.base, apiKey: await server.key('transfer', ['read', 'write']), retries: 2 });
});
afterAll(async () => {
  api?.close();
  await server?.stop();
});

/** `bytes` as a source that counts the bytes read and can fail at an offset. */
function sourceOf(bytes: Buffer, failAt = Number.POSITIVE_INFINITY): ByteSource & { reads: number[] } {
  const reads: number[] = [];
  return {
    size: bytes.length,
    reads,
    read: async (offset, length, into) => {
      if (offset + length > failAt) throw Object.assign(new Error('the local disk failed'), { code: 'EIO' });
      reads.push(offset);
      const part = bytes.subarray(offset, offset + length);
      if (!into) return Buffer.from(part);
      into.set(part);
      return into.subarray(0, part.length);
    },
  };
}

async function plan(key: string, bytes: Buffer): Promise<MultipartPlan | SinglePutPlan> {
  const r = await api.request<CreateEntryResponse>('PUT', `entries/${encodeURIComponent(key)}`, { body: uploadEntry(bytes) });
  if (!('upload' in r)) throw new Error('expected an upload');
  return r.upload;
}

const complete = (id: string, parts?: SentPart[]) => api.request<CompleteUploadResponse>('POST', `uploads/${id}/complete`, { body: parts ? { parts } : {} });

async function readBack(key: string): Promise<{ whole: Buffer; reader: ReturnType<typeof openUrl> }> {
  const got = await api.request<GetEntryResponse>('GET', `entries/${encodeURIComponent(key)}`);
  if (!('url' in got)) throw new Error('expected a URL');
  const reader = openUrl(api, got.url, got.entry.storedSize);
  return { whole: Buffer.from(await reader.read(0, got.entry.storedSize)), reader };
}

describe('multipart uploads', () => {
  it('sends parts in parallel, asking for part URLs the plan lacks, and the object reads back byte for byte', async () => {
    const bytes = randomBytes(17 * MiB + 123);
    const p = (await plan('mp/parallel', bytes)) as MultipartPlan;
    expect(p).toMatchObject({ method: 'MULTIPART', partSize: 5 * MiB, partCount: 4 });
    const progress: number[] = [];
    // Keep only the first URL: the rest must come from POST /v1/uploads/:id/parts.
    const parts = await uploadParts(api, { ...p, parts: p.parts.slice(0, 1) }, sourceOf(bytes), { concurrency: 3, onProgress: (x) => progress.push(x.bytes) });
    expect(parts.map((x) => x.partNumber)).toEqual([1, 2, 3, 4]);
    expect(progress.at(-1)).toBe(bytes.length);
    expect((await complete(p.id, parts)).entry).toMatchObject({ key: 'mp/parallel', storedSize: bytes.length });
    const { whole, reader } = await readBack('mp/parallel');
    expect(whole.equals(bytes)).toBe(true);
    // Ranged reads: across a part boundary, the last byte, into caller memory.
    const into = Buffer.alloc(2 * MiB);
    const mid = await reader.read(5 * MiB - 10, MiB, into);
    expect(mid.buffer === into.buffer).toBe(true);
    expect(Buffer.from(mid).equals(bytes.subarray(5 * MiB - 10, 6 * MiB - 10))).toBe(true);
    expect(Buffer.from(await reader.read(bytes.length - 1, 10)).equals(bytes.subarray(bytes.length - 1))).toBe(true);
  });

  it('resumes: a second run sends only the parts the first did not', async () => {
    const bytes = randomBytes(16 * MiB);
    const p = (await plan('mp/resume', bytes)) as MultipartPlan;
    const landed: SentPart[] = [];
    const failing = sourceOf(bytes, 10 * MiB); // parts 1 and 2 can be read; part 3 fails
    await expect(uploadParts(api, p, failing, { concurrency: 1, onPart: (x) => void landed.push(x) })).rejects.toMatchObject({ code: 'ESTORE' });
    expect(landed.map((x) => x.partNumber)).toEqual([1, 2]);
    const again = sourceOf(bytes);
    const parts = await uploadParts(api, p, again, { done: landed });
    expect(again.reads.sort((a, b) => a - b)).toEqual([10 * MiB, 15 * MiB]); // parts 3 and 4 only
    expect(parts.map((x) => x.partNumber)).toEqual([1, 2, 3, 4]);
    await complete(p.id, parts);
    expect((await readBack('mp/resume')).whole.equals(bytes)).toBe(true);
  });

  it('replaces a part URL that S3 refuses, and refuses a source that does not fit the plan', async () => {
    const bytes = randomBytes(11 * MiB);
    const p = (await plan('mp/refresh', bytes)) as MultipartPlan;
    const spoiled = p.parts.map((x) => ({ ...x, url: x.url.replace(/X-Amz-Signature=[0-9a-f]+/, `X-Amz-Signature=${'0'.repeat(64)}`) }));
    expect(spoiled[0]?.url).not.toBe(p.parts[0]?.url);
    expect((await fetch(spoiled[0]?.url as string, { method: 'PUT', body: 'x' })).status).toBe(403); // S3 checks the signature
    const parts = await uploadParts(api, { ...p, parts: spoiled }, sourceOf(bytes));
    await complete(p.id, parts);
    expect((await readBack('mp/refresh')).whole.equals(bytes)).toBe(true);
    await expect(uploadParts(api, p, sourceOf(randomBytes(5)))).rejects.toMatchObject({ code: 'EINTEGRITY' }); // fewer bytes than announced
    await expect(uploadParts(api, p, sourceOf(randomBytes(bytes.length + 1)))).rejects.toMatchObject({ code: 'EVALUETOOLARGE' });
  });
});

describe('single PUTs', () => {
  it('streams the source in pieces and the object reads back byte for byte', async () => {
    const bytes = randomBytes(3 * MiB + 7);
    const p = (await plan('single/a', bytes)) as SinglePutPlan;
    expect(p.method).toBe('PUT');
    const source = sourceOf(bytes);
    await uploadSingle(api, p, source, undefined, 256 * 1024);
    expect(source.reads.length).toBe(13); // never held whole: 13 pieces of at most 256 KiB
    await complete(p.id);
    expect((await readBack('single/a')).whole.equals(bytes)).toBe(true);
  });

  it('fails with the source error when the bytes cannot be read, without retrying', async () => {
    const bytes = randomBytes(2 * MiB);
    const p = (await plan('single/b', bytes)) as SinglePutPlan;
    const source = sourceOf(bytes, MiB);
    await expect(uploadSingle(api, p, source, undefined, 256 * 1024)).rejects.toMatchObject({ code: 'ESTORE', cause: { code: 'EIO' } });
    expect(source.reads.length).toBe(4); // one pass, not one per retry
  });
});

describe('parallel downloads', () => {
  it('reads a whole object by parallel ranged reads, into memory and into a file, byte for byte', async () => {
    const bytes = randomBytes(9 * MiB + 5);
    const p = (await plan('dl/a', bytes)) as MultipartPlan;
    await complete(p.id, await uploadParts(api, p, sourceOf(bytes)));
    const { reader } = await readBack('dl/a');
    const progress: number[] = [];
    const into = Buffer.alloc(bytes.length + 10);
    const got = await readParallel(reader, into, { window: 2 * MiB, concurrency: 3, onProgress: (x) => progress.push(x.bytes) });
    expect(got.buffer === into.buffer).toBe(true); // read in place
    expect(Buffer.from(got).equals(bytes)).toBe(true);
    expect(progress.length).toBe(5);
    expect(progress.at(-1)).toBe(bytes.length);
    const dir = await mkdtemp(join(tmpdir(), 'cacheness-dl-'));
    try {
      const fh = await open(join(dir, 'out.bin'), 'w');
      await downloadToFile(reader, fh, { window: 2 * MiB, concurrency: 3 });
      await fh.close();
      expect((await readFile(join(dir, 'out.bin'))).equals(bytes)).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('prefetches windows ahead of one sequential pass, reading a jump to the tail on its own', async () => {
    const { whole: bytes, reader } = await readBack('dl/a');
    const asked: [number, number][] = [];
    const counting = {
      size: reader.size,
      read: (o: number, l: number, into?: Uint8Array) => {
        asked.push([o, l]);
        return reader.read(o, l, into);
      },
      close: () => reader.close(),
    };
    const window = 2 * MiB;
    const p = prefetching(counting, { window, concurrency: 2 });
    const tail = await p.read(bytes.length - 1000, 1000);
    expect(Buffer.from(tail).equals(bytes.subarray(bytes.length - 1000))).toBe(true);
    expect(asked).toEqual([[bytes.length - 1000, 1000]]); // the index read: on its own
    const out: Buffer[] = [];
    for (let off = 0; off < bytes.length; off += 300_000) out.push(Buffer.from(await p.read(off, Math.min(300_000, bytes.length - off))));
    expect(Buffer.concat(out).equals(bytes)).toBe(true);
    const windows = asked.slice(1);
    expect(windows.map(([o]) => o)).toEqual(Array.from({ length: Math.ceil(bytes.length / window) }, (_, i) => i * window)); // each window once, in order
    await p.close();
  });

  it('fails with the first failed window, as a CachenessError', async () => {
    const failing = { size: 8, read: async (offset: number) => Promise.reject(Object.assign(new Error(`boom at ${offset}`), { code: 'EIO' })), close: async () => {} };
    await expect(readParallel(failing, Buffer.alloc(8), { window: 2 })).rejects.toMatchObject({ code: 'ESTORE', cause: { code: 'EIO' } });
  });
});

describe('ranged reads from a server that answers wrongly', () => {
  it('refuses more bytes than asked (a Range ignored) and fewer, as EREMOTE, without crashing', async () => {
    const whole = randomBytes(100);
    const wrong = createHttpServer((req, res) => {
      req.resume();
      const short = req.url?.includes('short');
      res.writeHead(short ? 206 : 200, { 'content-length': short ? 5 : whole.length });
      res.end(short ? whole.subarray(0, 5) : whole);
    });
    await new Promise<void>((r) => wrong.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(wrong.address() as AddressInfo).port}`;
    try {
      const into = Buffer.alloc(10);
      await expect(openUrl(api, `${base}/long`, 100).read(10, 10, into)).rejects.toMatchObject({ code: 'EREMOTE' });
      await expect(openUrl(api, `${base}/short`, 100).read(10, 10)).rejects.toMatchObject({ code: 'EREMOTE' });
    } finally {
      await new Promise((r) => wrong.close(r));
    }
  });
});

/**
 * A real HTTP server holding `bytes` under every path and answering Range requests as S3 does (206 with
 * Content-Range), except: `/forbidden` answers 403, `/expiring` answers 403 after its first request
 * (a URL that expired), `/whole` ignores Range (200 of everything), and the first request for a range
 * starting at `cutAt` is cut off after `cutAfter` bytes.
 */
async function rangeServer(bytes: Buffer, o: { cutAt?: number; cutAfter?: number } = {}) {
  const ranges: string[] = [];
  let cut = false;
  let expiring = 0;
  const server = createHttpServer((req, res) => {
    req.resume();
    const range = req.headers.range ?? '';
    ranges.push(`${req.url} ${range}`);
    if (req.url === '/forbidden' || (req.url === '/expiring' && expiring++ > 0)) return void res.writeHead(403).end();
    const m = /^bytes=(\d+)-(\d+)$/.exec(range);
    if (!m || req.url === '/whole') return void res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
    const from = Number(m[1]);
    const to = Math.min(Number(m[2]), bytes.length - 1);
    res.writeHead(206, { 'content-length': to - from + 1, 'content-range': `bytes ${from}-${to}/${bytes.length}` });
    if (!cut && from === o.cutAt) {
      cut = true;
      res.write(bytes.subarray(from, from + (o.cutAfter ?? 0)), () => res.socket?.destroy());
      return;
    }
    res.end(bytes.subarray(from, to + 1));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    /** Every request, as `path range`. */
    ranges,
    close: () => new Promise((r) => server.close(r)),
  };
}

/** A one-shot signal between concurrent sinks: `fired` resolves once `fire()` is called. */
function signal(): { fired: Promise<void>; fire(): void } {
  let fire: () => void = () => {};
  const fired = new Promise<void>((r) => {
    fire = r;
  });
  return { fired, fire: () => fire() };
}

/** Collects what a pipe delivers, per range, checking that each range's pieces come in order. */
function collector(ranges: { offset: number; length: number }[]) {
  const got = ranges.map(() => [] as Buffer[]);
  const next = ranges.map((r) => r.offset);
  const sink = async (piece: Uint8Array, position: number, range: number) => {
    expect(position).toBe(next[range]);
    next[range] = position + piece.length;
    got[range]?.push(Buffer.from(piece)); // the piece is ours only until this returns
  };
  return { sink, bytes: (range: number) => Buffer.concat(got[range] ?? []) };
}

describe('piped downloads', () => {
  it('streams ranges in parallel, each in order, and resumes a range cut off midway from its first missing byte', async () => {
    const bytes = randomBytes(5 * MiB + 3);
    const srv = await rangeServer(bytes, { cutAt: 2 * MiB, cutAfter: 300_000 });
    try {
      const ranges = [
        { offset: 0, length: 2 * MiB },
        { offset: 2 * MiB, length: 2 * MiB },
        { offset: 4 * MiB, length: MiB + 3 },
      ];
      const c = collector(ranges);
      // Range 0's first piece waits for range 2's: ranges run one after another would never get past it.
      const third = signal();
      let firstPiece = true;
      await openUrl(api, `${srv.base}/obj`, bytes.length, { concurrency: 3 }).pipe?.(ranges, async (piece, position, range) => {
        if (range === 2) third.fire();
        if (range === 0 && firstPiece) {
          firstPiece = false;
          await third.fired;
        }
        await c.sink(piece, position, range);
      });
      ranges.forEach((r, i) => {
        expect(c.bytes(i).equals(bytes.subarray(r.offset, r.offset + r.length))).toBe(true);
      });
      // The cut-off range was asked again from where it stopped, not from its start.
      const again = srv.ranges.filter(
        (l) => l.startsWith('/obj') && !l.endsWith(`bytes=${2 * MiB}-${4 * MiB - 1}`) && /bytes=(\d+)-/.exec(l)?.[1] !== '0' && /bytes=(\d+)-/.exec(l)?.[1] !== String(4 * MiB),
      );
      expect(again).toHaveLength(1);
      const resumedAt = Number(/bytes=(\d+)-(\d+)/.exec(again[0] as string)?.[1]);
      expect(resumedAt).toBeGreaterThanOrEqual(2 * MiB + 1); // some of the cut-off answer was kept
      expect(resumedAt).toBeLessThanOrEqual(2 * MiB + 300_000);
      expect(again[0]).toMatch(new RegExp(`-${4 * MiB - 1}$`));
    } finally {
      await srv.close();
    }
  });

  it("throws the sink's own failure as it is, and asks for nothing more", async () => {
    const bytes = randomBytes(3 * MiB);
    const srv = await rangeServer(bytes);
    try {
      const full = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      const reader = openUrl(api, `${srv.base}/obj`, bytes.length, { concurrency: 1 });
      const ranges = [
        { offset: 0, length: MiB },
        { offset: MiB, length: MiB },
        { offset: 2 * MiB, length: MiB },
      ];
      await expect(
        reader.pipe?.(ranges, async (_piece, _position, range) => {
          if (range === 1) throw full;
        }),
      ).rejects.toBe(full);
      expect(srv.ranges).toEqual([`/obj bytes=0-${MiB - 1}`, `/obj bytes=${MiB}-${2 * MiB - 1}`]); // no retry, no next range
    } finally {
      await srv.close();
    }
  });

  it('refuses a whole object sent for part of it, delivering nothing, and takes it when the whole was asked', async () => {
    const bytes = randomBytes(1000);
    const srv = await rangeServer(bytes);
    try {
      const reader = openUrl(api, `${srv.base}/whole`, bytes.length);
      let delivered = 0;
      await expect(reader.pipe?.([{ offset: 10, length: 10 }], async (p) => void (delivered += p.length))).rejects.toMatchObject({ code: 'EREMOTE' });
      expect(delivered).toBe(0);
      const c = collector([{ offset: 0, length: bytes.length }]);
      await reader.pipe?.([{ offset: 0, length: bytes.length }], c.sink);
      expect(c.bytes(0).equals(bytes)).toBe(true);
      await expect(reader.pipe?.([{ offset: 990, length: 20 }], c.sink)).rejects.toMatchObject({ code: 'EOPTION' }); // past the end
    } finally {
      await srv.close();
    }
  });

  it('waits for a slow write without calling the paused answer stalled, and never overlaps a retry with it', async () => {
    const bytes = randomBytes(2 * MiB);
    const srv = await rangeServer(bytes);
    const quick = new ApiClient({ endpoint: server.base, apiKey: 'unused', retries: 2, responseTimeoutMs: 100 });
    try {
      const ranges = [{ offset: 0, length: bytes.length }];
      const c = collector(ranges);
      let writing = false;
      let first = true;
      await openUrl(quick, `${srv.base}/obj`, bytes.length).pipe?.(ranges, async (piece, position, range) => {
        expect(writing).toBe(false); // one piece at a time, even across attempts
        writing = true;
        if (first) {
          first = false;
          await new Promise((r) => setTimeout(r, 500)); // the scenario: a disk write 5× longer than the no-progress limit
        }
        await c.sink(piece, position, range);
        writing = false;
      });
      expect(c.bytes(0).equals(bytes)).toBe(true);
      expect(srv.ranges).toEqual([`/obj bytes=0-${bytes.length - 1}`]); // no timeout, no second request
    } finally {
      quick.close();
      await srv.close();
    }
  });

  it('stops every range at the first failure, not only those yet to start', async () => {
    const bytes = randomBytes(3 * MiB);
    const srv = await rangeServer(bytes);
    try {
      const full = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      const pieces = [0, 0, 0];
      const failure = signal();
      const othersStarted = signal();
      const ranges = [0, 1, 2].map((i) => ({ offset: i * MiB, length: MiB }));
      await expect(
        openUrl(api, `${srv.base}/obj`, bytes.length, { concurrency: 3 }).pipe?.(ranges, async (_piece, _position, range) => {
          pieces[range] = (pieces[range] as number) + 1;
          if (range === 1) {
            await othersStarted.fired;
            failure.fire();
            throw full;
          }
          if (pieces[0] && pieces[2]) othersStarted.fire();
          await failure.fired; // ranges 0 and 2 are mid-way when range 1 fails
        }),
      ).rejects.toBe(full);
      expect(pieces).toEqual([1, 1, 1]);
      expect(srv.ranges).toHaveLength(3); // nothing asked again
    } finally {
      await srv.close();
    }
  });

  it('resumes after the bytes it had when a URL expires midway', async () => {
    const bytes = randomBytes(2 * MiB);
    const srv = await rangeServer(bytes, { cutAt: 1000, cutAfter: 300_000 });
    try {
      let renewed = 0;
      const reader = openUrl(api, `${srv.base}/expiring`, bytes.length, {
        refresh: async () => {
          renewed++;
          return `${srv.base}/fresh`;
        },
      });
      const ranges = [{ offset: 1000, length: bytes.length - 1000 }];
      const c = collector(ranges);
      await reader.pipe?.(ranges, c.sink);
      expect(renewed).toBe(1);
      expect(c.bytes(0).equals(bytes.subarray(1000))).toBe(true);
      const fresh = srv.ranges.filter((l) => l.startsWith('/fresh'));
      expect(fresh).toHaveLength(1);
      const from = Number(/bytes=(\d+)-/.exec(fresh[0] as string)?.[1]);
      expect(from).toBeGreaterThan(1000); // after the bytes the cut-off answer delivered
      expect(from).toBeLessThanOrEqual(301_000);
    } finally {
      await srv.close();
    }
  });

  it('asks for a new URL when S3 refuses the one it has (403)', async () => {
    const bytes = randomBytes(MiB);
    const srv = await rangeServer(bytes);
    try {
      let renewed = 0;
      const reader = openUrl(api, `${srv.base}/forbidden`, bytes.length, {
        refresh: async () => {
          renewed++;
          return `${srv.base}/fresh`;
        },
      });
      const ranges = [{ offset: 1000, length: MiB - 2000 }];
      const c = collector(ranges);
      await reader.pipe?.(ranges, c.sink);
      expect(renewed).toBe(1);
      expect(c.bytes(0).equals(bytes.subarray(1000, MiB - 1000))).toBe(true);
    } finally {
      await srv.close();
    }
  });
});

describe('raw containers piped to their destination', () => {
  const CHUNK = 64 * 1024;
  /** A chunked container of `data` (64 KiB chunks) as stored. */
  async function container(data: Buffer, codec: CodecName) {
    const { blobs, name, ref } = await storedContainer(data, codec, CHUNK);
    return { stored: Buffer.from((await blobs.read(name)) as Uint8Array), ref };
  }

  it('writes a range of the payload at its offsets, every chunk checked, and reports the chunk that was changed', async () => {
    const data = randomBytes(10 * CHUNK + 1234);
    const { stored, ref } = await container(data, 'none');
    const srv = await rangeServer(stored);
    try {
      const reader = openUrl(api, `${srv.base}/c`, stored.length, { concurrency: 3 });
      const index = await readIndex(reader, ref, true);
      expect(isRawContainer(index)).toBe(true);
      const out = Buffer.alloc(data.length);
      const [start, end] = [CHUNK + 100, 9 * CHUNK + 7];
      const requestsBefore = srv.ranges.length;
      await pipeRawRange(reader, index, { start, end, verify: true, rangeBytes: 3 * CHUNK, write: async (p, at) => void out.set(p, at) });
      expect(out.subarray(0, end - start).equals(data.subarray(start, end))).toBe(true);
      expect(srv.ranges.length - requestsBefore).toBe(3); // chunks 1-9 in ranges of at most 3 chunks

      stored[5 * CHUNK + 77] = (stored[5 * CHUNK + 77] as number) ^ 1; // the server now holds a changed chunk 5
      await expect(pipeRawRange(reader, index, { start: 0, end: data.length, verify: true, write: async () => {} })).rejects.toMatchObject({
        code: 'EINTEGRITY',
        message: expect.stringContaining('chunk 5 does not match its hash'),
      });
    } finally {
      await srv.close();
    }
  });

  it('leaves compressed containers to the chunk-by-chunk reader', async () => {
    const { stored, ref } = await container(Buffer.alloc(3 * CHUNK, 7), 'lz4');
    const srv = await rangeServer(stored);
    try {
      expect(isRawContainer(await readIndex(openUrl(api, `${srv.base}/c`, stored.length), ref, true))).toBe(false);
    } finally {
      await srv.close();
    }
  });
});

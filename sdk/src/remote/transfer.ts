/**
 * Bytes straight between this process and S3 through presigned URLs from the API: multipart uploads
 * with parts in parallel (resumable: parts already sent are skipped), single PUTs streamed from their
 * source, ranged reads of a presigned GET, and whole downloads as parallel ranged reads (into memory or
 * a file). The API never carries the bytes.
 * @module
 */
import type { FileHandle } from 'node:fs/promises';
import { asCachenessError, IntegrityError, OptionError, RemoteError, ValueError } from '../errors.js';
import type { MultipartPlan, PartUrlsResponse, SinglePutPlan } from '../protocol.js';
import type { BlobReader, ByteRange } from '../stores/types.js';
import type { ApiClient } from './client.js';
import { type Answer, attempt, type NetworkFailure, retryAfterMs, retrying, type Verdict } from './http.js';

/** Bytes to upload, read by offset (a staged blob, a file). */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
}

/** A part of a multipart upload, sent. */
export interface SentPart {
  partNumber: number;
  etag: string;
}

/** Options of {@link uploadParts}. */
export interface UploadPartsOptions {
  /** Parts in flight at once. Default 4; memory holds one part per slot. */
  concurrency?: number;
  /** Parts sent before (a resumed upload): they are not sent again. */
  done?: readonly SentPart[];
  /** Called as each part lands, in any order (to record it for a resume). */
  onPart?: (part: SentPart) => void | Promise<void>;
  /** Bytes sent so far, of `total`. */
  onProgress?: ((p: { bytes: number; total: number }) => void) | undefined;
  /** Stops the upload (`EABORTED`); parts already sent stay sent (the caller aborts the upload). */
  signal?: AbortSignal | undefined;
}

/** Part URLs asked for at once when more are needed. */
const URL_BATCH = 100;
/** Part URLs live 15 minutes: one older than this is replaced before use rather than risk a refusal midway. */
const URL_FRESH_MS = 10 * 60_000;

/**
 * Sends `source` as the parts of `plan` (parts of `plan.partSize` bytes, the last shorter), up to
 * `concurrency` at once, and resolves with every part (sorted, including `done`), ready for
 * `POST /v1/uploads/:id/complete`. Part URLs beyond the plan's first ones are asked for in batches; a
 * URL S3 refuses (expired) is replaced once. Failed parts are retried with backoff.
 * @throws {CachenessError} `EUNREACHABLE`/`EREMOTE` when a part cannot be sent, `EVALUETOOLARGE` when
 *   `source` does not fit the plan.
 */
export async function uploadParts(api: ApiClient, plan: MultipartPlan, source: ByteSource, o: UploadPartsOptions = {}): Promise<SentPart[]> {
  const count = Math.max(1, Math.ceil(source.size / plan.partSize));
  if (plan.size !== null && source.size < plan.size) {
    throw new IntegrityError('EINTEGRITY', `The bytes to upload are ${source.size}, not the ${plan.size} announced; start a new upload.`, {
      details: { size: source.size, planned: plan.size },
    });
  }
  if ((plan.size !== null && plan.size !== source.size) || count > plan.partCount) {
    throw new ValueError(
      'EVALUETOOLARGE',
      `${source.size} bytes do not fit this upload (${plan.size ?? `up to ${plan.partCount} parts`} of ${plan.partSize} bytes); start a new upload.`,
      {
        details: { size: source.size, planned: plan.size },
      },
    );
  }
  const sent = new Map((o.done ?? []).filter((p) => p.partNumber <= count).map((p) => [p.partNumber, p.etag]));
  const urls = new Map(plan.parts.map((p) => [p.partNumber, p.url]));
  const urlTimes = new Map(plan.parts.map((p) => [p.partNumber, Date.now()]));
  const todo = Array.from({ length: count }, (_, i) => i + 1).filter((n) => !sent.has(n));
  const sizeOf = (n: number) => Math.min(plan.partSize, source.size - (n - 1) * plan.partSize);
  let bytes = todo.reduce((sum, n) => sum - sizeOf(n), source.size);
  o.onProgress?.({ bytes, total: source.size });

  let refill: Promise<void> | undefined;
  /** URLs for `n` and the parts after it that lack one (one request at a time). */
  const more = async (n: number, replace = false): Promise<void> => {
    if (replace) urls.delete(n);
    for (let asked = false; !urls.has(n); ) {
      if (asked) throw new RemoteError('EREMOTE', `The cloud API gave no URL for part ${n} of upload ${plan.id}.`, { details: { part: n } });
      if (!refill) {
        asked = true;
        const wanted = todo.filter((m) => m >= n && !urls.has(m)).slice(0, URL_BATCH);
        if (!wanted.includes(n)) wanted.unshift(n);
        refill = api
          .request<PartUrlsResponse>('POST', `uploads/${encodeURIComponent(plan.id)}/parts`, { body: { partNumbers: wanted }, idempotent: true, signal: o.signal })
          .then((r) => {
            const now = Date.now();
            for (const p of r.parts) {
              urls.set(p.partNumber, p.url);
              urlTimes.set(p.partNumber, now);
            }
          })
          .finally(() => {
            refill = undefined;
          });
      }
      await refill;
    }
  };

  const put = async (n: number, memory: Uint8Array): Promise<void> => {
    const length = sizeOf(n);
    const body = await source.read((n - 1) * plan.partSize, length, memory);
    if (body.length !== length) throw new IntegrityError('EINTEGRITY', `The bytes to upload ended early: part ${n} has ${body.length} of ${length} bytes.`);
    let refreshed = false;
    for (;;) {
      await more(n, Date.now() - (urlTimes.get(n) ?? 0) > URL_FRESH_MS);
      const deadline = Date.now() + api.deadlineMs;
      try {
        const etag = await retrying(
          api.retries,
          deadline,
          () => attempt(api.transport, new URL(urls.get(n) as string), { method: 'PUT', headers: { 'content-length': length }, body, deadline, signal: o.signal }),
          (r) => partVerdict(r, n),
          o.signal,
        );
        sent.set(n, etag);
        bytes += length;
        await o.onPart?.({ partNumber: n, etag });
        o.onProgress?.({ bytes, total: source.size });
        return;
      } catch (err) {
        // S3 refuses a presigned URL that expired (403): ask for a fresh one, once.
        if (refreshed || !(err instanceof RemoteError) || err.details?.status !== 403) throw err;
        refreshed = true;
        await more(n, true);
      }
    }
  };

  const memory: Buffer[] = []; // one part's memory per slot, as large as the largest part to send
  const largest = todo.reduce((m, n) => Math.max(m, sizeOf(n)), 0);
  await inParallel(todo.length, o.concurrency ?? 4, async (i, slot) => {
    memory[slot] ??= Buffer.allocUnsafeSlow(largest);
    await put(todo[i] as number, memory[slot]);
  });
  return [...sent].map(([partNumber, etag]) => ({ partNumber, etag })).sort((a, b) => a.partNumber - b.partNumber);
}

function partVerdict(r: Answer | NetworkFailure, n: number): Verdict<string> {
  if ('error' in r) {
    if (r.source) return { failure: asCachenessError(r.error), retryable: false };
    return {
      failure: new RemoteError('EUNREACHABLE', `Part ${n} could not be sent to S3 (${r.error.message}).`, { cause: r.error, details: { part: n, reason: r.error.code } }),
      retryable: true,
    };
  }
  const etag = r.headers.etag;
  if (r.status < 300 && typeof etag === 'string') return { value: etag };
  return {
    failure: new RemoteError('EREMOTE', `S3 refused part ${n} (${r.status}): ${Buffer.from(r.body).toString('utf8').slice(0, 200)}`, { details: { status: r.status, part: n } }),
    retryable: r.status >= 500 || r.status === 429,
    waitMs: retryAfterMs(r.headers),
  };
}

/**
 * Sends `source` whole to a single-PUT plan, streamed from it in pieces of `pieceSize` bytes (never
 * held whole), retried from the start on failure.
 */
export async function uploadSingle(api: ApiClient, plan: SinglePutPlan, source: ByteSource, signal?: AbortSignal, pieceSize = 1024 * 1024): Promise<void> {
  if (source.size !== plan.size) throw new ValueError('EVALUETOOLARGE', `${source.size} bytes do not fit this upload of ${plan.size}; start a new upload.`);
  const piece = Math.min(pieceSize, Math.max(1, source.size));
  // Memory of its own for each attempt: an abandoned attempt may still be reading into its memory.
  const pieces = async function* () {
    const memory = Buffer.allocUnsafeSlow(piece);
    for (let off = 0; off < source.size; off += piece) yield await source.read(off, Math.min(piece, source.size - off), memory);
  };
  const deadline = Date.now() + api.deadlineMs;
  await retrying(
    api.retries,
    deadline,
    () => attempt(api.transport, new URL(plan.url), { method: 'PUT', headers: { 'content-length': source.size }, body: pieces, deadline, signal }),
    (r) => partVerdict(r, 1),
    signal,
  );
}

/** Options of {@link openUrl}. */
export interface OpenUrlOptions {
  signal?: AbortSignal | undefined;
  /** A new URL for the same bytes, asked for when S3 refuses the current one (expired: 403). */
  refresh?: (() => Promise<string | undefined>) | undefined;
  /** Ranges of one {@link BlobReader.pipe} downloaded at once. Default 4. */
  concurrency?: number | undefined;
}

/**
 * A {@link BlobReader} over a presigned GET URL of `size` bytes: each read is a ranged GET, into the
 * caller's memory when given, retried on network errors and 5xx, and must return exactly the bytes
 * asked. Its `pipe` streams ranges as they arrive (`concurrency` at once), resuming a range cut off
 * midway from its first missing byte.
 */
export function openUrl(api: ApiClient, url: string, size: number, o: OpenUrlOptions = {}): BlobReader {
  const { signal, refresh } = o;
  let target = new URL(url);
  /** S3's answer to a ranged GET of `n` bytes at `offset`, judged: anything but exactly those bytes is a failure. */
  const judge = (r: Answer | NetworkFailure, offset: number, n: number, got: () => number): Verdict<Uint8Array> => {
    if ('error' in r)
      return {
        failure: new RemoteError('EUNREACHABLE', `A download from S3 failed (${r.error.message}).`, { cause: r.error, details: { reason: r.error.code } }),
        retryable: true,
      };
    if (r.overflow) return { failure: new RemoteError('EREMOTE', `S3 returned more than the ${n} bytes asked at ${offset}.`, { details: { status: r.status } }), retryable: false };
    if (r.status >= 300) {
      return {
        failure: new RemoteError('EREMOTE', `S3 refused a download (${r.status}); if the link expired, read the entry again.`, { details: { status: r.status } }),
        retryable: r.status >= 500 || r.status === 429,
        waitMs: retryAfterMs(r.headers),
      };
    }
    // A 200 to a ranged request sends the whole object: only right when the range is all of it.
    if (got() !== n || (r.status === 200 && (offset !== 0 || n !== size))) {
      return {
        failure: new RemoteError('EREMOTE', `S3 returned ${got()} of the ${n} bytes asked at ${offset}.`, { details: { status: r.status } }),
        retryable: true,
      };
    }
    return { value: r.body };
  };
  const rangeHeader = (offset: number, n: number) => ({ range: `bytes=${offset}-${offset + n - 1}` });
  const readOnce = (offset: number, n: number, memory: Uint8Array): Promise<Uint8Array> => {
    const deadline = Date.now() + api.deadlineMs;
    return retrying(
      api.retries,
      deadline,
      () => attempt(api.transport, target, { method: 'GET', headers: rangeHeader(offset, n), deadline, into: memory, signal }),
      (r) => judge(r, offset, n, () => ('body' in r ? r.body.length : 0)),
      signal,
    );
  };
  /**
   * Streams `[offset, offset + n)` to `sink` from byte `at.done` on, each attempt asking for the bytes
   * not yet delivered; `at.done` counts them, so a call after a failure (a renewed URL) resumes too.
   */
  const streamRange = async (
    offset: number,
    n: number,
    at: { done: number },
    sink: (piece: Buffer, position: number) => Promise<void>,
    stop: AbortSignal | undefined,
  ): Promise<void> => {
    const deadline = Date.now() + api.deadlineMs;
    let sinkFailure: { error: unknown } | undefined;
    let overflow: RemoteError | undefined;
    let refused: RemoteError | undefined;
    let streamed = false; // whether this attempt's answer went to the sink
    const take = (status: number, headers: Record<string, unknown>) => {
      if (status >= 300) return undefined; // an error: its (small) body is read as usual
      const from = offset + at.done;
      // Only the bytes asked for, from where they were asked: a 206 that says so, or a 200 of the whole object.
      const range = /^bytes (\d+)-/.exec(String(headers['content-range'] ?? ''));
      const right = status === 206 ? range !== null && Number(range[1]) === from : status === 200 && from === 0 && n === size;
      if (!right) {
        // Other bytes than those asked (a 206 of another range, a whole object to a partial range): stop at the first piece, hold none.
        refused ??= new RemoteError('EREMOTE', `S3 did not return the range asked at ${from}.`, { details: { status } });
        return async () => {
          throw refused;
        };
      }
      streamed = true;
      return async (piece: Buffer) => {
        if (at.done + piece.length > n) {
          overflow ??= new RemoteError('EREMOTE', `S3 returned more than the ${n} bytes asked at ${offset}.`, { details: { status } });
          throw overflow;
        }
        try {
          await sink(piece, offset + at.done);
        } catch (error) {
          sinkFailure ??= { error };
          throw error;
        }
        at.done += piece.length;
      };
    };
    try {
      await retrying(
        api.retries,
        deadline,
        () => {
          streamed = false;
          return attempt(api.transport, target, { method: 'GET', headers: rangeHeader(offset + at.done, n - at.done), deadline, stream: take, signal: stop });
        },
        (r): Verdict<Uint8Array> => {
          if (sinkFailure || overflow || refused) return { failure: overflow ?? refused ?? new RemoteError('EREMOTE', 'A download stopped.'), retryable: false };
          // A 2xx not streamed (other bytes than asked, with no body to refuse) is a server's mistake too.
          if (!('error' in r) && r.status < 300 && !streamed)
            return { failure: new RemoteError('EREMOTE', `S3 did not return the range asked at ${offset + at.done}.`, { details: { status: r.status } }), retryable: false };
          return judge(r, offset, n, () => at.done);
        },
        stop,
      );
    } catch (err) {
      if (sinkFailure) throw sinkFailure.error; // the sink's own failure, as it is
      throw err;
    }
  };
  /** Runs `fn`; when S3 refuses the URL (403: expired), runs it once more on a new one. */
  const renewing = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      const fresh = refresh && err instanceof RemoteError && err.details?.status === 403 ? await refresh() : undefined;
      if (!fresh) throw err;
      target = new URL(fresh);
      return fn();
    }
  };
  return {
    size,
    read: async (offset, length, into) => {
      const n = Math.max(0, Math.min(length, size - offset));
      if (n === 0) return new Uint8Array(0);
      const memory = into && into.length >= n ? into.subarray(0, n) : Buffer.allocUnsafe(n);
      return renewing(() => readOnce(offset, n, memory));
    },
    pipe: async (ranges, sink) => {
      for (const r of ranges) {
        if (!(r.offset >= 0 && r.length >= 0 && r.offset + r.length <= size))
          throw new OptionError('EOPTION', `A range of ${r.length} bytes at ${r.offset} is outside the ${size} bytes of this download.`);
      }
      // The first failure stops the other ranges too, not only those yet to start.
      const stopped = new AbortController();
      const stop = signal ? AbortSignal.any([signal, stopped.signal]) : stopped.signal;
      await inParallel(
        ranges.length,
        o.concurrency ?? 4,
        async (i) => {
          const { offset, length } = ranges[i] as ByteRange;
          const at = { done: 0 }; // bytes delivered, kept across a renewed URL
          try {
            if (length > 0) await renewing(() => streamRange(offset, length, at, (piece, position) => sink(piece, position, i), stop));
          } catch (err) {
            stopped.abort();
            throw err;
          }
        },
        true,
      ); // the sink's failures as they are; the others are CachenessErrors already
    },
    close: async () => {},
  };
}

/** Options of {@link readParallel} and {@link downloadToFile}. */
export interface ParallelReadOptions {
  /** Bytes per ranged read. Default 16 MiB. */
  window?: number;
  /** Ranged reads in flight at once. Default 4. */
  concurrency?: number;
  /** Bytes read so far, of `total`. */
  onProgress?: ((p: { bytes: number; total: number }) => void) | undefined;
}

/**
 * Runs `fn(i, slot)` for each `i` in `[0, count)`, at most `concurrency` at once (`slot` tells the
 * running ones apart, for memory of their own). After a failure no new call starts; the first failure
 * is thrown once the running calls end, as a CachenessError unless `asIs`.
 */
async function inParallel(count: number, concurrency: number, fn: (i: number, slot: number) => Promise<void>, asIs = false): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async (slot: number) => {
    while (failed === undefined && next < count) {
      try {
        await fn(next++, slot);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, (_, slot) => worker(slot)));
  if (failed !== undefined) throw asIs ? failed : asCachenessError(failed);
}

/** Runs `fn` over the windows of `[0, size)` (`window` bytes each, the last shorter) in parallel, reporting progress. */
async function inWindows(size: number, o: ParallelReadOptions, fn: (offset: number, length: number, slot: number) => Promise<void>): Promise<void> {
  const window = o.window ?? 16 * 1024 * 1024;
  let done = 0;
  await inParallel(Math.ceil(size / window), o.concurrency ?? 4, async (i, slot) => {
    const offset = i * window;
    const length = Math.min(window, size - offset);
    await fn(offset, length, slot);
    done += length;
    o.onProgress?.({ bytes: done, total: size });
  });
}

/** Reads all of `reader` into `into` (at least `reader.size` bytes) with parallel ranged reads; returns the view of what was read. */
export async function readParallel(reader: BlobReader, into: Uint8Array, o: ParallelReadOptions = {}): Promise<Uint8Array> {
  const out = into.subarray(0, reader.size);
  await inWindows(reader.size, o, async (offset, length) => {
    const got = await reader.read(offset, length, out.subarray(offset, offset + length));
    if (got.length !== length) throw new IntegrityError('EINTEGRITY', `A download returned ${got.length} of the ${length} bytes asked at ${offset}.`);
    if (got.buffer !== out.buffer || got.byteOffset !== out.byteOffset + offset) out.set(got, offset); // a reader that could not read in place
  });
  return out;
}

/**
 * A {@link BlobReader} for one pass from start to end (a chunked container read whole): windows of
 * `window` bytes are fetched `concurrency` at a time ahead of the reads, so a sequential consumer gets
 * parallel ranged GETs without the object being stored first. Memory holds at most `concurrency`
 * windows. A read that jumps (the container's index at its end) is fetched on its own and moves nothing,
 * as is a read of the end before any other (the index, read first: the caller may then `pipe`, which
 * passes straight through to `inner`, reporting progress, and needs no windows).
 */
export function prefetching(inner: BlobReader, o: ParallelReadOptions = {}): BlobReader {
  const window = o.window ?? 16 * 1024 * 1024;
  const ahead = Math.max(1, o.concurrency ?? 4);
  const size = inner.size;
  const lastWindow = Math.max(0, Math.ceil(size / window) - 1);
  const windows = new Map<number, { bytes: Promise<Uint8Array>; memory: Buffer }>();
  // Window memory is reused: fresh memory for every window would cost page faults on every byte.
  const spare: Buffer[] = [];
  let cursor = 0; // the window sequential reads are in
  let fetched = 0;
  let counted = size; // bytes from here on were fetched (and counted) by a jump: windows count only those before
  const fetch = (i: number): Promise<Uint8Array> => {
    let w = windows.get(i);
    if (!w) {
      const offset = i * window;
      const length = Math.min(window, size - offset);
      const memory = spare.pop() ?? Buffer.allocUnsafeSlow(Math.min(window, size));
      const bytes = inner.read(offset, length, memory).then((got) => {
        if (got.length !== length) throw new IntegrityError('EINTEGRITY', `A download returned ${got.length} of the ${length} bytes asked at ${offset}.`);
        fetched += Math.max(0, Math.min(offset + length, counted) - offset);
        o.onProgress?.({ bytes: fetched, total: size });
        return got;
      });
      bytes.catch(() => {}); // awaited by the read that needs it; an unawaited failure is not unhandled
      w = { bytes, memory };
      windows.set(i, w);
    }
    return w.bytes;
  };
  /** Forgets a window; its memory is reused once its download has settled. */
  const drop = (i: number) => {
    const w = windows.get(i);
    if (!w) return;
    windows.delete(i);
    void w.bytes.then(
      () => spare.push(w.memory),
      () => spare.push(w.memory),
    );
  };
  return {
    size,
    read: async (offset, length, into) => {
      const n = Math.max(0, Math.min(length, size - offset));
      if (n === 0) return new Uint8Array(0);
      const first = Math.floor(offset / window);
      const last = Math.floor((offset + n - 1) / window);
      // Far ahead of the pass, the tail (the index) is read once on its own; any other read moves the pass to it.
      if (offset + n === size && (first >= cursor + ahead || windows.size === 0)) {
        const got = await inner.read(offset, n, into);
        if (offset < counted) {
          fetched += counted - offset;
          counted = offset;
          o.onProgress?.({ bytes: fetched, total: size });
        }
        return got;
      }
      for (const i of [...windows.keys()]) if (i < first) drop(i); // behind the pass: done with
      cursor = first;
      for (let i = first; i <= Math.min(lastWindow, first + ahead - 1 + (last - first)); i++) fetch(i);
      const out = into && into.length >= n ? into.subarray(0, n) : Buffer.allocUnsafe(n);
      for (let i = first, at = 0; i <= last; i++) {
        const w = await fetch(i);
        const from = Math.max(offset, i * window) - i * window;
        const to = Math.min(offset + n, (i + 1) * window) - i * window;
        out.set(w.subarray(from, to), at);
        at += to - from;
      }
      return out;
    },
    pipe:
      inner.pipe &&
      ((ranges, sink) =>
        (inner.pipe as NonNullable<BlobReader['pipe']>)(ranges, (piece, position, range) => {
          fetched += Math.max(0, Math.min(position + piece.length, counted) - position); // not what the index read counted
          o.onProgress?.({ bytes: fetched, total: size });
          return sink(piece, position, range);
        })),
    close: async () => {
      for (const i of [...windows.keys()]) drop(i);
      await inner.close();
    },
  };
}

/**
 * Writes all of `reader` into the open file `fh` at the same offsets, with parallel ranged reads, each
 * slot reusing one buffer: memory holds `concurrency` windows whatever the size.
 */
export async function downloadToFile(reader: BlobReader, fh: FileHandle, o: ParallelReadOptions = {}): Promise<void> {
  const window = o.window ?? 16 * 1024 * 1024;
  const buffers: Buffer[] = [];
  await inWindows(reader.size, o, async (offset, length, slot) => {
    buffers[slot] ??= Buffer.allocUnsafeSlow(Math.min(window, reader.size));
    const got = await reader.read(offset, length, buffers[slot]);
    if (got.length !== length) throw new IntegrityError('EINTEGRITY', `A download returned ${got.length} of the ${length} bytes asked at ${offset}.`);
    for (let off = 0; off < got.length; ) off += (await fh.write(got, off, got.length - off, offset + off)).bytesWritten;
  });
}

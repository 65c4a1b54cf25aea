/**
 * Content digests of files and directories, for `file()` / `dir()` key markers (key format 2,
 * docs/key-format.md): XXH3-128 of a file's bytes; for a directory, XXH3-128 of a manifest of its
 * sorted relative paths, sizes and file digests.
 *
 * Reading is asynchronous, in 8 MiB chunks (the next chunk is read while the current one is
 * hashed), so multi-GB inputs never block the event loop for long. A directory's files are hashed
 * on worker threads when there are enough of them (80 files or 1 GiB to read), on the main thread
 * below that (two files in flight: one is read while the other is hashed).
 *
 * A per-process memo maps (path, size, mtime in ns, inode, device) to the digest, so an unchanged
 * file is not read again; any change of those re-reads it. Files modified in the last 2 seconds are
 * not memoized (their mtime could still be the same after another write in the same clock tick).
 * @module
 */
import type { BigIntStats, Dirent } from 'node:fs';
import { type FileHandle, open, readdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { resolve, sep } from 'node:path';
import { KeyError } from '../errors.js';
import { xxh128Hex, xxh128Stream } from '../hash.js';
import { WorkerPool } from '../workers/pool.js';

/** The content identity of a file or a directory. */
export interface ContentDigest {
  kind: 'file' | 'dir';
  /** XXH3-128 (32 lowercase hex digits) of the file's bytes, or of the directory's manifest. */
  xxh128: string;
  /** Bytes: the file's size, or the sum of the sizes of the directory's files. */
  size: number;
  /** Files counted: 1 for a file. */
  files: number;
}

/** Options of {@link hashDir}. */
export interface HashDirOptions {
  /**
   * Hash the files on worker threads: `true`, `false`, or `'auto'` (default): when at least 80
   * files or 1 GiB need reading (files whose digest is memoized do not count).
   */
  parallel?: boolean | 'auto';
}

/** Read and hash in chunks of this many bytes. */
export const HASH_CHUNK_BYTES = 8 * 1024 * 1024;
/** A directory with at least this many files to read is hashed on worker threads. */
export const PARALLEL_MIN_FILES = 80;
/** ... or with at least this many bytes to read. */
export const PARALLEL_MIN_BYTES = 1024 ** 3;
/** Files remembered by the memo (least recently used forgotten first). */
export const MEMO_MAX_ENTRIES = 100_000;
/** Files whose mtime is within this of the time they were hashed are not memoized. */
const RACY_NS = 2_000_000_000n;
/** One worker task hashes files until about this many bytes or files. */
const BATCH_BYTES = 32 * 1024 * 1024;
const BATCH_FILES = 64;
/** Below the parallel threshold, files hashed at once on the main thread (one is read while another is hashed). */
const MAIN_THREAD_FILES = 2;
/** Concurrent stat() calls while walking a directory. */
const STAT_CONCURRENCY = 64;

/** What {@link fileHashStats} reports: counters since the process started (or the last {@link clearFileHashMemo}). */
export interface FileHashStats {
  /** Bytes read and hashed (memo hits read nothing). */
  bytesHashed: number;
  /** Files read and hashed. */
  filesHashed: number;
  /** Files whose digest came from the memo. */
  memoHits: number;
  /** Worker-thread tasks run (each hashes a batch of a directory's files). */
  workerTasks: number;
  /** Files in the memo now. */
  memoEntries: number;
}

const counters = { bytesHashed: 0, filesHashed: 0, memoHits: 0, workerTasks: 0 };

/** Counters of file hashing in this process: how many bytes were read, how many digests the memo saved. */
export function fileHashStats(): FileHashStats {
  return { ...counters, memoEntries: memo.size };
}

/** Forgets every memoized digest (the next resolution re-reads every file) and resets {@link fileHashStats}. */
export function clearFileHashMemo(): void {
  memo.clear();
  counters.bytesHashed = counters.filesHashed = counters.memoHits = counters.workerTasks = 0;
}

// ---------------------------------------------------------------------------------------------
// The memo: path (its bytes, as a latin1 string) -> the file's identity when hashed, and its digest.
// ---------------------------------------------------------------------------------------------

/** The parts of a stat that say whether a file changed. */
interface FileIdentity {
  size: bigint;
  mtimeNs: bigint;
  ino: bigint;
  dev: bigint;
}
interface Memoized {
  identity: string;
  xxh128: string;
  size: number;
}
const memo = new Map<string, Memoized>();

const identityOf = (s: FileIdentity) => `${s.size}:${s.mtimeNs}:${s.ino}:${s.dev}`;
const memoKey = (abs: Buffer) => abs.toString('latin1');

function recall(abs: Buffer, s: FileIdentity): Memoized | undefined {
  const key = memoKey(abs);
  const m = memo.get(key);
  if (!m) return undefined;
  memo.delete(key);
  if (m.identity !== identityOf(s)) return undefined;
  memo.set(key, m); // most recently used last
  counters.memoHits++;
  return m;
}

function remember(abs: Buffer, s: FileIdentity, xxh128: string, size: number, startedMs: number): void {
  counters.filesHashed++;
  // "Racily clean": written so recently that another write in the same timestamp tick (coarse
  // kernel clocks, 1-2 s on HFS+/FAT) would leave size and mtime as they are. Hashed again next time.
  if (s.mtimeNs + RACY_NS > BigInt(startedMs) * 1_000_000n) return;
  const key = memoKey(abs);
  memo.delete(key);
  memo.set(key, { identity: identityOf(s), xxh128, size });
  if (memo.size > MEMO_MAX_ENTRIES) memo.delete(memo.keys().next().value as string);
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

const shown = (abs: Buffer) => abs.toString('utf8');

function pathError(kind: 'file' | 'dir', abs: Buffer, err: unknown): KeyError {
  if (err instanceof KeyError) return err;
  const code = String((err as { code?: unknown })?.code ?? 'EIO');
  const p = shown(abs);
  const byPath = `or key it by name with ${kind}(path, { by: 'path' })`;
  const message =
    code === 'ENOENT' || code === 'ENOTDIR'
      ? `${kind}(): ${p} does not exist. A content key needs the ${kind === 'file' ? 'file' : 'directory'} to exist when the key is resolved: create it first, ${byPath}.`
      : code === 'EACCES' || code === 'EPERM'
        ? `${kind}(): ${p} cannot be read (${code}: permission denied). Make it readable by this process, ${byPath}.`
        : `${kind}(): ${p} cannot be read (${code}: ${(err as Error)?.message ?? err}).`;
  return new KeyError('EKEYFILE', message, { cause: err, details: { path: p, code } });
}

function wrongKind(kind: 'file' | 'dir', abs: Buffer, s: BigIntStats): KeyError {
  const p = shown(abs);
  const message = s.isDirectory()
    ? `file(): ${p} is a directory; key it with dir(path).`
    : s.isFile()
      ? `dir(): ${p} is a file; key it with file(path).`
      : `${kind}(): ${p} is not a regular ${kind === 'file' ? 'file' : 'directory'} (a device, FIFO or socket), which has no stable content to hash.`;
  return new KeyError('EKEYFILE', message, { details: { path: p } });
}

async function statOf(kind: 'file' | 'dir', abs: Buffer): Promise<BigIntStats> {
  try {
    return await stat(abs, { bigint: true });
  } catch (err) {
    throw pathError(kind, abs, err);
  }
}

// ---------------------------------------------------------------------------------------------
// One file, on the main thread
// ---------------------------------------------------------------------------------------------

/**
 * Spare 8 MiB read buffers: a fresh one costs a page fault per 4 KiB on first use, about as long as
 * hashing it. At most two are kept, and only for 10 s after a hash.
 */
const spareChunks: Buffer[] = [];
const MAX_SPARE_CHUNKS = 2;
let dropSpares: NodeJS.Timeout | undefined;
function giveBack(b: Buffer): void {
  if (spareChunks.length < MAX_SPARE_CHUNKS) spareChunks.push(b);
  if (dropSpares) return;
  dropSpares = setTimeout(() => {
    spareChunks.length = 0;
    dropSpares = undefined;
  }, 10_000).unref();
}

/**
 * Reads `expected` bytes into `h`, in chunks, the next chunk read while the current one is hashed.
 * Returns the bytes read (fewer when the file shrank meanwhile).
 */
async function streamInto(fh: FileHandle, h: { update(b: Buffer): void }, expected: number): Promise<number> {
  if (expected === 0) return 0;
  const len = Math.min(HASH_CHUNK_BYTES, expected);
  const chunk = () => spareChunks.pop() ?? Buffer.allocUnsafeSlow(HASH_CHUNK_BYTES);
  const bufs: [Buffer, Buffer | undefined] = [chunk(), undefined];
  let i = 0;
  let pos = 0;
  let pending: Promise<{ bytesRead: number; buffer: Buffer }> | undefined = fh.read(bufs[0], 0, len, 0);
  try {
    for (;;) {
      const { bytesRead, buffer } = await (pending as Promise<{ bytesRead: number; buffer: Buffer }>);
      pending = undefined;
      if (bytesRead === 0) return pos;
      pos += bytesRead;
      const more = pos < expected;
      if (more) {
        i ^= 1;
        const next = (bufs[i] ??= chunk());
        pending = fh.read(next, 0, Math.min(len, expected - pos), pos);
      }
      h.update(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
      if (!more) return pos;
    }
  } finally {
    if (pending) await pending.catch(() => {}); // no read may still be filling a buffer given back below
    for (const b of bufs) if (b) giveBack(b);
  }
}

const sameFile = (a: FileIdentity, b: FileIdentity) => a.size === b.size && a.mtimeNs === b.mtimeNs && a.ino === b.ino && a.dev === b.dev;

/** Hashes one file (and memoizes it), re-reading it when it changed while being read. */
async function readAndHash(kind: 'file' | 'dir', abs: Buffer): Promise<{ xxh128: string; size: number }> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    const startedMs = Date.now();
    let fh: FileHandle;
    try {
      fh = await open(abs, 'r');
    } catch (err) {
      throw pathError(kind, abs, err);
    }
    try {
      const before = await fh.stat({ bigint: true });
      if (!before.isFile()) throw wrongKind(kind, abs, before);
      const h = xxh128Stream();
      const size = await streamInto(fh, h, Number(before.size));
      counters.bytesHashed += size;
      const after = await fh.stat({ bigint: true });
      if (sameFile(before, after) && BigInt(size) === before.size) {
        const xxh128 = h.digest().toString('hex');
        remember(abs, before, xxh128, size, startedMs);
        return { xxh128, size };
      }
    } catch (err) {
      throw pathError(kind, abs, err);
    } finally {
      await fh.close();
    }
  }
  throw new KeyError('EKEYFILE', `${kind}(): ${shown(abs)} kept changing while it was hashed (3 attempts); resolve the key once the file is complete.`, {
    details: { path: shown(abs) },
  });
}

/**
 * The content digest of a file: XXH3-128 of its bytes (symlinks followed). Served from the memo
 * when the file's size, mtime, inode and device are those it had when last hashed.
 * @throws {KeyError} `EKEYFILE` when the path is missing, unreadable, a directory, or not a regular file.
 */
export async function hashFile(path: string): Promise<ContentDigest> {
  const abs = Buffer.from(resolve(path));
  const s = await statOf('file', abs);
  if (!s.isFile()) throw wrongKind('file', abs, s);
  const r = recall(abs, s) ?? (await readAndHash('file', abs));
  return { kind: 'file', xxh128: r.xxh128, size: r.size, files: 1 };
}

// ---------------------------------------------------------------------------------------------
// Directories
// ---------------------------------------------------------------------------------------------

interface Found {
  /** Path relative to the directory, '/'-separated, as the bytes the OS gave. */
  rel: Buffer;
  abs: Buffer;
  stat: BigIntStats;
}

const SEP = Buffer.from(sep);
const SLASH = Buffer.from('/');
/** Errors of stat() on a directory entry that mean "nothing there": a dangling or looping symlink, an entry removed meanwhile. */
const GONE = new Set(['ENOENT', 'ENOTDIR', 'ELOOP']);

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

/** The regular files under `root`, following symlinks; a link back to an enclosing directory is an error. */
async function walk(root: Buffer, rootStat: BigIntStats): Promise<Found[]> {
  const out: Found[] = [];
  const ancestors = new Set<string>([`${rootStat.dev}:${rootStat.ino}`]);
  const visit = async (abs: Buffer, rel: Buffer | undefined): Promise<void> => {
    let entries: Dirent<Buffer>[];
    try {
      entries = await readdir(abs, { withFileTypes: true, encoding: 'buffer' });
    } catch (err) {
      throw pathError('dir', abs, err);
    }
    const base = abs[abs.length - 1] === SEP[0] ? abs : Buffer.concat([abs, SEP]);
    const kids = entries.map((e) => ({ abs: Buffer.concat([base, e.name]), rel: rel ? Buffer.concat([rel, SLASH, e.name]) : Buffer.from(e.name) }));
    const stats = await mapLimit(kids, STAT_CONCURRENCY, async (k) => {
      try {
        return await stat(k.abs, { bigint: true });
      } catch (err) {
        if (GONE.has(String((err as { code?: unknown }).code))) return undefined;
        throw pathError('dir', k.abs, err);
      }
    });
    for (let i = 0; i < kids.length; i++) {
      const s = stats[i];
      const k = kids[i] as (typeof kids)[number];
      if (!s) continue;
      if (s.isFile()) out.push({ rel: k.rel, abs: k.abs, stat: s });
      else if (s.isDirectory()) {
        const id = `${s.dev}:${s.ino}`;
        if (ancestors.has(id)) {
          throw new KeyError(
            'EKEYFILE',
            `dir(): ${shown(root)} contains a symbolic link back to an enclosing directory (${shown(k.abs)}), so its tree is infinite; remove the link, or key it by name with dir(path, { by: 'path' }).`,
            { details: { path: shown(root), link: shown(k.abs) } },
          );
        }
        ancestors.add(id);
        await visit(k.abs, k.rel);
        ancestors.delete(id);
      }
      // anything else (FIFO, socket, device) is not content: skipped
    }
  };
  await visit(root, undefined);
  return out;
}

/**
 * Worker task: hash a batch of files (paths as latin1 strings of their bytes) with the 8 MiB chunk
 * each worker keeps. Per file: bytes read, identity before reading, and whether it changed meanwhile.
 */
const HASH_FILES_TASK = `(input, env) => {
  const fs = require('node:fs');
  const { XXHash128 } = env.modules.xxhash;
  const seed = Buffer.alloc(8); // XXHash128 crashes without an explicit seed (xxhash-addon 2.1.0)
  let buf = globalThis.cachenessHashChunk;
  if (!buf || buf.length !== input.chunk) buf = globalThis.cachenessHashChunk = Buffer.allocUnsafeSlow(input.chunk);
  const digests = new Uint8Array(16 * input.paths.length);
  const files = input.paths.map((p, i) => {
    const startedMs = Date.now();
    let fd = -1;
    let read = 0;
    try {
      fd = fs.openSync(Buffer.from(p, 'latin1'), 'r');
      const before = fs.fstatSync(fd, { bigint: true });
      if (!before.isFile()) return { read, error: { code: 'ENOTFILE', message: 'not a regular file' } };
      const expected = Number(before.size);
      const h = new XXHash128(seed);
      while (read < expected) {
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, expected - read), read);
        if (n === 0) break;
        h.update(n === buf.length ? buf : buf.subarray(0, n));
        read += n;
      }
      const after = fs.fstatSync(fd, { bigint: true });
      digests.set(h.digest(), 16 * i);
      const changed = read !== expected || after.size !== before.size || after.mtimeNs !== before.mtimeNs || after.ino !== before.ino || after.dev !== before.dev;
      return { read, size: before.size, mtimeNs: before.mtimeNs, ino: before.ino, dev: before.dev, startedMs, changed };
    } catch (err) {
      return { read, error: { code: err.code || 'EIO', message: err.message } };
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  });
  env.transfer(digests);
  return { digests, files };
}`;

type WorkerFile = { read: number; error: { code: string; message: string } } | ({ read: number; error?: undefined; startedMs: number; changed: boolean } & FileIdentity);

let pool: WorkerPool | undefined;
function hashPool(): WorkerPool {
  pool ??= new WorkerPool({ tasks: { 'xxh128-files': HASH_FILES_TASK }, modules: { xxhash: createRequire(import.meta.url).resolve('xxhash-addon') } });
  return pool;
}

/** Hashes the files `todo` (indices into `found`) on worker threads, in batches. */
async function hashInWorkers(found: Found[], todo: number[], results: ({ xxh128: string; size: number } | undefined)[]): Promise<void> {
  const batches: number[][] = [];
  let batch: number[] = [];
  let batchBytes = 0;
  for (const i of todo) {
    batch.push(i);
    batchBytes += Number((found[i] as Found).stat.size);
    if (batch.length >= BATCH_FILES || batchBytes >= BATCH_BYTES) {
      batches.push(batch);
      batch = [];
      batchBytes = 0;
    }
  }
  if (batch.length) batches.push(batch);
  const workers = hashPool();
  await Promise.all(
    batches.map(async (b) => {
      const out = await workers
        .run<{ digests: Uint8Array; files: WorkerFile[] }>('xxh128-files', { paths: b.map((i) => memoKey((found[i] as Found).abs)), chunk: HASH_CHUNK_BYTES })
        .catch((err: unknown) => {
          // the pool itself failed (a worker could not start or crashed): still an error of this key's resolution
          throw new KeyError('EKEYFILE', `dir(): hashing files on worker threads failed (${(err as Error)?.message ?? err}); resolve the key again.`, {
            cause: err,
          });
        });
      counters.workerTasks++;
      for (let j = 0; j < b.length; j++) {
        const i = b[j] as number;
        const { abs } = found[i] as Found;
        const r = out.files[j] as WorkerFile;
        counters.bytesHashed += r.read;
        if (r.error) {
          if (r.error.code === 'ENOTFILE')
            throw new KeyError('EKEYFILE', `dir(): ${shown(abs)} stopped being a regular file while the directory was hashed; resolve the key again.`);
          throw pathError('dir', abs, Object.assign(new Error(r.error.message), { code: r.error.code }));
        }
        if (r.changed) {
          results[i] = await readAndHash('dir', abs); // written while read: once more, on this thread
          continue;
        }
        const xxh128 = Buffer.from(out.digests.buffer, out.digests.byteOffset + 16 * j, 16).toString('hex');
        remember(abs, r, xxh128, r.read, r.startedMs);
        results[i] = { xxh128, size: r.read };
      }
    }),
  );
}

/**
 * The content digest of a directory: XXH3-128 of its manifest, which lists every regular file under
 * it (symlinks followed; empty directories, FIFOs, sockets and devices ignored) in byte order of
 * its '/'-separated relative path, each as `u32(path length) ‖ path ‖ f64(size) ‖ XXH3-128(bytes)`,
 * after `u32(file count)`. Exact rules: docs/key-format.md, format 2.
 * @throws {KeyError} `EKEYFILE` when the path is missing, unreadable or a file, or contains a symlink cycle.
 */
export async function hashDir(path: string, options: HashDirOptions = {}): Promise<ContentDigest> {
  const abs = Buffer.from(resolve(path));
  const s = await statOf('dir', abs);
  if (!s.isDirectory()) throw wrongKind('dir', abs, s);
  const found = await walk(abs, s);
  found.sort((a, b) => Buffer.compare(a.rel, b.rel));
  const results = new Array<{ xxh128: string; size: number } | undefined>(found.length);
  const todo: number[] = [];
  let todoBytes = 0;
  for (let i = 0; i < found.length; i++) {
    const f = found[i] as Found;
    const m = recall(f.abs, f.stat);
    if (m) results[i] = m;
    else {
      todo.push(i);
      todoBytes += Number(f.stat.size);
    }
  }
  const parallel = options.parallel ?? 'auto';
  if (todo.length > 0) {
    if (parallel === true || (parallel === 'auto' && (todo.length >= PARALLEL_MIN_FILES || todoBytes >= PARALLEL_MIN_BYTES))) await hashInWorkers(found, todo, results);
    else await mapLimit(todo, MAIN_THREAD_FILES, async (i) => (results[i] = await readAndHash('dir', (found[i] as Found).abs)));
  }
  return { kind: 'dir', ...manifestDigest(found, results as { xxh128: string; size: number }[]) };
}

/** XXH3-128 of `u32(n) ‖ for each file: u32(len) ‖ rel ‖ f64(size) ‖ digest`, plus the totals. */
function manifestDigest(found: Found[], results: { xxh128: string; size: number }[]): { xxh128: string; size: number; files: number } {
  let length = 4;
  for (const f of found) length += 4 + f.rel.length + 8 + 16;
  const m = Buffer.allocUnsafe(length);
  let at = m.writeUInt32BE(found.length, 0);
  let size = 0;
  for (let i = 0; i < found.length; i++) {
    const { rel } = found[i] as Found;
    const r = results[i] as { xxh128: string; size: number };
    at = m.writeUInt32BE(rel.length, at);
    at += rel.copy(m, at);
    at = m.writeDoubleBE(r.size, at);
    at += m.write(r.xxh128, at, 'hex');
    size += r.size;
  }
  return { xxh128: xxh128Hex(m), size, files: found.length };
}

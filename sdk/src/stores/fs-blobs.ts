/**
 * Filesystem blob store: `blobs/ab/cd/<name>` sharded by the leading hex of the name; each blob is
 * written to `tmp/<pid>-<random>` and renamed into place, so a reader or a crash never sees a
 * partial blob.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { StoreError } from '../errors.js';
import { isPidAlive } from '../owner.js';
import type { BlobReader, BlobStage, BlobStore } from './types.js';

/** Options of {@link FsBlobStore}. */
export interface FsBlobStoreOptions {
  /** Root directory; `blobs/` and `tmp/` are created under it. */
  dir: string;
  /** fsync each blob before publishing it (survives power loss, slower). Default false. */
  fsync?: boolean;
}

const NAME = /^[0-9a-f]{4,}\.[0-9a-f]+$/;

/** {@link BlobStore} on a local directory. */
export class FsBlobStore implements BlobStore {
  readonly blobDir: string;
  readonly tmpDir: string;
  private readonly fsync: boolean;
  private readonly shards = new Set<string>();

  constructor(opts: FsBlobStoreOptions) {
    this.blobDir = join(opts.dir, 'blobs');
    this.tmpDir = join(opts.dir, 'tmp');
    this.fsync = opts.fsync ?? false;
    mkdirSync(this.blobDir, { recursive: true });
    mkdirSync(this.tmpDir, { recursive: true });
  }

  /** Path of a blob on disk. */
  pathOf(name: string): string {
    if (!NAME.test(name)) throw new StoreError('ESTORE', `Invalid blob name ${JSON.stringify(name)}.`);
    return join(this.blobDir, name.slice(0, 2), name.slice(2, 4), name);
  }

  async write(name: string, data: Uint8Array): Promise<void> {
    this.pathOf(name);
    for (let attempt = 1; ; attempt++) {
      const tmp = this.tmpPath();
      try {
        await writeAll(tmp, data, this.fsync);
        await this.place(tmp, name);
        return;
      } catch (err) {
        await rm(tmp, { force: true });
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && attempt === 1) {
          // The temp directory was removed under us (clear, repair, a user): recreate it and retry once.
          await mkdir(this.tmpDir, { recursive: true });
          continue;
        }
        throw this.writeError(name, err);
      }
    }
  }

  async stage(): Promise<BlobStage> {
    const tmp = this.tmpPath();
    let fh: FileHandle;
    try {
      fh = await open(tmp, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw this.writeError('(staged)', err);
      await mkdir(this.tmpDir, { recursive: true });
      fh = await open(tmp, 'wx');
    }
    let size = 0;
    let state: 'open' | 'published' | 'aborted' = 'open';
    const abort = async () => {
      if (state !== 'open') return;
      state = 'aborted';
      await fh.close().catch(() => {});
      await rm(tmp, { force: true });
    };
    return {
      get size() {
        return size;
      },
      write: async (data) => {
        if (state !== 'open') throw new StoreError('ESTORE', `This blob stage was already ${state}.`);
        try {
          for (let off = 0; off < data.length; ) off += (await fh.write(data, off, Math.min(CHUNK, data.length - off))).bytesWritten;
          size += data.length;
        } catch (err) {
          await abort();
          throw this.writeError('(staged)', err);
        }
      },
      publish: async (name) => {
        if (state !== 'open') throw new StoreError('ESTORE', `This blob stage was already ${state}.`);
        try {
          this.pathOf(name);
          if (this.fsync) await fh.sync();
          await fh.close();
          state = 'published';
          await this.place(tmp, name);
        } catch (err) {
          state = 'open';
          await abort();
          throw this.writeError(name, err);
        }
      },
      abort,
    };
  }

  private tmpPath(): string {
    return join(this.tmpDir, `${process.pid}-${randomBytes(6).toString('hex')}`);
  }

  /** Renames a finished temp file into place, creating its shard directory (again, if it was removed meanwhile). */
  private async place(tmp: string, name: string): Promise<void> {
    const dest = this.pathOf(name);
    const shard = dirname(dest);
    for (let attempt = 1; ; attempt++) {
      if (!this.shards.has(shard)) {
        await mkdir(shard, { recursive: true });
        this.shards.add(shard);
      }
      try {
        await rename(tmp, dest);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 1) throw err;
        this.shards.delete(shard);
      }
    }
  }

  private writeError(name: string, err: unknown): StoreError {
    if (err instanceof StoreError) return err;
    return new StoreError('ESTORE', `Could not write blob ${name} under ${this.blobDir}: ${(err as Error).message}. Check free disk space and permissions.`, { cause: err });
  }

  async read(name: string): Promise<Uint8Array | undefined> {
    try {
      return await readAll(this.pathOf(name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async open(name: string): Promise<BlobReader | undefined> {
    return openFileReader(this.pathOf(name));
  }

  /**
   * Writes blob `name` through `fill`, which gets an open temp file to write at any offsets (parallel
   * downloads); the blob appears whole, renamed into place once `fill` resolves, or not at all.
   */
  async receive(name: string, fill: (fh: FileHandle) => Promise<void>): Promise<void> {
    this.pathOf(name);
    await mkdir(this.tmpDir, { recursive: true });
    const tmp = this.tmpPath();
    const fh = await open(tmp, 'wx');
    try {
      await fill(fh);
      if (this.fsync) await fh.sync();
      await fh.close();
      await this.place(tmp, name);
    } catch (err) {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async size(name: string): Promise<number | undefined> {
    try {
      return (await stat(this.pathOf(name))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async delete(names: string[]): Promise<void> {
    await Promise.all(
      names.map((n) =>
        unlink(this.pathOf(n)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        }),
      ),
    );
  }

  async *names(): AsyncIterable<string> {
    for (const a of await readdir(this.blobDir).catch(() => [] as string[])) {
      for (const b of await readdir(join(this.blobDir, a)).catch(() => [] as string[])) {
        for (const name of await readdir(join(this.blobDir, a, b)).catch(() => [] as string[])) {
          if (NAME.test(name)) yield name;
        }
      }
    }
  }

  async sweepPartial(olderThanMs: number): Promise<number> {
    let removed = 0;
    const now = Date.now();
    for (const f of await readdir(this.tmpDir).catch(() => [] as string[])) {
      const pid = Number(f.split('-')[0]);
      const path = join(this.tmpDir, f);
      const st = await stat(path).catch(() => undefined);
      if (!st) continue;
      if (!isPidAlive(pid) || now - st.mtimeMs > olderThanMs) {
        await rm(path, { force: true });
        removed++;
      }
    }
    return removed;
  }

  async close(): Promise<void> {}
}

/**
 * Opens the file at `path` for reads at any offset (a {@link BlobReader}); undefined when it is missing.
 * An open file keeps its bytes even if it is deleted (unlinked) meanwhile.
 */
export async function openFileReader(path: string): Promise<BlobReader | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let size: number;
  try {
    size = (await fh.stat()).size;
  } catch (err) {
    await fh.close();
    throw err;
  }
  let closed: Promise<void> | undefined;
  return {
    size,
    read: async (offset, length, into) => {
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
        throw new StoreError('ESTORE', `Invalid blob read of ${length} bytes at ${offset}.`);
      }
      const n = Math.max(0, Math.min(length, size - offset));
      const out = into && into.length >= n ? into.subarray(0, n) : Buffer.allocUnsafe(n);
      let off = 0;
      while (off < out.length) {
        const { bytesRead } = await fh.read(out, off, Math.min(CHUNK, out.length - off), offset + off);
        if (bytesRead === 0) break;
        off += bytesRead;
      }
      return off === out.length ? out : out.subarray(0, off);
    },
    close: () => {
      closed ??= fh.close();
      return closed;
    },
  };
}

/** I/O step: fs.writeFile/readFile move 512 KiB per thread-pool round trip; large blobs go about twice as fast in 8 MiB steps. */
const CHUNK = 8 * 1024 * 1024;

async function writeAll(path: string, data: Uint8Array, fsync: boolean): Promise<void> {
  const fh = await open(path, 'wx');
  try {
    for (let off = 0; off < data.length; ) off += (await fh.write(data, off, Math.min(CHUNK, data.length - off))).bytesWritten;
    if (fsync) await fh.sync();
  } finally {
    await fh.close();
  }
}

async function readAll(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const out = Buffer.allocUnsafe(size);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(out, off, Math.min(CHUNK, size - off), off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    // Published blobs never change, so a short read means a truncated file: return what is there (the size check reports it).
    return off === size ? out : out.subarray(0, off);
  } finally {
    await fh.close();
  }
}

import type { BlobReader, BlobStage, BlobStore } from './types.js';

/** {@link BlobStore} in process memory, for tests and ephemeral caches. */
export class MemoryBlobStore implements BlobStore {
  private readonly blobs = new Map<string, Uint8Array>();

  async write(name: string, data: Uint8Array): Promise<void> {
    this.blobs.set(name, Uint8Array.prototype.slice.call(data)); // own copy: the caller may reuse its buffer
  }
  async stage(): Promise<BlobStage> {
    const parts: Buffer[] = [];
    let size = 0;
    let spent = false;
    return {
      get size() {
        return size;
      },
      write: async (data) => {
        if (spent) throw new Error('This blob stage was already published or aborted.');
        parts.push(Buffer.from(data)); // own copy
        size += data.length;
      },
      publish: async (name) => {
        if (spent) throw new Error('This blob stage was already published or aborted.');
        spent = true;
        this.blobs.set(name, Buffer.concat(parts, size));
        parts.length = 0;
      },
      abort: async () => {
        spent = true;
        parts.length = 0;
      },
    };
  }
  async read(name: string): Promise<Uint8Array | undefined> {
    const b = this.blobs.get(name);
    return b && Buffer.from(b); // a copy: callers own what they read
  }
  async open(name: string): Promise<BlobReader | undefined> {
    const b = this.blobs.get(name);
    if (!b) return undefined;
    return {
      size: b.length,
      read: async (offset, length, into) => {
        const part = b.subarray(offset, offset + length);
        if (!into || into.length < part.length) return Buffer.from(part);
        into.set(part);
        return into.subarray(0, part.length);
      },
      close: async () => {},
    };
  }
  async size(name: string): Promise<number | undefined> {
    return this.blobs.get(name)?.length;
  }
  async delete(names: string[]): Promise<void> {
    for (const n of names) this.blobs.delete(n);
  }
  async *names(): AsyncIterable<string> {
    yield* [...this.blobs.keys()];
  }
  async sweepPartial(): Promise<number> {
    return 0;
  }
  async close(): Promise<void> {
    this.blobs.clear();
  }
}

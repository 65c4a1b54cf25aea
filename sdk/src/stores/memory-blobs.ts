import type { BlobStore } from './types.js';

/** {@link BlobStore} in process memory, for tests and ephemeral caches. */
export class MemoryBlobStore implements BlobStore {
  private readonly blobs = new Map<string, Uint8Array>();

  async write(name: string, data: Uint8Array): Promise<void> {
    this.blobs.set(name, Uint8Array.prototype.slice.call(data)); // own copy: the caller may reuse its buffer
  }
  async read(name: string): Promise<Uint8Array | undefined> {
    const b = this.blobs.get(name);
    return b && Buffer.from(b); // a copy: callers own what they read
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

/**
 * A file being stored (`cache.putFile`): a byte stream like any other for handlers, which the cache
 * reads straight into its chunk memory instead of through a read stream's buffers.
 * @module
 */
import type { FileHandle } from 'node:fs/promises';
import { ValueError } from '../errors.js';
import { ChunkBuffers } from './buffers.js';

/** An open file, read from its start. The caller keeps ownership of the handle. */
export class FileSource implements AsyncIterable<Uint8Array> {
  constructor(
    private readonly fh: FileHandle,
    /** For error messages. */
    readonly path: string,
    /** The file's size when opened (for progress reports). */
    readonly size?: number,
  ) {}

  /** The file's bytes in pieces of 1 MiB, each the consumer's to keep. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.chunks(new ChunkBuffers(1024 * 1024, 0));
  }

  /**
   * The file's bytes in chunks of exactly `buffers.size` bytes (the last may be shorter), each read
   * into memory from `buffers`. A failed read ends the chunks with `ESTREAM`.
   */
  async *chunks(buffers: ChunkBuffers): AsyncGenerator<Buffer> {
    for (let pos = 0; ; ) {
      const buf = buffers.take();
      let fill = 0;
      while (fill < buf.length) {
        let n: number;
        try {
          n = (await this.fh.read(buf, fill, buf.length - fill, pos)).bytesRead;
        } catch (cause) {
          buffers.release(buf);
          throw new ValueError('ESTREAM', `Reading ${this.path} failed: ${(cause as Error).message}. Nothing was stored.`, { cause, details: { path: this.path } });
        }
        if (n === 0) break;
        fill += n;
        pos += n;
      }
      if (fill === 0) return buffers.release(buf);
      yield fill === buf.length ? buf : buf.subarray(0, fill);
      if (fill < buf.length) return;
    }
  }
}

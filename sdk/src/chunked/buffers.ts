/**
 * Reused chunk memory. A stream of any length cycles through a few buffers instead of leaving one per
 * chunk to the garbage collector: V8 collects memory outside its heap only after tens of MiB of it
 * have piled up, so per-chunk buffers would make a long stream's memory grow well past the few
 * chunks it holds at a time.
 * @module
 */

/** A free list of buffers of `size` bytes. */
export class ChunkBuffers {
  private readonly free: Buffer[] = [];
  /**
   * @param size Bytes of each buffer.
   * @param keep How many released buffers to keep for reuse (more are left to the collector).
   */
  constructor(
    readonly size: number,
    private readonly keep = 8,
  ) {}

  /**
   * A buffer of {@link size} bytes, reused when one is free. A request for more than `size` gets
   * memory of its own (which {@link release} will not keep).
   */
  take(bytes = this.size): Buffer {
    if (bytes > this.size) return Buffer.allocUnsafeSlow(bytes);
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  /** Takes back memory from {@link take} for reuse; views of it, and other memory, are ignored. */
  release = (chunk: Uint8Array): void => {
    const b = chunk.buffer;
    const whole = chunk.byteOffset === 0 && chunk.byteLength === this.size && b.byteLength === this.size;
    if (whole && this.free.length < this.keep && !this.free.some((f) => f.buffer === b)) {
      this.free.push(Buffer.from(b, 0, this.size));
    }
  };
}

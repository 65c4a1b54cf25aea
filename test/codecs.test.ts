/** Codecs writing into caller memory: the same bytes as the libraries' own calls, and damage still detected. */

import * as lz4 from 'lz4-wasm-nodejs';
import { describe, expect, it } from 'vitest';
import { compressorOf, decompress } from '../sdk/src/compression.js';
import { LZ4_INTO, lz4Compress, lz4Decompress } from '../sdk/src/lz4.js';

/** Compressible bytes: a slow counter with a noisy byte every 16. */
function sample(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let seed = 7;
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    b[i] = i % 16 === 0 ? seed >>> 24 : (i >> 8) & 0xff;
  }
  return b;
}

describe('lz4 into caller memory', () => {
  it('uses the WebAssembly exports of the pinned lz4-wasm-nodejs (a version bump that changes them fails here)', () => {
    expect(LZ4_INTO).toBe(true);
  });

  it('compresses and decompresses to the same bytes as the package, into the memory given', () => {
    for (const n of [0, 1, 4096, 1_000_000]) {
      const data = sample(n);
      const want = Buffer.from(lz4.compress(data));
      const into = Buffer.alloc(n + 1024);
      const packed = lz4Compress(data, into);
      expect(Buffer.from(packed).equals(want)).toBe(true);
      expect(packed.buffer === into.buffer).toBe(true);
      const out = Buffer.alloc(n + 10, 9);
      const back = lz4Decompress(packed, out);
      expect(back.buffer === out.buffer).toBe(true);
      expect(Buffer.from(back).equals(data)).toBe(true);
      expect(out[n]).toBe(9); // nothing past the payload
      expect(Buffer.from(lz4Decompress(want)).equals(data)).toBe(true); // no memory given: new memory
    }
  });

  it('returns new memory when the given memory is too small, and leaves it alone', () => {
    const data = sample(100_000);
    const small = Buffer.alloc(16);
    const packed = lz4Compress(data, small);
    expect(packed.length).toBeLessThan(data.length / 2);
    expect(packed.buffer === small.buffer).toBe(false);
    const back = lz4Decompress(packed, small);
    expect(back.buffer === small.buffer).toBe(false);
    expect(Buffer.from(back).equals(data)).toBe(true);
    expect(small.equals(Buffer.alloc(16))).toBe(true);
  });

  it('rejects damaged input as the package does, and keeps working after', () => {
    const packed = Buffer.from(lz4Compress(sample(100_000)));
    packed.writeUInt32LE(50_000_000, 0); // claims far more than it holds
    expect(() => lz4.decompress(packed)).toThrow();
    expect(() => lz4Decompress(packed, Buffer.alloc(200_000))).toThrow();
    const data = sample(5_000);
    expect(Buffer.from(lz4Decompress(lz4Compress(data), Buffer.alloc(6_000))).equals(data)).toBe(true);
  });
});

describe('codecs with caller memory', () => {
  it("codec 'none' returns the stored bytes themselves", () => {
    const data = sample(1000);
    expect(decompress('none', data, data.length, Buffer.alloc(2000))).toBe(data);
  });

  it('zstd writes into the memory given and decodes what its own compress made', () => {
    const data = sample(300_000);
    const into = Buffer.alloc(400_000);
    const packed = compressorOf('zstd', 3, into)(data);
    expect(packed.buffer === into.buffer).toBe(true);
    const own = compressorOf('zstd', 3)(data);
    const out = Buffer.alloc(300_000);
    for (const p of [packed, own]) {
      const back = decompress('zstd', p, data.length, out);
      expect(back.buffer === out.buffer).toBe(true);
      expect(Buffer.from(back).equals(data)).toBe(true);
    }
    // A frame holding more than the recorded size fails instead of overrunning.
    expect(() => decompress('zstd', own, 1000, Buffer.alloc(300_000))).toThrow();
  });
});

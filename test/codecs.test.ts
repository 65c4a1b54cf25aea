/** Codecs writing into caller memory: the same bytes as the libraries' own calls, and damage still detected. */

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCache } from 'cacheness';
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
      const back = lz4Decompress(packed, n, out);
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
    const back = lz4Decompress(packed, data.length, small);
    expect(back.buffer === small.buffer).toBe(false);
    expect(Buffer.from(back).equals(data)).toBe(true);
    expect(small.equals(Buffer.alloc(16))).toBe(true);
  });

  it('rejects damaged input as the package does, and keeps working after', () => {
    const packed = Buffer.from(lz4Compress(sample(100_000)));
    packed.writeUInt32LE(50_000_000, 0); // claims far more than it holds
    expect(() => lz4.decompress(packed)).toThrow();
    expect(() => lz4Decompress(packed, undefined, Buffer.alloc(200_000))).toThrow();
    const data = sample(5_000);
    expect(Buffer.from(lz4Decompress(lz4Compress(data), 5_000, Buffer.alloc(6_000))).equals(data)).toBe(true);
  });

  it('refuses a block whose size prefix differs from the recorded size, before its memory grows to the claim', () => {
    const memory = () => (lz4 as unknown as { __wasm: { memory: { buffer: ArrayBuffer } } }).__wasm.memory.buffer.byteLength;
    const packed = Buffer.from(lz4Compress(sample(100_000)));
    packed.writeUInt32LE(400_000_000, 0); // claims 400 MB
    const before = memory();
    expect(() => lz4Decompress(packed, 100_000)).toThrow(/claims 400000000 bytes, 100000 were stored/);
    expect(memory()).toBe(before);
    expect(() => lz4Decompress(Buffer.from([1, 2]), 100_000)).toThrow(/claims -1 bytes/); // too short for a prefix
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
    expect(Buffer.from(packed).equals(Buffer.from(own))).toBe(true); // the same bytes as zstd-napi's own compress (which workers use)
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

describe('a codec this process lacks', () => {
  it('fails reads with ECODEC and keeps the entry, whole or chunked (zstd-napi uninstalled in a child process)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cacheness-nozstd-'));
    try {
      for (const [label, chunkSize] of [
        ['whole', 8 * 1024 * 1024],
        ['chunked', 64 * 1024],
      ] as const) {
        const at = join(dir, label);
        const cache = createCache({ dir: at, compression: { codec: 'zstd' }, chunkSize });
        const data = sample(1_000_000);
        expect((await cache.put(data, 'z')).codec).toBe(label === 'whole' ? 'zstd' : 'chunked');
        await cache.close();
        const child = spawn(
          process.execPath,
          [
            '--require',
            fileURLToPath(new URL('./fixtures/without-zstd.cjs', import.meta.url)),
            '--conditions=source',
            '--import',
            'tsx',
            fileURLToPath(new URL('./fixtures/read-without-zstd.ts', import.meta.url)),
            at,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (err += d));
        const code = await new Promise((r) => child.on('exit', r));
        expect(code, err).toBe(0);
        expect(JSON.parse(out)).toEqual({ get: 'ECODEC', getStream: 'ECODEC', getFile: 'ECODEC', still: 'true' });
        const again = createCache({ dir: at, compression: { codec: 'zstd' }, chunkSize });
        expect(Buffer.from((await again.get('z')) as Uint8Array).equals(data)).toBe(true); // intact for a process that has zstd
        await again.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

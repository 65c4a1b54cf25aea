/**
 * Hashes: XXH3-64 names keys, XXH3-128 checks and addresses content. Two implementations of the
 * same digests, each used where it is fastest (measured in docs/benchmarks.md): `@node-rs/xxhash`
 * for small inputs and 64-bit keys, `xxhash-addon` for large buffers (about 18 GB/s here, against
 * 2.5 GB/s for the other's one-shot 128-bit function).
 * @module
 */
import { xxh3 } from '@node-rs/xxhash';
import xxhashAddon from 'xxhash-addon'; // CommonJS: its named exports are not visible to Node's ESM loader

const { XXHash128 } = xxhashAddon;

/** Inputs at least this large go to the SIMD-friendly addon. */
const LARGE = 16 * 1024;

/** XXH3-64 of `data` as 16 lowercase hex characters. */
export function xxh64Hex(data: Uint8Array): string {
  return xxh3.xxh64(asBuffer(data)).toString(16).padStart(16, '0');
}

/** XXH3-128 of `data` as 32 lowercase hex characters: the content hash of stored payloads. */
export function xxh128Hex(data: Uint8Array): string {
  if (data.length >= LARGE) return XXHash128.hash(asBuffer(data)).toString('hex');
  return xxh3.xxh128(asBuffer(data)).toString(16).padStart(32, '0');
}

/** Raw 16-byte XXH3-128 digest (big-endian), used inside key encodings. */
export function xxh128Bytes(data: Uint8Array): Buffer {
  if (data.length >= LARGE) return XXHash128.hash(asBuffer(data));
  const v = xxh3.xxh128(asBuffer(data));
  const out = Buffer.allocUnsafe(16);
  out.writeBigUInt64BE(v >> 64n, 0);
  out.writeBigUInt64BE(v & 0xffff_ffff_ffff_ffffn, 8);
  return out;
}

/** An incremental XXH3-128 (seed 0): `update` with chunks in order, then `digest` or `digestHex`, equal to {@link xxh128Bytes} / {@link xxh128Hex} of the whole. */
export interface Hasher128 {
  update(data: Uint8Array): void;
  /** 16 bytes, big-endian. */
  digest(): Buffer;
  digestHex(): string;
}

/** Seed 0 as the 8 bytes xxhash-addon expects. Its streaming constructor crashes the process (2.1.0) when given no seed. */
const SEED_0 = Buffer.alloc(8);

/** Starts an incremental XXH3-128. */
export function xxh128Stream(): Hasher128 {
  const h = new XXHash128(SEED_0);
  return {
    update: (data) => {
      if (data.length) h.update(asBuffer(data));
    },
    digest: () => h.digest(),
    digestHex: () => h.digest().toString('hex'),
  };
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

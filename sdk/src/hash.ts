import { xxh3 } from '@node-rs/xxhash';

/** XXH3-64 of `data` as 16 lowercase hex characters. */
export function xxh64Hex(data: Uint8Array): string {
  return xxh3.xxh64(asBuffer(data)).toString(16).padStart(16, '0');
}

/** XXH3-128 of `data` as 32 lowercase hex characters: the content hash of stored payloads. */
export function xxh128Hex(data: Uint8Array): string {
  return xxh3.xxh128(asBuffer(data)).toString(16).padStart(32, '0');
}

/** Raw 16-byte XXH3-128 digest (big-endian), used inside key encodings. */
export function xxh128Bytes(data: Uint8Array): Buffer {
  const v = xxh3.xxh128(asBuffer(data));
  const out = Buffer.allocUnsafe(16);
  out.writeBigUInt64BE(v >> 64n, 0);
  out.writeBigUInt64BE(v & 0xffff_ffff_ffff_ffffn, 8);
  return out;
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * The content hash of stored bytes (XXH3-128, 32 lowercase hex characters), as the SDK defines it in
 * `cacheness`'s hash module, computed with WebAssembly instead of the SDK's native addons: the Lambda
 * bundle then needs no platform-specific binary. A test checks both give the same digest.
 * @module
 */
// hash-wasm's single-algorithm build (20 kB); its package entry would pull every algorithm into a bundle.
import hashWasm from 'hash-wasm/dist/xxhash128.umd.min.js'; // UMD: Node sees only a default export

const { xxhash128 } = hashWasm;

/** XXH3-128 of `data` as 32 lowercase hex characters. */
export function contentHashHex(data: Uint8Array): Promise<string> {
  return xxhash128(data);
}

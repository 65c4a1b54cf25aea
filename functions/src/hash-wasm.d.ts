/** Types for hash-wasm's single-algorithm builds, which ship without declarations of their own. */
declare module 'hash-wasm/dist/xxhash128.umd.min.js' {
  const hashWasm: { xxhash128: typeof import('hash-wasm').xxhash128 };
  export default hashWasm;
}

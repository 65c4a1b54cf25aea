/**
 * lz4 (the `lz4-wasm-nodejs` package: lz4_flex compiled to WebAssembly, size-prepended blocks) with
 * output into the caller's memory. The package's functions copy every result out of WebAssembly into
 * a new buffer; a multi-GB stream would leave one such buffer per chunk for the garbage collector,
 * which lets tens of MiB pile up between its runs. Here the result is copied into `into` instead,
 * when given and large enough.
 *
 * This calls the module's WebAssembly exports the way its generated glue does (the wasm-bindgen ABI
 * of the pinned version, 0.9.2). If the exports are not the expected ones, every call goes through
 * the package's public functions instead (same bytes, one more buffer per call).
 * @module
 */
import * as lz4 from 'lz4-wasm-nodejs';

interface Lz4Wasm {
  /** The module's WebAssembly memory (its `buffer` is replaced when it grows). */
  memory: { readonly buffer: ArrayBuffer };
  compress(retptr: number, ptr: number, len: number): void;
  decompress(retptr: number, ptr: number, len: number): void;
  __wbindgen_add_to_stack_pointer(delta: number): number;
  __wbindgen_malloc(size: number): number;
  __wbindgen_free(ptr: number, size: number): void;
}

const wasm = ((): Lz4Wasm | undefined => {
  const w = (lz4 as unknown as { __wasm?: Partial<Lz4Wasm> }).__wasm;
  const fns = ['compress', 'decompress', '__wbindgen_add_to_stack_pointer', '__wbindgen_malloc', '__wbindgen_free'] as const;
  return w && w.memory?.buffer instanceof ArrayBuffer && fns.every((f) => typeof w[f] === 'function') ? (w as Lz4Wasm) : undefined;
})();

/** True when results can be written into caller memory (the package's WebAssembly exports are as expected). */
export const LZ4_INTO = wasm !== undefined;

/**
 * Runs one of the module's functions on `input` and copies its result into `into` when it fits (a view
 * of `into` is returned), else into new memory. Returns undefined when the function reported an error,
 * for the caller to repeat the call through the public API and get its error.
 */
function call(fn: 'compress' | 'decompress', w: Lz4Wasm, input: Uint8Array, into: Uint8Array | undefined): Uint8Array | undefined {
  const retptr = w.__wbindgen_add_to_stack_pointer(-16);
  try {
    // The input is moved into WebAssembly memory; the callee frees it.
    const ptr = w.__wbindgen_malloc(input.length);
    new Uint8Array(w.memory.buffer).set(input, ptr);
    w[fn](retptr, ptr, input.length);
    const ret = new Int32Array(w.memory.buffer, retptr, 4); // memory may have grown: a fresh view
    const [outPtr, outLen, , failed] = ret as unknown as [number, number, number, number];
    if (fn === 'decompress' && failed) return undefined;
    const result = new Uint8Array(w.memory.buffer, outPtr, outLen);
    let out: Uint8Array;
    if (into && into.length >= outLen) {
      into.set(result);
      out = into.subarray(0, outLen);
    } else out = result.slice();
    w.__wbindgen_free(outPtr, outLen);
    return out;
  } finally {
    w.__wbindgen_add_to_stack_pointer(16);
  }
}

/** lz4-compresses `data` (size-prepended block); into `into` when it is large enough. */
export function lz4Compress(data: Uint8Array, into?: Uint8Array): Uint8Array {
  return (wasm && call('compress', wasm, data, into)) || lz4.compress(data);
}

/**
 * Reverses {@link lz4Compress}; into `into` when it is large enough. Throws on damaged input. With
 * `size` (the payload size recorded elsewhere), a block whose size prefix claims anything else is
 * refused before it is decoded: the codec would first grow its memory to the claimed size (up to
 * 4 GiB), and that memory is never given back.
 */
export function lz4Decompress(data: Uint8Array, size?: number, into?: Uint8Array): Uint8Array {
  if (size !== undefined) {
    const claimed = data.length >= 4 ? Buffer.from(data.buffer, data.byteOffset, 4).readUInt32LE(0) : -1;
    if (claimed !== size) throw new Error(`the lz4 block claims ${claimed} bytes, ${size} were stored`);
  }
  return (wasm && call('decompress', wasm, data, into)) || lz4.decompress(data);
}

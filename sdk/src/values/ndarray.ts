/**
 * Typed arrays and n-d arrays: every typed array class (but `Uint8Array` and `Buffer`, which are raw
 * bytes), `{ data: TypedArray, shape: number[] }`, and arrays of the `ndarray` package (strided views
 * included, gathered into row-major order), stored as a small header plus the elements'
 * bytes in little-endian order, optionally byte-shuffled (as blosc does) so that float data compresses.
 * Reads return the same class over one contiguous buffer: no per-element copying.
 *
 * Layout (version 1), all little-endian:
 * `"CNDA"` · u8 format version · u8 dtype code · u8 flags (bit 0: shuffled, bit 1: n-d object, bit 2: `ndarray` package) ·
 * u8 ndim · u32 reserved · f64 × ndim shape · padding to a multiple of 16 bytes · element bytes.
 * @module
 */
import { createRequire } from 'node:module';
import { ValueError } from '../errors.js';
import type { HandlerContext, ValueHandler } from './handler.js';

type TypedArray = Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array | BigInt64Array | BigUint64Array;
type TypedArrayClass = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray; BYTES_PER_ELEMENT: number; name: string };

/** An n-d array: elements in row-major (C) order and the size of each dimension. */
export interface NdArray<T extends ArrayBufferView = ArrayBufferView> {
  data: T;
  shape: number[];
}

const Float16 = (globalThis as { Float16Array?: TypedArrayClass }).Float16Array;
/** dtype code → class; codes are part of the stored format and never change meaning. */
const DTYPES: [code: number, cls: TypedArrayClass | undefined][] = [
  [1, Int8Array as unknown as TypedArrayClass],
  [2, Uint8Array as unknown as TypedArrayClass],
  [3, Uint8ClampedArray as unknown as TypedArrayClass],
  [4, Int16Array as unknown as TypedArrayClass],
  [5, Uint16Array as unknown as TypedArrayClass],
  [6, Int32Array as unknown as TypedArrayClass],
  [7, Uint32Array as unknown as TypedArrayClass],
  [8, Float16],
  [9, Float32Array as unknown as TypedArrayClass],
  [10, Float64Array as unknown as TypedArrayClass],
  [11, BigInt64Array as unknown as TypedArrayClass],
  [12, BigUint64Array as unknown as TypedArrayClass],
];
const BY_CODE = new Map(DTYPES.filter(([, c]) => c).map(([code, c]) => [code, c as TypedArrayClass]));
const BY_NAME = new Map(DTYPES.filter(([, c]) => c).map(([code, c]) => [(c as TypedArrayClass).name, code]));

const MAGIC = 0x41444e43; // "CNDA" little-endian
const FLAG_SHUFFLED = 1;
const FLAG_ND = 2;
const FLAG_PKG = 4;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isTypedArray(v: unknown): v is TypedArray {
  return ArrayBuffer.isView(v) && !(v instanceof DataView) && BY_NAME.has(v.constructor.name);
}

function isNdObject(v: unknown): v is NdArray<TypedArray> {
  if (typeof v !== 'object' || v === null || Object.getPrototypeOf(v) !== Object.prototype) return false;
  const keys = Object.keys(v);
  return keys.length === 2 && keys.includes('data') && keys.includes('shape') && isTypedArray((v as NdArray).data) && Array.isArray((v as NdArray).shape);
}

/** An array of the `ndarray` package: a strided view of `data`. */
interface PkgNdarray {
  data: TypedArray;
  shape: number[];
  stride: number[];
  offset: number;
  dtype: string;
}

function isPkgNdarray(v: unknown): v is PkgNdarray {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Partial<PkgNdarray> & { get?: unknown };
  return isTypedArray(o.data) && Array.isArray(o.shape) && Array.isArray(o.stride) && typeof o.offset === 'number' && typeof o.dtype === 'string' && typeof o.get === 'function';
}

/** The elements of a strided view in row-major order: the data itself when it already is, else one gather. */
function rowMajor(a: PkgNdarray): TypedArray {
  const { data, shape, stride, offset } = a;
  const size = shape.reduce((x, y) => x * y, 1);
  let expected = 1;
  let contiguous = true;
  for (let d = shape.length - 1; d >= 0; d--) {
    if ((shape[d] as number) > 1 && stride[d] !== expected) contiguous = false;
    expected *= shape[d] as number;
  }
  if (contiguous) return data.subarray(offset, offset + size) as TypedArray;
  const out = new (data.constructor as TypedArrayClass)(new ArrayBuffer(size * (data.constructor as TypedArrayClass).BYTES_PER_ELEMENT), 0, size);
  const index = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < size; i++) {
    let at = offset;
    for (let d = 0; d < shape.length; d++) at += (index[d] as number) * (stride[d] as number);
    (out as unknown as unknown[])[i] = (data as unknown as unknown[])[at];
    for (let d = shape.length - 1; d >= 0; d--) {
      index[d] = (index[d] as number) + 1;
      if ((index[d] as number) < (shape[d] as number)) break;
      index[d] = 0;
    }
  }
  return out;
}

/** The `ndarray` package, if the application has it installed. */
function ndarrayPackage(): ((data: TypedArray, shape: number[]) => unknown) | undefined {
  try {
    return createRequire(import.meta.url)('ndarray') as (data: TypedArray, shape: number[]) => unknown;
  } catch {
    return undefined;
  }
}

/** Byte-shuffles `src` (elements of `size` bytes): all first bytes, then all second bytes, ... */
export function shuffle(src: Uint8Array, size: number, dst: Uint8Array = new Uint8Array(src.length)): Uint8Array {
  const n = Math.floor(src.length / size);
  if ((size === 4 || size === 8) && src.byteOffset % 4 === 0) {
    // Whole 32-bit words at a time: four byte planes per word read (about 3x the byte loop).
    const words = new Uint32Array(src.buffer, src.byteOffset, (n * size) / 4);
    const per = size / 4; // words per element
    for (let half = 0; half < per; half++) {
      const p0 = 4 * half * n;
      const p1 = p0 + n;
      const p2 = p1 + n;
      const p3 = p2 + n;
      for (let i = 0, w = half; i < n; i++, w += per) {
        const v = words[w] as number;
        dst[p0 + i] = v & 255;
        dst[p1 + i] = (v >>> 8) & 255;
        dst[p2 + i] = (v >>> 16) & 255;
        dst[p3 + i] = v >>> 24;
      }
    }
  } else {
    for (let b = 0; b < size; b++) {
      const base = b * n;
      for (let i = 0, j = b; i < n; i++, j += size) dst[base + i] = src[j] as number;
    }
  }
  dst.set(src.subarray(n * size), n * size); // a tail that is not a whole element (never for typed arrays)
  return dst;
}

/** Inverse of {@link shuffle}. */
export function unshuffle(src: Uint8Array, size: number, dst: Uint8Array = new Uint8Array(src.length)): Uint8Array {
  const n = Math.floor(src.length / size);
  if ((size === 4 || size === 8) && dst.byteOffset % 4 === 0) {
    const words = new Uint32Array(dst.buffer, dst.byteOffset, (n * size) / 4);
    const per = size / 4;
    for (let half = 0; half < per; half++) {
      const p0 = 4 * half * n;
      const p1 = p0 + n;
      const p2 = p1 + n;
      const p3 = p2 + n;
      for (let i = 0, w = half; i < n; i++, w += per) {
        words[w] = ((src[p0 + i] as number) | ((src[p1 + i] as number) << 8) | ((src[p2 + i] as number) << 16) | ((src[p3 + i] as number) << 24)) >>> 0;
      }
    }
  } else {
    for (let b = 0; b < size; b++) {
      const base = b * n;
      for (let i = 0, j = b; i < n; i++, j += size) dst[j] = src[base + i] as number;
    }
  }
  dst.set(src.subarray(n * size), n * size);
  return dst;
}

function checkShape(shape: unknown[], length: number): number[] {
  if (shape.length > 255) throw new ValueError('EVALUETYPE', `An n-d array may have at most 255 dimensions; got ${shape.length}.`);
  let product = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new ValueError('EVALUETYPE', `An n-d array's shape holds whole numbers of at least 0; got ${JSON.stringify(shape)}.`);
    }
    product *= d;
  }
  if (product !== length) throw new ValueError('EVALUETYPE', `Shape ${JSON.stringify(shape)} holds ${product} elements but data has ${length}; make them agree.`);
  return shape as number[];
}

export const ndarrayHandler: ValueHandler = {
  name: 'ndarray',
  version: 1,
  canHandle(value) {
    return (isTypedArray(value) && !(value instanceof Uint8Array && (value.constructor === Uint8Array || Buffer.isBuffer(value)))) || isNdObject(value) || isPkgNdarray(value);
  },
  serialize(value, ctx?: HandlerContext) {
    const pkg = isPkgNdarray(value);
    const nd = pkg || isNdObject(value);
    const data = pkg ? rowMajor(value) : nd ? (value as NdArray<TypedArray>).data : (value as TypedArray);
    const shape = nd ? checkShape((value as NdArray).shape, data.length) : [data.length];
    const cls = data.constructor as TypedArrayClass;
    const code = BY_NAME.get(cls.name) as number;
    const size = cls.BYTES_PER_ELEMENT;
    // Shuffling pays only when the bytes will be compressed.
    const shuffled = size > 1 && ctx?.compress !== false && data.byteLength >= (ctx?.minCompressBytes ?? 0);
    const headerLength = Math.ceil((12 + 8 * shape.length) / 16) * 16;
    const out = Buffer.allocUnsafe(headerLength + data.byteLength);
    out.writeUInt32LE(MAGIC, 0);
    out.writeUInt8(1, 4);
    out.writeUInt8(code, 5);
    out.writeUInt8((shuffled ? FLAG_SHUFFLED : 0) | (nd ? FLAG_ND : 0) | (pkg ? FLAG_PKG : 0), 6);
    out.writeUInt8(shape.length, 7);
    out.writeUInt32LE(0, 8);
    for (const [i, d] of shape.entries()) out.writeDoubleLE(d, 12 + 8 * i);
    out.fill(0, 12 + 8 * shape.length, headerLength);
    const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength); // only the view's bytes
    const body = out.subarray(headerLength);
    if (!LITTLE_ENDIAN) throw new ValueError('EVALUETYPE', 'Typed arrays are stored little-endian; this big-endian platform is not supported.');
    if (shuffled) shuffle(raw, size, body);
    else body.set(raw);
    return { bytes: out, type: pkg ? `ndarray-package<${cls.name}>` : nd ? `ndarray<${cls.name}>` : cls.name };
  },
  deserialize(bytes) {
    const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (buf.length < 12 || buf.readUInt32LE(0) !== MAGIC) throw new ValueError('EVALUETYPE', 'Not an n-d array payload (bad magic).');
    const code = buf.readUInt8(5);
    const flags = buf.readUInt8(6);
    const ndim = buf.readUInt8(7);
    const cls = BY_CODE.get(code);
    if (!cls) throw new ValueError('EVALUETYPE', `This entry holds an array of dtype code ${code}, which this Node.js lacks (Float16Array needs Node.js 24 or newer).`);
    const shape = Array.from({ length: ndim }, (_, i) => buf.readDoubleLE(12 + 8 * i));
    const headerLength = Math.ceil((12 + 8 * ndim) / 16) * 16;
    const size = cls.BYTES_PER_ELEMENT;
    const body = buf.subarray(headerLength);
    if (body.length % size !== 0) throw new ValueError('EVALUETYPE', 'Truncated n-d array payload.');
    let storage: Uint8Array;
    if (flags & FLAG_SHUFFLED) storage = unshuffle(body, size);
    else if (body.byteOffset % size === 0) storage = body;
    else storage = new Uint8Array(body); // one bulk copy to align the elements
    const data = new cls(storage.buffer, storage.byteOffset, storage.byteLength / size);
    if (flags & FLAG_PKG) {
      // An ndarray again when the application has the package; otherwise the same data as { data, shape }.
      const make = ndarrayPackage();
      if (make) return make(data, shape);
    }
    return flags & FLAG_ND ? { data, shape } : data;
  },
};

/**
 * Canonical binary encoding of key params (key formats 1 and 2). Specified in docs/key-format.md;
 * any change to the bytes produced here is a new format version.
 * @module
 */
import { describeType, KeyError } from '../errors.js';
import { xxh128Bytes } from '../hash.js';
import type { ContentDigest } from './content.js';
import { contentId, type FileMarker, isFileMarker } from './markers.js';
import { isWellFormed } from './string-key.js';

/**
 * The newest key format, bumped whenever the encoding changes. Format 2 adds content-hashed
 * `file()` / `dir()` markers; params without them encode exactly as in format 1, header included,
 * so their keys did not change.
 */
export const KEY_FORMAT_VERSION = 2;
/** `cacheness-key/1\n`: every key without content markers. */
const HEADER = Buffer.from('cacheness-key/1\n', 'utf8');
/** Offset of the version digit in the header, which becomes '2' once a content marker is written. */
const VERSION_AT = HEADER.length - 2;
const VERSION_2 = 0x32;

/**
 * Content digests of the `file()` / `dir()` markers of some params, by {@link contentId}. Without
 * one, encoding params that hold content markers fails with `EKEYASYNC`.
 */
export interface ContentContext {
  digests: ReadonlyMap<string, ContentDigest>;
  /** When given, markers without a digest are collected here (and encoded as nothing) instead of failing. */
  missing?: FileMarker[];
}

/** Encoder for instances of a class that keys cannot encode natively. */
export type KeyEncoder<T = unknown> = (value: T) => unknown;
const encoders = new Map<Function, { name: string; encode: KeyEncoder }>();

/**
 * Lets instances of `ctor` appear in key params: `encode` maps an instance to a supported value
 * (string, plain object, ...), which is encoded together with `name`.
 * @example registerKeyEncoder(URL, (u) => u.href, 'URL')
 */
export function registerKeyEncoder<T>(ctor: abstract new (...args: never[]) => T, encode: KeyEncoder<T>, name = ctor.name): void {
  if (!name) throw new KeyError('EKEYTYPE', 'registerKeyEncoder needs a name for an anonymous class: pass it as the third argument.');
  if (!isWellFormed(name)) throw new KeyError('EKEYTYPE', `registerKeyEncoder: name ${JSON.stringify(name)} contains a lone UTF-16 surrogate.`);
  encoders.set(ctor, { name, encode: encode as KeyEncoder });
}

/** Removes an encoder added by {@link registerKeyEncoder}. */
export function unregisterKeyEncoder(ctor: Function): boolean {
  return encoders.delete(ctor);
}

const TYPED_ARRAY_DTYPES = new Map<Function, string>([
  [Int8Array, 'int8'],
  [Uint8Array, 'uint8'],
  [Uint8ClampedArray, 'uint8c'],
  [Int16Array, 'int16'],
  [Uint16Array, 'uint16'],
  [Int32Array, 'int32'],
  [Uint32Array, 'uint32'],
  [Float32Array, 'float32'],
  [Float64Array, 'float64'],
  [BigInt64Array, 'bigint64'],
  [BigUint64Array, 'biguint64'],
]);
const Float16 = (globalThis as { Float16Array?: Function }).Float16Array;
if (Float16) TYPED_ARRAY_DTYPES.set(Float16, 'float16');

/** Tags: one byte per type. */
const T = {
  undef: 0x55, // U
  null: 0x4e, // N
  true: 0x54, // T
  false: 0x46, // F
  number: 0x44, // D
  bigint: 0x49, // I
  string: 0x53, // S
  date: 0x64, // d
  array: 0x41, // A
  object: 0x4f, // O
  map: 0x4d, // M
  set: 0x45, // E
  bytes: 0x42, // B
  file: 0x50, // P: file or directory by path
  fileContent: 0x43, // C: file by content (format 2)
  dirContent: 0x52, // R: directory by content (format 2)
  custom: 0x58, // X
} as const;

class Writer {
  buf = Buffer.allocUnsafe(256);
  len = 0;
  /** Set on the root writer once a content marker was written: the key is format 2. */
  content = false;
  constructor(
    readonly ctx?: ContentContext,
    readonly root?: Writer,
  ) {}
  /** A writer for a Map entry or Set item, sorted before it is copied into this one. */
  child(): Writer {
    return new Writer(this.ctx, this.root ?? this);
  }
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }
  u32(n: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(n, this.len);
    this.len += 4;
  }
  f64(n: number): void {
    this.ensure(8);
    this.buf.writeDoubleBE(n, this.len);
    this.len += 8;
  }
  /** Length-prefixed UTF-8 string (no tag). */
  str(s: string): void {
    const max = s.length * 3;
    this.ensure(4 + max);
    const n = this.buf.write(s, this.len + 4, 'utf8');
    this.buf.writeUInt32BE(n, this.len);
    this.len += 4 + n;
  }
  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

/**
 * The canonical encoding of `params` (a plain object of key params), header included.
 * @param contents digests of the params' content markers (from `resolveKeyAsync`); without them,
 * params holding `file()`/`dir()` content markers throw `EKEYASYNC`.
 */
export function encodeKeyParams(params: Record<string, unknown>, contents?: ContentContext): Buffer {
  if (!isPlainObject(params)) {
    throw new KeyError('EKEYTYPE', `Key params must be a plain object (or use a string key); got ${describeType(params)}.`);
  }
  const w = new Writer(contents);
  w.raw(HEADER);
  try {
    encodeValue(w, params, [], new Set());
  } catch (err) {
    if (err instanceof RangeError) {
      // Only a pathological case gets here: key encoders that keep returning each other's classes.
      throw new KeyError('EKEYTYPE', 'Key params nest too deeply to encode (registered key encoders that return each other?). Return plain data from encoders.', { cause: err });
    }
    throw err;
  }
  if (w.content) w.buf[VERSION_AT] = VERSION_2;
  return w.bytes();
}

/** Writes a content marker (tags C, R), or collects it / fails when its digest is not known. */
function encodeContent(w: Writer, m: FileMarker, path: (string | number)[]): void {
  const d = w.ctx?.digests.get(contentId(m));
  if (!d) {
    if (w.ctx?.missing) {
      w.ctx.missing.push(m);
      return;
    }
    const where = path.length ? ` (at ${formatPath(path)})` : '';
    throw new KeyError(
      'EKEYASYNC',
      `Key params hold ${m.kind}(${JSON.stringify(m.path)})${where}, which is keyed by content and read asynchronously: ` +
        `use await cache.resolveKey(key) (or resolveKeyAsync / keyOfAsync; a cached function's cacheKeyAsync) instead of this synchronous call, ` +
        `or key it by name with ${m.kind}(path, { by: 'path' }).`,
      { details: { path: formatPath(path), file: m.path } },
    );
  }
  (w.root ?? w).content = true;
  if (m.kind === 'dir') {
    w.byte(T.dirContent);
  } else {
    w.byte(T.fileContent);
    w.f64(d.size);
  }
  w.ensure(16);
  w.len += w.buf.write(d.xxh128, w.len, 'hex');
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

const LONE_SURROGATE_MESSAGE = 'strings must be well-formed Unicode; this one contains a lone UTF-16 surrogate, which has no UTF-8 encoding.';

function fail(path: (string | number)[], message: string): never {
  const where = path.length ? ` at ${formatPath(path)}` : '';
  throw new KeyError('EKEYTYPE', `Key param${where}: ${message}`, { details: { path: formatPath(path) } });
}

function formatPath(path: (string | number)[]): string {
  return (
    path
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`))
      .join('')
      .replace(/^\./, '') || '(root)'
  );
}

/** Compare two byte strings (for sorting Map/Set members by their encoding). */
function compareBytes(a: Buffer, b: Buffer): number {
  return Buffer.compare(a, b);
}

/** Encodes a member: the path grows in place (no copy per member) and is only read when failing. */
function encodeChild(w: Writer, v: unknown, path: (string | number)[], step: string | number, seen: Set<object>): void {
  path.push(step);
  encodeValue(w, v, path, seen);
  path.pop();
}

function encodeValue(w: Writer, v: unknown, path: (string | number)[], seen: Set<object>): void {
  switch (typeof v) {
    case 'undefined':
      w.byte(T.undef);
      return;
    case 'boolean':
      w.byte(v ? T.true : T.false);
      return;
    case 'number':
      w.byte(T.number);
      w.f64(v === 0 ? 0 : Number.isNaN(v) ? Number.NaN : v); // -0 -> 0, one NaN
      return;
    case 'bigint':
      w.byte(T.bigint);
      w.str(v.toString(10));
      return;
    case 'string':
      if (!isWellFormed(v)) fail(path, LONE_SURROGATE_MESSAGE);
      w.byte(T.string);
      w.str(v);
      return;
    case 'function':
      fail(path, `functions cannot be part of a key (${describeType(v)}). Pass the data the function depends on instead.`);
      break;
    case 'symbol':
      fail(path, 'symbols cannot be part of a key: they have no stable identity across processes.');
      break;
  }
  if (v === null) {
    w.byte(T.null);
    return;
  }
  const obj = v as object;
  if (seen.has(obj)) fail(path, 'circular reference: key params must be a tree.');
  if (isFileMarker(obj)) {
    if (!isWellFormed(obj.path)) fail(path, `file path: ${LONE_SURROGATE_MESSAGE}`);
    if (obj.by === 'content') {
      encodeContent(w, obj, path);
      return;
    }
    w.byte(T.file); // by path, and markers of releases before format 2 (no `by`)
    w.str(obj.path);
    return;
  }
  seen.add(obj);
  try {
    if (Array.isArray(obj)) {
      w.byte(T.array);
      w.u32(obj.length);
      for (let i = 0; i < obj.length; i++) encodeChild(w, obj[i], path, i, seen);
      return;
    }
    if (isPlainObject(obj)) {
      const keys: string[] = [];
      for (const k of Object.keys(obj)) if (obj[k] !== undefined) keys.push(k);
      if (keys.length > 1) keys.sort(compareUtf8);
      w.byte(T.object);
      w.u32(keys.length);
      for (const k of keys) {
        if (!isWellFormed(k)) fail([...path, k], `member name: ${LONE_SURROGATE_MESSAGE}`);
        w.str(k);
        encodeChild(w, obj[k], path, k, seen);
      }
      return;
    }
    if (obj instanceof Date) {
      const t = obj.getTime();
      if (Number.isNaN(t)) fail(path, 'invalid Date.');
      w.byte(T.date);
      w.f64(t);
      return;
    }
    if (obj instanceof Map) {
      const pairs: Buffer[] = [];
      let i = 0;
      for (const [k, val] of obj) {
        const pw = w.child();
        encodeChild(pw, k, path, `<map key ${i}>`, seen);
        encodeChild(pw, val, path, `<map value ${i}>`, seen);
        pairs.push(Buffer.from(pw.bytes()));
        i++;
      }
      pairs.sort(compareBytes);
      w.byte(T.map);
      w.u32(pairs.length);
      for (const p of pairs) w.raw(p);
      return;
    }
    if (obj instanceof Set) {
      const items: Buffer[] = [];
      let i = 0;
      for (const item of obj) {
        const iw = w.child();
        encodeChild(iw, item, path, `<set item ${i++}>`, seen);
        items.push(Buffer.from(iw.bytes()));
      }
      items.sort(compareBytes);
      w.byte(T.set);
      w.u32(items.length);
      for (const p of items) w.raw(p);
      return;
    }
    if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer) {
      const { dtype, length, bytes } = viewBytes(obj, path);
      w.byte(T.bytes);
      w.str(dtype);
      w.f64(length);
      w.raw(xxh128Bytes(bytes));
      return;
    }
    const custom = findKeyEncoder(obj);
    if (custom) {
      const encoded = custom.encode(obj);
      if (typeof encoded === 'object' && encoded !== null && findKeyEncoder(encoded) === custom) {
        fail(path, `the key encoder for ${custom.name} returned another ${custom.name}; it must return plain data (a string, number, plain object, ...).`);
      }
      w.byte(T.custom);
      w.str(custom.name);
      encodeChild(w, encoded, path, `<${custom.name}>`, seen);
      return;
    }
    fail(
      path,
      `${describeType(obj)} has no stable key encoding. Convert it to plain data, or call registerKeyEncoder(${(obj as { constructor?: { name?: string } }).constructor?.name ?? 'Class'}, (v) => ...).`,
    );
  } finally {
    seen.delete(obj);
  }
}

/** dtype name, element count and raw bytes of binary data (the key encoding of tag B). */
export function viewBytes(obj: ArrayBufferView | ArrayBuffer, path: (string | number)[] = []): { dtype: string; length: number; bytes: Uint8Array } {
  if (obj instanceof ArrayBuffer) return { dtype: 'uint8', length: obj.byteLength, bytes: new Uint8Array(obj) };
  if (obj instanceof DataView) return { dtype: 'uint8', length: obj.byteLength, bytes: new Uint8Array(obj.buffer, obj.byteOffset, obj.byteLength) };
  let dtype: string | undefined;
  for (let proto = Object.getPrototypeOf(obj); proto && !dtype; proto = Object.getPrototypeOf(proto)) {
    dtype = TYPED_ARRAY_DTYPES.get(proto.constructor);
  }
  if (!dtype) fail(path, `${describeType(obj)} is not a supported typed array.`);
  const ta = obj as unknown as { length: number };
  return { dtype, length: ta.length, bytes: new Uint8Array(obj.buffer, obj.byteOffset, obj.byteLength) };
}

/** The registered key encoder for `obj`'s class (or a base class), if any. */
export function findKeyEncoder(obj: object): { name: string; encode: KeyEncoder } | undefined {
  if (encoders.size === 0) return undefined;
  for (let proto = Object.getPrototypeOf(obj); proto; proto = Object.getPrototypeOf(proto)) {
    const e = encoders.get(proto.constructor);
    if (e) return e;
  }
  return undefined;
}

/** Orders strings by their UTF-8 bytes (= Unicode code point order), not UTF-16 code units. */
function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.codePointAt(i) as number;
    const cb = b.codePointAt(i) as number;
    if (ca !== cb) return ca < cb ? -1 : 1;
    if (ca > 0xffff) i++;
  }
  return a.length - b.length;
}

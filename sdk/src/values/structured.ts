import { Packr } from 'msgpackr';
import { describeType, ValueError } from '../errors.js';
import type { ValueHandler } from './handler.js';

// Inline records make every message self-describing (no shared structure table between processes)
// and let plain objects (records) and Maps (msgpack maps) decode back to their own types.
const packr = new Packr({ structuredClone: true, moreTypes: true, useRecords: true, mapsAsObjects: false });

/** Packed sizes above this reset the encoder's buffer. */
const LARGE_PACK = 4 * 1024 * 1024;

const ALLOWED_CLASSES = new Set<Function>([Date, RegExp, Map, Set, ArrayBuffer, DataView, Error]);

/**
 * Checks that `value` is structured-clone-like data all the way down, so that nothing is stored
 * that would read back as something else (class instances would lose their prototype).
 */
export function assertStructured(value: unknown, path = 'value', seen = new Set<object>()): void {
  const t = typeof value;
  if (t === 'function' || t === 'symbol') {
    throw new ValueError('EVALUETYPE', `Cannot store ${describeType(value)} at ${path}: functions and symbols are not data. Store the data they produce instead.`, {
      details: { path },
    });
  }
  if (t !== 'object' || value === null) return;
  const obj = value as object;
  if (seen.has(obj)) return; // cycles are fine: the structured-clone encoding keeps them
  seen.add(obj);
  if (Array.isArray(obj)) {
    for (let i = 0; i < obj.length; i++) assertStructured(obj[i], `${path}[${i}]`, seen);
    return;
  }
  if (ArrayBuffer.isView(obj)) return;
  const proto = Object.getPrototypeOf(obj);
  if (proto === Object.prototype || proto === null) {
    for (const k in obj) assertStructured((obj as Record<string, unknown>)[k], `${path}.${k}`, seen);
    return;
  }
  if (obj instanceof Map) {
    for (const [k, v] of obj) {
      assertStructured(k, `${path}<key>`, seen);
      assertStructured(v, `${path}<value>`, seen);
    }
    return;
  }
  if (obj instanceof Set) {
    for (const v of obj) assertStructured(v, `${path}<item>`, seen);
    return;
  }
  if (ALLOWED_CLASSES.has(proto.constructor)) return;
  throw new ValueError(
    'EVALUETYPE',
    `Cannot store ${describeType(obj)} at ${path}: class instances would read back as plain objects. Convert it to plain data (e.g. a toJSON()), or register a value handler for the class.`,
    { details: { path, type: describeType(obj) } },
  );
}

/** Structured values (JSON plus undefined, Date, BigInt, Map, Set, RegExp, binary, typed arrays, nesting, cycles) as MessagePack. */
export const structuredHandler: ValueHandler = {
  name: 'structured',
  version: 1,
  canHandle() {
    return true;
  },
  serialize(value) {
    assertStructured(value);
    const bytes = packr.pack(value);
    // msgpackr grows one shared buffer to the largest value it has packed: after a large value, start
    // over with a small one so a single big put does not pin its size in memory for good.
    if (bytes.length > LARGE_PACK) packr.useBuffer(Buffer.allocUnsafe(64 * 1024));
    return { bytes, type: valueTypeName(value) };
  },
  deserialize(bytes) {
    return packr.unpack(bytes);
  },
};

function valueTypeName(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  if (Array.isArray(v)) return 'array';
  const name = (v as object).constructor?.name;
  return name && name !== 'Object' ? name : 'object';
}

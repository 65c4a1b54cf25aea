import { xxh128Hex } from '../hash.js';
import { findKeyEncoder, viewBytes } from './canonical.js';
import { isFileMarker } from './markers.js';

/** JSON-compatible value. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * The queryable JSON form of key params, stored with an entry (unless `storeKeyParams: false`)
 * and matched by `list({ where: { params } })`. Dates become ISO strings, bigints decimal strings,
 * Sets arrays, Maps objects (or `[key, value]` pairs when a key is not a string), binary data
 * `{ $bytes: dtype, length, xxh128 }`, file markers `{ $file: path }`, instances with a registered key
 * encoder `{ $type: name, value }`; `undefined` members are dropped.
 */
export function projectParams(v: unknown): Json {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return Number.isFinite(v) ? v : String(v);
    case 'bigint':
      return v.toString();
    case 'undefined':
      return null;
  }
  if (v === null || typeof v !== 'object') return null;
  if (isFileMarker(v)) return { $file: v.path };
  if (Array.isArray(v)) return v.map(projectParams);
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Set) return [...v].map(projectParams);
  if (v instanceof Map) {
    const keys = [...v.keys()];
    if (keys.every((k) => typeof k === 'string')) {
      return Object.fromEntries([...v].map(([k, val]) => [k, projectParams(val)]));
    }
    return [...v].map(([k, val]) => [projectParams(k), projectParams(val)]);
  }
  if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
    const { dtype, length, bytes } = viewBytes(v);
    return { $bytes: dtype, length, xxh128: xxh128Hex(bytes) };
  }
  const encoder = findKeyEncoder(v);
  if (encoder) return { $type: encoder.name, value: projectParams(encoder.encode(v)) };
  const out: Record<string, Json> = {};
  for (const [k, val] of Object.entries(v)) if (val !== undefined) out[k] = projectParams(val);
  return out;
}

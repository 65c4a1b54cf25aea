import { xxh128Hex } from '../hash.js';
import { findKeyEncoder, viewBytes } from './canonical.js';
import type { ContentDigest } from './content.js';
import { contentId, isFileMarker } from './markers.js';

/** JSON-compatible value. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * The queryable JSON form of key params, stored with an entry (unless `storeKeyParams: false`)
 * and matched by `list({ where: { params } })`. Dates become ISO strings, bigints decimal strings,
 * Sets arrays, Maps objects (or `[key, value]` pairs when a key is not a string), binary data
 * `{ $bytes: dtype, length, xxh128 }`, file markers `{ $file: path }` (by content, with their digest:
 * `{ $file: path, size, xxh128 }`; directories `{ $dir: path, files, size, xxh128 }`), instances with a
 * registered key encoder `{ $type: name, value }`; `undefined` members are dropped.
 * @param contents digests of the content markers, as resolved with the key; markers without one
 * project as their path alone.
 */
export function projectParams(v: unknown, contents?: ReadonlyMap<string, ContentDigest>): Json {
  return project(v, contents);
}

function project(v: unknown, contents: ReadonlyMap<string, ContentDigest> | undefined): Json {
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
  const recurse = (x: unknown) => project(x, contents);
  if (isFileMarker(v)) {
    const d = v.by === 'content' ? contents?.get(contentId(v)) : undefined;
    if (v.kind === 'dir') return d ? { $dir: v.path, files: d.files, size: d.size, xxh128: d.xxh128 } : { $dir: v.path };
    return d ? { $file: v.path, size: d.size, xxh128: d.xxh128 } : { $file: v.path };
  }
  if (Array.isArray(v)) return v.map(recurse);
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Set) return [...v].map(recurse);
  if (v instanceof Map) {
    const keys = [...v.keys()];
    if (keys.every((k) => typeof k === 'string')) {
      return Object.fromEntries([...v].map(([k, val]) => [k, recurse(val)]));
    }
    return [...v].map(([k, val]) => [recurse(k), recurse(val)]);
  }
  if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
    const { dtype, length, bytes } = viewBytes(v);
    return { $bytes: dtype, length, xxh128: xxh128Hex(bytes) };
  }
  const encoder = findKeyEncoder(v);
  if (encoder) return { $type: encoder.name, value: recurse(encoder.encode(v)) };
  const out: Record<string, Json> = {};
  for (const [k, val] of Object.entries(v)) if (val !== undefined) out[k] = recurse(val);
  return out;
}

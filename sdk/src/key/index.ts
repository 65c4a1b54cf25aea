/**
 * Keys: a string used verbatim, or an object of key params hashed to 16 hex characters.
 * @module
 */
import { KeyError } from '../errors.js';
import { xxh64Hex } from '../hash.js';
import { encodeKeyParams } from './canonical.js';
import { validateStringKey } from './string-key.js';

export { encodeKeyParams, KEY_FORMAT_VERSION, type KeyEncoder, registerKeyEncoder, unregisterKeyEncoder } from './canonical.js';
export { type FileMarker, file, isFileMarker } from './markers.js';
export { MAX_KEY_BYTES, MAX_KEY_LENGTH, validateStringKey } from './string-key.js';

/** Key params: a plain object whose values are any supported key type (see docs/key-format.md). */
export type KeyParams = Record<string, unknown>;
/** A key: a verbatim string (`'models/churn/v3'`) or key params (`{ model: 'xgb' }`). */
export type Key = string | KeyParams;

/** Hashes key params to their 16-hex-character key (XXH3-64 of the canonical encoding). */
export function keyOf(params: KeyParams): string {
  return xxh64Hex(encodeKeyParams(params));
}

/** Resolves a {@link Key} to the stored key string. */
export function resolveKey(key: Key): string {
  if (typeof key === 'string') return validateStringKey(key);
  if (typeof key !== 'object' || key === null) {
    throw new KeyError('EKEY', `A key must be a string or a plain object of key params; got ${key === null ? 'null' : typeof key}.`);
  }
  return keyOf(key);
}

/**
 * Keys: a string used verbatim, or an object of key params hashed to 16 hex characters.
 * @module
 */
import { KeyError } from '../errors.js';
import { xxh64Hex } from '../hash.js';
import { encodeKeyParams, isWellFormed } from './canonical.js';

export { encodeKeyParams, KEY_FORMAT_VERSION, type KeyEncoder, registerKeyEncoder, unregisterKeyEncoder } from './canonical.js';
export { type FileMarker, file, isFileMarker } from './markers.js';

/** Key params: a plain object whose values are any supported key type (see docs/key-format.md). */
export type KeyParams = Record<string, unknown>;
/** A key: a verbatim string (`'models/churn/v3'`) or key params (`{ model: 'xgb' }`). */
export type Key = string | KeyParams;

/** Longest accepted string key, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 1024;
/** Longest accepted string key, in UTF-8 bytes (PostgreSQL indexes rows up to about 2,700 bytes). */
export const MAX_KEY_BYTES = 2048;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to reject control characters
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Hashes key params to their 16-hex-character key (XXH3-64 of the canonical encoding). */
export function keyOf(params: KeyParams): string {
  return xxh64Hex(encodeKeyParams(params));
}

/**
 * Validates a verbatim string key.
 * @throws {KeyError} code `EKEY` when empty, longer than 1024 characters, or containing control characters.
 */
export function validateStringKey(key: string): string {
  if (key.length === 0) throw new KeyError('EKEY', 'A string key must not be empty.');
  if (key.length > MAX_KEY_LENGTH) {
    throw new KeyError('EKEY', `A string key may be at most ${MAX_KEY_LENGTH} characters (got ${key.length}); use key params for long identities, they hash to 16 characters.`);
  }
  if (CONTROL.test(key)) throw new KeyError('EKEY', `String key ${JSON.stringify(key)} contains a control character; remove it.`);
  if (key.length > MAX_KEY_BYTES / 3 && Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new KeyError(
      'EKEY',
      `A string key may be at most ${MAX_KEY_BYTES} bytes as UTF-8 (got ${Buffer.byteLength(key, 'utf8')}), so it fits every store's index; use key params for long identities.`,
    );
  }
  if (!isWellFormed(key)) {
    throw new KeyError('EKEY', `String key ${JSON.stringify(key)} contains a lone UTF-16 surrogate (not valid Unicode, so it cannot be stored faithfully); remove it.`);
  }
  return key;
}

/** Resolves a {@link Key} to the stored key string. */
export function resolveKey(key: Key): string {
  if (typeof key === 'string') return validateStringKey(key);
  if (typeof key !== 'object' || key === null) {
    throw new KeyError('EKEY', `A key must be a string or a plain object of key params; got ${key === null ? 'null' : typeof key}.`);
  }
  return keyOf(key);
}

/**
 * Verbatim string keys: the rules every store and the cloud API apply to them. No native code, so
 * the cloud API's bundle can import it.
 * @module
 */
import { KeyError } from '../errors.js';

/**
 * Lone (unpaired) UTF-16 surrogates have no UTF-8 encoding: Buffer#write would replace each with
 * U+FFFD, so '\uD800', '\uDC00' and '\uFFFD' would all encode (and hash) alike. Rejected instead.
 */
const LONE_SURROGATE = /\p{Surrogate}/u;
const wellFormed = (String.prototype as { isWellFormed?: () => boolean }).isWellFormed;
/** String#isWellFormed (Node 20+) is several times cheaper than the regex; same answer. */
export const isWellFormed = wellFormed ? (s: string) => wellFormed.call(s) as boolean : (s: string) => !LONE_SURROGATE.test(s);

/** Longest accepted string key, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 1024;
/** Longest accepted string key, in UTF-8 bytes (PostgreSQL indexes rows up to about 2,700 bytes). */
export const MAX_KEY_BYTES = 2048;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to reject control characters
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

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

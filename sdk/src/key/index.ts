/**
 * Keys: a string used verbatim, or an object of key params hashed to 16 hex characters.
 * @module
 */
import { KeyError } from '../errors.js';
import { xxh64Hex } from '../hash.js';
import { encodeKeyParams } from './canonical.js';
import { type ContentDigest, hashDir, hashFile } from './content.js';
import { contentId, type FileMarker } from './markers.js';
import { validateStringKey } from './string-key.js';

export { type ContentContext, encodeKeyParams, KEY_FORMAT_VERSION, type KeyEncoder, registerKeyEncoder, unregisterKeyEncoder } from './canonical.js';
export { type ContentDigest, clearFileHashMemo, type FileHashStats, fileHashStats, type HashDirOptions, hashDir, hashFile } from './content.js';
export { dir, type FileKeyOptions, type FileMarker, file, isFileMarker } from './markers.js';
export { MAX_KEY_BYTES, MAX_KEY_LENGTH, validateStringKey } from './string-key.js';

/** Key params: a plain object whose values are any supported key type (see docs/key-format.md). */
export type KeyParams = Record<string, unknown>;
/** A key: a verbatim string (`'models/churn/v3'`) or key params (`{ model: 'xgb' }`). */
export type Key = string | KeyParams;

/** Digests of the content markers of resolved params, by marker (see `contentId`). */
export type ContentDigests = ReadonlyMap<string, ContentDigest>;
const NO_CONTENTS: ContentDigests = new Map();

/** @internal A key resolved asynchronously, with the digests of its `file()`/`dir()` content markers (for the stored projection). */
export interface ResolvedKey {
  key: string;
  contents: ContentDigests;
}

/**
 * Hashes key params to their 16-hex-character key (XXH3-64 of the canonical encoding).
 * @throws {KeyError} `EKEYASYNC` when the params hold `file()`/`dir()` content markers: use {@link keyOfAsync}.
 */
export function keyOf(params: KeyParams): string {
  return xxh64Hex(encodeKeyParams(params));
}

/**
 * Resolves a {@link Key} to the stored key string.
 * @throws {KeyError} `EKEYASYNC` when the params hold `file()`/`dir()` content markers: use {@link resolveKeyAsync}.
 */
export function resolveKey(key: Key): string {
  if (typeof key === 'string') return validateStringKey(key);
  if (typeof key !== 'object' || key === null) {
    throw new KeyError('EKEY', `A key must be a string or a plain object of key params; got ${key === null ? 'null' : typeof key}.`);
  }
  return keyOf(key);
}

/**
 * {@link keyOf} for params that may hold `file()`/`dir()` content markers: reads (or recalls from
 * the memo) the content of each, then hashes the params. Params without markers give the same key
 * as `keyOf`.
 * @throws {KeyError} `EKEYFILE` when a marked path is missing or unreadable.
 */
export async function keyOfAsync(params: KeyParams): Promise<string> {
  return (await resolveContentKey(params)).key;
}

/** {@link resolveKey} for keys that may hold `file()`/`dir()` content markers (see {@link keyOfAsync}). */
export async function resolveKeyAsync(key: Key): Promise<string> {
  const k = resolveKeyFast(key);
  return typeof k === 'string' ? k : (await k).key;
}

/**
 * @internal The key string at once when no content has to be read (string keys and params without
 * content markers: the common case, with no promise), or a promise of it with the markers' digests.
 */
export function resolveKeyFast(key: Key): string | Promise<ResolvedKey> {
  try {
    return resolveKey(key);
  } catch (err) {
    if (err instanceof KeyError && err.code === 'EKEYASYNC') return resolveContentKey(key as KeyParams);
    throw err;
  }
}

/**
 * Encodes `params` twice: once to find their content markers (and validate everything else
 * before any I/O), then with the markers' digests.
 */
async function resolveContentKey(params: KeyParams): Promise<ResolvedKey> {
  const missing: FileMarker[] = [];
  encodeKeyParams(params, { digests: NO_CONTENTS, missing });
  const contents = await hashMarkers(missing);
  return { key: xxh64Hex(encodeKeyParams(params, { digests: contents })), contents };
}

/** Digests of markers (each distinct path once, concurrently). */
async function hashMarkers(markers: readonly FileMarker[]): Promise<Map<string, ContentDigest>> {
  const unique = new Map<string, FileMarker>();
  for (const m of markers) unique.set(contentId(m), m);
  const out = new Map<string, ContentDigest>();
  await Promise.all(
    [...unique].map(async ([id, m]) => {
      out.set(id, m.kind === 'dir' ? await hashDir(m.path) : await hashFile(m.path));
    }),
  );
  return out;
}

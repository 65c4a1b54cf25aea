import { resolve } from 'node:path';

const FILE_MARKER = Symbol.for('cacheness.file');

/** A `file(path)` key-param marker: keys an entry by a file (by resolved path in key format 1). */
export interface FileMarker {
  readonly [FILE_MARKER]: true;
  /** Absolute, resolved path. */
  readonly path: string;
}

/**
 * Marks a key param as a file reference: `cache.put(v, { input: file('data.csv') })`.
 * In key format 1 the file is identified by its resolved absolute path; content hashing arrives
 * with the rich-data issue (a new key-format version).
 */
export function file(path: string): FileMarker {
  return Object.freeze({ [FILE_MARKER]: true as const, path: resolve(path) });
}

/** True when `v` was made by {@link file}. */
export function isFileMarker(v: unknown): v is FileMarker {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[FILE_MARKER] === true;
}

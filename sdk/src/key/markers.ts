import { resolve } from 'node:path';
import { KeyError } from '../errors.js';

const FILE_MARKER = Symbol.for('cacheness.file');

/** How a {@link file} or {@link dir} marker identifies its path in keys. */
export interface FileKeyOptions {
  /**
   * `'content'` (default): by what the path holds (a file's bytes; a directory's file names and
   * bytes), so the same content elsewhere is the same key and an edit is a new key. The path must
   * exist when the key is resolved.
   * `'path'`: by the resolved absolute path only (key format 1); nothing is read, the path need not exist.
   */
  by?: 'content' | 'path';
}

/**
 * A `file(path)` or `dir(path)` key-param marker. Markers made by another copy of the SDK in the
 * same process are recognised too; a marker without `by` (made by a release before content keys)
 * keys by path.
 */
export interface FileMarker {
  readonly [FILE_MARKER]: true;
  /** Absolute, resolved path. */
  readonly path: string;
  /** `'file'` for {@link file}, `'dir'` for {@link dir}. */
  readonly kind: 'file' | 'dir';
  /** What identifies it in keys (see {@link FileKeyOptions}). */
  readonly by: 'content' | 'path';
}

function marker(kind: 'file' | 'dir', path: string, options: FileKeyOptions | undefined): FileMarker {
  const by = options?.by ?? 'content';
  if (by !== 'content' && by !== 'path') throw new KeyError('EKEYTYPE', `${kind}(path, { by }): by must be 'content' or 'path'; got ${JSON.stringify(by)}.`);
  if (typeof path !== 'string') throw new KeyError('EKEYTYPE', `${kind}(path) takes a path string; got ${typeof path}.`);
  return Object.freeze({ [FILE_MARKER]: true as const, path: resolve(path), kind, by });
}

/**
 * Marks a key param as a file, keyed by its **content** (XXH3-128 of its bytes, key format 2):
 * `cache.put(model, { data: file('train.csv') })`. The same bytes under another name give the same
 * key; an edited file gives a new one. Resolving such a key reads the file (once: later calls
 * re-read it only when its size, mtime or inode changed), so it is asynchronous: `put`, `get` and the
 * other cache methods accept it; for the key string use `await cache.resolveKey(key)`.
 * A missing file is an error (`EKEYFILE`), never keyed by name silently.
 *
 * `file(path, { by: 'path' })` keys by the resolved absolute path instead (key format 1: nothing is read).
 */
export function file(path: string, options?: FileKeyOptions): FileMarker {
  return marker('file', path, options);
}

/**
 * Marks a key param as a directory, keyed by its **content**: the sorted relative paths of the
 * regular files under it (symlinks followed, empty directories ignored) and each file's bytes.
 * Renaming or editing a file inside changes the key; renaming or moving the directory itself does not.
 * See docs/key-format.md (format 2) for exactly what counts. `dir(path, { by: 'path' })` keys by path.
 */
export function dir(path: string, options?: FileKeyOptions): FileMarker {
  return marker('dir', path, options);
}

/** True when `v` was made by {@link file} or {@link dir}. */
export function isFileMarker(v: unknown): v is FileMarker {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[FILE_MARKER] === true;
}

/** Identifies a content marker's target among others (its digest is looked up by this). */
export function contentId(m: FileMarker): string {
  return `${m.kind}:${m.path}`;
}

/**
 * Typed errors. Every error cacheness throws is a {@link CachenessError} with a stable `code`
 * (switch on it, never on the message) and a message that says what to do about it.
 * @module
 */

/** Stable machine-readable error codes. */
export type ErrorCode =
  | 'EKEY' // a string key is malformed
  | 'EKEYTYPE' // a key param has a type that cannot be encoded stably
  | 'EKEYFILE' // a file() / dir() key marker names a path that is missing, unreadable or of the wrong kind
  | 'EKEYASYNC' // a key with file() / dir() content markers was given to a synchronous function
  | 'EVALUETYPE' // a value cannot be stored (function, class instance without handler, ...)
  | 'EVALUETOOLARGE' // the value alone exceeds maxSize
  | 'ESTREAM' // a stream given to put() failed while it was read
  | 'EFILE' // a file to store (putFile) is missing or unreadable
  | 'ETTL' // a ttl / duration is malformed
  | 'EOPTION' // a createCache / method option is invalid
  | 'ETABLE' // unknown custom table or bad table definition
  | 'ECOLUMN' // unknown column or a value of the wrong type for a column
  | 'ECONSTRAINT' // a unique constraint of a custom table was violated
  | 'EQUERY' // a where clause / query is malformed
  | 'EREADONLY' // cache.sql() was given a statement that writes
  | 'ECODEC' // a compression codec is unknown or its library is not installed
  | 'EINTEGRITY' // stored bytes do not match their hash
  | 'ENOHANDLER' // an entry was written by a value handler that is not registered
  | 'EHANDLER' // a value handler given to registerHandler or createCache is malformed
  | 'ECLOSED' // the cache was closed
  | 'EDUMP' // an export file is malformed
  | 'ESTORE' // the underlying store failed
  | 'EUNREACHABLE' // the cloud API could not be reached (connection refused or reset, DNS failure, timeout)
  | 'EAUTH' // the cloud API refused the API key (missing, unknown, revoked, or without the scope needed)
  | 'EABORTED' // the caller's AbortSignal stopped the operation (nothing was stored)
  | 'ECONFLICT' // the cloud holds a later write of this key than the one sent (later write wins)
  | 'EREMOTE'; // the cloud API answered with an error that has no library code (e.g. unavailable, rate limited)

/** Base class of every error thrown by cacheness. */
export class CachenessError extends Error {
  /** Stable error code, e.g. `EKEYTYPE`. */
  readonly code: ErrorCode;
  /** Structured context (offending key, column, value type...). */
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options?.details) this.details = options.details;
  }
}

/** A key (string or params object) is invalid or cannot be resolved. Codes: `EKEY`, `EKEYTYPE`, `EKEYFILE`, `EKEYASYNC`. */
export class KeyError extends CachenessError {}
/** A value cannot be stored. Codes: `EVALUETYPE`, `EVALUETOOLARGE`, `ESTREAM`, `EFILE`. */
export class ValueError extends CachenessError {}
/** An option, ttl or duration is invalid. Codes: `EOPTION`, `ETTL`. */
export class OptionError extends CachenessError {}
/** Custom-table definitions, rows and queries. Codes: `ETABLE`, `ECOLUMN`, `ECONSTRAINT`, `EQUERY`, `EREADONLY`. */
export class TableError extends CachenessError {}
/** Compression codec problems. Code: `ECODEC`. */
export class CodecError extends CachenessError {}
/** Stored bytes failed verification. Code: `EINTEGRITY`. */
export class IntegrityError extends CachenessError {}
/** An entry needs a value handler that is not registered (`ENOHANDLER`), or a handler is malformed (`EHANDLER`). */
export class HandlerError extends CachenessError {}
/** Store-level failures (I/O, database). Codes: `ESTORE`, `ECLOSED`, `EDUMP`. */
export class StoreError extends CachenessError {}

/**
 * The cloud API failed or refused a call. Codes: `EUNREACHABLE`, `EAUTH`, `ECONFLICT` (a later write of
 * the key is stored; `details.storedAt`), `EREMOTE` (`details.status` and `details.code` hold the HTTP
 * status and the server's code).
 */
export class RemoteError extends CachenessError {}

/** An operation was stopped by the caller's `AbortSignal`. Code: `EABORTED`; `cause` is the signal's reason. */
export class AbortedError extends CachenessError {}

/** Throws `EABORTED` when `signal` has fired. */
export function checkAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new AbortedError('EABORTED', `${what} was aborted (its AbortSignal fired).`, { cause: signal.reason });
}

/**
 * The public API raises only CachenessErrors: failures of SQLite or the filesystem underneath (a full
 * disk, a lock held too long) are translated at the boundary, each public method catching its own
 * (an inline try/catch: wrappers would cost every call, and get() is a 5 µs path).
 */
export function asCachenessError(err: unknown): CachenessError {
  if (err instanceof CachenessError) return err;
  const code = String((err as { code?: unknown })?.code ?? '');
  const message = (err as Error)?.message ?? String(err);
  const hint =
    code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_')
      ? 'another process held the database write lock for longer than the busy timeout; retry, and look for a stuck process'
      : code === 'SQLITE_FULL' || code === 'ENOSPC'
        ? 'the disk is full: free space, or lower maxSize'
        : code === 'EACCES' || code === 'EPERM' || code === 'SQLITE_READONLY'
          ? 'the cache directory is not writable by this process'
          : 'the store failed';
  return new StoreError('ESTORE', `${hint} (${code || 'error'}: ${message}).`, { cause: err, details: code ? { code } : undefined });
}

/** Human-readable description of a value's type, for error messages. */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  if (typeof value !== 'object') return typeof value;
  const ctor = (value as { constructor?: { name?: string } }).constructor;
  return ctor?.name ? `instance of ${ctor.name}` : 'object with a null prototype';
}

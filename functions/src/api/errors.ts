/**
 * One error shape for the whole API: `{ error: { code, message, details? } }`, with the HTTP status
 * the failure deserves. Library errors (CachenessError codes) map to statuses here, in one table.
 * @module
 */
import { CachenessError, type ErrorCode } from 'cacheness/model';

/** An error the API raises itself (auth, routing, limits). */
export class ApiError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 410 | 413 | 422 | 429 | 503,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
    /** Seconds the client should wait before retrying (sent as `Retry-After`). */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/**
 * HTTP status per CachenessError code: every code is listed, so a new one needs a decision here (the
 * compiler says so). Failures of the server itself (ESTORE, ECLOSED) are 500s.
 */
const STATUS: Record<ErrorCode, number> = {
  EKEY: 400,
  EKEYTYPE: 400,
  EKEYFILE: 400,
  EKEYASYNC: 400,
  EVALUETYPE: 400,
  ESTREAM: 400,
  EFILE: 400,
  ETTL: 400,
  EOPTION: 400,
  EQUERY: 400,
  ECOLUMN: 400,
  EHANDLER: 400,
  ETABLE: 404,
  ECONSTRAINT: 409,
  EVALUETOOLARGE: 413,
  EREADONLY: 403,
  EINTEGRITY: 422,
  ECODEC: 422,
  ENOHANDLER: 422,
  EDUMP: 422,
  ECLOSED: 500,
  ESTORE: 500,
  // Raised by the SDK's remote client, never by the API itself.
  EUNREACHABLE: 502,
  EAUTH: 401,
  EREMOTE: 502,
  ECONFLICT: 409,
  EABORTED: 400, // raised by the SDK when its caller aborts, never by the API
};

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

/** Connection failures of the database: the client should retry shortly (Aurora resumes in about 15 s). */
const UNAVAILABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  '57P03', // cannot_connect_now: starting up, or a paused Aurora resuming
  '53300', // too_many_connections
  '28P01', // invalid_password: the password was just rotated; new connections read the secret again
]);

/** Seconds a client should wait after a 503. */
export const RETRY_AFTER_SECONDS = 15;

/** Status and body for any thrown value; unexpected errors are reported without internals. */
export function toErrorResponse(err: unknown): { status: number; body: ErrorBody; retryAfter?: number } {
  const code = String((err as { code?: unknown; cause?: { code?: unknown } })?.code ?? (err as { cause?: { code?: unknown } })?.cause?.code ?? '');
  if (UNAVAILABLE.has(code)) {
    return {
      status: 503,
      body: { error: { code: 'EUNAVAILABLE', message: 'The database is unavailable (starting, resuming or overloaded); retry shortly.' } },
      retryAfter: RETRY_AFTER_SECONDS,
    };
  }
  if (err instanceof ApiError) {
    return {
      status: err.status,
      body: { error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) } },
      ...(err.retryAfter === undefined ? {} : { retryAfter: err.retryAfter }),
    };
  }
  if (err instanceof CachenessError) {
    const status = STATUS[err.code] ?? 500;
    return {
      status,
      body: {
        error: { code: err.code, message: status === 500 ? 'The store failed; try again later.' : err.message, ...(err.details && status !== 500 ? { details: err.details } : {}) },
      },
    };
  }
  return { status: 500, body: { error: { code: 'EINTERNAL', message: 'Internal error; try again later.' } } };
}

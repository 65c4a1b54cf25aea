/**
 * The SDK's HTTP client of the cloud API (`/v1`, docs/api.md): JSON calls with the API key, bounded
 * time (connect, first response byte, a deadline over all attempts), retries with jittered backoff,
 * and every failure as a {@link CachenessError}: the server's library codes keep their code and class,
 * a refused key is `EAUTH`, other server errors `EREMOTE`, and a server that cannot be reached
 * `EUNREACHABLE`. {@link classifyFailure} tells callers (the offline fallback) which of these means
 * "the cloud is not there".
 *
 * Built on `node:http` with keep-alive rather than `fetch`: it measured faster for many small
 * requests and part uploads (docs/benchmarks-cloud.md), and it exposes the connect phase, which
 * decides whether a failed request may have reached the server.
 * @module
 */
import { createHash } from 'node:crypto';
import { CachenessError, CodecError, type ErrorCode, HandlerError, IntegrityError, KeyError, OptionError, RemoteError, StoreError, TableError, ValueError } from '../errors.js';
import { attempt, keepAliveAgents, type NetworkFailure, retryAfterMs, retrying, type Transport, type Verdict } from './http.js';

/** Options of {@link ApiClient}. */
export interface ApiClientOptions {
  /** Base URL of the API, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com` (with or without `/v1`). */
  endpoint: string;
  /** An API key (`ck_...`), sent as `Authorization: Bearer`. */
  apiKey: string;
  /** Time to open a connection, in ms. Default 3,000. */
  connectTimeoutMs?: number;
  /** Once connected, the longest time with no byte sent or received, in ms. Default 30,000. */
  responseTimeoutMs?: number;
  /** Time for one call, all attempts included, in ms. Default 60,000. */
  deadlineMs?: number;
  /** Attempts after the first, for failures worth repeating. Default 4. */
  retries?: number;
}

/** Options of one {@link ApiClient.request}. */
export interface CallOptions {
  /** A JSON body. */
  body?: unknown;
  /**
   * Whether repeating the call is harmless, so it may be retried after the server may have seen it
   * (a 5xx, a reset connection). Default: true for GET, HEAD, PUT and DELETE, false for POST. Calls
   * that never reached the server (connection refused, DNS) are retried either way.
   */
  idempotent?: boolean;
  /** Overrides the client's deadline for this call. */
  deadlineMs?: number;
  /** Stops the call (`EABORTED`). */
  signal?: AbortSignal | undefined;
}

/** What a failure means to a caller deciding whether to fall back to local storage. */
export type Failure =
  /** The API could not be reached: connection refused, reset or timed out, DNS failure. */
  | 'unreachable'
  /** The API answered but could not serve now (5xx, rate limited): try again later. */
  | 'unavailable'
  /** The API refused the call (bad input, bad key, a constraint): retrying will not help. */
  | 'rejected';

/** Library codes the API sends back, and the class each is thrown as. */
const LIBRARY_ERRORS: Partial<Record<ErrorCode, new (code: ErrorCode, message: string, o?: { details?: Record<string, unknown> }) => CachenessError>> = {
  EKEY: KeyError,
  EKEYTYPE: KeyError,
  EKEYFILE: KeyError,
  EKEYASYNC: KeyError,
  EVALUETYPE: ValueError,
  EVALUETOOLARGE: ValueError,
  ESTREAM: ValueError,
  EFILE: ValueError,
  EHANDLER: HandlerError,
  ETTL: OptionError,
  EOPTION: OptionError,
  ETABLE: TableError,
  ECOLUMN: TableError,
  ECONSTRAINT: TableError,
  EQUERY: TableError,
  EREADONLY: TableError,
  ECODEC: CodecError,
  EINTEGRITY: IntegrityError,
  ENOHANDLER: HandlerError,
  EDUMP: StoreError,
  ECONFLICT: RemoteError,
};

/** A JSON client of the cloud API. Reuses connections; call {@link close} when done. */
export class ApiClient {
  private readonly base: URL;
  private readonly auth: string;
  /** Connections and time limits, shared with the transfers of this client (see transfer.ts). */
  readonly transport: Transport;
  readonly deadlineMs: number;
  readonly retries: number;
  /** The API key's public id (`ck_<id>_...`), never its secret. */
  readonly keyId: string;

  constructor(o: ApiClientOptions) {
    let url: URL;
    try {
      url = new URL(o.endpoint);
    } catch {
      throw new OptionError('EOPTION', `remote.endpoint must be the API's URL, like https://abc.execute-api.eu-west-1.amazonaws.com; got ${JSON.stringify(o.endpoint)}.`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new OptionError('EOPTION', `remote.endpoint must be an http(s) URL; got ${url.protocol}.`);
    if (typeof o.apiKey !== 'string' || o.apiKey === '')
      throw new OptionError('EOPTION', 'remote.apiKey is missing: pass one, or set CACHENESS_API_KEY (create keys with `npm run keys -w functions`).');
    this.base = new URL(url.pathname.replace(/\/(v1\/?)?$/, '/'), url);
    this.auth = `Bearer ${o.apiKey}`;
    this.keyId = /^ck_([a-z0-9]+)_/.exec(o.apiKey)?.[1] ?? createHash('sha256').update(o.apiKey).digest('hex').slice(0, 16);
    this.transport = {
      connectTimeoutMs: positive('connectTimeoutMs', o.connectTimeoutMs, 3_000),
      responseTimeoutMs: positive('responseTimeoutMs', o.responseTimeoutMs, 30_000),
      ...keepAliveAgents(),
    };
    this.deadlineMs = positive('deadlineMs', o.deadlineMs, 60_000);
    this.retries = o.retries ?? 4;
    if (!Number.isSafeInteger(this.retries) || this.retries < 0) throw new OptionError('EOPTION', `remote.retries must be a whole number from 0; got ${o.retries}.`);
  }

  /**
   * Calls `method path` (a path under `/v1/`, like `entries/models%2Fa`) and resolves with the parsed
   * JSON of a 2xx answer (undefined for an empty one).
   * @throws {CachenessError} the server's error as its library class, `EAUTH`, `EREMOTE` or `EUNREACHABLE`.
   */
  async request<T>(method: string, path: string, o: CallOptions = {}): Promise<T> {
    const deadline = Date.now() + (o.deadlineMs ?? this.deadlineMs);
    const idempotent = o.idempotent ?? method !== 'POST';
    const body = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
    const headers = { authorization: this.auth, accept: 'application/json', ...(body ? { 'content-type': 'application/json', 'content-length': body.length } : {}) };
    const url = new URL(`v1/${path}`, this.base);
    return retrying(
      this.retries,
      deadline,
      () => attempt(this.transport, url, { method, headers, body, deadline, signal: o.signal }),
      (r): Verdict<T> => {
        if ('error' in r) return { failure: unreachable(this.base.origin, r), retryable: idempotent || !r.sent };
        const text = Buffer.from(r.body).toString('utf8');
        if (r.status < 300) {
          try {
            return { value: (text === '' ? undefined : JSON.parse(text)) as T };
          } catch {
            const failure = new RemoteError(
              'EREMOTE',
              `The cloud API answered ${r.status} with something that is not JSON (${JSON.stringify(text.slice(0, 80))}); is the endpoint the API's URL?`,
              {
                details: { status: r.status, request: `${method} /v1/${path}` },
              },
            );
            return { failure, retryable: false };
          }
        }
        // Rate limited (429) and unavailable (503) are refused before any work: safe to repeat whatever the call.
        const retryable = r.status === 429 || r.status === 503 || (idempotent && r.status >= 500);
        return { failure: serverError(method, path, r.status, text), retryable, waitMs: retryAfterMs(r.headers) };
      },
      o.signal,
    );
  }

  /** The API's base URL (normalized), which identifies it. */
  get origin(): string {
    return this.base.href;
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.transport.http.destroy();
    this.transport.https.destroy();
  }
}

/** The error for a request that got no answer from `origin`. */
function unreachable(origin: string, r: NetworkFailure): RemoteError {
  return new RemoteError(
    'EUNREACHABLE',
    `The cloud API at ${origin} could not be reached (${r.error.message}). Check the endpoint and the network; in mode 'auto' the local store is used meanwhile.`,
    {
      cause: r.error,
      details: { endpoint: origin, reason: r.error.code ?? r.error.message },
    },
  );
}

/** Whether an error from {@link ApiClient} means the API is not there, cannot serve now, or refused. */
export function classifyFailure(err: unknown): Failure {
  if (!(err instanceof CachenessError)) return 'rejected';
  if (err.code === 'EUNREACHABLE') return 'unreachable';
  const status = err.details?.status;
  return err.code === 'EREMOTE' && typeof status === 'number' && (status >= 500 || status === 429) ? 'unavailable' : 'rejected';
}

/** The error for a non-2xx answer: its library class and code when it has one. */
function serverError(method: string, path: string, status: number, text: string): CachenessError {
  let code = '';
  let message = text.slice(0, 200);
  let details: Record<string, unknown> | undefined;
  try {
    const b = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: Record<string, unknown> } };
    if (typeof b.error?.code === 'string') code = b.error.code;
    if (typeof b.error?.message === 'string') message = b.error.message;
    details = b.error?.details;
  } catch {}
  const context = { ...details, status, code, request: `${method} /v1/${path}` };
  // The API's own name for an object over its limit is the library's EVALUETOOLARGE.
  const libraryCode = (code === 'ETOOLARGE' ? 'EVALUETOOLARGE' : code) as ErrorCode;
  const Library = LIBRARY_ERRORS[libraryCode];
  if (Library) return new Library(libraryCode, message, { details: context });
  if (status === 401 || status === 403) {
    return new RemoteError('EAUTH', `The cloud API refused the API key (${code || status}): ${message} Check remote.apiKey / CACHENESS_API_KEY and the key's scopes.`, {
      details: context,
    });
  }
  return new RemoteError('EREMOTE', `The cloud API answered ${status} ${code}: ${message}`, { details: context });
}

function positive(name: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v))
    throw new OptionError('EOPTION', `remote.${name} must be a positive number of milliseconds; got ${JSON.stringify(v)}.`);
  return v;
}

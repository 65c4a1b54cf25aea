/**
 * Database connections for Lambda and the local stack. On Lambda: one connection per container (so
 * containers × connections stays under max_connections with reserved concurrency), a short idle
 * timeout (an open idle connection keeps a paused Aurora awake), and a connect timeout above the
 * 15-30 s Aurora needs to resume from auto-pause.
 * @module
 */
import postgres, { type Sql } from 'postgres';

export interface ConnectOptions {
  /** Connections in the pool. Default 1 (Lambda); the local stack on real Postgres may use more. */
  max?: number;
  /** Seconds before an idle connection closes. Default 20. */
  idleTimeoutSeconds?: number;
  /** Seconds to wait for a connection (a paused Aurora takes 15-30 s to resume). Default 35. */
  connectTimeoutSeconds?: number;
  /** Postgres search_path (schema). */
  schema?: string;
  /** The password, asked for on every new connection (e.g. read from Secrets Manager); default: the URL's. */
  password?: () => Promise<string>;
  /**
   * TLS: `'verify-full'` encrypts and checks the server's certificate and host name against the trusted
   * CAs (on Lambda, Amazon's come from `NODE_EXTRA_CA_CERTS=/var/runtime/ca-cert.pem`); `'require'`
   * encrypts without checking. Default: none.
   */
  ssl?: 'require' | 'verify-full';
}

/**
 * A database handle that can replace its connections. postgres.js (3.4) leaves a connection wedged
 * after a connection error in the middle of a query: later queries on it never run (porsager/postgres
 * #1130). With one connection per Lambda container that would hang the container for good, so after
 * such an error the API calls {@link Database.reconnect} and carries on with a fresh pool.
 */
export interface Database extends Sql {
  /** Counts the pools opened so far: a request notes it, to replace only the pool it saw fail. */
  readonly generation: number;
  /**
   * Drops the current pool (without waiting for it) and opens a fresh one for the next queries. With
   * `ifGeneration`, only if the current pool is still that one: requests that failed on the same broken
   * pool replace it once, not once each (which would kill each other's fresh pools).
   */
  reconnect(ifGeneration?: number): void;
}

/** Connects to `url` with settings fit for Lambda (see {@link ConnectOptions}). */
export function connectDatabase(url: string, opts: ConnectOptions = {}): Database {
  const open = () =>
    postgres(url, {
      max: opts.max ?? 1,
      idle_timeout: opts.idleTimeoutSeconds ?? 20,
      connect_timeout: opts.connectTimeoutSeconds ?? 35,
      onnotice: () => {},
      ...(opts.schema ? { connection: { search_path: opts.schema } } : {}),
      ...(opts.password ? { password: opts.password } : {}),
      ...(opts.ssl ? { ssl: opts.ssl } : {}),
    });
  let current = open();
  let generation = 1;
  const reconnect = (ifGeneration?: number) => {
    if (ifGeneration !== undefined && ifGeneration !== generation) return;
    const old = current;
    current = open();
    generation++;
    old.end({ timeout: 0 }).catch(() => {}); // may never settle on a wedged connection; nothing waits for it
  };
  // Every use (sql`...`, sql.unsafe, sql.begin, sql.json, sql.end) goes to the current pool.
  return new Proxy(function database() {} as unknown as Database, {
    apply: (_target, thisArg, args) => Reflect.apply(current as unknown as (...a: unknown[]) => unknown, thisArg, args),
    get: (_target, prop) => (prop === 'reconnect' ? reconnect : prop === 'generation' ? generation : Reflect.get(current, prop)),
    has: (_target, prop) => prop === 'reconnect' || prop === 'generation' || Reflect.has(current, prop),
  });
}

/**
 * Errors of a connection the network broke (reset, closed under the client). Not CONNECTION_DESTROYED
 * or CONNECTION_ENDED: those are this process ending a pool itself.
 */
const DROPPED = new Set(['ECONNRESET', 'EPIPE', 'CONNECTION_CLOSED']);

/** True when `err` says the database connection dropped (as after a Lambda container thaws on a stale socket). */
export function isDroppedConnection(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown; cause?: { code?: unknown }; $metadata?: unknown } | undefined;
  if (e?.$metadata !== undefined) return false; // an AWS SDK (S3) error: the database is fine
  return DROPPED.has(String(e?.code ?? '')) || DROPPED.has(String(e?.errno ?? '')) || DROPPED.has(String(e?.cause?.code ?? ''));
}

/** The pool generation of `sql` if it is a {@link Database}. */
export function generationOf(sql: Sql): number | undefined {
  return (sql as Partial<Database>).generation;
}

/**
 * Replaces `sql`'s connections if it is a {@link Database} (a plain postgres.js `Sql` is left alone),
 * and with `ifGeneration` only if they are still the ones of that generation.
 */
export function reconnectIfPossible(sql: Sql, ifGeneration?: number): void {
  const db = sql as Partial<Database>;
  if (typeof db.reconnect === 'function') db.reconnect(ifGeneration);
}

/**
 * Runs `fn` and, if the connection drops under it, once more on fresh connections. Only for work that
 * is safe to repeat: a read, or the first statement of a request, before anything was written.
 */
export async function retryOnDroppedConnection<T>(sql: Sql, fn: () => Promise<T>): Promise<T> {
  const generation = generationOf(sql);
  try {
    return await fn();
  } catch (err) {
    if (!isDroppedConnection(err)) throw err;
    reconnectIfPossible(sql, generation);
    return fn();
  }
}

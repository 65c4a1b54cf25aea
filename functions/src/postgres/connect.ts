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
}

export function connectDatabase(url: string, opts: ConnectOptions = {}): Sql {
  return postgres(url, {
    max: opts.max ?? 1,
    idle_timeout: opts.idleTimeoutSeconds ?? 20,
    connect_timeout: opts.connectTimeoutSeconds ?? 35,
    onnotice: () => {},
    ...(opts.schema ? { connection: { search_path: opts.schema } } : {}),
  });
}

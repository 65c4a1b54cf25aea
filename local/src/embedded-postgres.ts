/**
 * The local stack's embedded PostgreSQL: PGlite (PostgreSQL compiled to WebAssembly, in this
 * process) behind a PostgreSQL-protocol socket on 127.0.0.1, so the cloud code talks to it with the
 * same driver as to Aurora.
 *
 * PGlite runs one Postgres session for all its socket connections: transactions on two connections
 * would interleave. Clients must therefore use a single connection (`max: 1`), which `embeddedClient`
 * does. Concurrency and locking are tested against real PostgreSQL instead.
 * @module
 */
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export interface EmbeddedPostgres {
  /** Connection URL (`postgres://postgres@127.0.0.1:<port>/postgres`). */
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts PGlite with its data in `dataDir` (kept across restarts), or in memory when omitted, and
 * serves it on 127.0.0.1 (`port` 0 picks a free one).
 */
export async function startEmbeddedPostgres(opts: { dataDir?: string; port?: number } = {}): Promise<EmbeddedPostgres> {
  const db = await PGlite.create(opts.dataDir);
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: opts.port ?? 0, maxConnections: 1 });
  await server.start();
  const conn = server.getServerConn(); // "127.0.0.1:<port>"
  return {
    url: `postgres://postgres@${conn}/postgres`,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}

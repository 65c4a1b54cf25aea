/**
 * PostgreSQL for tests: the server named by DATABASE_URL when set (CI machines have PostgreSQL 15 at
 * 127.0.0.1:5432), otherwise a private real PostgreSQL cluster started from this machine's binaries on
 * a free loopback port. Every harness gets its own schema, migrated, so test files never collide.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres, { type Sql } from 'postgres';
import { migrate } from '../src/postgres/migrations.js';

export interface PostgresHarness {
  sql: Sql;
  schema: string;
  stop(): Promise<void>;
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(root, v, 'bin', 'initdb'))) return join(root, v, 'bin');
  throw new Error('No PostgreSQL found: set DATABASE_URL, or install PostgreSQL server binaries (apt-get install postgresql).');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

let privateServer: Promise<{ url: string; stop(): void }> | undefined;

/** One private cluster per test process, stopped at exit. */
function startPrivateServer(): Promise<{ url: string; stop(): void }> {
  privateServer ??= (async () => {
    const bin = binDir();
    const dir = mkdtempSync(join(tmpdir(), 'cacheness-pg-'));
    const asRoot = process.getuid?.() === 0;
    const run = (cmd: string, args: string[]) => {
      if (asRoot) execFileSync('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      else execFileSync(join(bin, cmd), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    };
    if (asRoot) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
    run('initdb', ['-D', dir, '-A', 'trust', '-U', 'postgres', '-N']);
    const port = await freePort();
    // -l: the server must not inherit our stdout, or whoever reads it waits for the server to exit.
    run('pg_ctl', ['-D', dir, '-l', join(dir, 'server.log'), '-o', `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c max_connections=200`, '-w', 'start']);
    const stop = () => {
      try {
        run('pg_ctl', ['-D', dir, '-m', 'immediate', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };
    process.once('exit', stop);
    return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop };
  })();
  return privateServer;
}

let lastUrl: string | undefined;

/** The URL of the server the last harness connected to (for code configured by URL, like the Lambda handlers). */
export function lastServerUrl(): string {
  if (!lastUrl) throw new Error('No PostgreSQL harness has started yet.');
  return lastUrl;
}

/** A migrated, private schema on a real PostgreSQL server. */
export async function startPostgres(): Promise<PostgresHarness> {
  const url = process.env.DATABASE_URL ?? (await startPrivateServer()).url;
  lastUrl = url;
  const schema = `cacheness_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const sql = postgres(url, { max: 10, onnotice: () => {}, connection: { search_path: schema } });
  await migrate(sql);
  return {
    sql,
    schema,
    async stop() {
      await sql.unsafe(`DROP SCHEMA ${schema} CASCADE`);
      await sql.end();
    },
  };
}

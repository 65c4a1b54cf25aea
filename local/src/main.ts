/**
 * `npm start`: the cloud API on this machine. It serves http://127.0.0.1:8787 (PORT to change) on
 * embedded stand-ins: PGlite for Postgres (or the server in DATABASE_URL) and an S3-protocol server
 * (or S3_ENDPOINT with S3_BUCKET and AWS credentials from the environment). Data lives in
 * ./.cacheness-local (CACHENESS_LOCAL_DIR) and survives restarts; the TTL sweeper runs every
 * SWEEP_INTERVAL_MS (default 60 s); Ctrl-C stops cleanly.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { apiLimitsFromEnv, createApp, sweep } from '@cacheness/functions/api';
import { createApiKey, migrate, verifyApiKey } from '@cacheness/functions/postgres';
import { createS3Client } from '@cacheness/functions/s3';
import { serve } from '@hono/node-server';
import postgres from 'postgres';
import { startEmbeddedPostgres } from './embedded-postgres.js';
import { EMBEDDED_S3_CREDENTIALS, startEmbeddedS3 } from './embedded-s3.js';

const sweepEvery = Number(process.env.SWEEP_INTERVAL_MS ?? 60_000);
const root = resolve(process.env.INIT_CWD ?? process.cwd(), process.env.CACHENESS_LOCAL_DIR ?? '.cacheness-local');
mkdirSync(root, { recursive: true });
const stops: (() => Promise<unknown> | unknown)[] = [];

// Empty variables count as unset (an empty DATABASE_URL must not mean "the driver's default server").
const databaseUrl = process.env.DATABASE_URL || undefined;
const s3EndpointSetting = process.env.S3_ENDPOINT || undefined;
const embeddedPg = databaseUrl ? undefined : await startEmbeddedPostgres({ dataDir: join(root, 'postgres') });
if (embeddedPg) stops.push(() => embeddedPg.stop());
// PGlite serves all connections from one session: one connection, or transactions would interleave.
const sql = postgres(databaseUrl ?? (embeddedPg?.url as string), { max: embeddedPg ? 1 : 10, onnotice: () => {} });
stops.unshift(() => sql.end());
await migrate(sql);

const bucket = process.env.S3_BUCKET ?? 'cacheness-local';
let s3Endpoint = s3EndpointSetting;
if (!s3Endpoint) {
  const s3dir = join(root, 's3');
  mkdirSync(s3dir, { recursive: true });
  const embeddedS3 = await startEmbeddedS3({ directory: s3dir, bucket });
  stops.push(() => embeddedS3.stop());
  s3Endpoint = embeddedS3.endpoint;
}
const s3 = createS3Client({ endpoint: s3Endpoint, credentials: s3EndpointSetting ? undefined : EMBEDDED_S3_CREDENTIALS });

// A development key, kept next to the data so restarts reuse it.
const keyFile = join(root, 'dev-api-key');
let apiKey = (() => {
  try {
    return readFileSync(keyFile, 'utf8').trim();
  } catch {
    return '';
  }
})();
if (!(await verifyApiKey(sql, apiKey))) {
  apiKey = (await createApiKey(sql, { namespace: 'dev', scopes: ['read', 'write', 'admin'], name: 'local development' })).key;
  writeFileSync(keyFile, `${apiKey}\n`, { mode: 0o600 });
}

const app = createApp({ sql, s3, bucket, ...apiLimitsFromEnv() });
const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: Number(process.env.PORT ?? 8787) });
await new Promise<void>((ok, fail) => {
  server.once('listening', () => ok());
  server.once('error', fail);
});
const { port } = server.address() as AddressInfo;
console.log(`cacheness local stack
  API       http://127.0.0.1:${port}/v1
  API key   ${apiKey}   (namespace "dev"; export CACHENESS_API_KEY=${apiKey})
  Postgres  ${embeddedPg ? `embedded PGlite, data in ${join(root, 'postgres')}` : 'DATABASE_URL'}
  S3        ${s3EndpointSetting ? s3Endpoint : `embedded at ${s3Endpoint}, data in ${join(root, 's3')}`} (bucket ${bucket})
  Sweeper   every ${sweepEvery / 1000} s
Ctrl-C stops.`);

// The sweeper, on an interval (in AWS, a schedule runs it): expired entries, abandoned uploads, unreferenced objects.
let sweeping: Promise<unknown> = Promise.resolve();
const sweeper = setInterval(() => {
  sweeping = sweep({ sql, s3, bucket })
    .then((r) => {
      if (r.expired || r.uploadsAbandoned || r.objectsDeleted || r.objectsTagged || r.objectsFailed || r.multipartAborted)
        console.log(
          `swept: ${r.expired} expired, ${r.uploadsAbandoned} abandoned uploads, ${r.objectsDeleted} objects deleted, ` +
            `${r.objectsTagged} tagged for expiry, ${r.objectsFailed} failed (retried next run), ${r.multipartAborted} orphan multipart uploads aborted`,
        );
      for (const f of r.failures) console.error(`sweep could not delete or tag ${f.key}: ${f.deleteError}; ${f.tagError}`);
    })
    .catch((err) => console.error(`sweep failed: ${(err as Error).message}`));
}, sweepEvery);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  clearInterval(sweeper);
  await new Promise((r) => server.close(r));
  await sweeping;
  for (const s of stops) await s();
  console.log('stopped');
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

/**
 * A database connection that breaks under a request (as a Lambda container's connection does when it
 * thaws on a socket the network dropped): a real TCP connection through a proxy, reset for real.
 */
import { createServer, type Server, Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApp } from '../src/api/index.js';
import { connectDatabase, createApiKey } from '../src/postgres/index.js';
import { lastServerUrl, type PostgresHarness, startPostgres } from './postgres-server.js';
import { type S3Harness, startS3 } from './s3-server.js';

let pg: PostgresHarness;
let s3: S3Harness;
let proxy: Server;
let proxyUrl: string;
/** Client chunks to pass before resetting the connection (undefined: never). */
let resetAfter: number | undefined;
let resets = 0;

beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  const target = new URL(lastServerUrl());
  proxy = createServer((client) => {
    const upstream = new Socket().connect(Number(target.port), target.hostname);
    client.on('data', (chunk) => {
      if (resetAfter !== undefined && resetAfter-- === 0) {
        // The statement's bytes leave the client, then the connection dies: RST to the client.
        resetAfter = undefined;
        resets++;
        upstream.destroy();
        client.resetAndDestroy();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => client.write(chunk));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const port = (proxy.address() as { port: number }).port;
  proxyUrl = `postgres://${target.username}@127.0.0.1:${port}${target.pathname}`;
});
afterAll(async () => {
  proxy?.close();
  await Promise.all([pg?.stop(), s3?.stop()]);
});

it('retries the first statement of a request on fresh connections when its connection is reset, and stays usable', async () => {
  const { key } = await createApiKey(pg.sql, { namespace: 'reset', scopes: ['read'] });
  const sql = connectDatabase(proxyUrl, { schema: pg.schema }); // one connection, as on Lambda
  try {
    const app = createApp({ sql, s3: s3.client, bucket: s3.bucket });
    const stats = () => app.request('/v1/stats', { headers: { authorization: `Bearer ${key}` } });
    expect((await stats()).status).toBe(200); // the connection is open and idle now
    resetAfter = 0;
    const res = await stats();
    expect(resets).toBe(1);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ entries: 0 });
    expect((await stats()).status).toBe(200);

    // Reset under a later statement: that request cannot be retried safely and answers 503 at once;
    // the connection it broke is replaced, so the next request is served.
    resetAfter = 1;
    const broken = await stats();
    expect(resets).toBe(2);
    expect(broken.status).toBe(503);
    expect(broken.headers.get('retry-after')).not.toBeNull();
    expect((await stats()).status).toBe(200);
  } finally {
    await sql.end({ timeout: 1 });
  }
});

it('replaces the pool once for all the requests that saw the same pool fail', () => {
  const db = connectDatabase('postgres://nobody@127.0.0.1:1/none'); // never connects: pools open lazily
  const seen = db.generation;
  db.reconnect(seen);
  db.reconnect(seen); // a second request that failed on the same pool: already replaced
  expect(db.generation).toBe(seen + 1);
  db.reconnect();
  expect(db.generation).toBe(seen + 2);
});

it('with TLS asked for, never falls back to plain text, and verify-full checks the certificate', async () => {
  const [{ ssl: serverTls }] = (await pg.sql`SHOW ssl`) as unknown as [{ ssl: string }];
  for (const ssl of ['require', 'verify-full'] as const) {
    const db = connectDatabase(lastServerUrl(), { ssl, connectTimeoutSeconds: 5 });
    try {
      if (serverTls === 'on' && ssl === 'require') await expect(db`SELECT 1 AS one`).resolves.toEqual([{ one: 1 }]);
      // No TLS on the server: refused. TLS with a self-signed certificate (Debian's default) and no trusted CA: refused.
      else await expect(db`SELECT 1`).rejects.toThrow(/SSL|TLS|certificate|self.signed/i);
    } finally {
      await db.end({ timeout: 0 });
    }
  }
});

/** Runs the store contract suites against every implementation. */

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate, PostgresMetadataStore } from '@cacheness/functions/postgres';
import { S3BlobStore } from '@cacheness/functions/s3';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '@cacheness/local/embedded-postgres';
import { FsBlobStore, MemoryBlobStore, SqliteMetadataStore } from 'cacheness/stores';
import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, describe } from 'vitest';
import { type PostgresHarness, startPostgres } from '../functions/test/postgres-server.js';
import { startS3 } from '../functions/test/s3-server.js';
import { blobStoreContract } from './contract/blob-store.js';
import { metadataStoreContract } from './contract/metadata-store.js';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'cacheness-contract-'));
}

metadataStoreContract('SQLite file (WAL)', async () => {
  const dir = await tempDir();
  const store = new SqliteMetadataStore({ path: join(dir, 'cache.db') });
  return {
    store,
    async dispose() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

metadataStoreContract('SQLite in memory', async () => {
  const store = new SqliteMetadataStore({ path: ':memory:' });
  return { store, dispose: () => store.close() };
});

blobStoreContract('filesystem', async () => {
  const dir = await tempDir();
  const store = new FsBlobStore({ dir });
  return { store, dispose: () => rm(dir, { recursive: true, force: true }) };
});

blobStoreContract('filesystem with fsync', async () => {
  const dir = await tempDir();
  const store = new FsBlobStore({ dir, fsync: true });
  return { store, dispose: () => rm(dir, { recursive: true, force: true }) };
});

blobStoreContract('memory', async () => {
  const store = new MemoryBlobStore();
  return { store, dispose: () => store.close() };
});

blobStoreContract('S3 (S3-protocol server on 127.0.0.1)', async () => {
  const s3 = await startS3();
  const store = new S3BlobStore({ client: s3.client, bucket: s3.bucket, prefix: 'ns/test/blobs/' });
  return { store, dispose: () => s3.stop() };
});

// Small parts and a low copy limit: staged blobs of a few MiB take the multipart-copy path of multi-GB ones.
blobStoreContract('S3 with 5 MiB parts and multipart copies', async () => {
  const s3 = await startS3();
  const store = new S3BlobStore({ client: s3.client, bucket: s3.bucket, prefix: 'ns/test/blobs/', partSize: 5 * 1024 * 1024, copyLimit: 6 * 1024 * 1024 });
  return { store, dispose: () => s3.stop() };
});

describe('on PostgreSQL', () => {
  let pg: PostgresHarness;
  beforeAll(async () => {
    pg = await startPostgres();
  });
  afterAll(() => pg.stop());
  // Each test gets a fresh namespace: tenants share tables, so this also exercises the scoping.
  metadataStoreContract(
    'PostgreSQL',
    async () => ({ store: new PostgresMetadataStore({ sql: pg.sql, namespace: `t-${randomBytes(6).toString('hex')}` }), dispose: async () => {} }),
    { sql: false },
  );
});

describe('on embedded PGlite (the local stack default)', () => {
  let embedded: EmbeddedPostgres;
  let sql: Sql;
  beforeAll(async () => {
    embedded = await startEmbeddedPostgres();
    sql = postgres(embedded.url, { max: 1, onnotice: () => {} }); // PGlite: one session for every connection
    await migrate(sql);
  });
  afterAll(async () => {
    await sql.end();
    await embedded.stop();
  });
  metadataStoreContract(
    'PostgreSQL (PGlite)',
    async () => ({ store: new PostgresMetadataStore({ sql, namespace: `t-${randomBytes(6).toString('hex')}` }), dispose: async () => {} }),
    { sql: false },
  );
});

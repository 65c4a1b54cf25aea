/** Runs the Cache contract suite against every local mode. */

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresMetadataStore } from '@cacheness/functions/postgres';
import { S3BlobStore } from '@cacheness/functions/s3';
import { type Cache, createCache } from 'cacheness';
import { afterAll, beforeAll, describe } from 'vitest';
import { type PostgresHarness, startPostgres } from '../functions/test/postgres-server.js';
import { type S3Harness, startS3 } from '../functions/test/s3-server.js';
import { cacheContract } from './contract/cache.js';

cacheContract('local (SQLite + files)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cacheness-cache-'));
  const opened: Cache[] = [];
  return {
    persistent: true,
    async open(opts = {}) {
      const c = createCache({ dir, ...opts });
      opened.push(c);
      return c;
    },
    async dispose() {
      await Promise.all(opened.map((c) => c.close()));
      await rm(dir, { recursive: true, force: true });
    },
  };
});

cacheContract('memory', async () => {
  const opened: Cache[] = [];
  return {
    persistent: false,
    async open(opts = {}) {
      const c = createCache({ store: 'memory', ...opts });
      opened.push(c);
      return c;
    },
    async dispose() {
      await Promise.all(opened.map((c) => c.close()));
    },
  };
});

describe('on PostgreSQL + S3', () => {
  let pg: PostgresHarness;
  let s3: S3Harness;
  beforeAll(async () => {
    [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  });
  afterAll(async () => {
    await Promise.all([pg.stop(), s3.stop()]);
  });
  // The engine over the cloud stores: one namespace (tenant) per harness, as the API will use them.
  cacheContract('cloud stores (PostgreSQL metadata, S3 blobs)', async () => {
    const namespace = `t-${randomBytes(6).toString('hex')}`;
    const opened: Cache[] = [];
    return {
      persistent: true,
      sql: false,
      async open(opts = {}) {
        const stores = {
          metadata: new PostgresMetadataStore({ sql: pg.sql, namespace }),
          blobs: new S3BlobStore({ client: s3.client, bucket: s3.bucket, prefix: `ns/${namespace}/blobs/` }),
        };
        const c = createCache({ ...opts, ...(opts.store === 'memory' ? {} : { stores }) });
        opened.push(c);
        return c;
      },
      async dispose() {
        await Promise.all(opened.map((c) => c.close()));
      },
    };
  });
});

import { randomBytes } from 'node:crypto';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import type { EntryRecord } from 'cacheness';
import { xxh128Hex } from 'cacheness/stores';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { blobObjectKey, sweep } from '../src/api/index.js';
import { createUpload, PostgresMetadataStore } from '../src/postgres/index.js';
import { S3BlobStore } from '../src/s3/index.js';
import { type PostgresHarness, startPostgres } from './postgres-server.js';
import { type S3Harness, startS3 } from './s3-server.js';

let pg: PostgresHarness;
let s3: S3Harness;
beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
});
afterAll(() => Promise.all([pg.stop(), s3.stop()]));

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

async function objectExists(key: string): Promise<boolean> {
  try {
    await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
    return true;
  } catch {
    return false;
  }
}

/** Puts an entry whose payload is a real object in S3; returns its object key. */
async function putBlobEntry(store: PostgresMetadataStore, key: string, expiresAt: number | null): Promise<string> {
  const bytes = randomBytes(1000);
  const id = xxh128Hex(bytes);
  const r = await store.acquireBlob(id, bytes.length, T0, 'test:1');
  await new S3BlobStore({ client: s3.client, bucket: s3.bucket, prefix: blobObjectKey(store.namespace, '') }).write(r.name, bytes);
  const record: EntryRecord = {
    key,
    params: null,
    handler: 'bytes@1',
    type: 'Buffer',
    codec: 'none',
    size: 1000,
    storedSize: 1000,
    contentHash: id,
    blobId: id,
    inline: null,
    createdAt: T0,
    accessedAt: T0,
    expiresAt,
    hits: 0,
    description: null,
    metadata: null,
  };
  await store.put(record, { pin: r.pin, blobName: r.name });
  return blobObjectKey(store.namespace, r.name);
}

it('expires entries, abandons stale uploads and deletes unreferenced objects: once, even when two sweepers race', async () => {
  const ns = `t-${randomBytes(4).toString('hex')}`;
  const store = new PostgresMetadataStore({ sql: pg.sql, namespace: ns });
  const doomed = await Promise.all(Array.from({ length: 12 }, (_, i) => putBlobEntry(store, `old/${i}`, T0 + HOUR)));
  const live = await putBlobEntry(store, 'live', null);
  // A pending upload that expired, and one still in progress: only the first is abandoned.
  for (const [id, expiresAt] of [
    ['stale', T0 + HOUR],
    ['fresh', T0 + 48 * HOUR],
  ] as const) {
    const r = await store.acquireBlob(id.padEnd(32, '0').replace(/[^0-9a-f]/g, 'a'), 10, T0 + 2 * HOUR, 'upload:test');
    await createUpload(pg.sql, {
      namespace: ns,
      key: `pending-${id}`,
      record: {} as EntryRecord,
      tables: null,
      blobName: r.name,
      pin: r.pin,
      multipart: null,
      maxSize: null,
      createdAt: T0,
      expiresAt,
    });
  }

  const now = T0 + 2 * HOUR;
  const [a, b] = await Promise.all([
    sweep({ sql: pg.sql, s3: s3.client, bucket: s3.bucket, now, batch: 5 }),
    sweep({ sql: pg.sql, s3: s3.client, bucket: s3.bucket, now, batch: 5 }),
  ]);
  expect(a.expired + b.expired).toBe(12);
  expect(a.uploadsAbandoned + b.uploadsAbandoned).toBe(1);
  expect(a.objectsDeleted + b.objectsDeleted).toBe(13); // 12 expired blobs + the stale upload's reservation
  for (const key of doomed) expect(await objectExists(key)).toBe(false);
  expect(await objectExists(live)).toBe(true);
  expect((await pg.sql`SELECT key FROM uploads WHERE namespace = ${ns}`).map((r) => r.key)).toEqual(['pending-fresh']);
  expect((await store.counters()).expirations).toBe(12);

  const again = await sweep({ sql: pg.sql, s3: s3.client, bucket: s3.bucket, now });
  expect([again.expired, again.uploadsAbandoned, again.objectsDeleted]).toEqual([0, 0, 0]);
});

/**
 * The API leaves no orphan multipart upload behind when the pending upload cannot be recorded after
 * S3 has started the multipart upload. The database refuses for real (a constraint on this test's own
 * schema); the S3 client only records what it sends to the real server.
 */
import { randomBytes } from 'node:crypto';
import { xxh128Hex } from 'cacheness/stores';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApp } from '../src/api/index.js';
import { createApiKey } from '../src/postgres/index.js';
import { type PostgresHarness, startPostgres } from './postgres-server.js';
import { recordCommands } from './s3-faults.js';
import { type S3Harness, startS3 } from './s3-server.js';

let pg: PostgresHarness;
let s3: S3Harness;
beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
});
afterAll(() => Promise.all([pg.stop(), s3.stop()]));

it('aborts the multipart upload it started when the pending upload cannot be recorded, and still fails the request', async () => {
  const { key } = await createApiKey(pg.sql, { namespace: 'team-a', scopes: ['read', 'write'] });
  await pg.sql`ALTER TABLE uploads ADD CONSTRAINT test_refused_key CHECK (key <> 'refused')`;
  const { client, sent } = recordCommands(s3);
  // Everything above 1 KiB goes multipart; no bytes are sent, only announced.
  const app = createApp({ sql: pg.sql, s3: client, bucket: s3.bucket, singlePutMaxBytes: 1024, preferredPartBytes: 5 * 1024 * 1024 });
  const id = xxh128Hex(randomBytes(16));
  const put = (entryKey: string) =>
    app.request(`/v1/entries/${entryKey}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ handler: 'bytes@1', type: 'Buffer', codec: 'none', size: 12 << 20, storedSize: 12 << 20, contentHash: id, blobId: id }),
    });
  const aborts = () => sent.filter((c) => c.name === 'AbortMultipartUploadCommand').map((c) => ({ key: c.input.Key, uploadId: c.input.UploadId }));

  const refused = await put('refused');
  expect(refused.status).toBe(500);
  const created = sent.filter((c) => c.name === 'CreateMultipartUploadCommand');
  expect(created).toHaveLength(1);
  const uploadId = created[0]?.output?.UploadId;
  expect(uploadId).toBeTypeOf('string');
  // s3rver has no AbortMultipartUpload (it answers 405); that the API asked, with this upload's id, is what counts.
  expect(aborts()).toEqual([{ key: created[0]?.input.Key, uploadId }]);
  expect(await pg.sql`SELECT id FROM uploads`).toHaveLength(0);

  // A key the database accepts gets its multipart upload, and nothing is aborted.
  const accepted = await put('accepted');
  expect(accepted.status).toBe(202);
  expect(((await accepted.json()) as { upload: { method: string } }).upload.method).toBe('MULTIPART');
  expect(aborts()).toHaveLength(1);
  client.destroy();
});

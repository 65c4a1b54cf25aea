/**
 * A real S3-protocol server for tests, on 127.0.0.1 with a random port: @20minutes/s3rver, which
 * verifies SigV4 signatures (including the signed content length) and URL expiry. Its gaps
 * (no AbortMultipartUpload, ListParts, ListMultipartUploads, lifecycle; part sizes and ETags unchecked
 * at Complete) are covered by tests of our own code, not assumed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @ts-expect-error: the package ships no type declarations
import S3rver from '@20minutes/s3rver';
import type { S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/s3/client.js';

export interface S3Harness {
  endpoint: string;
  bucket: string;
  client: S3Client;
  stop(): Promise<void>;
}

/** The only credentials the stand-in accepts. */
export const S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export async function startS3(bucket = 'cacheness-test'): Promise<S3Harness> {
  const directory = await mkdtemp(join(tmpdir(), 'cacheness-s3-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', directory, silent: true, configureBuckets: [{ name: bucket }] });
  const { port } = (await server.run()) as { port: number };
  const endpoint = `http://127.0.0.1:${port}`;
  const client = createS3Client({ endpoint, credentials: S3_CREDENTIALS });
  return {
    endpoint,
    bucket,
    client,
    async stop() {
      client.destroy();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/**
 * {@link BlobStore} on S3: blob `name` is the object `<prefix><name>`. The cloud API uses it for what
 * the server itself does with bytes (inline payloads, sweeping, verification); clients move large
 * payloads through presigned URLs instead.
 * @module
 */
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { BlobStore } from 'cacheness/model';
import { StoreError } from 'cacheness/model';

/** Options of {@link S3BlobStore}. */
export interface S3BlobStoreOptions {
  client: S3Client;
  bucket: string;
  /** Object key prefix of this store's blobs (e.g. `ns/<namespace>/blobs/`). */
  prefix: string;
}

function isMissing(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

export class S3BlobStore implements BlobStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(opts: S3BlobStoreOptions) {
    this.client = opts.client;
    this.bucket = opts.bucket;
    this.prefix = opts.prefix;
  }

  private key(name: string): string {
    if (!/^[0-9a-f]{4,}\.[0-9a-f]+$/.test(name)) throw new StoreError('ESTORE', `Invalid blob name ${JSON.stringify(name)}.`);
    return this.prefix + name;
  }

  async write(name: string, data: Uint8Array): Promise<void> {
    // A PUT is atomic in S3: readers see the old object or the whole new one, never a part.
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(name), Body: data, ContentLength: data.length }));
  }

  async read(name: string): Promise<Uint8Array | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
      return out.Body ? Buffer.from(await out.Body.transformToByteArray()) : new Uint8Array(0);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async size(name: string): Promise<number | undefined> {
    try {
      return (await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(name) }))).ContentLength;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async delete(names: string[]): Promise<void> {
    for (let i = 0; i < names.length; i += 1000) {
      const batch = names.slice(i, i + 1000).map((n) => ({ Key: this.key(n) }));
      const out = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch, Quiet: true } }));
      const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length) throw new StoreError('ESTORE', `S3 could not delete ${failed.length} blobs (first: ${failed[0]?.Key}: ${failed[0]?.Code} ${failed[0]?.Message}).`);
    }
  }

  async *names(): AsyncIterable<string> {
    let token: string | undefined;
    do {
      const out = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, ContinuationToken: token }));
      for (const o of out.Contents ?? []) if (o.Key) yield o.Key.slice(this.prefix.length);
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  /** Aborts multipart uploads under this prefix started more than `olderThanMs` ago. */
  async sweepPartial(olderThanMs: number): Promise<number> {
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    try {
      do {
        const out = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
        for (const u of out.Uploads ?? []) {
          if (u.Key && u.UploadId && u.Initiated && Date.now() - u.Initiated.getTime() > olderThanMs) {
            await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }));
            aborted++;
          }
        }
        keyMarker = out.IsTruncated ? out.NextKeyMarker : undefined;
        uploadIdMarker = out.IsTruncated ? out.NextUploadIdMarker : undefined;
      } while (keyMarker);
    } catch (err) {
      // Some S3-protocol stand-ins (the local stack's) do not implement ListMultipartUploads; S3 does.
      if ((err as { name?: string }).name === 'NotImplemented') return aborted;
      throw err;
    }
    return aborted;
  }

  async close(): Promise<void> {}
}

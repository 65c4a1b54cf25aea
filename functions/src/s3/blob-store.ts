/**
 * {@link BlobStore} on S3: blob `name` is the object `<prefix><name>`. The cloud API uses it for what
 * the server itself does with bytes (inline payloads, sweeping, verification); clients move large
 * payloads through presigned URLs instead.
 * @module
 */
import { randomBytes } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  PutObjectTaggingCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import type { BlobReader, BlobStage, BlobStore } from 'cacheness/model';
import { StoreError } from 'cacheness/model';
import { GARBAGE_TAG_KEY, GARBAGE_TAG_VALUE } from './garbage-tag.js';

/** Options of {@link S3BlobStore}. */
export interface S3BlobStoreOptions {
  client: S3Client;
  bucket: string;
  /** Object key prefix of this store's blobs (e.g. `ns/<namespace>/blobs/`). */
  prefix: string;
  /** Part size of staged (streamed) blobs. Default 8 MiB (S3's minimum is 5 MiB). */
  partSize?: number;
  /** Staged blobs larger than this are published by a multipart copy instead of one CopyObject. Default 5 GiB, S3's CopyObject limit. */
  copyLimit?: number;
}

/** A blob S3 did not act on, with S3's error code and message. */
export interface BlobFailure {
  name: string;
  code: string;
  message: string;
}

/** What {@link S3BlobStore.deleteMany} did. */
export interface DeleteManyResult {
  /** Names whose objects are gone: deleted now, or already missing. */
  deleted: string[];
  /** Names S3 reported an error for (other than NoSuchKey): their objects may still be there. */
  failed: BlobFailure[];
}

/** What {@link S3BlobStore.tagGarbage} did. */
export interface TagGarbageResult {
  /** Names whose objects now carry the garbage tag. */
  tagged: string[];
  /** Names whose objects were already gone. */
  missing: string[];
  /** Names whose objects could not be tagged. */
  failed: BlobFailure[];
}

/** Options of {@link S3BlobStore.sweepPartial}. */
export interface PartialSweepOptions {
  /** The time ages are measured from, in milliseconds since the epoch. Default `Date.now()`. */
  now?: number;
  /**
   * Given a page of uploads old enough to abort, the upload ids to leave alone (for example those a
   * pending-upload row still names). Default: none.
   */
  keep?: (uploads: { key: string; uploadId: string }[]) => Promise<ReadonlySet<string>>;
}

const BLOB_NAME = /^[0-9a-f]{4,}\.[0-9a-f]+$/;

/** PutObjectTagging requests in flight at once (S3 has no batch tagging call). */
const TAG_CONCURRENCY = 16;

function isMissing(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

function failure(name: string, err: unknown): BlobFailure {
  const e = err as { name?: string; message?: string };
  return { name, code: e.name ?? 'Error', message: e.message ?? String(err) };
}

export class S3BlobStore implements BlobStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  private readonly partSize: number;
  private readonly copyLimit: number;

  constructor(opts: S3BlobStoreOptions) {
    this.client = opts.client;
    this.bucket = opts.bucket;
    this.prefix = opts.prefix;
    this.partSize = opts.partSize ?? 8 * 1024 * 1024;
    this.copyLimit = opts.copyLimit ?? 5 * 1024 ** 3;
  }

  private key(name: string): string {
    if (!BLOB_NAME.test(name)) throw new StoreError('ESTORE', `Invalid blob name ${JSON.stringify(name)}.`);
    return this.prefix + name;
  }

  async write(name: string, data: Uint8Array): Promise<void> {
    // A PUT is atomic in S3: readers see the old object or the whole new one, never a part.
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(name), Body: data, ContentLength: data.length }));
  }

  /**
   * A staged blob smaller than one part is PUT under its name at `publish`. A larger one is uploaded in
   * parts to `<prefix>tmp/<random>` (tagged as garbage, so the bucket's lifecycle rule removes it if
   * this process dies before cleaning up), then copied under its name, untagged, and the temporary
   * object deleted. S3 has no rename; the copy stays inside S3.
   */
  async stage(): Promise<BlobStage> {
    const store = this;
    const tmpKey = `${this.prefix}tmp/${process.pid}-${randomBytes(8).toString('hex')}`;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let size = 0;
    let uploadId: string | undefined;
    const parts: { ETag: string; PartNumber: number }[] = [];
    let state: 'open' | 'published' | 'aborted' = 'open';
    const flushPart = async () => {
      uploadId ??= (await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: tmpKey, Tagging: `${GARBAGE_TAG_KEY}=${GARBAGE_TAG_VALUE}` }))).UploadId;
      const body = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      const PartNumber = parts.length + 1;
      const out = await this.client.send(new UploadPartCommand({ Bucket: this.bucket, Key: tmpKey, UploadId: uploadId, PartNumber, Body: body, ContentLength: body.length }));
      parts.push({ ETag: out.ETag as string, PartNumber });
    };
    const abort = async () => {
      if (state === 'aborted') return;
      const wasOpen = state === 'open';
      state = 'aborted';
      pending = [];
      if (uploadId && wasOpen) await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: tmpKey, UploadId: uploadId })).catch(() => {});
    };
    const check = () => {
      if (state !== 'open') throw new StoreError('ESTORE', `This blob stage was already ${state}.`);
    };
    return {
      get size() {
        return size;
      },
      async write(data) {
        check();
        try {
          pending.push(Buffer.from(data)); // own copy
          pendingBytes += data.length;
          size += data.length;
          if (pendingBytes >= store.partSize) await flushPart();
        } catch (err) {
          await abort();
          throw err;
        }
      },
      async publish(name) {
        check();
        const key = store.key(name);
        try {
          if (!uploadId) {
            await store.client.send(new PutObjectCommand({ Bucket: store.bucket, Key: key, Body: Buffer.concat(pending, pendingBytes), ContentLength: pendingBytes }));
            state = 'published';
            return;
          }
          if (pendingBytes > 0) await flushPart();
          await store.client.send(new CompleteMultipartUploadCommand({ Bucket: store.bucket, Key: tmpKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
          state = 'published';
          try {
            await store.copy(tmpKey, key, size);
          } finally {
            await store.client.send(new DeleteObjectsCommand({ Bucket: store.bucket, Delete: { Objects: [{ Key: tmpKey }], Quiet: true } })).catch(() => {});
          }
        } catch (err) {
          await abort();
          throw err;
        }
      },
      abort,
    };
  }

  /** Server-side copy without the source's tags: one CopyObject up to `copyLimit`, a multipart copy above. */
  private async copy(from: string, to: string, size: number): Promise<void> {
    const CopySource = `${this.bucket}/${encodeURI(from)}`;
    if (size <= this.copyLimit) {
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource, TaggingDirective: 'REPLACE' }));
      return;
    }
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: to }));
    try {
      const parts: { ETag: string; PartNumber: number }[] = [];
      const step = Math.max(this.partSize, Math.ceil(size / 10_000));
      for (let start = 0, PartNumber = 1; start < size; start += step, PartNumber++) {
        const end = Math.min(size, start + step) - 1;
        const out = await this.client.send(new UploadPartCopyCommand({ Bucket: this.bucket, Key: to, UploadId, PartNumber, CopySource, CopySourceRange: `bytes=${start}-${end}` }));
        parts.push({ ETag: out.CopyPartResult?.ETag as string, PartNumber });
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: to, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: to, UploadId })).catch(() => {});
      throw err;
    }
  }

  async open(name: string): Promise<BlobReader | undefined> {
    const size = await this.size(name);
    if (size === undefined) return undefined;
    const Key = this.key(name);
    return {
      size,
      read: async (offset, length, into) => {
        const last = Math.min(size, offset + length) - 1;
        if (last < offset) return new Uint8Array(0);
        let out: GetObjectCommandOutput;
        try {
          out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range: `bytes=${offset}-${last}` }));
        } catch (err) {
          // S3 cannot keep deleted bytes readable as an open file can: the entry was replaced or removed meanwhile.
          if (isMissing(err))
            throw new StoreError('ESTORE', `Blob ${name} was deleted while it was being read (its entry was replaced or removed); read the entry again.`, { cause: err });
          throw err;
        }
        if (!out.Body) return new Uint8Array(0);
        if (!into || into.length < last - offset + 1) return Buffer.from(await out.Body.transformToByteArray());
        // Copied into the caller's memory as the response arrives, never held whole a second time.
        const expected = last - offset + 1;
        let n = 0;
        for await (const piece of out.Body as AsyncIterable<Uint8Array>) {
          if (n + piece.length > expected) throw new StoreError('ESTORE', `S3 returned more than the ${expected} bytes asked of ${Key} at ${offset}; try again.`);
          into.set(piece, n);
          n += piece.length;
        }
        // A cut-off response is a failed read, not a short blob (which would look like damage).
        if (n !== expected) throw new StoreError('ESTORE', `S3 returned ${n} of the ${expected} bytes asked of ${Key} at ${offset}; try again.`);
        return into.subarray(0, n);
      },
      close: async () => {},
    };
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

  /** Deletes blobs; missing ones are ignored. Throws `ESTORE` when S3 would not delete some (after trying all). */
  async delete(names: string[]): Promise<void> {
    const { failed } = await this.deleteMany(names);
    const first = failed[0];
    if (first) throw new StoreError('ESTORE', `S3 could not delete ${failed.length} blobs (first: ${this.prefix}${first.name}: ${first.code} ${first.message}).`);
  }

  /**
   * Deletes blobs with DeleteObjects (at most 1,000 keys a call) and reports, per blob, what S3 said,
   * instead of failing the whole call when some keys fail. A failure of a whole call (network,
   * throttling after the SDK's retries, access to the bucket) still throws.
   */
  async deleteMany(names: string[]): Promise<DeleteManyResult> {
    const result: DeleteManyResult = { deleted: [], failed: [] };
    for (let i = 0; i < names.length; i += 1000) {
      const batch = names.slice(i, i + 1000);
      const keys = new Set(batch.map((n) => this.key(n)));
      const out = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: [...keys].map((Key) => ({ Key })), Quiet: true } }));
      const failed = new Map<string, BlobFailure>();
      for (const e of out.Errors ?? []) {
        if (e.Code === 'NoSuchKey') continue;
        if (!e.Key || !keys.has(e.Key)) throw new StoreError('ESTORE', `S3 reported a delete error for an object not asked about (${e.Key}: ${e.Code} ${e.Message}).`);
        const name = e.Key.slice(this.prefix.length);
        failed.set(name, { name, code: e.Code ?? 'Error', message: e.Message ?? '' });
      }
      for (const name of batch) if (!failed.has(name)) result.deleted.push(name);
      result.failed.push(...failed.values());
    }
    return result;
  }

  /**
   * Tags blobs `cacheness-garbage=1` ({@link GARBAGE_TAG_KEY}), so the bucket's lifecycle rule
   * expires them. Only for blobs that are garbage and can never be referenced again (see
   * `garbage-tag.ts`); never call it on a live blob. Reports per blob what S3 said.
   */
  async tagGarbage(names: string[]): Promise<TagGarbageResult> {
    const result: TagGarbageResult = { tagged: [], missing: [], failed: [] };
    const keys = names.map((n) => this.key(n));
    for (let i = 0; i < names.length; i += TAG_CONCURRENCY) {
      await Promise.all(
        names.slice(i, i + TAG_CONCURRENCY).map(async (name, j) => {
          try {
            await this.client.send(
              new PutObjectTaggingCommand({ Bucket: this.bucket, Key: keys[i + j], Tagging: { TagSet: [{ Key: GARBAGE_TAG_KEY, Value: GARBAGE_TAG_VALUE }] } }),
            );
            result.tagged.push(name);
          } catch (err) {
            if (isMissing(err)) result.missing.push(name);
            else result.failed.push(failure(name, err));
          }
        }),
      );
    }
    return result;
  }

  async *names(): AsyncIterable<string> {
    let token: string | undefined;
    do {
      const out = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, ContinuationToken: token }));
      // Names only: staged blobs (`tmp/...`) are not blobs yet.
      for (const o of out.Contents ?? []) if (o.Key && BLOB_NAME.test(o.Key.slice(this.prefix.length))) yield o.Key.slice(this.prefix.length);
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Aborts multipart uploads under this prefix started more than `olderThanMs` before `opts.now`,
   * except those `opts.keep` names; returns how many it aborted (one already gone is not counted).
   * S3-protocol servers without ListMultipartUploads (NotImplemented) have nothing to sweep: 0.
   */
  async sweepPartial(olderThanMs: number, opts: PartialSweepOptions = {}): Promise<number> {
    const now = opts.now ?? Date.now();
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    try {
      do {
        const out = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
        const stale = (out.Uploads ?? []).flatMap((u) =>
          u.Key && u.UploadId && u.Initiated && now - u.Initiated.getTime() > olderThanMs ? [{ key: u.Key, uploadId: u.UploadId }] : [],
        );
        const keep = stale.length && opts.keep ? await opts.keep(stale) : new Set<string>();
        for (const u of stale) {
          if (keep.has(u.uploadId)) continue;
          try {
            await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.key, UploadId: u.uploadId }));
            aborted++;
          } catch (err) {
            // Aborted meanwhile (by the API, or another sweeper): nothing left to do.
            if ((err as { name?: string }).name !== 'NoSuchUpload') throw err;
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

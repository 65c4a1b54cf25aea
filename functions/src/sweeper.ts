/**
 * The TTL sweeper. Postgres's `expires_at` is authoritative (an expired entry is a miss at once); the
 * sweeper only reclaims space: it deletes expired entries and abandoned pending uploads in bounded
 * batches, then deletes the objects no entry references any more (DeleteObjects, at most 1,000 keys a
 * call). Every step claims its rows with `FOR UPDATE SKIP LOCKED`, so two sweepers running at once
 * share the work instead of repeating it, and a run that dies is finished by the next.
 * @module
 */
import { AbortMultipartUploadCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Sql } from 'postgres';
import { blobObjectKey } from './object-keys.js';
import { PostgresMetadataStore } from './postgres/metadata-store.js';
import { S3BlobStore } from './s3/blob-store.js';

export interface SweepOptions {
  sql: Sql;
  s3: S3Client;
  bucket: string;
  /** Milliseconds since the epoch. Default `Date.now()`. */
  now?: number;
  /** Rows per batch. Default 1,000. */
  batch?: number;
  /** Pins older than this are abandoned (must exceed the upload lifetime). Default 25 hours. */
  pinStaleMs?: number;
}

export interface SweepReport {
  namespaces: number;
  expired: number;
  uploadsAbandoned: number;
  objectsDeleted: number;
}

export async function sweep(opts: SweepOptions): Promise<SweepReport> {
  const now = opts.now ?? Date.now();
  const batch = opts.batch ?? 1000;
  const staleBefore = now - (opts.pinStaleMs ?? 25 * 3_600_000);
  const report: SweepReport = { namespaces: 0, expired: 0, uploadsAbandoned: 0, objectsDeleted: 0 };
  const namespaces = await opts.sql`
    SELECT namespace FROM entries WHERE expires_at <= ${new Date(now)}
    UNION SELECT namespace FROM uploads WHERE expires_at <= ${new Date(now)}
    UNION SELECT namespace FROM blobs WHERE refs <= 0`;
  for (const { namespace } of namespaces as unknown as { namespace: string }[]) {
    report.namespaces++;
    const store = new PostgresMetadataStore({ sql: opts.sql, namespace });
    for (let n = batch; n === batch; report.expired += n) n = await store.deleteExpired(now, batch);
    report.uploadsAbandoned += await abandonUploads(opts, namespace, now, batch);
    const blobs = new S3BlobStore({ client: opts.s3, bucket: opts.bucket, prefix: blobObjectKey(namespace, '') });
    for (;;) {
      const names = await store.claimGarbage(staleBefore, batch);
      if (names.length === 0) break;
      await blobs.delete(names);
      report.objectsDeleted += await store.dropGarbage(names); // exact even when another sweeper deleted some too
    }
  }
  return report;
}

/** Aborts expired pending uploads of a namespace (their multipart parts stop being billed) and releases their pins. */
async function abandonUploads(opts: SweepOptions, namespace: string, now: number, batch: number): Promise<number> {
  let total = 0;
  for (;;) {
    const done = await opts.sql.begin(async (tx) => {
      const rows = await tx`
        SELECT id, blob_name, pin, s3_upload_id FROM uploads
        WHERE namespace = ${namespace} AND expires_at <= ${new Date(now)}
        ORDER BY expires_at LIMIT ${batch} FOR UPDATE SKIP LOCKED`;
      for (const r of rows) {
        if (r.s3_upload_id) {
          await opts.s3
            .send(new AbortMultipartUploadCommand({ Bucket: opts.bucket, Key: blobObjectKey(namespace, r.blob_name as string), UploadId: r.s3_upload_id as string }))
            .catch((err: { name?: string }) => {
              // Already gone, or a local stand-in without AbortMultipartUpload: nothing to abort.
              if (!['NoSuchUpload', 'NotImplemented', 'MethodNotAllowed'].includes(err.name ?? '')) throw err;
            });
        }
        await tx`DELETE FROM pins WHERE namespace = ${namespace} AND token = ${r.pin as string}`;
        await tx`DELETE FROM uploads WHERE id = ${r.id as string}`;
      }
      return rows.length;
    });
    total += done;
    if (done < batch) return total;
  }
}

/**
 * The TTL sweeper. Postgres's `expires_at` is authoritative (an expired entry is a miss at once); the
 * sweeper only reclaims space: it deletes expired entries and abandoned pending uploads in bounded
 * batches, then deletes the objects no entry references any more (DeleteObjects, at most 1,000 keys a
 * call). Every step claims its rows with `FOR UPDATE SKIP LOCKED`, so two sweepers running at once
 * share the work instead of repeating it, and a run that dies is finished by the next.
 *
 * An object S3 will not delete is tagged for the bucket's lifecycle rule (`cacheness-garbage=1`) and
 * forgotten; one that can be neither deleted nor tagged stays claimed for the next run. Either way the
 * run goes on with the rest. Last, multipart uploads that no pending upload names (orphans) are aborted
 * once they are older than any pending upload can be.
 * @module
 */
import { AbortMultipartUploadCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Sql } from 'postgres';
import { blobObjectKey, NAMESPACES_PREFIX } from './object-keys.js';
import { PostgresMetadataStore } from './postgres/metadata-store.js';
import { pendingMultipartIds } from './postgres/uploads.js';
import { S3BlobStore } from './s3/blob-store.js';

const HOUR = 3_600_000;
/** Most entries of {@link SweepReport.failures}. */
const MAX_REPORTED_FAILURES = 10;

/** Options of {@link sweep}. */
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
  /**
   * Multipart uploads initiated longer ago than this that no pending upload names are aborted as
   * orphans (must exceed the 24-hour upload lifetime). Default 25 hours.
   */
  multipartStaleMs?: number;
}

/** What one {@link sweep} run did. */
export interface SweepReport {
  /** Namespaces that had expired entries, expired uploads or unreferenced blobs. */
  namespaces: number;
  /** Expired entries deleted. */
  expired: number;
  /** Expired pending uploads abandoned (multipart upload aborted, pin released). */
  uploadsAbandoned: number;
  /** Unreferenced objects deleted (or found already gone) and forgotten. */
  objectsDeleted: number;
  /** Unreferenced objects S3 would not delete, tagged `cacheness-garbage=1` for the lifecycle rule and forgotten. */
  objectsTagged: number;
  /** Unreferenced objects S3 would neither delete nor tag: still claimed, retried by the next run. */
  objectsFailed: number;
  /** Orphan multipart uploads (named by no pending upload) aborted. */
  multipartAborted: number;
  /** The first few objects counted in `objectsFailed`, with why (for the operator's log). */
  failures: { key: string; deleteError: string; tagError: string }[];
}

/**
 * One sweep over every namespace with work: expired entries, expired pending uploads, unreferenced
 * objects, then orphan multipart uploads. Per-object S3 failures do not make it throw (see
 * {@link SweepReport}); a failure of the database or of a whole S3 call does, and the next run
 * finishes what this one left.
 */
export async function sweep(opts: SweepOptions): Promise<SweepReport> {
  const now = opts.now ?? Date.now();
  const batch = opts.batch ?? 1000;
  const staleBefore = now - (opts.pinStaleMs ?? 25 * HOUR);
  const report: SweepReport = {
    namespaces: 0,
    expired: 0,
    uploadsAbandoned: 0,
    objectsDeleted: 0,
    objectsTagged: 0,
    objectsFailed: 0,
    multipartAborted: 0,
    failures: [],
  };
  const namespaces = await opts.sql`
    SELECT namespace FROM entries WHERE expires_at <= ${new Date(now)}
    UNION SELECT namespace FROM uploads WHERE expires_at <= ${new Date(now)}
    UNION SELECT namespace FROM blobs WHERE refs <= 0
    UNION SELECT namespace FROM blob_graveyard`;
  for (const { namespace } of namespaces as unknown as { namespace: string }[]) {
    report.namespaces++;
    const store = new PostgresMetadataStore({ sql: opts.sql, namespace });
    for (let n = batch; n === batch; report.expired += n) n = await store.deleteExpired(now, batch);
    report.uploadsAbandoned += await abandonUploads(opts, namespace, now, batch);
    await reclaimObjects(opts, store, staleBefore, batch, report);
  }
  // Bucket-wide, not per namespace above: an orphan's namespace may have no other work to visit it for.
  const root = new S3BlobStore({ client: opts.s3, bucket: opts.bucket, prefix: NAMESPACES_PREFIX });
  const keep = (uploads: { uploadId: string }[]) => pendingMultipartIds(opts.sql, uploadIds(uploads));
  report.multipartAborted = await root.sweepPartial(opts.multipartStaleMs ?? 25 * HOUR, { now, keep });
  return report;
}

const uploadIds = (uploads: { uploadId: string }[]) => uploads.map((u) => u.uploadId);

/**
 * Claims a namespace's unreferenced blobs batch by batch, in blob id order (each claimed once a run),
 * deletes their objects, tags those S3 would not delete, and forgets the rows of objects deleted or
 * tagged. Rows of objects neither deleted nor tagged stay doomed for the next run.
 */
async function reclaimObjects(opts: SweepOptions, store: PostgresMetadataStore, staleBefore: number, batch: number, report: SweepReport): Promise<void> {
  const blobs = new S3BlobStore({ client: opts.s3, bucket: opts.bucket, prefix: blobObjectKey(store.namespace, '') });
  /** Deletes (else tags) `names`; `forget` drops the rows of those done and counts them. */
  const reclaim = async (names: string[], forget: (names: string[]) => Promise<number>) => {
    const { deleted, failed } = await blobs.deleteMany(names);
    const tags = failed.length ? await blobs.tagGarbage(failed.map((f) => f.name)) : { tagged: [], missing: [], failed: [] };
    // Counts come from rows actually forgotten: exact even when another sweeper handled some too.
    report.objectsDeleted += await forget([...deleted, ...tags.missing]);
    report.objectsTagged += await forget(tags.tagged);
    report.objectsFailed += tags.failed.length;
    for (const t of tags.failed) {
      if (report.failures.length >= MAX_REPORTED_FAILURES) break;
      const d = failed.find((f) => f.name === t.name);
      report.failures.push({ key: blobObjectKey(store.namespace, t.name), deleteError: `${d?.code}: ${d?.message}`, tagError: `${t.code}: ${t.message}` });
    }
    return tags.failed.length;
  };
  for (let after = ''; ; ) {
    const names = await store.claimGarbage(staleBefore, batch, after);
    const last = names.at(-1);
    if (last === undefined) break;
    after = last;
    await reclaim(names, (n) => store.dropGarbage(n));
  }
  // Objects of doomed blobs that were renamed before their sweeper finished (rare): one batch a run.
  const buried = await store.buried(batch);
  if (buried.length) await reclaim(buried, (n) => store.forgetBuried(n));
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

/**
 * Pending uploads: the entry record waits here, with its pinned blob, until the client has put the
 * bytes into S3 and completes the upload. Scoped by namespace like everything else.
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { EntryRecord, TableRow } from 'cacheness/model';
import type { Sql } from 'postgres';

export interface PendingUpload {
  id: string;
  namespace: string;
  key: string;
  record: EntryRecord;
  tables: Record<string, TableRow[]> | null;
  blobName: string;
  pin: string;
  /** Multipart uploads: S3's upload id and the part plan. */
  multipart: { s3UploadId: string; partSize: number; partCount: number } | null;
  /** Streamed uploads (size unknown until completion): the largest stored size the plan carries; null otherwise. */
  maxSize: number | null;
  /**
   * When the client wrote the entry (`writtenAt`, clamped to the server's clock): completion keeps the
   * record's createdAt and expiresAt, and refuses if a later write was stored meanwhile. Null or absent:
   * the write happens at completion (createdAt and the ttl count from then).
   */
  writtenAt?: number | null;
  /** The record's expiresAt is absolute (the client sent `expiresAt`): completion keeps it. */
  fixedExpiry?: boolean;
  createdAt: number;
  expiresAt: number;
}

export async function createUpload(sql: Sql, u: Omit<PendingUpload, 'id'>): Promise<PendingUpload> {
  const id = randomBytes(12).toString('hex');
  await sql`
    INSERT INTO uploads (id, namespace, key, record, tables, blob_name, pin, s3_upload_id, part_size, part_count, max_size, written_at, fixed_expiry, created_at, expires_at)
    VALUES (${id}, ${u.namespace}, ${u.key}, ${sql.json({ ...u.record, inline: null } as never)}, ${u.tables === null ? null : sql.json(u.tables as never)},
            ${u.blobName}, ${u.pin}, ${u.multipart?.s3UploadId ?? null}, ${u.multipart?.partSize ?? null}, ${u.multipart?.partCount ?? null},
            ${u.maxSize}, ${u.writtenAt == null ? null : new Date(u.writtenAt)}, ${u.fixedExpiry ?? false}, ${new Date(u.createdAt)}, ${new Date(u.expiresAt)})`;
  return { ...u, id };
}

/** The namespace's pending upload `id`, if it exists and has not expired at `now`. */
export async function getUpload(sql: Sql, namespace: string, id: string, now: number): Promise<PendingUpload | undefined> {
  const [r] = await sql`SELECT * FROM uploads WHERE id = ${id} AND namespace = ${namespace} AND expires_at > ${new Date(now)}`;
  if (!r) return undefined;
  return {
    id: r.id as string,
    namespace: r.namespace as string,
    key: r.key as string,
    record: r.record as EntryRecord,
    tables: (r.tables as Record<string, TableRow[]> | null) ?? null,
    blobName: r.blob_name as string,
    pin: r.pin as string,
    multipart: r.s3_upload_id ? { s3UploadId: r.s3_upload_id as string, partSize: Number(r.part_size), partCount: Number(r.part_count) } : null,
    maxSize: r.max_size === null ? null : Number(r.max_size),
    writtenAt: r.written_at === null ? null : (r.written_at as Date).getTime(),
    fixedExpiry: r.fixed_expiry === true,
    createdAt: (r.created_at as Date).getTime(),
    expiresAt: (r.expires_at as Date).getTime(),
  };
}

/** Forgets a pending upload; true when it existed. */
export async function deleteUpload(sql: Sql, namespace: string, id: string): Promise<boolean> {
  return (await sql`DELETE FROM uploads WHERE id = ${id} AND namespace = ${namespace} RETURNING id`).length > 0;
}

/**
 * Of these S3 multipart upload ids, the ones a pending upload of any namespace still names (expired or
 * not): the sweeper must never abort those as orphans.
 */
export async function pendingMultipartIds(sql: Sql, uploadIds: string[]): Promise<Set<string>> {
  if (!uploadIds.length) return new Set();
  const rows = await sql`SELECT s3_upload_id FROM uploads WHERE s3_upload_id = ANY(${sql.array(uploadIds)}::text[])`;
  return new Set(rows.map((r) => r.s3_upload_id as string));
}

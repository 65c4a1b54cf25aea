/**
 * Pushes one entry to the cloud API: small stored bytes inline in the request, larger ones straight to
 * S3 (one presigned PUT, or a multipart upload whose progress is journalled so that a process killed
 * midway resumes, re-sending only the parts S3 lacks). Bytes the namespace already holds are not sent
 * again (the server deduplicates by blob id).
 * @module
 */
import type { EntryRecord } from '../entry.js';
import { CachenessError, checkAborted } from '../errors.js';
import { xxh128Hex } from '../hash.js';
import type { CompleteUploadResponse, CreateEntryRequest, CreateEntryResponse, MultipartPlan, WireEntry } from '../protocol.js';
import type { BlobReader, TransferControl } from '../stores/types.js';
import type { TableRow } from '../tables/schema.js';
import type { ApiClient } from './client.js';
import type { Journal } from './journal.js';
import { type SentPart, uploadParts, uploadSingle } from './transfer.js';

/** Stored bytes up to this size go inline in the create request (the API's default limit). */
export const INLINE_MAX = 256 * 1024;

/** What to push: an entry, its custom-table rows, and its stored bytes (inline, or a reader). */
export interface PushItem {
  record: EntryRecord;
  tables?: Record<string, TableRow[]> | undefined;
  /** Opens the stored bytes of a blob entry (called only when they must be sent). */
  open?: () => Promise<BlobReader | undefined>;
}

/** Options of {@link pushEntry}. */
export interface PushOptions {
  /** Parts in flight at once. */
  concurrency: number;
  /** Upload progress, and a signal that stops the push (the upload is then aborted on the server too). */
  control?: TransferControl | undefined;
}

/** The path of an entry under `/v1/`. */
export function entryPath(key: string): string {
  return `entries/${encodeURIComponent(key)}`;
}

/** The create request for `record`, without its bytes. */
function describe(record: EntryRecord, tables: PushItem['tables']): CreateEntryRequest {
  return {
    ...(record.params === null ? {} : { params: record.params }),
    handler: record.handler,
    type: record.type,
    codec: record.codec,
    size: record.size,
    storedSize: record.storedSize,
    contentHash: record.contentHash,
    writtenAt: new Date(record.createdAt).toISOString(),
    expiresAt: record.expiresAt === null ? null : new Date(record.expiresAt).toISOString(),
    metadata: record.metadata,
    description: record.description,
    ...(tables && Object.keys(tables).length ? { tables } : {}),
  };
}

/**
 * Stores `item` in the cloud. A later write of the key already stored there wins: the call then
 * throws `ECONFLICT` and changes nothing.
 */
export async function pushEntry(api: ApiClient, journal: Journal, item: PushItem, o: PushOptions): Promise<WireEntry> {
  const { record } = item;
  const path = entryPath(record.key);
  const body = describe(record, item.tables);
  const signal = o.control?.signal;
  checkAborted(signal, `The upload of '${record.key}'`);
  if (record.inline && record.inline.length <= INLINE_MAX) {
    const r = await api.request<CreateEntryResponse>('PUT', path, { body: { ...body, body: Buffer.from(record.inline).toString('base64') }, signal });
    return (r as { entry: WireEntry }).entry;
  }
  const blobId = record.blobId ?? (record.codec === 'none' ? record.contentHash : xxh128Hex(record.inline as Uint8Array));
  const source = async (): Promise<BlobReader> => {
    if (record.inline) {
      const bytes = record.inline;
      return { size: bytes.length, read: async (offset, length) => bytes.subarray(offset, offset + length), close: async () => {} };
    }
    const reader = await item.open?.();
    if (!reader) throw new CachenessError('ESTORE', `The local copy of '${record.key}' is gone, so it cannot be uploaded; put the value again.`);
    return reader;
  };
  const saved = journal.upload(record.key, blobId);
  if (saved) await resume(api, journal, record.key, blobId, saved, source, o);
  const r = await api.request<CreateEntryResponse>('PUT', path, { body: { ...body, blobId }, signal });
  if ('entry' in r) return r.entry;
  const plan = r.upload;
  const reader = await source();
  try {
    if (plan.method === 'PUT') {
      await uploadSingle(api, plan, reader, signal);
      o.control?.onProgress?.({ phase: 'upload', bytes: reader.size, total: reader.size });
      return (await api.request<CompleteUploadResponse>('POST', `uploads/${plan.id}/complete`, { body: {}, idempotent: true, signal })).entry;
    }
    journal.saveUpload(record.key, blobId, { uploadId: plan.id, partSize: plan.partSize, partCount: plan.partCount }, Date.now());
    return await finish(api, journal, record.key, blobId, plan, reader, [], o);
  } catch (err) {
    if (err instanceof CachenessError && err.code === 'EABORTED') await abandon(api, journal, record.key, blobId, plan.id);
    throw err;
  } finally {
    await reader.close();
  }
}

/** An aborted upload is aborted on the server too (its parts deleted), and forgotten here. */
async function abandon(api: ApiClient, journal: Journal, key: string, blobId: string, uploadId: string): Promise<void> {
  journal.dropUpload(key, blobId);
  await api.request('DELETE', `uploads/${encodeURIComponent(uploadId)}`, { deadlineMs: 10_000 }).catch(() => {}); // best effort: the sweeper expires what this misses
}

/** Sends the parts of `plan` not in `done`, completes the upload, and forgets its journal entry. */
async function finish(
  api: ApiClient,
  journal: Journal,
  key: string,
  blobId: string,
  plan: MultipartPlan,
  reader: BlobReader,
  done: SentPart[],
  o: PushOptions,
): Promise<WireEntry> {
  const progress = o.control?.onProgress;
  const parts = await uploadParts(api, plan, reader, {
    concurrency: o.concurrency,
    done,
    onPart: (p) => journal.addPart(key, blobId, plan.id, p),
    onProgress: progress && ((p) => progress({ phase: 'upload', ...p })),
    signal: o.control?.signal,
  });
  try {
    const { entry } = await api.request<CompleteUploadResponse>('POST', `uploads/${plan.id}/complete`, { body: { parts }, idempotent: true, signal: o.control?.signal });
    journal.dropUpload(key, blobId);
    return entry;
  } catch (err) {
    // A later write won: the server dropped the upload. Anything else may be retried from the journal.
    if (err instanceof CachenessError && err.code === 'ECONFLICT') journal.dropUpload(key, blobId);
    throw err;
  }
}

/**
 * Finishes a journalled upload (parts already sent are skipped). An upload the server no longer
 * knows (expired, or completed by a call whose answer was lost) is forgotten: the caller's create
 * request then stores the entry, deduplicated if the bytes arrived.
 */
async function resume(
  api: ApiClient,
  journal: Journal,
  key: string,
  blobId: string,
  saved: NonNullable<ReturnType<Journal['upload']>>,
  source: () => Promise<BlobReader>,
  o: PushOptions,
): Promise<void> {
  const reader = await source();
  try {
    const plan: MultipartPlan = {
      id: saved.uploadId,
      method: 'MULTIPART',
      size: reader.size,
      partSize: saved.partSize,
      partCount: saved.partCount,
      parts: [],
      expiresAt: '',
    };
    await finish(api, journal, key, blobId, plan, reader, saved.parts, o);
  } catch (err) {
    if (err instanceof CachenessError && err.code === 'EABORTED') await abandon(api, journal, key, blobId, saved.uploadId);
    const code = err instanceof CachenessError ? err.details?.code : undefined;
    // Gone (410) or refused as not matching: start over. ECONFLICT and outages are the caller's.
    if (code === 'EUPLOADGONE' || code === 'EUPLOADINCOMPLETE' || (err instanceof CachenessError && err.code === 'EINTEGRITY')) {
      journal.dropUpload(key, blobId);
      return;
    }
    throw err;
  } finally {
    await reader.close();
  }
}

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
  /** Upload progress, and a signal that stops the push. */
  control?: TransferControl | undefined;
  /**
   * A replayed write (from the outbox): sent with its own write time, so a later write of the key in
   * the cloud wins (`ECONFLICT`). A live write is stamped by the server's clock, so a client clock
   * running behind cannot lose it.
   */
  dated?: boolean;
  /** Keep an aborted upload resumable (a cache closing) instead of aborting it on the server (the caller gave up). */
  keepOnAbort?: boolean;
}

/** The path of an entry under `/v1/`. */
export function entryPath(key: string): string {
  return `entries/${encodeURIComponent(key)}`;
}

/** The create request for `record`, without its bytes. */
function describe(record: EntryRecord, tables: PushItem['tables'], dated: boolean): CreateEntryRequest {
  return {
    ...(record.params === null ? {} : { params: record.params }),
    handler: record.handler,
    type: record.type,
    codec: record.codec,
    size: record.size,
    storedSize: record.storedSize,
    contentHash: record.contentHash,
    ...(dated ? { writtenAt: new Date(record.createdAt).toISOString() } : {}),
    expiresAt: record.expiresAt === null ? null : new Date(record.expiresAt).toISOString(),
    metadata: record.metadata,
    description: record.description,
    ...(tables && Object.keys(tables).length ? { tables } : {}),
  };
}

/**
 * Stores `item` in the cloud. A dated (replayed) write loses to a later write of the key already
 * stored there: the call then throws `ECONFLICT` and changes nothing.
 */
export async function pushEntry(api: ApiClient, journal: Journal, item: PushItem, o: PushOptions): Promise<WireEntry> {
  const { record } = item;
  const path = entryPath(record.key);
  const body = describe(record, item.tables, o.dated ?? false);
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
  let saved = journal.upload(record.key, blobId);
  if (saved && saved.dated !== (o.dated ?? false)) {
    // Begun as the other kind (a live write's upload, replayed dated, or the reverse): its completion
    // would date the entry wrongly. Start over.
    await abandon(api, journal, record.key, blobId, saved.uploadId);
    saved = undefined;
  }
  if (saved) {
    // The resumed upload commits the entry as it was first described; a put of the same value with
    // another description goes on to store that one (deduplicated: the bytes are there now).
    const resumed = await resume(api, journal, record.key, blobId, saved, source, o);
    if (resumed && sameDescription(resumed, body)) return resumed;
  }
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
    journal.saveUpload(record.key, blobId, { uploadId: plan.id, partSize: plan.partSize, partCount: plan.partCount, dated: o.dated ?? false }, Date.now());
    return await finish(api, journal, record.key, blobId, plan, reader, [], o);
  } catch (err) {
    if (err instanceof CachenessError && err.code === 'EABORTED' && !o.keepOnAbort) await abandon(api, journal, record.key, blobId, plan.id);
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

/** Whether a stored entry is what `body` describes (the same value and metadata). */
function sameDescription(e: WireEntry, body: CreateEntryRequest): boolean {
  const json = (v: unknown) => JSON.stringify(v ?? null);
  return (
    e.contentHash === body.contentHash &&
    e.handler === body.handler &&
    e.type === body.type &&
    json(e.params) === json(body.params) &&
    json(e.metadata) === json(body.metadata) &&
    (e.description ?? null) === (body.description ?? null) &&
    (e.expiresAt === null) === (body.expiresAt === null) &&
    body.tables === undefined
  );
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
): Promise<WireEntry | undefined> {
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
    return await finish(api, journal, key, blobId, plan, reader, saved.parts, o);
  } catch (err) {
    if (err instanceof CachenessError && err.code === 'EABORTED' && !o.keepOnAbort) await abandon(api, journal, key, blobId, saved.uploadId);
    const code = err instanceof CachenessError ? err.details?.code : undefined;
    // Gone (410) or refused as not matching: start over. ECONFLICT and outages are the caller's.
    if (code === 'EUPLOADGONE' || code === 'EUPLOADINCOMPLETE' || (err instanceof CachenessError && err.code === 'EINTEGRITY')) {
      journal.dropUpload(key, blobId);
      return undefined;
    }
    throw err;
  } finally {
    await reader.close();
  }
}

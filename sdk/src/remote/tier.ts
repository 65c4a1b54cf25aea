/**
 * The store pair behind a remote cache (modes `remote` and `auto`): the cloud API in front, a local
 * tier (SQLite + files in `dir`) behind. The {@link Cache} engine runs unchanged on top, so values are
 * serialized, compressed, chunked and hashed on the client exactly as in local mode.
 *
 * - Writes commit to the local tier first (that copy is what an upload reads and resumes from, and
 *   what later reads hit), then are pushed; in mode `auto` a write the API cannot take now is queued
 *   in the outbox and pushed later ({@link RemoteTier.sync}).
 * - Reads ask the API for the entry (mode `auto`: only when the local tier has no live copy). Bytes
 *   the local tier holds under the same blob id are read locally; others are downloaded with
 *   presigned URLs (parallel ranged GETs) and kept in the local tier, bounded by `maxSize`.
 * - Queries (`list`, `count`, `query`, `tables`, `stats`) go to the API; in mode `auto` while offline
 *   they answer from the local tier.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { RemoteControl } from '../cache.js';
import type { EntryRecord, StoredEntry } from '../entry.js';
import { isExpired } from '../entry.js';
import { asCachenessError, CachenessError, IntegrityError, RemoteError, TableError } from '../errors.js';
import { xxh128Hex } from '../hash.js';
import { processOwner } from '../owner.js';
import type {
  AccessRequest,
  CountResponse,
  DefineTableResponse,
  DeletePrefixResponse,
  DeleteResponse,
  EntryOnlyResponse,
  GetEntryResponse,
  ListResponse,
  QueryResponse,
  RowsResponse,
  StatsResponse,
  TablesResponse,
  TouchResponse,
  WireEntry,
} from '../protocol.js';
import type { FsBlobStore } from '../stores/fs-blobs.js';
import { openFileReader } from '../stores/fs-blobs.js';
import type { SqliteMetadataStore } from '../stores/sqlite-metadata.js';
import type {
  AccessRecord,
  BlobReader,
  BlobStore,
  EntryVersion,
  EvictionPolicy,
  ListQuery,
  MetadataStore,
  PutRecordOptions,
  ReadRecord,
  StoreCounters,
  TableQuery,
  TransferControl,
} from '../stores/types.js';
import type { TableColumns, TableDefinition, TableOptions, TableRow } from '../tables/schema.js';
import type { ApiClient } from './client.js';
import { Journal, type OutboxItem } from './journal.js';
import { Link } from './link.js';
import { entryPath, pushEntry } from './push.js';
import { downloadToFile, openUrl, readParallel } from './transfer.js';

/** Options of {@link RemoteTier}. */
export interface RemoteTierOptions {
  api: ApiClient;
  mode: 'remote' | 'auto';
  /** The local tier's directory (holds `remote.db` and `outbox/` too). */
  dir: string;
  local: SqliteMetadataStore;
  files: FsBlobStore;
  /** Bound of the local tier's stored bytes (null: unbounded). */
  maxSize: number | null;
  eviction: EvictionPolicy;
  /** Parts (and download windows) in flight at once. */
  concurrency: number;
  clock: () => number;
  onError: (err: CachenessError) => void;
}

/** Result of {@link RemoteTier.sync}. */
export interface SyncResult {
  /** Queued writes the API took. */
  pushed: number;
  /** Queued writes dropped because the cloud holds a later write of their key (later write wins). */
  superseded: number;
  /** Queued writes the API refused (reported through `onError`); they stay in the local tier only. */
  refused: number;
  /** Writes still queued (the API became unreachable again, or another process is pushing them). */
  queued: number;
}

/** A remote blob the engine may read next: what it is, and where. */
interface RemoteBlob {
  key: string;
  entry: StoredEntry;
  url?: string;
  fetchedAt: number;
}

/** Names of remote blobs in this tier: `~<blob id>` (local blob names are `<id>.<generation>`). */
const REMOTE = '~';
/** Presigned GET URLs are reused for this long (they are valid for longer). */
const URL_REUSE_MS = 5 * 60_000;
/** Remote blobs remembered between a metadata read and its blob read. */
const REMOTE_BLOBS_KEPT = 10_000;
const LIST_PAGE_MAX = 10_000;
const ACCESS_BATCH = 10_000;
const PIN_STALE_MS = 60 * 60_000;
const SYNC_LEASE_MS = 10 * 60_000;

const iso = (ms: number) => new Date(ms).toISOString();

/** Download progress, as the caller's `onProgress` takes it. */
function downloadProgress(control: TransferControl | undefined): ((p: { bytes: number; total: number }) => void) | undefined {
  const report = control?.onProgress;
  return report && ((p) => report({ phase: 'download', ...p }));
}

function isNotFound(err: unknown): boolean {
  return err instanceof CachenessError && err.details?.status === 404;
}

/** An entry of the wire, in the stores' shape. */
function storedFromWire(w: WireEntry, blobId: string | null, inline: Uint8Array | null, blobName: string | null): StoredEntry {
  return {
    key: w.key,
    params: w.params,
    handler: w.handler,
    type: w.type,
    codec: w.codec,
    size: w.size,
    storedSize: w.storedSize,
    contentHash: w.contentHash,
    blobId,
    inline,
    blobName,
    createdAt: Date.parse(w.createdAt),
    accessedAt: Date.parse(w.accessedAt),
    expiresAt: w.expiresAt === null ? null : Date.parse(w.expiresAt),
    hits: w.hits,
    description: w.description,
    metadata: w.metadata,
  };
}

/** The cloud API with a local tier: a {@link MetadataStore} and {@link BlobStore} pair for the engine. */
export class RemoteTier {
  readonly metadata: MetadataStore;
  readonly blobs: BlobStore;
  readonly link: Link;
  readonly journal: Journal;
  private readonly o: RemoteTierOptions;
  private readonly local: SqliteMetadataStore;
  private readonly files: FsBlobStore;
  private readonly api: ApiClient;
  private readonly remoteBlobs = new Map<string, RemoteBlob>();
  /** Custom table definitions seen, to give rows from JSON their column types. */
  private readonly definitions = new Map<string, TableDefinition>();
  private readonly outboxDir: string;
  private readonly owner = processOwner();
  private syncing: Promise<SyncResult> | undefined;
  private closed = false;

  constructor(o: RemoteTierOptions) {
    this.o = o;
    this.local = o.local;
    this.files = o.files;
    this.api = o.api;
    this.outboxDir = join(o.dir, 'outbox');
    this.journal = new Journal(join(o.dir, 'remote.db'), o.api.origin);
    this.link = new Link(o.api, o.mode, () => this.syncInBackground());
    this.metadata = this.metadataFacade();
    this.blobs = this.blobFacade();
    if (o.mode === 'auto' && this.journal.queued > 0) this.syncInBackground();
  }

  /** What the engine's `status()`, `sync()` and `resumeUploads()` use. */
  control(): RemoteControl {
    const t = this;
    return {
      mode: this.o.mode,
      get status() {
        return t.link.status;
      },
      queued: () => t.journal.queued,
      uploads: () => t.journal.uploads().length,
      sync: () => t.sync(),
      resumeUploads: () => t.resumeUploads(),
    };
  }

  // ---- reads ----

  /** The entry as the API has it (payload: its inline bytes, or a URL for its blob), or undefined. */
  private async fetch(key: string, payload: boolean): Promise<StoredEntry | undefined> {
    let r: GetEntryResponse | EntryOnlyResponse;
    try {
      r = await this.api.request<GetEntryResponse | EntryOnlyResponse>('GET', `${entryPath(key)}?count=0${payload ? '' : '&payload=0'}`);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const inline = 'body' in r ? Buffer.from(r.body, 'base64') : null;
    const blobId = r.blobId ?? null;
    const e = storedFromWire(r.entry, blobId, inline, null);
    if (blobId === null || inline) return e;
    // Bytes the local tier holds under the same id are read from there.
    const mine = await this.local.head(key);
    if (mine?.blobName && mine.blobId === blobId && mine.contentHash === e.contentHash && mine.storedSize === e.storedSize) {
      if ((await this.files.size(mine.blobName)) === e.storedSize) return { ...e, blobName: mine.blobName };
    }
    e.blobName = REMOTE + blobId;
    this.remember(e, 'url' in r ? r.url : undefined);
    return e;
  }

  private remember(entry: StoredEntry, url: string | undefined): void {
    const name = entry.blobName as string;
    this.remoteBlobs.delete(name);
    this.remoteBlobs.set(name, { key: entry.key, entry, url, fetchedAt: Date.now() });
    if (this.remoteBlobs.size > REMOTE_BLOBS_KEPT) this.remoteBlobs.delete(this.remoteBlobs.keys().next().value as string);
  }

  /** The live local copy of `key`, when mode `auto` may answer from it. */
  private async localHit<T extends ReadRecord>(get: () => Promise<T | undefined>): Promise<T | undefined> {
    if (this.o.mode !== 'auto') return undefined;
    const e = await get();
    return e && !isExpired(e, this.o.clock()) ? e : undefined;
  }

  private async read(key: string): Promise<ReadRecord | undefined> {
    const hit = await this.localHit(() => this.local.read(key));
    if (hit) return hit;
    const r = await this.link.call(() => this.fetch(key, true));
    if (!r.ok) return this.local.read(key);
    const e = r.value;
    // Mode auto keeps small entries locally too, so the next read needs no network.
    if (e?.inline && this.o.mode === 'auto' && !isExpired(e, this.o.clock())) await this.keepLocally(e, undefined);
    return e;
  }

  /** A remote blob's URL, fresh; undefined when its entry is gone or now holds other bytes. */
  private async urlOf(name: string): Promise<RemoteBlob | undefined> {
    const b = this.remoteBlobs.get(name);
    if (!b) return undefined;
    if (b.url && Date.now() - b.fetchedAt < URL_REUSE_MS) return b;
    const e = await this.fetch(b.key, true);
    if (!e || e.blobName !== name) return undefined;
    return this.remoteBlobs.get(name);
  }

  /** Whether a blob of `size` bytes is kept in the local tier (at most half of `maxSize`). */
  private fits(size: number): boolean {
    return this.o.maxSize === null || size <= this.o.maxSize / 2;
  }

  /**
   * Stores a copy of a remote entry in the local tier (its blob written by `write`, unless the tier
   * already has those bytes), then trims the tier to `maxSize`. Returns the local blob name. Failures
   * are reported, never thrown: the copy is an optimisation.
   */
  private async keepLocally(e: StoredEntry, write: ((name: string) => Promise<void>) | undefined, rethrow = false): Promise<string | undefined> {
    const record: EntryRecord = { ...e };
    delete (record as Partial<StoredEntry>).blobName;
    try {
      if (!write || record.blobId === null) {
        await this.local.put(record);
        await this.trim(e.key);
        return undefined;
      }
      const res = await this.local.acquireBlob(record.blobId, record.storedSize, this.o.clock(), this.owner);
      try {
        if (!res.ready || (await this.files.size(res.name)) !== record.storedSize) await write(res.name);
        await this.local.put(record, { pin: res.pin, blobName: res.name });
      } catch (err) {
        await this.local.releasePin(res.pin);
        throw err;
      }
      await this.trim(e.key);
      return res.name;
    } catch (err) {
      // The caller reading through this copy needs to know it failed (an abort, a download error).
      if (rethrow) throw err;
      this.o.onError(asCachenessError(err));
      return undefined;
    }
  }

  /** Evicts from the local tier down to `maxSize` (never `protect`) and deletes the freed files. */
  private async trim(protect: string): Promise<void> {
    const { maxSize, eviction } = this.o;
    if (maxSize !== null && eviction !== 'none' && (await this.local.storedBytes()) > maxSize) {
      await this.local.evict(eviction, maxSize, this.o.clock(), protect);
    }
    for (;;) {
      const names = await this.local.claimGarbage(this.o.clock() - PIN_STALE_MS, 500);
      if (names.length === 0) return;
      await this.files.delete(names);
      await this.local.dropGarbage(names);
    }
  }

  /**
   * Downloads a remote blob whole, checked against its id, and keeps a copy locally when it fits. A
   * mismatch is `EINTEGRITY`; the engine then drops the local state and reads the entry once more.
   */
  private async download(name: string, control: TransferControl | undefined): Promise<Uint8Array | undefined> {
    const b = await this.urlOf(name);
    if (!b?.url) return undefined;
    const { entry } = b;
    let bytes: Uint8Array;
    try {
      bytes = await readParallel(openUrl(this.api, b.url, entry.storedSize, control?.signal), Buffer.allocUnsafe(entry.storedSize), {
        concurrency: this.o.concurrency,
        onProgress: downloadProgress(control),
      });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    // A chunked container's id is the hash of its index, which the engine checks with every chunk.
    if (entry.codec !== 'chunked' && xxh128Hex(bytes) !== entry.blobId) {
      b.url = undefined; // the next read asks for a new URL
      throw new IntegrityError('EINTEGRITY', 'the downloaded bytes do not match their hash', { details: { key: entry.key, blobId: entry.blobId } });
    }
    if (this.fits(bytes.length)) await this.keepLocally(entry, (local) => this.files.write(local, bytes));
    return bytes;
  }

  /** Opens a remote blob: downloaded into the local tier first when it fits there, else read by ranged GETs. */
  private async openRemote(name: string, control: TransferControl | undefined): Promise<BlobReader | undefined> {
    const b = await this.urlOf(name);
    if (!b?.url) return undefined;
    const { entry, url } = b;
    if (this.fits(entry.storedSize)) {
      try {
        const local = await this.keepLocally(
          entry,
          (n) =>
            this.files.receive(n, (fh) =>
              downloadToFile(openUrl(this.api, url, entry.storedSize, control?.signal), fh, { concurrency: this.o.concurrency, onProgress: downloadProgress(control) }),
            ),
          true,
        );
        if (local) return this.files.open(local);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    }
    return openUrl(this.api, url, entry.storedSize, control?.signal);
  }

  // ---- writes ----

  private async put(record: EntryRecord, opts: PutRecordOptions = {}): Promise<void> {
    await this.local.put(record, opts);
    if (this.o.mode === 'auto' && this.link.status === 'offline') {
      await this.enqueuePut(record, opts);
      return this.keepWithin(record);
    }
    try {
      await pushEntry(
        this.api,
        this.journal,
        { record, tables: opts.tables, open: () => this.openLocal(opts.blobName) },
        { concurrency: this.o.concurrency, control: opts.transfer },
      );
    } catch (err) {
      if (err instanceof CachenessError && err.code === 'ECONFLICT') {
        // The cloud holds a later write of this key, which wins: drop this older one locally too.
        await this.local.delete(record.key, 'delete', record);
        return;
      }
      if (this.o.mode === 'auto' && this.link.isOutage(err)) {
        this.link.goOffline();
        await this.enqueuePut(record, opts);
        return this.keepWithin(record);
      }
      // Refused (bad input, a constraint, an abort): the local copy goes too, so both tiers agree. After
      // an outage in mode remote it stays, with its upload journalled: a re-put resumes it.
      if (!this.link.isOutage(err)) await this.local.delete(record.key, 'delete', record).catch(() => {});
      throw err;
    }
    await this.keepWithin(record);
  }

  /** After a write: a value too large for the local tier leaves it (the cloud or the outbox has it); the rest is trimmed to maxSize. */
  private async keepWithin(record: EntryRecord): Promise<void> {
    if (!this.fits(record.storedSize)) await this.local.delete(record.key, 'evicted', record);
    await this.trim(record.key);
  }

  private async openLocal(blobName: string | undefined): Promise<BlobReader | undefined> {
    return blobName ? this.files.open(blobName) : undefined;
  }

  /** Queues a put: its record, and its bytes as a file of the outbox's own (a hard link to the local blob). */
  private async enqueuePut(record: EntryRecord, opts: PutRecordOptions): Promise<void> {
    let file: string | null = null;
    if (!record.inline && opts.blobName) {
      await mkdir(this.outboxDir, { recursive: true });
      file = join(this.outboxDir, randomBytes(12).toString('hex'));
      const from = this.files.pathOf(opts.blobName);
      await link(from, file).catch(() => copyFile(from, file as string));
    }
    const inline = record.inline ? Buffer.from(record.inline).toString('base64') : null;
    this.journal.enqueue('put', record.key, { record: { ...record, inline }, tables: opts.tables ?? null }, file, record.createdAt);
  }

  /** Runs a write against the API, or queues it (mode `auto`, offline). */
  private async write<T>(op: OutboxItem['op'], key: string, body: unknown, at: number, call: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false }> {
    const r = await this.link.call(call);
    if (!r.ok) this.journal.enqueue(op, key, body, null, at);
    return r;
  }

  private remoteDelete(key: string, at: number): Promise<DeleteResponse> {
    return this.api.request<DeleteResponse>('DELETE', `${entryPath(key)}?writtenAt=${encodeURIComponent(iso(at))}`);
  }

  private async remoteTouch(key: string, expiresAt: number | null): Promise<boolean> {
    try {
      await this.api.request<TouchResponse>('POST', `${entryPath(key)}/touch`, { body: { expiresAt: expiresAt === null ? null : iso(expiresAt) }, idempotent: true });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  private remoteDeletePrefix(prefix: string): Promise<DeletePrefixResponse> {
    return this.api.request<DeletePrefixResponse>('POST', 'entries/delete', { body: { prefix }, idempotent: true });
  }

  private remoteDefine(name: string, columns: TableColumns, options: TableOptions | undefined): Promise<DefineTableResponse> {
    return this.api.request<DefineTableResponse>('PUT', `tables/${encodeURIComponent(name)}`, { body: { columns, unique: options?.unique, index: options?.index } });
  }

  // ---- the outbox ----

  private syncInBackground(): void {
    if (this.closed) return;
    void this.sync().catch((err) => this.o.onError(asCachenessError(err)));
  }

  /**
   * Pushes the queued writes, oldest first. A put superseded by a later queued write of its key is
   * skipped; one the cloud holds a later write of is dropped (later write wins). Stops, keeping the
   * rest, when the API becomes unreachable. One process at a time pushes a directory's outbox.
   */
  sync(): Promise<SyncResult> {
    this.syncing ??= this.drain().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async drain(): Promise<SyncResult> {
    const result: SyncResult = { pushed: 0, superseded: 0, refused: 0, queued: 0 };
    if (this.journal.queued === 0 || !(await this.link.probe()) || !this.journal.claimLease(this.owner, Date.now(), SYNC_LEASE_MS)) {
      result.queued = this.journal.queued;
      return result;
    }
    try {
      for (let after = 0; ; ) {
        const batch = this.journal.pending(after, 100);
        if (batch.length === 0) break;
        for (const item of batch) {
          after = item.seq;
          if (this.closed) break;
          if ((item.op === 'put' || item.op === 'delete') && this.journal.hasLaterWrite(item.key, item.seq)) {
            result.superseded++;
          } else {
            try {
              await this.push(item);
              result.pushed++;
            } catch (err) {
              if (err instanceof CachenessError && err.code === 'ECONFLICT') result.superseded++;
              else if (this.link.isOutage(err)) {
                this.link.goOffline();
                return result;
              } else {
                result.refused++;
                this.o.onError(
                  new RemoteError('EREMOTE', `A write of '${item.key}' made offline was refused by the cloud API (${(err as Error).message}); it stays in the local store only.`, {
                    cause: err,
                    details: { key: item.key, op: item.op },
                  }),
                );
              }
            }
          }
          this.journal.done(item.seq);
          if (item.blob) await rm(item.blob, { force: true });
          this.journal.renewLease(this.owner, Date.now(), SYNC_LEASE_MS);
        }
      }
      return result;
    } finally {
      this.journal.releaseLease(this.owner);
      result.queued = this.journal.queued;
    }
  }

  private async push(item: OutboxItem): Promise<void> {
    const body = item.body as Record<string, unknown>;
    switch (item.op) {
      case 'put': {
        const { record, tables } = body as { record: EntryRecord & { inline: string | null }; tables: Record<string, TableRow[]> | null };
        const r: EntryRecord = { ...record, inline: record.inline === null ? null : Buffer.from(record.inline, 'base64') };
        await pushEntry(
          this.api,
          this.journal,
          { record: r, tables: tables ?? undefined, open: () => (item.blob ? openFileReader(item.blob) : Promise.resolve(undefined)) },
          {
            concurrency: this.o.concurrency,
          },
        );
        return;
      }
      case 'delete':
        await this.remoteDelete(item.key, item.at);
        return;
      case 'touch':
        await this.remoteTouch(item.key, (body as { expiresAt: number | null }).expiresAt);
        return;
      case 'defineTable': {
        const { columns, options } = body as { columns: TableColumns; options?: TableOptions };
        await this.remoteDefine(item.key, columns, options);
        return;
      }
      case 'deletePrefix':
        await this.remoteDeletePrefix(item.key);
        return;
    }
  }

  /**
   * Finishes uploads a process left unfinished (killed, or cut off): each is resumed from the parts S3
   * already has, from the local copy of its entry. Returns how many were finished.
   */
  async resumeUploads(): Promise<number> {
    let finished = 0;
    for (const { key, blobId } of this.journal.uploads()) {
      const e = await this.local.head(key);
      const queued = this.journal.queuedPutFile(key, blobId);
      if ((!e || e.blobId !== blobId) && !queued) {
        this.journal.dropUpload(key, blobId); // its local copy was replaced or removed: nothing to resume from
        continue;
      }
      if (queued) continue; // the outbox pushes it (and resumes the upload) in order
      if (!e?.blobName) continue; // its local copy is not there (evicted): a re-put resumes it
      try {
        await pushEntry(this.api, this.journal, { record: e as StoredEntry, open: () => this.openLocal(e?.blobName ?? undefined) }, { concurrency: this.o.concurrency });
        finished++;
      } catch (err) {
        if (!(err instanceof CachenessError && err.code === 'ECONFLICT')) throw err;
        this.journal.dropUpload(key, blobId);
      }
    }
    return finished;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.syncing?.catch(() => {});
    this.link.close();
    this.journal.close();
    await this.local.close();
  }

  // ---- the facades the engine sees ----

  private metadataFacade(): MetadataStore {
    const local = this.local;
    const remoteOr = async <T>(call: () => Promise<T>, offline: () => Promise<T>): Promise<T> => {
      const r = await this.link.call(call);
      return r.ok ? r.value : offline();
    };
    return {
      read: (key) => this.read(key),
      get: async (key) =>
        remoteOr(
          () => this.fetch(key, true),
          () => local.get(key),
        ),
      head: async (key) =>
        (await this.localHit(() => local.head(key))) ??
        remoteOr(
          () => this.fetch(key, false),
          () => local.head(key),
        ),
      put: (record, opts) => this.put(record, opts),
      delete: async (key, reason = 'delete', ifMatch?: EntryVersion) => {
        // A bad download drops only the local copy: the cloud's entry is shared, and the engine reads it again.
        if (reason === 'corrupt') return local.delete(key, reason, ifMatch);
        const at = this.o.clock();
        const here = await local.delete(key, reason, ifMatch);
        const r = await this.write('delete', key, null, at, () => this.remoteDelete(key, at));
        return r.ok ? r.value.deleted : here;
      },
      deletePrefix: async (prefix) => {
        const here = await local.deletePrefix(prefix);
        const r = await this.write('deletePrefix', prefix, null, this.o.clock(), () => this.remoteDeletePrefix(prefix));
        return r.ok ? r.value.deleted : here;
      },
      clear: async () => {
        const here = await local.clear();
        const r = await this.write('deletePrefix', '', null, this.o.clock(), () => this.remoteDeletePrefix(''));
        return r.ok ? r.value.deleted : here;
      },
      touch: async (key, expiresAt, now) => {
        const here = await local.touch(key, expiresAt, now);
        const r = await this.write('touch', key, { expiresAt }, now, () => this.remoteTouch(key, expiresAt));
        return r.ok ? r.value : here;
      },
      recordAccess: async (accesses: AccessRecord[], counters: Partial<StoreCounters>) => {
        await local.recordAccess(accesses, counters);
        for (let i = 0; i === 0 || i < accesses.length; i += ACCESS_BATCH) {
          const body: AccessRequest = {
            accesses: accesses.slice(i, i + ACCESS_BATCH).map((a) => ({ key: a.key, hits: a.hits, accessedAt: iso(a.accessedAt) })),
            ...(i === 0 ? { hits: counters.hits ?? 0, misses: counters.misses ?? 0 } : {}),
          };
          // Reads counted while offline stay in the local tier's counters only.
          if (!(await this.link.call(() => this.api.request('POST', 'access', { body, idempotent: false }))).ok) return;
        }
      },
      list: (q: ListQuery) =>
        remoteOr(
          () => this.remoteList(q),
          () => local.list(q),
        ),
      count: (q) =>
        remoteOr(
          async () => (await this.api.request<CountResponse>('POST', 'entries/count', { body: { prefix: q.prefix, where: q.where, includeExpired: q.includeExpired } })).count,
          () => local.count(q),
        ),
      counters: () =>
        remoteOr(
          async () => {
            const { hitRate: _, ...c } = await this.api.request<StatsResponse>('GET', 'stats');
            return c;
          },
          () => local.counters(),
        ),
      // Bounds and maintenance of the local tier; the cloud's own sweeper expires remote entries.
      storedBytes: () => local.storedBytes(),
      deleteExpired: (now, limit) => local.deleteExpired(now, limit),
      evict: (policy, maxBytes, now, protect) => local.evict(policy, maxBytes, now, protect),
      acquireBlob: (id, size, now, owner) => local.acquireBlob(id, size, now, owner),
      releasePin: (pin) => local.releasePin(pin),
      reapPins: (isAlive) => local.reapPins(isAlive),
      claimGarbage: (staleBefore, limit) => local.claimGarbage(staleBefore, limit),
      dropGarbage: (names) => local.dropGarbage(names),
      isLiveBlob: (name) => local.isLiveBlob(name),
      defineTable: async (name, columns, options) => {
        const r = await this.write('defineTable', name, { columns, options }, this.o.clock(), () => this.remoteDefine(name, columns, options));
        const here = await local.defineTable(name, columns, options);
        const def = r.ok ? r.value.table : here;
        this.definitions.set(name, def);
        return def;
      },
      tables: () =>
        remoteOr(
          async () => (await this.api.request<TablesResponse>('GET', 'tables')).tables,
          () => local.tables(),
        ),
      query: (table: string, q: TableQuery) =>
        remoteOr(
          async () => {
            const { rows } = await this.api.request<QueryResponse>('POST', `tables/${encodeURIComponent(table)}/query`, {
              body: { where: q.where, orderBy: q.orderBy, limit: q.limit, offset: q.offset, includeExpired: q.includeExpired },
              idempotent: true,
            });
            return this.revive(table, rows);
          },
          () => local.query(table, q),
        ),
      sql: async () => {
        throw new TableError('EQUERY', 'Raw SQL runs on a local cache only (the cloud store is shared by tenants); use query() on custom tables and list({ where }) on entries.');
      },
      rowsOf: (key) =>
        remoteOr(
          async () => {
            const { tables } = await this.api.request<RowsResponse>('GET', `${entryPath(key)}/rows`);
            const out: Record<string, TableRow[]> = {};
            for (const [name, rows] of Object.entries(tables)) out[name] = (await this.revive(name, rows)) as TableRow[];
            return out;
          },
          () => local.rowsOf(key),
        ),
      close: () => this.close(),
    };
  }

  /** Rows of `table` from JSON: timestamps (ISO strings on the wire) as Dates again. */
  private async revive(table: string, rows: Record<string, unknown>[]): Promise<Record<string, unknown>[]> {
    let def = this.definitions.get(table);
    if (!def && rows.length) {
      const { tables } = await this.api.request<TablesResponse>('GET', 'tables');
      for (const [name, d] of Object.entries(tables)) this.definitions.set(name, d);
      def = this.definitions.get(table);
    }
    const stamps = Object.entries(def?.columns ?? {})
      .filter(([, type]) => type === 'timestamp')
      .map(([col]) => col);
    if (stamps.length === 0) return rows;
    for (const row of rows) for (const col of stamps) if (typeof row[col] === 'string') row[col] = new Date(row[col] as string);
    return rows;
  }

  /** A page of at least `q.limit` entries (when there are that many), in API pages of up to 10,000. */
  private async remoteList(q: ListQuery): Promise<StoredEntry[]> {
    const out: StoredEntry[] = [];
    let cursor = q.after === undefined ? undefined : Buffer.from(q.after, 'utf8').toString('base64url');
    do {
      const r = await this.api.request<ListResponse>('POST', 'entries/list', {
        body: { prefix: q.prefix, where: q.where, includeExpired: q.includeExpired, limit: Math.min(LIST_PAGE_MAX, q.limit - out.length), cursor },
        idempotent: true,
      });
      for (const w of r.entries) out.push(storedFromWire(w, null, null, null));
      cursor = r.cursor;
    } while (cursor && out.length < q.limit);
    return out;
  }

  private blobFacade(): BlobStore {
    const files = this.files;
    return {
      write: (name, data) => files.write(name, data),
      stage: () => files.stage(),
      read: (name, control) => (name.startsWith(REMOTE) ? this.download(name, control) : files.read(name)),
      open: (name, control) => (name.startsWith(REMOTE) ? this.openRemote(name, control) : files.open(name)),
      size: async (name) => (name.startsWith(REMOTE) ? this.remoteBlobs.get(name)?.entry.storedSize : files.size(name)),
      delete: (names) => files.delete(names.filter((n) => !n.startsWith(REMOTE))),
      names: () => files.names(),
      sweepPartial: (olderThanMs) => files.sweepPartial(olderThanMs),
      close: async () => {},
    };
  }
}

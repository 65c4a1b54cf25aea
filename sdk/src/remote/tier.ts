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
import { join } from 'node:path';
import type { RemoteControl } from '../cache.js';
import type { EntryRecord, StoredEntry } from '../entry.js';
import { isExpired } from '../entry.js';
import { asCachenessError, type CachenessError, IntegrityError, RemoteError, TableError } from '../errors.js';
import { xxh128Hex } from '../hash.js';
import { processOwner } from '../owner.js';
import type { FsBlobStore } from '../stores/fs-blobs.js';
import { collectGarbage } from '../stores/garbage.js';
import type { SqliteMetadataStore } from '../stores/sqlite-metadata.js';
import type { BlobReader, BlobStore, EntryVersion, EvictionPolicy, MetadataStore, PutRecordOptions, ReadRecord, TransferControl } from '../stores/types.js';
import type { ApiClient } from './client.js';
import { Cloud, isNotFound } from './cloud.js';
import { Journal } from './journal.js';
import { Link, type Reached } from './link.js';
import { Outbox, type SyncResult } from './outbox.js';
import { pushEntry } from './push.js';
import { downloadToFile, openUrl, prefetching, readParallel } from './transfer.js';

export type { SyncResult };

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

/** A remote blob the engine may read next: what it is, and where. */
interface RemoteBlob {
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
const PIN_STALE_MS = 60 * 60_000;

/** Download progress, as the caller's `onProgress` takes it. */
function downloadProgress(control: TransferControl | undefined): ((p: { bytes: number; total: number }) => void) | undefined {
  const report = control?.onProgress;
  return report && ((p) => report({ phase: 'download', ...p }));
}

/** The cloud API with a local tier: a {@link MetadataStore} and {@link BlobStore} pair for the engine. */
export class RemoteTier {
  readonly metadata: MetadataStore;
  readonly blobs: BlobStore;
  private readonly link: Link;
  private readonly journal: Journal;
  private readonly outbox: Outbox;
  private readonly cloud: Cloud;
  private readonly o: RemoteTierOptions;
  private readonly local: SqliteMetadataStore;
  private readonly files: FsBlobStore;
  private readonly api: ApiClient;
  private readonly remoteBlobs = new Map<string, RemoteBlob>();
  private readonly owner = processOwner();

  constructor(o: RemoteTierOptions) {
    this.o = o;
    this.local = o.local;
    this.files = o.files;
    this.api = o.api;
    this.cloud = new Cloud(o.api);
    this.journal = new Journal(join(o.dir, 'remote.db'), o.api.origin);
    this.link = new Link(
      o.api,
      o.mode,
      () => this.outbox.syncInBackground(),
      (namespace) => this.journal.bindNamespace(namespace, o.api.keyId),
      this.journal.knowsKey(o.api.keyId),
    );
    this.outbox = new Outbox({
      cloud: this.cloud,
      link: this.link,
      journal: this.journal,
      dir: join(o.dir, 'outbox'),
      concurrency: o.concurrency,
      onError: (err) => o.onError(asCachenessError(err)),
      localCopy: async (key) => {
        const entry = await this.local.head(key);
        const name = entry?.blobName;
        return entry && name ? { entry, open: () => this.files.open(name) } : undefined;
      },
      dropLocal: async (record) => void (await this.local.delete(record.key, 'delete', record)),
    });
    this.metadata = this.metadataFacade();
    this.blobs = this.blobFacade();
    if (o.mode === 'auto' && this.journal.queued > 0) this.outbox.syncInBackground();
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
      sync: () => t.outbox.sync(),
      resumeUploads: () => t.outbox.resumeUploads(),
    };
  }

  // ---- reads ----

  /**
   * The entry as the API has it (payload: with its inline bytes), or undefined. A blob entry is named
   * for the local copy of its bytes when the local tier holds them, else `~<blob id>`, remembered with
   * its URL for the engine's next blob read.
   */
  private async fetch(key: string, payload: boolean): Promise<StoredEntry | undefined> {
    const r = await this.cloud.entry(key, payload);
    if (!r) return undefined;
    const e = r.entry;
    const blobId = e.blobId;
    if (blobId === null || e.inline) return e;
    // Bytes the local tier holds under the same id are read from there.
    const mine = await this.local.head(key);
    // (A copy whose file went missing reads as damaged: the engine then drops it and reads again, from the cloud.)
    if (mine?.blobName && mine.blobId === blobId && mine.contentHash === e.contentHash && mine.storedSize === e.storedSize) return { ...e, blobName: mine.blobName };
    e.blobName = REMOTE + blobId;
    this.remember(e, r.url);
    return e;
  }

  private remember(entry: StoredEntry, url: string | undefined): void {
    const name = entry.blobName as string;
    this.remoteBlobs.delete(name);
    this.remoteBlobs.set(name, { entry, url, fetchedAt: Date.now() });
    if (this.remoteBlobs.size > REMOTE_BLOBS_KEPT) this.remoteBlobs.delete(this.remoteBlobs.keys().next().value as string);
  }

  /** The live local copy of `key`, when mode `auto` may answer from it. */
  private async localHit<T extends ReadRecord>(get: () => Promise<T | undefined>): Promise<T | undefined> {
    if (this.o.mode !== 'auto' || !this.link.trusted) return undefined;
    const e = await get();
    return e && !isExpired(e, this.o.clock()) ? e : undefined;
  }

  /** Answers from the local tier while the API is unreachable, if this API key was ever checked against it. */
  private offline<T>(answer: () => Promise<T>): Promise<T> {
    if (!this.link.trusted) {
      throw new RemoteError(
        'EUNREACHABLE',
        `The cloud API at ${this.api.origin} is unreachable, and this API key was never checked against the local directory (it may hold another namespace's entries). Reach the API once with this key, or use another dir.`,
      );
    }
    return answer();
  }

  /** Whether `key` has a write queued for the cloud: then the local tier is newer, and the cloud is not asked. */
  private queued(key: string): boolean {
    return this.o.mode === 'auto' && this.journal.hasQueuedWrite(key);
  }

  private async read(key: string): Promise<ReadRecord | undefined> {
    const hit = await this.localHit(() => this.local.read(key));
    if (hit || this.queued(key)) return hit;
    const r = await this.link.call(() => this.fetch(key, true));
    if (!r.ok) return this.offline(() => this.local.read(key));
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
    const e = await this.fetch(b.entry.key, true);
    if (!e || e.blobName !== name) return undefined;
    return this.remoteBlobs.get(name);
  }

  /** A new URL for a remote blob whose URL S3 refused (expired during a long download). */
  private async renewUrl(name: string): Promise<string | undefined> {
    const b = this.remoteBlobs.get(name);
    if (b) b.url = undefined;
    return (await this.urlOf(name))?.url;
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
    await collectGarbage(this.local, this.files, this.o.clock() - PIN_STALE_MS);
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
      bytes = await readParallel(
        openUrl(this.api, b.url, entry.storedSize, { signal: control?.signal, refresh: () => this.renewUrl(name) }),
        Buffer.allocUnsafe(entry.storedSize),
        {
          concurrency: this.o.concurrency,
          onProgress: downloadProgress(control),
        },
      );
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
    const remote = () => openUrl(this.api, url, entry.storedSize, { signal: control?.signal, refresh: () => this.renewUrl(name), concurrency: this.o.concurrency });
    // Read whole into a file of the caller's (getFile), or too large to keep: windows fetched in parallel
    // ahead of the reads, the bytes written once, where they are going.
    if (control?.read === 'file' || (control?.read === 'whole' && !this.fits(entry.storedSize))) {
      return prefetching(remote(), { concurrency: this.o.concurrency, onProgress: downloadProgress(control) });
    }
    if (this.fits(entry.storedSize)) {
      try {
        const local = await this.keepLocally(
          entry,
          (n) => this.files.receive(n, (fh) => downloadToFile(remote(), fh, { concurrency: this.o.concurrency, onProgress: downloadProgress(control) })),
          true,
        );
        if (local) return this.files.open(local);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    }
    return remote(); // byte ranges: only the chunks holding them are read
  }

  // ---- writes ----

  /**
   * A put: committed to the local tier, then pushed. The engine's pin still holds the blob while its
   * file is opened here, and the open file keeps the bytes for the upload even if the local copy is
   * evicted meanwhile. In mode `auto` the put is queued first (a write-ahead record, with its own link
   * to the bytes): a crash before the push ends leaves it queued, and the next process pushes it.
   */
  private async put(record: EntryRecord, opts: PutRecordOptions = {}): Promise<void> {
    await this.checked();
    const file = !record.inline && opts.blobName ? await this.files.open(opts.blobName) : undefined;
    let queued: number | undefined; // the write-ahead record (mode auto), while it stays queued
    const unqueue = async () => {
      if (queued === undefined) return;
      this.outbox.pushing.delete(queued);
      await this.outbox.done(queued);
      queued = undefined;
    };
    try {
      if (this.o.mode === 'auto') queued = await this.outbox.enqueuePut(record, opts, opts.blobName ? this.files.pathOf(opts.blobName) : undefined, true);
      try {
        await this.local.put(record, opts);
      } catch (err) {
        await unqueue();
        throw err;
      }
      if (this.o.mode === 'auto' && this.link.status === 'offline') return await this.keepWithin(record); // stays queued
      // The reader stays open across the push's uses; it is closed here.
      const open = async () => file && { size: file.size, read: file.read, close: async () => {} };
      let pushed: Reached<unknown>;
      try {
        pushed = await this.link.call(() => pushEntry(this.api, this.journal, { record, tables: opts.tables, open }, { concurrency: this.o.concurrency, control: opts.transfer }));
      } catch (err) {
        // Refused (bad input, a constraint, an abort): the local copy goes too, so both tiers agree. After
        // an outage in mode remote it stays, with its upload journalled: a re-put resumes it.
        await unqueue();
        if (!this.link.isOutage(err)) await this.local.delete(record.key, 'delete', record).catch(() => {});
        throw err;
      }
      if (pushed.ok) await unqueue(); // else (mode auto, the API unreachable) it stays queued
    } finally {
      if (queued !== undefined) {
        // Still queued (offline, an outage): the outbox may push it now.
        this.outbox.pushing.delete(queued);
        this.journal.claim(queued, 0);
      }
      await file?.close();
    }
    await this.keepWithin(record);
  }

  /** After a write: a value too large for the local tier leaves it (the cloud or the outbox has it); the rest is trimmed to maxSize. */
  private async keepWithin(record: EntryRecord): Promise<void> {
    if (!this.fits(record.storedSize)) await this.local.delete(record.key, 'evicted', record);
    await this.trim(record.key);
  }

  /**
   * Before a write with an API key never checked against this directory: check it now (the directory
   * may be another namespace's). Fails when the API is unreachable.
   */
  private async checked(): Promise<void> {
    if (!this.link.trusted) await this.link.ensureBound();
  }

  /** Runs a write against the API, or queues it (mode `auto`, offline). */
  private async write<T>(op: 'delete' | 'touch' | 'defineTable' | 'deletePrefix', key: string, body: unknown, at: number, call: () => Promise<T>): Promise<Reached<T>> {
    await this.checked();
    const r = await this.link.call(call);
    if (!r.ok) this.outbox.enqueue(op, key, body, at);
    return r;
  }

  async close(): Promise<void> {
    await this.outbox.close();
    this.link.close();
    this.journal.close();
    await this.local.close();
  }

  // ---- the facades the engine sees ----

  private metadataFacade(): MetadataStore {
    const local = this.local;
    const remoteOr = async <T>(call: () => Promise<T>, offline: () => Promise<T>): Promise<T> => {
      const r = await this.link.call(call);
      return r.ok ? r.value : this.offline(offline);
    };
    return {
      read: (key) => this.read(key),
      get: async (key) =>
        remoteOr(
          () => this.fetch(key, true),
          () => local.get(key),
        ),
      head: async (key) => {
        const hit = await this.localHit(() => local.head(key));
        if (hit || this.queued(key)) return hit;
        return remoteOr(
          () => this.fetch(key, false),
          () => local.head(key),
        );
      },
      put: (record, opts) => this.put(record, opts),
      delete: async (key, reason = 'delete', ifMatch?: EntryVersion) => {
        // A bad download drops only the local copy: the cloud's entry is shared, and the engine reads it again.
        if (reason === 'corrupt') return local.delete(key, reason, ifMatch);
        const at = this.o.clock();
        const here = await local.delete(key, reason, ifMatch);
        const r = await this.write('delete', key, null, at, () => this.cloud.delete(key));
        return r.ok ? r.value : here;
      },
      deletePrefix: async (prefix) => {
        const here = await local.deletePrefix(prefix);
        const r = await this.write('deletePrefix', prefix, null, this.o.clock(), () => this.cloud.deletePrefix(prefix));
        return r.ok ? r.value : here;
      },
      clear: async () => {
        const here = await local.clear();
        const r = await this.write('deletePrefix', '', null, this.o.clock(), () => this.cloud.deletePrefix(''));
        return r.ok ? r.value : here;
      },
      touch: async (key, expiresAt, now) => {
        const here = await local.touch(key, expiresAt, now);
        const r = await this.write('touch', key, { expiresAt }, now, () => this.cloud.touch(key, expiresAt));
        return r.ok ? r.value : here;
      },
      recordAccess: async (accesses, counters) => {
        await local.recordAccess(accesses, counters);
        // Offline: counted in the local tier only. Statistics never fail the call that flushes them.
        await this.link.call(() => this.cloud.recordAccess(accesses, counters)).catch((err) => this.o.onError(asCachenessError(err)));
      },
      list: (q) =>
        remoteOr(
          () => this.cloud.list(q),
          () => local.list(q),
        ),
      count: (q) =>
        remoteOr(
          () => this.cloud.count(q),
          () => local.count(q),
        ),
      counters: () =>
        remoteOr(
          () => this.cloud.counters(),
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
        const here = await local.defineTable(name, columns, options); // checks the definition before anything is sent or queued
        const r = await this.write('defineTable', name, { columns, options }, this.o.clock(), () => this.cloud.defineTable(name, columns, options));
        return r.ok ? r.value : here;
      },
      tables: () =>
        remoteOr(
          () => this.cloud.tables(),
          () => local.tables(),
        ),
      query: (table, q) =>
        remoteOr(
          () => this.cloud.query(table, q),
          () => local.query(table, q),
        ),
      sql: async () => {
        throw new TableError('EQUERY', 'Raw SQL runs on a local cache only (the cloud store is shared by tenants); use query() on custom tables and list({ where }) on entries.');
      },
      rowsOf: (key) =>
        remoteOr(
          () => this.cloud.rowsOf(key),
          () => local.rowsOf(key),
        ),
      close: () => this.close(),
    };
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
      sweepPartial: async (olderThanMs) => (await files.sweepPartial(olderThanMs)) + (await this.outbox.sweepFiles(olderThanMs)),
      close: async () => {},
    };
  }
}

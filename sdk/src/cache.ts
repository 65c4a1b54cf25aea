/**
 * The cache engine: keys, values, compression, integrity, TTL, eviction and stats over a
 * {@link MetadataStore} and a {@link BlobStore}.
 * @module
 */
import { constants } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { type FileHandle, open as openFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { ChunkBuffers } from './chunked/buffers.js';
import { FileSource } from './chunked/file-source.js';
import { decodeChunked, isRawContainer, type PipeRangeOptions, pipeRawRange, readChunkedRange, readIndex } from './chunked/read.js';
import { rechunk, slices, tooLarge, writeChunked } from './chunked/write.js';
import { type CompressionOptions, decompress, looksCompressible, maybeCompress, type ResolvedCompression, resolveCompression } from './compression.js';
import { type DumpResult, exportCache, importCache } from './dump.js';
import { type Ttl, ttlToMs } from './duration.js';
import { type EntryInfo, type EntryRecord, isExpired, type JsonObject, type StoredEntry } from './entry.js';
import { asCachenessError, CachenessError, checkAborted, describeType, IntegrityError, OptionError, StoreError, TableError, ValueError } from './errors.js';
import { xxh128Hex, xxh128Stream } from './hash.js';
import { type Key, type KeyParams, keyOf, resolveKey, resolveKeyFast } from './key/index.js';
import { projectParams } from './key/projection.js';
import { isOwnerAlive, processOwner } from './owner.js';
import type { SyncResult } from './remote/tier.js';
import { collectGarbage } from './stores/garbage.js';
import type { BlobReader, BlobStore, EntryWhere, EvictionPolicy, MetadataStore, Progress, ReadRecord, TransferControl } from './stores/types.js';
import type { TableColumns, TableDefinition, TableOptions, TableRow } from './tables/schema.js';
import type { OrderBy, Where } from './tables/where.js';
import { entryInfo, handlerByName, handlerFor, handlerId, type ValueHandler } from './values/index.js';

/** Options of {@link Cache.put}. */
export interface PutOptions {
  /** Time to live (seconds, `'15m'`, `'24h'`, ... or null for never). Default: the cache's `defaultTtl`. */
  ttl?: Ttl;
  /** Free-form JSON metadata, queryable with `list({ where: { metadata } })`. */
  metadata?: JsonObject;
  /** Human-readable description. */
  description?: string;
  /** Rows for custom tables, by table name (one row or an array). Replaces this entry's rows in those tables. */
  tables?: Record<string, TableRow | TableRow[]>;
  /** Stops the put (`EABORTED`; nothing is stored, and a remote cache aborts its upload on the server too). */
  signal?: AbortSignal;
  /**
   * Called as the value is written (`phase: 'write'`, `total` null for a stream) and, in a remote cache,
   * uploaded (`phase: 'upload'`, bytes of its stored form).
   */
  onProgress?: (p: Progress) => void;
}

/** Options of {@link Cache.getFile}. */
export interface GetFileOptions {
  /** Stops the read (`EABORTED`); the destination is left as it was. */
  signal?: AbortSignal;
  /** Called as the value is downloaded (a remote cache, `phase: 'download'`) and written to the file (`phase: 'read'`). */
  onProgress?: (p: Progress) => void;
}

/** Options of {@link Cache.getStream}. */
export interface StreamOptions {
  /** First byte to read (inclusive, from 0). Default 0. */
  start?: number;
  /** Last byte to read (inclusive, as in `fs.createReadStream`). Default: the last byte of the value. */
  end?: number;
}

/** Options of {@link Cache.list}. */
export interface ListOptions {
  /** Only keys starting with this string. */
  prefix?: string;
  /** Filter on entry fields, `params: {...}` and `metadata: {...}` (see the where language in the README). */
  where?: EntryWhere;
  /** Page size (default 100, at most 10 000). */
  limit?: number;
  /** Cursor from the previous page. */
  cursor?: string;
  /** Include expired entries not yet cleaned up. */
  includeExpired?: boolean;
}

/** Options of {@link Cache.query}. */
export interface QueryOptions {
  where?: Where;
  orderBy?: OrderBy;
  limit?: number;
  offset?: number;
  /** Include rows of expired entries. */
  includeExpired?: boolean;
}

/** Result of {@link Cache.stats}, shared by every process using the same store. */
export interface CacheStats {
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
  /** hits / (hits + misses), 0 when there were no reads. */
  hitRate: number;
  evictions: number;
  expirations: number;
  /** Entries dropped because their bytes failed verification. */
  corruptions: number;
  maxSize: number | null;
}

/** Result of {@link Cache.cleanup}. */
export interface CleanupResult {
  /** Expired entries deleted. */
  expired: number;
  /** Entries evicted to get under `maxSize`. */
  evicted: number;
  /** Unreferenced blobs, orphan blob files and interrupted-write leftovers removed. */
  orphans: number;
}

/** Result of {@link Cache.verify}. */
export interface VerifyReport {
  /** Entries checked. */
  checked: number;
  /** Keys whose blob is missing. */
  dangling: string[];
  /** Keys whose bytes do not match their recorded size or hash. */
  mismatched: string[];
  /** Blob files that no entry references. */
  orphans: string[];
  /** Leftover temp files of interrupted writes. */
  partial: number;
  /** True when `repair` removed what was found. */
  repaired: boolean;
}

/** A lookup that distinguishes a stored `undefined` from a miss. */
export type Lookup = { hit: true; value: unknown; entry: ReadRecord } | { hit: false };

/** Resolved engine settings (see `CacheOptions` in create.ts for the documented user options). */
export interface EngineSettings {
  defaultTtl: Ttl;
  maxSize: number | null;
  eviction: EvictionPolicy;
  compression?: CompressionOptions;
  verifyIntegrity: boolean;
  storeKeyParams: boolean;
  inlineThreshold: number;
  /** Payloads larger than this are stored in chunks of this many bytes. */
  chunkSize: number;
  /** Compression worker threads (0: compress in the calling thread). */
  workers: number;
  /** The value handlers in priority order (recomputed when the process-wide registry changes). */
  handlers: () => readonly ValueHandler[];
  clock: () => number;
  onError: (err: CachenessError) => void;
  /** Human-readable location, for error messages. */
  location: string;
  /** The cloud API behind a remote cache (modes `remote` and `auto`). */
  remote?: RemoteControl;
}

/** What a remote cache adds to the engine (see remote/tier.ts). */
export interface RemoteControl {
  mode: 'remote' | 'auto';
  readonly status: 'online' | 'offline';
  queued(): number;
  uploads(): number;
  sync(): Promise<SyncResult>;
  resumeUploads(): Promise<number>;
}

/** Result of {@link Cache.status}. */
export interface CacheStatus {
  /** `local`, `remote` (the cloud API only) or `auto` (the cloud API, with the local store when it is unreachable). */
  mode: 'local' | 'remote' | 'auto';
  /** `local` for a local cache; else whether the cloud API is reachable now. */
  state: 'local' | 'online' | 'offline';
  /** Writes made offline waiting to be pushed (mode `auto`). */
  queued: number;
  /** Uploads started and not finished (resume them with {@link Cache.resumeUploads}). */
  uploads: number;
}

/** What describes a payload being written, besides its bytes. */
interface PayloadMeta {
  handler: string;
  type: string;
  params: EntryRecord['params'];
  metadata: JsonObject | null;
  description: string | null;
  tables: Record<string, TableRow[]> | undefined;
  ttlMs: number | null;
  times?: { createdAt: number; expiresAt: number | null } | undefined;
  /** The caller's signal and progress callback. */
  control?: TransferControl | undefined;
  /** The payload's size when known before it is read (a file's), for progress reports. */
  total?: number | undefined;
}

const MISS: Lookup = { hit: false };

/** An entry's payload as read: its bytes, or for a chunked entry read as a stream, an open reader. */
type Payload = { e: ReadRecord; now: number; bytes?: Uint8Array; reader?: BlobReader };
/** The largest Buffer this Node.js can make (4 GiB on Node 20): larger values are read as streams. */
const MAX_BUFFER = constants.MAX_LENGTH;
const NO_COMPRESSION = resolveCompression({ codec: 'none' });
const FLUSH_EVERY_OPS = 1000;
const FLUSH_EVERY_MS = 1000;
/** A pinned blob whose writer has not committed within this time is treated as abandoned. */
const PIN_STALE_MS = 60 * 60 * 1000;
const SWEEP_EVERY_WRITES = 1000;

/** A cache (or permanent store) of values with SQL-queryable metadata. Create one with `createCache()`. */
export class Cache {
  private readonly meta: MetadataStore;
  private readonly blobs: BlobStore;
  private readonly s: EngineSettings;
  private readonly defaultTtlMs: number | null;
  private readonly compression: ReturnType<typeof resolveCompression>;
  private readonly accesses = new Map<string, { hits: number; accessedAt: number }>();
  private pendingHits = 0;
  private pendingMisses = 0;
  private pendingOps = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private writesSinceSweep = 0;
  private readonly owner = processOwner();
  private closed = false;
  private closing: Promise<void> | undefined;

  /** @internal Use `createCache()`. */
  constructor(meta: MetadataStore, blobs: BlobStore, settings: EngineSettings) {
    this.meta = meta;
    this.blobs = blobs;
    this.s = settings;
    this.defaultTtlMs = ttlToMs(settings.defaultTtl, 'defaultTtl');
    this.compression = resolveCompression(settings.compression);
    openCaches.add(this);
  }

  /** Where this cache lives (a directory, or `memory`). */
  get location(): string {
    return this.s.location;
  }

  /** True once `close()` was called. */
  get isClosed(): boolean {
    return this.closed || this.closing !== undefined;
  }

  /** @internal Whether key params are stored with entries. */
  get storesKeyParams(): boolean {
    return this.s.storeKeyParams;
  }

  /** @internal Reports a background problem through the `onError` option. */
  report(err: CachenessError): void {
    this.s.onError(err);
  }

  /**
   * The key string that key params (or a string key) resolve to.
   * @throws {KeyError} `EKEYASYNC` when the params hold `file()`/`dir()` content markers: use {@link Cache.resolveKey}.
   */
  keyOf(key: Key): string {
    return typeof key === 'string' ? resolveKey(key) : keyOf(key);
  }

  /** The key string `key` resolves to, reading the content of its `file()`/`dir()` markers if it has any. */
  async resolveKey(key: Key): Promise<string> {
    try {
      const k = resolveKeyFast(key);
      return typeof k === 'string' ? k : (await k).key;
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /**
   * Stores `value` under `key`, replacing any previous value.
   * @returns the stored entry's description.
   * @throws {CachenessError} `EVALUETYPE` (unsupported value), `EKEY`/`EKEYTYPE` (bad key), `ETTL`,
   * `ETABLE`/`ECOLUMN`/`ECONSTRAINT` (custom-table rows), `EVALUETOOLARGE`. Nothing is stored on error.
   */
  async put(value: unknown, key: Key, opts: PutOptions = {}): Promise<EntryInfo> {
    try {
      this.assertOpen();
      const r = resolveKeyFast(key); // a promise only when file()/dir() contents must be read
      const { key: k, contents } = typeof r === 'string' ? { key: r, contents: undefined } : await r;
      const params = typeof key === 'string' || !this.s.storeKeyParams ? null : projectParams(key, contents);
      return await this.putResolved(value, k, params, opts);
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** @internal put with an already resolved key (used by `cached()` and import). */
  async putResolved(value: unknown, k: string, params: EntryRecord['params'], opts: PutOptions, times?: { createdAt: number; expiresAt: number | null }): Promise<EntryInfo> {
    try {
      this.assertOpen();
      const ttlMs = opts.ttl !== undefined ? ttlToMs(opts.ttl) : this.defaultTtlMs;
      const metadata = checkMetadata(opts.metadata);
      if (opts.description !== undefined && typeof opts.description !== 'string') {
        throw new OptionError('EOPTION', `description must be a string; got ${describeType(opts.description)}.`);
      }
      const tables = normalizeTables(opts.tables);
      const control = transferControl(opts, 'put');
      checkAborted(control?.signal, `The put of '${k}'`);
      const handler = handlerFor(value, this.s.handlers());
      const serialized = handler.serialize(value, { compress: this.compression.codec !== 'none', minCompressBytes: this.compression.threshold });
      const out = serialized instanceof Promise ? await serialized : serialized;
      const total = value instanceof FileSource ? value.size : undefined;
      const o = { handler: handlerId(handler), type: out.type, params, metadata, description: opts.description ?? null, tables, ttlMs, times, control, total };
      if ('stream' in out) return await this.putStream(k, out.stream, o);
      let { bytes } = out;
      let stored: { codec: EntryRecord['codec']; bytes: Uint8Array } | undefined;
      let compression: ResolvedCompression | undefined;
      if (out.ifStoredRaw) {
        // The handler prepared its bytes for compression; if compression does not pay, store its plain form.
        if (bytes.length > this.s.chunkSize) {
          if (!looksCompressible(bytes, this.compression)) {
            ({ bytes, type: o.type } = out.ifStoredRaw);
            compression = NO_COMPRESSION;
          }
        } else {
          stored = maybeCompress(bytes, this.compression);
          if (stored.codec === 'none') {
            ({ bytes, type: o.type } = out.ifStoredRaw);
            stored = { codec: 'none', bytes };
          }
        }
      }
      return await this.putBytes(k, bytes, { ...o, stored, compression });
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** Stores a stream: as one payload when it ends within a chunk, else chunk by chunk as it comes. */
  private async putStream(k: string, source: AsyncIterable<unknown>, o: PayloadMeta): Promise<EntryInfo> {
    // Chunks in flight: one being filled, one being compressed per worker (or in this thread), one being written, one spare.
    const buffers = new ChunkBuffers(this.s.chunkSize, this.s.workers + 4);
    const chunks = source instanceof FileSource ? source.chunks(buffers) : rechunk(source, buffers);
    try {
      const first = await chunks.next();
      if (first.done) return await this.putBytes(k, new Uint8Array(0), o);
      const second = await chunks.next();
      if (second.done) return await this.putBytes(k, first.value, o);
      const all = (async function* () {
        yield first.value;
        yield second.value;
        yield* chunks;
      })();
      return await this.putChunked(k, all, buffers, this.compression, o);
    } finally {
      await chunks.return(undefined);
    }
  }

  /**
   * Writes a payload larger than one chunk as a chunked container (see chunked/format.ts): chunks are
   * compressed in parallel and staged as they come, then published under the container's id.
   */
  private async putChunked(
    k: string,
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    /** The chunks' memory when it is ours (a stream's), to reuse; undefined for views of the caller's value. */
    buffers: ChunkBuffers | undefined,
    compression: ResolvedCompression,
    o: PayloadMeta,
  ): Promise<EntryInfo> {
    const stage = await this.blobs.stage();
    try {
      const source = watched(chunks, o.control, o.total ?? null, k);
      const r = await writeChunked(source, stage, {
        chunkSize: this.s.chunkSize,
        compression,
        workers: this.s.workers,
        owned: buffers !== undefined,
        release: buffers?.release,
        maxStoredSize: this.s.maxSize,
        key: k,
      });
      const record = this.newRecord(k, o, { codec: 'chunked', size: r.size, storedSize: r.storedSize, contentHash: r.contentHash });
      record.blobId = r.blobId;
      await this.putBlob(record, r.storedSize, (name) => stage.publish(name), o);
      this.accesses.delete(k);
      await this.afterWrite(k, true);
      return entryInfo(record, this.s.handlers());
    } finally {
      await stage.abort(); // a no-op once published
    }
  }

  private newRecord(k: string, o: PayloadMeta, p: Pick<EntryRecord, 'codec' | 'size' | 'storedSize' | 'contentHash'>): EntryRecord {
    const now = this.s.clock();
    const createdAt = o.times?.createdAt ?? now;
    return {
      key: k,
      params: o.params,
      handler: o.handler,
      type: o.type,
      ...p,
      blobId: null,
      inline: null,
      createdAt,
      accessedAt: now,
      expiresAt: o.times ? o.times.expiresAt : o.ttlMs === null ? null : createdAt + o.ttlMs,
      hits: 0,
      description: o.description,
      metadata: o.metadata,
    };
  }

  private async putBytes(
    k: string,
    bytes: Uint8Array,
    o: PayloadMeta & { stored?: { codec: EntryRecord['codec']; bytes: Uint8Array }; compression?: ResolvedCompression },
  ): Promise<EntryInfo> {
    if (!o.stored && bytes.length > this.s.chunkSize)
      return this.putChunked(k, slices(bytes, this.s.chunkSize), undefined, o.compression ?? this.compression, { ...o, total: bytes.length });
    const { codec, bytes: stored } = o.stored ?? maybeCompress(bytes, o.compression ?? this.compression);
    if (this.s.maxSize !== null && stored.length > this.s.maxSize) throw tooLarge(k, stored.length, this.s.maxSize);
    const record = this.newRecord(k, o, { codec, size: bytes.length, storedSize: stored.length, contentHash: xxh128Hex(bytes) });
    o.control?.onProgress?.({ phase: 'write', bytes: bytes.length, total: bytes.length });
    if (stored.length < this.s.inlineThreshold) {
      record.inline = stored;
      checkAborted(o.control?.signal, `The put of '${k}'`);
      await this.meta.put(record, { tables: o.tables, transfer: o.control });
    } else {
      record.blobId = codec === 'none' ? record.contentHash : xxh128Hex(stored);
      await this.putBlob(record, stored.length, (name) => this.blobs.write(name, stored), o, true);
    }
    this.accesses.delete(k); // a re-put resets hits
    await this.afterWrite(k, record.blobId !== null);
    return entryInfo(record, this.s.handlers());
  }

  /**
   * Reserves (pins) the blob, writes its bytes unless they are already in place, and commits the
   * entry. If the reservation expired meanwhile (a write slower than the pin staleness bound, with a
   * cleanup in between), it is taken again and the bytes rewritten once, when `rewritable`.
   */
  private async putBlob(
    record: EntryRecord,
    size: number,
    write: (name: string) => Promise<void>,
    o: Pick<PayloadMeta, 'tables' | 'control'>,
    rewritable = false,
    attempt = 1,
  ): Promise<void> {
    const blobId = record.blobId as string;
    const res = await this.meta.acquireBlob(blobId, size, this.s.clock(), this.owner);
    try {
      if (!res.ready || (await this.blobs.size(res.name)) !== size) await write(res.name);
      checkAborted(o.control?.signal, `The put of '${record.key}'`);
      await this.meta.put(record, { tables: o.tables, pin: res.pin, blobName: res.name, transfer: o.control });
    } catch (err) {
      await this.meta.releasePin(res.pin);
      await this.collectGarbage();
      // Names are never reused: bytes written under a name whose record is gone are ours to remove.
      if (!(await this.meta.isLiveBlob(res.name))) await this.blobs.delete([res.name]);
      if (rewritable && attempt === 1 && err instanceof CachenessError && err.details?.retry === true) return this.putBlob(record, size, write, o, rewritable, 2);
      throw err;
    }
  }

  /** Enforces maxSize, and now and then sweeps expired entries and unreferenced blobs. */
  private async afterWrite(k: string, wroteBlob: boolean): Promise<void> {
    let freed = wroteBlob;
    if (this.s.maxSize !== null && this.s.eviction !== 'none') {
      if ((await this.meta.storedBytes()) > this.s.maxSize) {
        freed = (await this.meta.evict(this.s.eviction, this.s.maxSize, this.s.clock(), k)) > 0 || freed;
      }
    }
    if (++this.writesSinceSweep >= SWEEP_EVERY_WRITES) {
      this.writesSinceSweep = 0;
      await this.meta.deleteExpired(this.s.clock(), 500);
      freed = true;
    }
    if (freed) await this.collectGarbage();
  }

  /** Deletes the bytes of blobs that no entry references any more. Returns how many. */
  private collectGarbage(): Promise<number> {
    return collectGarbage(this.meta, this.blobs, this.s.clock() - PIN_STALE_MS);
  }

  /** Reads the value under `key`, or `undefined` on a miss (absent, expired, or failed verification). */
  async get(key: Key): Promise<unknown> {
    const k = resolveKeyFast(key);
    const r = await this.lookup(typeof k === 'string' ? k : (await k).key);
    return r.hit ? r.value : undefined;
  }

  /** @internal Reads a resolved key, telling a stored `undefined` from a miss. */
  async lookup(k: string): Promise<Lookup> {
    this.assertOpen();
    try {
      const p = await this.payload(k);
      if (!p) return MISS;
      const { e, now } = p;
      const { handler, version } = handlerByName(e.handler, this.s.handlers()); // ENOHANDLER is the caller's to see
      let value: unknown;
      try {
        if (p.bytes) value = handler.deserialize(p.bytes, e.type, version);
        else {
          const pieces = this.readRange(p.reader as BlobReader, e, 0, e.size);
          value = (handler.deserializeStream as NonNullable<ValueHandler['deserializeStream']>)(pieces, e.type, version);
        }
        if (value instanceof Promise) value = await value; // asynchronous handlers (loading a library, say)
      } catch (err) {
        if (err instanceof IntegrityError) return await this.corrupt(e, err.message, now);
        if (err instanceof CachenessError) throw err;
        return await this.corrupt(e, `its ${e.handler} payload could not be decoded (${(err as Error).message})`, now);
      } finally {
        await p.reader?.close();
      }
      this.countRead(k, now);
      return { hit: true, value, entry: e };
    } catch (err) {
      throw asCachenessError(err); // inline rather than a wrapper: this is the hot path
    }
  }

  /**
   * Reads and verifies an entry's payload: its bytes, or for a chunked entry whose handler can read a
   * stream, an open reader (with `stream`). A miss (absent, expired, damaged) is counted and returns
   * undefined; a hit is the caller's to count.
   */
  private async payload(k: string, stream?: 'stream', attempt = 1, retried = false, control?: TransferControl): Promise<Payload | undefined> {
    const e = await this.meta.read(k);
    const now = this.s.clock();
    if (!e || isExpired(e, now)) {
      this.countRead(undefined, now);
      return undefined;
    }
    if (!stream && (e.size > MAX_BUFFER || e.storedSize > MAX_BUFFER)) {
      throw new ValueError('EVALUETOOLARGE', `Entry '${k}' holds ${e.size} bytes, more than one buffer can hold in this Node.js; read it with getStream() or getFile().`, {
        details: { key: k, size: e.size },
      });
    }
    let stored: Uint8Array | null | undefined = e.inline;
    if (!stored && e.blobName) {
      if (e.codec === 'chunked' && (stream || handlerByName(e.handler, this.s.handlers()).handler.deserializeStream)) {
        const reader = await this.blobs.open(e.blobName, control);
        if (reader) return { e, now, reader };
      } else {
        try {
          stored = await this.blobs.read(e.blobName, control);
        } catch (err) {
          if (!(err instanceof IntegrityError)) throw err; // a remote store checks a download against its hash
          return this.damaged(k, e, err.message, now, stream, retried, control);
        }
      }
    }
    if (!stored) {
      // The entry may have been replaced or deleted since we read it: look again before calling it dangling.
      const again = await this.meta.head(k);
      if (again && (again.blobName !== e.blobName || again.createdAt !== e.createdAt)) {
        if (attempt < 3) return await this.payload(k, stream, attempt + 1, retried, control);
        this.countRead(undefined, now); // rewritten faster than we can read it: a miss, not a corruption
        return undefined;
      }
      if (!again) {
        this.countRead(undefined, now);
        return undefined;
      }
      return this.damaged(k, e, 'its blob is missing', now, stream, retried, control);
    }
    try {
      if (stored.length !== e.storedSize) return this.damaged(k, e, `it has ${stored.length} bytes, ${e.storedSize} were stored`, now, stream, retried, control);
      const verify = this.s.verifyIntegrity;
      let bytes: Uint8Array;
      if (e.codec === 'chunked') {
        bytes = decodeChunked(stored, e, verify); // checks the index against blobId and every chunk against its hash
      } else {
        if (verify && e.blobId && xxh128Hex(stored) !== e.blobId) return this.damaged(k, e, 'its stored bytes do not match their hash', now, stream, retried, control);
        bytes = e.codec === 'none' ? stored : decompress(e.codec, stored, e.size);
        if (verify && !e.verified && !(e.blobId && e.codec === 'none') && bytes.length === e.size && xxh128Hex(bytes) !== e.contentHash) {
          return this.damaged(k, e, 'its content hash does not match', now, stream, retried, control);
        }
      }
      if (bytes.length !== e.size) return this.damaged(k, e, 'it decoded to the wrong size', now, stream, retried, control);
      return { e, now, bytes };
    } catch (err) {
      if (err instanceof IntegrityError) return this.damaged(k, e, err.message, now, stream, retried, control);
      if (err instanceof CachenessError || err instanceof RangeError) throw err; // RangeError: out of memory, not damage
      return this.damaged(k, e, `it could not be decoded (${(err as Error).message})`, now, stream, retried, control);
    }
  }

  /**
   * Damage found reading `e`. The store drops that version; a store that keeps a shared copy elsewhere
   * (the cloud, behind a remote cache's local tier) still has it afterwards, and then it is read once
   * more (a download damaged on the way); otherwise, or if the second read is damaged too, the damage
   * is reported and the read is a miss.
   */
  private async damaged(
    k: string,
    e: ReadRecord,
    why: string,
    now: number,
    stream: 'stream' | undefined,
    retried: boolean,
    control: TransferControl | undefined,
  ): Promise<Payload | undefined> {
    if (!retried) {
      await this.meta.delete(e.key, 'corrupt', e);
      const again = await this.meta.head(k);
      if (again && again.createdAt === e.createdAt && again.contentHash === e.contentHash) return this.payload(k, stream, 1, true, control);
    }
    await this.corrupt(e, why, now);
    return undefined;
  }

  /**
   * The payload bytes `[start, end)` of a chunked entry, chunk by chunk, each verified; or, with
   * `direct` and a reader that downloads (`pipe`), the chunks of a raw container straight to `direct`.
   */
  private async *readRange(reader: BlobReader, e: ReadRecord, start: number, end: number, reuse = false, direct?: PipeRangeOptions['write']): AsyncGenerator<Uint8Array> {
    const verify = this.s.verifyIntegrity;
    const index = await readIndex(reader, e, verify);
    if (index.rawTotal !== e.size) throw new IntegrityError('EINTEGRITY', `The stored chunked payload is damaged: it holds ${index.rawTotal} bytes, ${e.size} were stored.`);
    if (direct && reader.pipe && isRawContainer(index)) return await pipeRawRange(reader, index, { start, end, verify, write: direct });
    yield* readChunkedRange(reader, index, { start, end, verify, reuse });
  }

  /** Drops the damaged version `e` (a miss) and, unless `report` is false, reports it to `onError`. */
  private async corrupt(e: ReadRecord, why: string, now: number, report = true): Promise<Lookup> {
    // Only this version: a writer may have replaced the entry since we read it.
    await this.meta.delete(e.key, 'corrupt', e);
    await this.collectGarbage();
    this.countRead(undefined, now);
    if (report) this.reportDamage(e.key, why);
    return MISS;
  }

  private reportDamage(key: string, why: string): void {
    why = why.replace(/^The stored chunked payload is damaged: (.*)\.$/, 'its chunked payload is damaged: $1');
    this.s.onError(
      new IntegrityError('EINTEGRITY', `Entry '${key}' in ${this.s.location} was dropped because ${why}; it reads as a miss. Run cache.verify() to check the rest of the store.`, {
        details: { key },
      }),
    );
  }

  /** Batches hit counts and access times: reads never turn into one disk write each. */
  private countRead(k: string | undefined, now: number): void {
    if (k === undefined) this.pendingMisses++;
    else {
      this.pendingHits++;
      const a = this.accesses.get(k);
      if (a) {
        a.hits++;
        a.accessedAt = now;
      } else this.accesses.set(k, { hits: 1, accessedAt: now });
    }
    if (++this.pendingOps >= FLUSH_EVERY_OPS) void this.flush().catch((err) => this.s.onError(asCachenessError(err)));
    else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        void this.flush().catch((err) => this.s.onError(asCachenessError(err)));
      }, FLUSH_EVERY_MS);
      this.flushTimer.unref();
    }
  }

  /** Writes batched access statistics to the store now (done automatically every second, on stats() and on close()). */
  async flush(): Promise<void> {
    try {
      if (this.pendingOps === 0) return;
      const accesses = [...this.accesses].map(([key, a]) => ({ key, hits: a.hits, accessedAt: a.accessedAt }));
      const counters = { hits: this.pendingHits, misses: this.pendingMisses };
      this.accesses.clear();
      this.pendingHits = 0;
      this.pendingMisses = 0;
      this.pendingOps = 0;
      if (this.flushTimer) {
        clearTimeout(this.flushTimer);
        this.flushTimer = undefined;
      }
      await this.meta.recordAccess(accesses, counters);
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /**
   * Reads the value under `key` as a stream of its bytes (for entries stored from streams, files and
   * buffers: the original bytes), or `undefined` on a miss. `start` and `end` select a byte range
   * (both inclusive, as in `fs.createReadStream`); only the chunks holding it are read, each verified
   * against its hash. A chunk that fails verification ends the stream with an `EINTEGRITY` error and
   * drops the entry. Memory stays bounded (a few chunks) whatever the value's size.
   */
  async getStream(key: Key, opts: StreamOptions = {}): Promise<Readable | undefined> {
    try {
      this.assertOpen();
      checkRange(opts);
      const whole = opts.start === undefined && opts.end === undefined;
      const r = await this.pieces(resolveKey(key), { from: opts.start, to: opts.end === undefined ? undefined : opts.end + 1, control: whole ? { read: 'whole' } : undefined });
      if (!r) return undefined;
      const out = Readable.from(r.pieces, { objectMode: false });
      // A stream destroyed before its first read never runs the generator's finally: close here too (close is idempotent).
      out.once('close', () => void r.close().catch(() => {}));
      return out;
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /**
   * The payload bytes `[from, to)` of the entry under `k` as pieces (see {@link readChunkedRange} for
   * `reuse`), or undefined on a miss; counts the read. Damage found midway drops the entry, is reported
   * unless `report` is false, and ends the pieces with `EINTEGRITY`. With `direct`, bytes that can be
   * piped (see {@link pipeRawRange}) go to it instead, at their offsets and in any order, and the
   * pieces are only what could not.
   */
  private async pieces(
    k: string,
    o: { from?: number | undefined; to?: number | undefined; reuse?: boolean; control?: TransferControl | undefined; direct?: PipeRangeOptions['write']; report?: boolean },
  ): Promise<{ pieces: AsyncGenerator<Uint8Array>; size: number; close(): Promise<void> } | undefined> {
    const { from, to, reuse = false, control, direct, report = true } = o;
    const p = await this.payload(k, 'stream', 1, false, control);
    if (!p) return undefined;
    const { e, now, bytes, reader } = p;
    const start = Math.min(from ?? 0, e.size);
    const end = Math.max(start, Math.min(e.size, to ?? e.size));
    this.countRead(k, now);
    const self = this;
    const pieces = async function* () {
      if (bytes) {
        if (end > start) yield bytes.subarray(start, end);
        return;
      }
      try {
        yield* self.readRange(reader as BlobReader, e, start, end, reuse, direct);
      } catch (err) {
        // Damage drops the entry; a codec this process lacks (ECODEC) does not: another process may read it.
        if (err instanceof IntegrityError) {
          await self.corrupt(e, err.message, self.s.clock(), report).catch(() => {});
          // Which version was damaged: a caller may read a shared copy once more (getFile).
          throw new IntegrityError('EINTEGRITY', err.message, { cause: err, details: { ...err.details, key: e.key, contentHash: e.contentHash } });
        }
        throw asCachenessError(err);
      } finally {
        await reader?.close();
      }
    };
    return { pieces: pieces(), size: end - start, close: async () => void (await reader?.close()) };
  }

  /**
   * Writes the value under `key` to the file `dest` (its bytes, as {@link Cache.getStream} gives
   * them). The file appears whole or not at all: bytes go to a temporary file beside `dest`, renamed
   * over it at the end. Returns false on a miss (and leaves `dest` alone).
   * @throws {CachenessError} `EFILE` when `dest` cannot be written; `EINTEGRITY` when stored bytes are damaged.
   */
  async getFile(key: Key, dest: string, opts: GetFileOptions = {}): Promise<boolean> {
    try {
      this.assertOpen();
      if (typeof dest !== 'string' || dest === '') throw new OptionError('EOPTION', `getFile needs a destination path; got ${describeType(dest)}.`);
      const control = transferControl(opts, 'getFile');
      const what = `The getFile of '${typeof key === 'string' ? key : this.keyOf(key)}'`;
      checkAborted(control?.signal, what);
      const k = resolveKey(key);
      for (let attempt = 1; ; attempt++) {
        try {
          // Damage on the first reading is reported only if there is no second (as get does).
          return await this.fileOnce(k, dest, control, what, attempt > 1);
        } catch (err) {
          // A remote cache keeps the shared copy of an entry whose download was damaged: read it once more.
          if (attempt > 1 || !(err instanceof IntegrityError) || typeof err.details?.key !== 'string') throw err;
          const e = await this.meta.head(k);
          if (!e || e.contentHash !== err.details.contentHash) {
            this.reportDamage(err.details.key, err.message);
            throw err;
          }
        }
      }
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  private async fileOnce(k: string, dest: string, control: TransferControl | undefined, what: string, report: boolean): Promise<boolean> {
    const tmp = join(dirname(dest), `.${basename(dest)}.${process.pid}-${randomBytes(6).toString('hex')}.cacheness-tmp`);
    let fh: FileHandle | undefined;
    let bytes = 0;
    const cannotWrite = (err: unknown) =>
      new ValueError('EFILE', `Cannot write ${dest}: ${(err as Error).message}. Check that its folder exists and is writable.`, { cause: err, details: { path: dest } });
    /** Writes a piece at `position` of the file (a download piped in parallel writes out of order). */
    const write = async (piece: Uint8Array, position: number) => {
      checkAborted(control?.signal, what);
      try {
        for (let off = 0; off < piece.length; ) off += (await (fh as FileHandle).write(piece, off, piece.length - off, position + off)).bytesWritten;
      } catch (err) {
        throw cannotWrite(err);
      }
      bytes += piece.length;
      control?.onProgress?.({ phase: 'read', bytes, total: r?.size ?? 0 });
    };
    // Each piece is written before the next is read, so the pieces can share reused memory.
    const r = await this.pieces(k, { reuse: true, control: { ...control, read: 'file' }, direct: write, report });
    if (!r) return false;
    try {
      fh = await openFile(tmp, 'wx');
      for await (const piece of r.pieces) await write(piece, bytes);
      await fh.close();
      fh = undefined;
      await rename(tmp, dest);
    } catch (err) {
      await fh?.close().catch(() => {});
      await rm(tmp, { force: true }).catch(() => {});
      await r.pieces.return(undefined).catch(() => {});
      if (err instanceof CachenessError) throw err; // from reading the entry
      throw cannotWrite(err); // opening, closing or renaming the file
    } finally {
      await r.close();
    }
    return true;
  }

  /**
   * Stores the file at `path` under `key`, streamed in chunks (memory stays bounded whatever its size).
   * Reads back as a `Buffer` with `get`, or as a stream or file with `getStream` / `getFile`.
   * @throws {CachenessError} `EFILE` when the file is missing or not a regular file; `ESTREAM` when reading it fails midway.
   */
  async putFile(path: string, key: Key, opts: PutOptions = {}): Promise<EntryInfo> {
    try {
      this.assertOpen();
      let fh: Awaited<ReturnType<typeof openFile>>;
      try {
        fh = await openFile(path, 'r');
      } catch (cause) {
        throw new ValueError('EFILE', `Cannot store ${path}: ${(cause as Error).message}.`, { cause, details: { path } });
      }
      try {
        if (!(await fh.stat()).isFile()) throw new ValueError('EFILE', `Cannot store ${path}: it is not a regular file.`, { details: { path } });
        return await this.put(new FileSource(fh, path, (await fh.stat()).size), key, opts);
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** The entry's description without reading its value, or `undefined` when absent or expired. */
  async getEntry(key: Key): Promise<EntryInfo | undefined> {
    try {
      this.assertOpen();
      const k = resolveKeyFast(key);
      const e = await this.meta.head(typeof k === 'string' ? k : (await k).key);
      if (!e || isExpired(e, this.s.clock())) return undefined;
      const pending = this.accesses.get(e.key);
      if (pending) {
        e.hits += pending.hits;
        e.accessedAt = Math.max(e.accessedAt, pending.accessedAt);
      }
      return entryInfo(e, this.s.handlers());
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** True when a live (unexpired) entry exists under `key`. Does not read the value. */
  async has(key: Key): Promise<boolean> {
    try {
      this.assertOpen();
      const k = resolveKeyFast(key);
      const e = await this.meta.head(typeof k === 'string' ? k : (await k).key);
      return e !== undefined && !isExpired(e, this.s.clock());
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** Deletes the entry under `key` (and its custom-table rows). True when it existed. */
  async delete(key: Key): Promise<boolean> {
    try {
      this.assertOpen();
      const r = resolveKeyFast(key);
      const k = typeof r === 'string' ? r : (await r).key;
      this.accesses.delete(k);
      const existed = await this.meta.delete(k);
      if (existed) await this.collectGarbage();
      return existed;
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** @internal Deletes every entry whose key starts with `prefix`. */
  async deletePrefix(prefix: string): Promise<number> {
    try {
      this.assertOpen();
      const n = await this.meta.deletePrefix(prefix);
      if (n) await this.collectGarbage();
      return n;
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /**
   * Resets a live entry's expiry to now + `ttl` (default: the cache's `defaultTtl`; `null` never expires).
   * False when the entry is absent or already expired.
   */
  async touch(key: Key, opts: { ttl?: Ttl } = {}): Promise<boolean> {
    try {
      this.assertOpen();
      const ttlMs = opts.ttl !== undefined ? ttlToMs(opts.ttl) : this.defaultTtlMs;
      const k = resolveKeyFast(key);
      const resolved = typeof k === 'string' ? k : (await k).key;
      const now = this.s.clock();
      return await this.meta.touch(resolved, ttlMs === null ? null : now + ttlMs, now);
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** One page of entries ordered by key; pass `cursor` back to get the next page. */
  async list(opts: ListOptions = {}): Promise<{ entries: EntryInfo[]; cursor?: string }> {
    try {
      this.assertOpen();
      const limit = opts.limit ?? 100;
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new OptionError('EOPTION', `list limit must be an integer from 1 to 10000; got ${limit}.`);
      const after = opts.cursor === undefined ? undefined : decodeCursor(opts.cursor);
      const rows = await this.meta.list({ prefix: opts.prefix, where: opts.where, limit: limit + 1, after, includeExpired: opts.includeExpired, now: this.s.clock() });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      const entries = page.map((r) => entryInfo(r, this.s.handlers()));
      return rows.length > limit && last ? { entries, cursor: encodeCursor(last.key) } : { entries };
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** Iterates over every entry matching `opts` (paged internally). */
  async *entries(opts: Omit<ListOptions, 'cursor'> = {}): AsyncIterableIterator<EntryInfo> {
    let cursor: string | undefined;
    do {
      const page = await this.list({ ...opts, limit: opts.limit ?? 500, cursor });
      yield* page.entries;
      cursor = page.cursor;
    } while (cursor);
  }

  /** Counts entries matching `opts` (prefix, where, includeExpired). */
  async count(opts: Omit<ListOptions, 'cursor' | 'limit'> = {}): Promise<number> {
    try {
      this.assertOpen();
      return await this.meta.count({ prefix: opts.prefix, where: opts.where, includeExpired: opts.includeExpired, now: this.s.clock() });
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** Entry count, bytes, hits, misses and removals, shared by every process on the same store. */
  async stats(): Promise<CacheStats> {
    try {
      this.assertOpen();
      await this.flush();
      const c = await this.meta.counters();
      const reads = c.hits + c.misses;
      return { ...c, hitRate: reads === 0 ? 0 : c.hits / reads, maxSize: this.s.maxSize };
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** Deletes expired entries, evicts down to `maxSize`, and removes unreferenced blobs and leftovers of interrupted writes. */
  async cleanup(): Promise<CleanupResult> {
    try {
      this.assertOpen();
      await this.flush();
      let expired = 0;
      for (let n = -1; n !== 0; expired += n) n = await this.meta.deleteExpired(this.s.clock(), 1000);
      let evicted = 0;
      if (this.s.maxSize !== null && this.s.eviction !== 'none') evicted = await this.meta.evict(this.s.eviction, this.s.maxSize, this.s.clock());
      await this.meta.reapPins(isOwnerAlive);
      let orphans = await this.collectGarbage();
      orphans += (await this.scanOrphans(true)).length;
      orphans += await this.blobs.sweepPartial(PIN_STALE_MS);
      return { expired, evicted, orphans };
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** Blob names that no live blob record owns; removed when `remove`. */
  private async scanOrphans(remove: boolean): Promise<string[]> {
    const found: string[] = [];
    for await (const name of this.blobs.names()) {
      if (!(await this.meta.isLiveBlob(name))) found.push(name);
    }
    if (remove && found.length) await this.blobs.delete(found);
    return found;
  }

  /**
   * Checks every entry's bytes against its recorded size and hash, and looks for orphan blobs and
   * leftovers of interrupted writes. With `repair`, removes what it found (bad entries read as misses).
   */
  async verify(opts: { repair?: boolean } = {}): Promise<VerifyReport> {
    try {
      this.assertOpen();
      const report: VerifyReport = { checked: 0, dangling: [], mismatched: [], orphans: [], partial: 0, repaired: false };
      const bad: StoredEntry[] = [];
      for await (const info of this.entries({ includeExpired: true })) {
        const e = await this.meta.get(info.key);
        if (!e) continue;
        report.checked++;
        if (e.codec === 'chunked' && e.blobName) {
          // Chunk by chunk: a container may be larger than one buffer can hold.
          const ok = await this.chunkedMatches(e);
          if (ok === undefined) report.dangling.push(e.key);
          else if (!ok) report.mismatched.push(e.key);
          if (!ok) bad.push(e);
          continue;
        }
        const stored = e.inline ?? (e.blobName ? await this.blobs.read(e.blobName) : undefined);
        if (!stored) {
          report.dangling.push(e.key);
          bad.push(e);
          continue;
        }
        if (!this.storedBytesMatch(e, stored)) {
          report.mismatched.push(e.key);
          bad.push(e);
        }
      }
      report.orphans = await this.scanOrphans(false);
      if (opts.repair) {
        for (const e of bad) await this.meta.delete(e.key, 'corrupt', e); // only the version found bad
        await this.meta.reapPins(isOwnerAlive);
        await this.collectGarbage();
        if (report.orphans.length) await this.blobs.delete(report.orphans);
        report.partial = await this.blobs.sweepPartial(PIN_STALE_MS);
        report.repaired = true;
      }
      return report;
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** Deletes every entry; returns how many. */
  async clear(): Promise<number> {
    try {
      this.assertOpen();
      this.accesses.clear();
      const n = await this.meta.clear();
      await this.collectGarbage();
      return n;
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /**
   * Defines (or extends with new columns/indexes) a custom metadata table. Rows are attached to
   * entries with `put(..., { tables })` and live and die with their entry.
   */
  async defineTable(name: string, columns: TableColumns, options?: TableOptions): Promise<TableDefinition> {
    try {
      this.assertOpen();
      return await this.meta.defineTable(name, columns, options);
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** Custom table definitions by name. */
  async tables(): Promise<Record<string, TableDefinition>> {
    try {
      this.assertOpen();
      return await this.meta.tables();
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** Rows of a custom table matching `where`, each with its entry's `key`. Rows of expired entries are skipped. */
  async query(table: string, opts: QueryOptions = {}): Promise<Record<string, unknown>[]> {
    try {
      this.assertOpen();
      return await this.meta.query(table, { ...opts, now: this.s.clock() });
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /**
   * Read-only SQL over the local store: `entries` (times in ms since the epoch) and custom tables
   * by their names. Statements that write fail with `EREADONLY`.
   */
  async sql(text: string, params?: unknown[] | Record<string, unknown>): Promise<Record<string, unknown>[]> {
    try {
      this.assertOpen();
      if (typeof text !== 'string') throw new TableError('EQUERY', 'cache.sql() takes a SQL string.');
      return await this.meta.sql(text, params);
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /**
   * Writes every live entry (values, metadata, custom-table rows and definitions) to a portable
   * dump file: a tar of human-readable JSON plus payloads. Use it for backups and to move entries
   * between stores.
   */
  async export(path: string): Promise<DumpResult> {
    try {
      this.assertOpen();
      return await exportCache(this, path);
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** Loads a dump written by {@link Cache.export}; entries replace existing ones with the same key, expired ones are skipped. */
  async import(path: string): Promise<DumpResult> {
    try {
      this.assertOpen();
      return await importCache(this, path, this.s.clock());
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** @internal Stored bytes of an entry, for export. */
  async readStored(k: string): Promise<{ entry: StoredEntry; stored: Uint8Array; tables: Record<string, TableRow[]> } | undefined> {
    const e = await this.meta.get(k);
    if (!e) return undefined;
    const stored = e.inline ?? (e.blobName ? await this.blobs.read(e.blobName) : undefined);
    if (!stored) return undefined;
    return { entry: e, stored, tables: await this.meta.rowsOf(k) };
  }

  /** Streams a chunked entry's container through every check: true when it matches, undefined when its blob is missing. */
  private async chunkedMatches(e: StoredEntry): Promise<boolean | undefined> {
    const reader = await this.blobs.open(e.blobName as string);
    if (!reader) return undefined;
    try {
      if (reader.size !== e.storedSize) return false;
      const index = await readIndex(reader, e, true);
      if (index.rawTotal !== e.size) return false;
      const h = xxh128Stream();
      for await (const p of readChunkedRange(reader, index, { start: 0, end: e.size, verify: true, reuse: true })) h.update(p);
      return h.digestHex() === e.contentHash;
    } catch (err) {
      if (err instanceof IntegrityError) return false; // damage; a missing codec (ECODEC) is thrown
      throw err;
    } finally {
      await reader.close();
    }
  }

  /** @internal True when stored bytes match the entry's recorded sizes and hashes. */
  storedBytesMatch(e: EntryRecord, stored: Uint8Array): boolean {
    try {
      if (stored.length !== e.storedSize) return false;
      if (e.codec === 'chunked') return xxh128Hex(decodeChunked(stored, e, true)) === e.contentHash;
      const bytes = e.codec === 'none' ? stored : decompress(e.codec, stored, e.size);
      return (!e.blobId || xxh128Hex(stored) === e.blobId) && bytes.length === e.size && xxh128Hex(bytes) === e.contentHash;
    } catch {
      return false;
    }
  }

  /** @internal Writes an entry from its stored form (import). */
  async writeStored(e: EntryRecord, stored: Uint8Array, tables: Record<string, TableRow[]>): Promise<void> {
    const bytes = e.codec === 'chunked' ? decodeChunked(stored, e, true) : e.codec === 'none' ? stored : decompress(e.codec, stored, e.size);
    if (xxh128Hex(bytes) !== e.contentHash) {
      throw new IntegrityError('EINTEGRITY', `Imported entry '${e.key}' does not match its content hash; the dump is damaged.`, { details: { key: e.key } });
    }
    await this.putBytes(e.key, bytes, {
      handler: e.handler,
      type: e.type,
      params: this.s.storeKeyParams ? e.params : null,
      metadata: e.metadata,
      description: e.description,
      tables: Object.keys(tables).length ? tables : undefined,
      ttlMs: null,
      times: { createdAt: e.createdAt, expiresAt: e.expiresAt },
      // A chunked payload is cut and compressed again by this cache's settings; others keep their stored form.
      stored: e.codec === 'chunked' ? undefined : { codec: e.codec, bytes: stored },
    });
  }

  /** Where this cache's calls go now, and what waits to be pushed to the cloud. */
  status(): CacheStatus {
    this.assertOpen();
    const r = this.s.remote;
    if (!r) return { mode: 'local', state: 'local', queued: 0, uploads: 0 };
    return { mode: r.mode, state: r.status, queued: r.queued(), uploads: r.uploads() };
  }

  /**
   * Pushes the writes made while the cloud API was unreachable (mode `auto` also does this by itself,
   * with backoff, once the API answers again), oldest first. A write whose key the cloud holds a later
   * write of is dropped: the later write wins (docs/remote.md). Resolves when the outbox is empty, or
   * when the API became unreachable again (`queued` says what is left). A local cache has nothing to push.
   */
  async sync(): Promise<SyncResult> {
    try {
      this.assertOpen();
      await this.flush();
      return (await this.s.remote?.sync()) ?? { pushed: 0, superseded: 0, refused: 0, queued: 0 };
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /**
   * Finishes uploads that a process left unfinished (killed, or cut off from the network), each from
   * the parts S3 already has, re-sending only the missing ones. A put of the same value resumes its
   * upload too. Returns how many were finished (0 for a local cache).
   */
  async resumeUploads(): Promise<number> {
    try {
      this.assertOpen();
      return (await this.s.remote?.resumeUploads()) ?? 0;
    } catch (err) {
      throw asCachenessError(err);
    }
  }

  /** Flushes pending statistics and closes the stores. Further calls fail with `ECLOSED`. */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        try {
          await this.flush();
        } finally {
          this.closed = true;
          openCaches.delete(this);
          await this.meta.close();
          await this.blobs.close();
        }
      })();
    }
    return this.closing;
  }

  /** @internal Synchronous best-effort flush at process exit. */
  flushAtExit(): void {
    if (!this.closed) void this.flush().catch(() => {});
  }

  private assertOpen(): void {
    if (this.closed || this.closing) throw new StoreError('ECLOSED', `The cache at ${this.s.location} is closed; create a new one with createCache().`);
  }
}

const openCaches = new Set<Cache>();
// better-sqlite3 is synchronous, so a flush started in 'exit' completes before the process ends.
process.once('exit', () => {
  for (const c of openCaches) c.flushAtExit();
});

function checkMetadata(m: unknown): JsonObject | null {
  if (m === undefined || m === null) return null;
  if (typeof m !== 'object' || Array.isArray(m)) throw new OptionError('EOPTION', `metadata must be a plain JSON object; got ${describeType(m)}.`);
  let json: string | undefined;
  try {
    json = JSON.stringify(m);
  } catch (cause) {
    throw new OptionError('EOPTION', `metadata must be JSON-serializable: ${(cause as Error).message}.`, { cause });
  }
  const parsed = JSON.parse(json as string) as unknown;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new OptionError('EOPTION', `metadata must be a plain JSON object; ${describeType(m)} serializes to ${json}.`);
  }
  return parsed as JsonObject;
}

/** The caller's signal and progress callback, checked; undefined when neither was given. */
function transferControl(o: { signal?: unknown; onProgress?: unknown }, method: string): TransferControl | undefined {
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new OptionError('EOPTION', `${method} signal must be an AbortSignal; got ${describeType(o.signal)}.`);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function')
    throw new OptionError('EOPTION', `${method} onProgress must be a function; got ${describeType(o.onProgress)}.`);
  return o.signal || o.onProgress ? { signal: o.signal as AbortSignal | undefined, onProgress: o.onProgress as TransferControl['onProgress'] } : undefined;
}

/** The chunks of a payload being written, stopping when the caller aborts and reporting each one written. */
async function* watched(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  control: TransferControl | undefined,
  total: number | null,
  k: string,
): AsyncGenerator<Uint8Array> {
  let bytes = 0;
  for await (const chunk of chunks) {
    checkAborted(control?.signal, `The put of '${k}'`);
    yield chunk;
    bytes += chunk.length;
    control?.onProgress?.({ phase: 'write', bytes, total });
  }
}

function normalizeTables(t: PutOptions['tables']): Record<string, TableRow[]> | undefined {
  if (t === undefined) return undefined;
  if (typeof t !== 'object' || t === null || Array.isArray(t)) {
    throw new TableError('ETABLE', `tables must be an object of table name → row (or rows); got ${describeType(t)}.`);
  }
  return Object.fromEntries(Object.entries(t).map(([name, rows]) => [name, Array.isArray(rows) ? rows : [rows]]));
}

function checkRange(o: StreamOptions): void {
  if (typeof o !== 'object' || o === null) throw new OptionError('EOPTION', `getStream options must be an object like { start, end }; got ${describeType(o)}.`);
  for (const f of ['start', 'end'] as const) {
    const v = o[f];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0))
      throw new OptionError('EOPTION', `getStream ${f} must be a byte offset (a whole number from 0); got ${JSON.stringify(v)}.`);
  }
  if (o.start !== undefined && o.end !== undefined && o.end < o.start) {
    throw new OptionError('EOPTION', `getStream end (${o.end}) is before start (${o.start}); both are inclusive offsets, as in fs.createReadStream.`);
  }
}

function encodeCursor(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  if (typeof cursor !== 'string' || !/^[A-Za-z0-9_-]*$/.test(cursor))
    throw new OptionError('EOPTION', 'Invalid list cursor: pass the cursor returned by the previous list() call.');
  return Buffer.from(cursor, 'base64url').toString('utf8');
}

export type { KeyParams };

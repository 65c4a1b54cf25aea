/**
 * Store interfaces. The cache engine talks to a {@link MetadataStore} (entries, counters, blob
 * reference counts, custom tables) and a {@link BlobStore} (payload bytes). Local mode pairs
 * SQLite with the filesystem; the cloud pairs Postgres with S3. Every implementation must pass the
 * contract suites in `test/contract/`.
 * @module
 */
import type { EntryRecord, StoredEntry } from '../entry.js';
import type { TableColumns, TableDefinition, TableOptions, TableRow } from '../tables/schema.js';
import type { OrderBy, Where } from '../tables/where.js';

/** The fields of an entry that reading its value needs. */
export type ReadRecord = Pick<
  StoredEntry,
  'key' | 'handler' | 'type' | 'codec' | 'size' | 'storedSize' | 'contentHash' | 'blobId' | 'blobName' | 'inline' | 'createdAt' | 'expiresAt'
> & {
  /** True when the inline bytes are known to match `contentHash` (this process wrote them), so reads may skip hashing. */
  verified?: boolean;
};

/** Why an entry was removed (drives the shared counters). */
export type RemovalReason = 'delete' | 'expired' | 'evicted' | 'corrupt';
/** Eviction policies. */
export type EvictionPolicy = 'lru' | 'lfu' | 'fifo' | 'none';

/** Counters shared by every process using a store. */
export interface StoreCounters {
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
  evictions: number;
  expirations: number;
  corruptions: number;
}

/** Accumulated reads of one entry, flushed in batches. */
export interface AccessRecord {
  key: string;
  hits: number;
  accessedAt: number;
}

/** Entry filter of `list()`: entry fields, plus `params` / `metadata` sub-objects matched by JSON path. */
export type EntryWhere = Where;

/** A page request of `list()`. */
export interface ListQuery {
  /** Only keys starting with this string. */
  prefix?: string;
  where?: EntryWhere;
  /** Page size. */
  limit: number;
  /** Return keys strictly after this one (keyset pagination). */
  after?: string;
  /** Include expired entries. */
  includeExpired?: boolean;
  /** Clock for the expiry rule. */
  now: number;
}

/** `query()` of a custom table. */
export interface TableQuery {
  where?: Where;
  orderBy?: OrderBy;
  limit?: number;
  offset?: number;
  includeExpired?: boolean;
  now: number;
}

/** A blob reservation: where to write, and whether the bytes are already there. */
export interface BlobReservation {
  /** Name of the blob in the {@link BlobStore} (`<id>.<generation>`). */
  name: string;
  /** True when a committed entry already references this blob, so its bytes are (normally) in place. */
  ready: boolean;
  /** Token of this write's pin: pass it to `put` (or `releasePin` when the write is abandoned). */
  pin: string;
}

/** How far a long operation got: `bytes` of `total` (null while unknown, as for a stream being written). */
export interface Progress {
  /** `write`: the value going into the store; `upload`/`download`: bytes moving to or from the cloud; `read`: the value coming out. */
  phase: 'write' | 'upload' | 'download' | 'read';
  bytes: number;
  total: number | null;
}

/** A caller's hold on a long operation: stop it (`EABORTED`), or watch it. */
export interface TransferControl {
  signal?: AbortSignal | undefined;
  onProgress?: ((p: Progress) => void) | undefined;
  /**
   * @internal How the caller will read what it opens: `whole` (every byte, in order), or `file` (the
   * same, into a file of its own, so a store need not keep a copy). A store that downloads uses it to
   * prefetch; others ignore it.
   */
  read?: 'whole' | 'file' | undefined;
}

/** Options of {@link MetadataStore.put}. */
export interface PutRecordOptions {
  /** The caller's control of the write: a store that moves the bytes elsewhere (the cloud) reports and stops on it. */
  transfer?: TransferControl | undefined;
  /** Custom-table rows: tables named here get this entry's rows replaced; others keep theirs. */
  tables?: Record<string, TableRow[]>;
  /**
   * The pin from `acquireBlob`, released in the same transaction that commits the entry. If the pin or
   * the reserved blob (`blobName`) is gone (dropped as stale), the put fails with `ESTORE` and
   * `details.retry`: acquire and write again.
   */
  pin?: string;
  /** The blob name `acquireBlob` returned with `pin`. */
  blobName?: string;
}

/** Identifies one version of an entry, for conditional deletes. */
export type EntryVersion = Pick<EntryRecord, 'createdAt' | 'contentHash' | 'blobId'>;

/**
 * Entry metadata, blob reference counts, counters and custom tables.
 *
 * Blob protocol (crash- and race-safe across processes): `acquireBlob` pins a blob (one pin per
 * in-flight write, owned by its writer) and names the bytes to write; `put` commits the entry and
 * releases the pin in one transaction; removing the last reference makes the blob garbage.
 * `claimGarbage` marks unreferenced, unpinned blobs doomed and returns their names; the caller
 * deletes the bytes and calls `dropGarbage`. A blob re-acquired while doomed gets a new generation
 * (a new name), so deleting the old bytes can never hit new ones. Pins of writers that died are
 * dropped by `reapPins`, or by `claimGarbage` once older than its staleness bound.
 */
export interface MetadataStore {
  /** What reading a value needs, inline bytes included (expired or not: the caller applies expiry). The hot path of `get`. */
  read(key: string): Promise<ReadRecord | undefined>;
  /** The full stored entry, inline bytes included. */
  get(key: string): Promise<StoredEntry | undefined>;
  /** The stored entry without inline bytes. */
  head(key: string): Promise<StoredEntry | undefined>;
  /**
   * Inserts or replaces an entry atomically (with its custom-table rows, releasing its blob pin).
   * A written entry starts with 0 hits, accessed at its `createdAt` (the record's `hits` and
   * `accessedAt` are ignored). Throws `ECONSTRAINT` on a unique violation and stores nothing.
   */
  put(record: EntryRecord, opts?: PutRecordOptions): Promise<void>;
  /** Removes one entry (and its table rows); true when it existed. With `ifMatch`, only if it is still that version. */
  delete(key: string, reason?: RemovalReason, ifMatch?: EntryVersion): Promise<boolean>;
  /** Removes every entry whose key starts with `prefix`; returns how many. */
  deletePrefix(prefix: string): Promise<number>;
  /** Sets a live entry's expiry; false when missing or already expired at `now`. */
  touch(key: string, expiresAt: number | null, now: number): Promise<boolean>;
  /** Applies batched reads (hit counts, access times) and counter increments. */
  recordAccess(accesses: AccessRecord[], counters: Partial<StoreCounters>): Promise<void>;
  /** A page of entries ordered by key (no inline bytes). */
  list(q: ListQuery): Promise<StoredEntry[]>;
  /** Counts entries matching a list query (ignoring limit and after). */
  count(q: Omit<ListQuery, 'limit' | 'after'>): Promise<number>;
  /** Shared counters. */
  counters(): Promise<StoreCounters>;
  /** Stored bytes of all entries (the `bytes` counter), checked against maxSize after every write. */
  storedBytes(): Promise<number>;
  /** Deletes up to `limit` entries expired at `now`; returns how many. */
  deleteExpired(now: number, limit: number): Promise<number>;
  /** Deletes entries expired at `now`, then evicts per `policy` until stored bytes are at most `maxBytes`, never `protect`; returns how many were evicted. */
  evict(policy: Exclude<EvictionPolicy, 'none'>, maxBytes: number, now: number, protect?: string): Promise<number>;
  /** Deletes every entry; returns how many. */
  clear(): Promise<number>;

  /** Pins blob `id` (`size` stored bytes) for an upcoming write by `owner`; see the blob protocol above. */
  acquireBlob(id: string, size: number, now: number, owner: string): Promise<BlobReservation>;
  /** Releases a pin whose write was abandoned (the put failed). */
  releasePin(pin: string): Promise<void>;
  /** Drops the pins of owners that `isAlive` says are gone (crashed writers); returns how many. */
  reapPins(isAlive: (owner: string) => boolean): Promise<number>;
  /** Drops pins taken before `staleBefore`, then marks unreferenced, unpinned blobs doomed; returns up to `limit` names. */
  claimGarbage(staleBefore: number, limit: number): Promise<string[]>;
  /** Forgets doomed blobs whose bytes were deleted (ignores any re-acquired since); returns how many it forgot. */
  dropGarbage(names: string[]): Promise<number>;
  /** True when `name` is a blob that is not doomed (for orphan scans). */
  isLiveBlob(name: string): Promise<boolean>;

  /** Creates a custom table, or extends it with new columns/indexes; conflicting redefinitions fail. */
  defineTable(name: string, columns: TableColumns, options?: TableOptions): Promise<TableDefinition>;
  /** Custom table definitions by name. */
  tables(): Promise<Record<string, TableDefinition>>;
  /** Rows of a custom table (with their entry `key`) whose entries are live at `now`. */
  query(table: string, q: TableQuery): Promise<Record<string, unknown>[]>;
  /** Read-only SQL over entries and custom tables; statements that write fail with `EREADONLY`. */
  sql(text: string, params?: unknown[] | Record<string, unknown>): Promise<Record<string, unknown>[]>;
  /** Rows of every custom table for one entry (for export). */
  rowsOf(key: string): Promise<Record<string, TableRow[]>>;

  close(): Promise<void>;
}

/**
 * A blob written piece by piece before its name is known (a stream whose content hash, and so whose
 * name, is known only at its end). Nothing is visible under any name until {@link BlobStage.publish}.
 */
export interface BlobStage {
  /** Bytes written so far. */
  readonly size: number;
  /** Appends `data`; the caller may reuse its buffer once the promise resolves. */
  write(data: Uint8Array): Promise<void>;
  /** Publishes the bytes under `name` atomically (replacing any blob of that name); the stage is then spent. */
  publish(name: string): Promise<void>;
  /** Discards the bytes; safe after `publish` and when called twice. */
  abort(): Promise<void>;
}

/**
 * An open blob for reads at any offset. It keeps reading the bytes it was opened on even if the blob
 * is deleted meanwhile, where the store can (the filesystem keeps an open file); where it cannot, a
 * read of a deleted blob fails.
 */
export interface BlobReader {
  /** The blob's size in bytes. */
  readonly size: number;
  /**
   * Reads `length` bytes at `offset` (fewer only past the end). The result is the caller's. With
   * `into` (at least `length` bytes), the bytes land there and the result is a view of it, so a reader
   * of many chunks can reuse one buffer instead of leaving one per read to the garbage collector.
   */
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /**
   * Optional, for readers that download: streams each of `ranges` to `sink` as the bytes arrive, with
   * no window of memory to fill first. The pieces of one range come in order; ranges run in parallel,
   * as many at once as the reader sees fit. A piece is the sink's only until its promise settles, and
   * the next piece of that range waits for it. Every byte of every range is delivered exactly once
   * (a download cut off midway resumes where it stopped, once the sink is done with the piece it had).
   * The first failure, the sink's or a download's, stops every range and is thrown once they have all
   * stopped; a sink's failure as it is. Readers without it are read with {@link BlobReader.read}.
   */
  pipe?(ranges: readonly ByteRange[], sink: PieceSink): Promise<void>;
  close(): Promise<void>;
}

/** `length` bytes at `offset`. */
export interface ByteRange {
  offset: number;
  length: number;
}

/** Takes the bytes of range number `range` that start at `position` (see {@link BlobReader.pipe}). */
export type PieceSink = (piece: Uint8Array, position: number, range: number) => Promise<void>;

/** Payload bytes by name. Names come from {@link MetadataStore.acquireBlob}. */
export interface BlobStore {
  /** Writes `data` under `name` atomically (readers never see a partial blob). */
  write(name: string, data: Uint8Array): Promise<void>;
  /** Starts a blob whose name will be known once its bytes are written (see {@link BlobStage}). */
  stage(): Promise<BlobStage>;
  /** Reads a whole blob; undefined when missing. A store that downloads it reports and stops on `control`. */
  read(name: string, control?: TransferControl): Promise<Uint8Array | undefined>;
  /** Opens a blob for ranged reads; undefined when missing. A store that downloads it first reports and stops on `control`. */
  open(name: string, control?: TransferControl): Promise<BlobReader | undefined>;
  /** Size in bytes, or undefined when missing. */
  size(name: string): Promise<number | undefined>;
  /** Deletes blobs; missing ones are ignored. */
  delete(names: string[]): Promise<void>;
  /** Every stored blob name (for orphan scans). */
  names(): AsyncIterable<string>;
  /**
   * Removes leftovers of interrupted writes (temp files of dead processes, or older than `olderThanMs`);
   * returns how many.
   */
  sweepPartial(olderThanMs: number): Promise<number>;
  close(): Promise<void>;
}

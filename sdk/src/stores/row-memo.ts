/**
 * A bounded, per-connection memo of small entries' read records (inline values only), so repeated
 * reads skip SQLite. It is never stale: every hit first checks SQLite's `PRAGMA data_version`, which
 * changes whenever another connection (another process, or another cache in this process) commits;
 * this connection's own writes update the memo directly. Reads of keys not in the memo pay nothing.
 * Oldest-first eviction: cheaper per hit than LRU bookkeeping, and the memo only saves a SQLite read.
 * @module
 */
import type { ReadRecord } from './types.js';

/** Estimated bookkeeping bytes per memoized row, on top of its inline bytes. */
const ROW_OVERHEAD = 256;

interface Row {
  record: ReadRecord;
  inline: Buffer;
  /** This process wrote these bytes and hashed them itself. */
  trusted: boolean;
}

export class RowMemo {
  private readonly rows = new Map<string, Row>();
  private bytes = 0;
  private seen: number;

  /**
   * @param maxBytes upper bound of memoized inline bytes plus overhead (0 disables the memo)
   * @param version reads the database's data_version
   */
  constructor(
    private readonly maxBytes: number,
    private readonly version: () => number,
  ) {
    this.seen = maxBytes > 0 ? version() : 0;
  }

  /** The memoized record with a private copy of its bytes, or undefined (also when another connection wrote since). */
  get(key: string): ReadRecord | undefined {
    const row = this.rows.get(key);
    if (!row) return undefined;
    const v = this.version();
    if (v !== this.seen) {
      this.clear();
      this.seen = v;
      return undefined;
    }
    const r = row.record;
    return {
      key: r.key,
      handler: r.handler,
      type: r.type,
      codec: r.codec,
      size: r.size,
      storedSize: r.storedSize,
      contentHash: r.contentHash,
      blobId: r.blobId,
      blobName: r.blobName,
      inline: Buffer.from(row.inline),
      createdAt: r.createdAt,
      expiresAt: r.expiresAt,
      verified: row.trusted,
    };
  }

  /**
   * Remembers an inline record (a private copy of its bytes); other records are forgotten.
   * `trusted`: this process wrote these bytes and hashed them itself, so hits come back `verified`.
   */
  set(r: ReadRecord, trusted: boolean): void {
    this.delete(r.key);
    if (!r.inline || this.maxBytes === 0 || r.inline.length + ROW_OVERHEAD > this.maxBytes / 16) return;
    // Keep only our own copy of the bytes: the record's buffer may be a view into a much larger one.
    this.rows.set(r.key, { record: { ...r, inline: null }, inline: Buffer.from(r.inline), trusted });
    this.bytes += r.inline.length + ROW_OVERHEAD;
    if (this.bytes <= this.maxBytes) return; // (iterating a Map that has seen many deletes is not free)
    for (const [k, old] of this.rows) {
      if (this.bytes <= this.maxBytes) break;
      this.rows.delete(k);
      this.bytes -= old.inline.length + ROW_OVERHEAD;
    }
  }

  delete(key: string): void {
    const row = this.rows.get(key);
    if (!row) return;
    this.rows.delete(key);
    this.bytes -= row.inline.length + ROW_OVERHEAD;
  }

  deletePrefix(prefix: string): void {
    for (const k of this.rows.keys()) if (k.startsWith(prefix)) this.delete(k);
  }

  clear(): void {
    this.rows.clear();
    this.bytes = 0;
  }
}

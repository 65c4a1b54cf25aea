/**
 * The remote tier's durable state in `<dir>/remote.db` (SQLite, beside the local tier's `cache.db`):
 * the outbox of writes made while the cloud API was unreachable, and the uploads in progress (so a
 * process killed mid-upload resumes where it stopped). Every change is committed before the call
 * returns, so a crash loses neither.
 * @module
 */
import Database from 'better-sqlite3';
import { OptionError } from '../errors.js';
import { isOwnerAlive, processOwner } from '../owner.js';
import type { SentPart } from './transfer.js';

/** What a queued write does when it is pushed. */
export type OutboxOp = 'put' | 'delete' | 'touch' | 'defineTable' | 'deletePrefix';

/** A write waiting for the cloud API, in the order it was made. */
export interface OutboxItem {
  seq: number;
  op: OutboxOp;
  /** The entry's key (the table's name for `defineTable`, the prefix for `deletePrefix`). */
  key: string;
  /** The operation's arguments (JSON). */
  body: unknown;
  /** A put's stored bytes, when they are not inline: a file the outbox owns (a hard link to the local blob). */
  blob: string | null;
  /** When the write was made (ms since the epoch): the later-write-wins clock. */
  at: number;
}

/** An upload in progress: enough to finish it after a crash, re-sending only the parts S3 lacks. */
export interface UploadState {
  uploadId: string;
  partSize: number;
  partCount: number;
  /** Parts sent, with their ETags. */
  parts: SentPart[];
  /** Whether the upload carries its write time (a replay) or takes the server's (a live write): a resume must be of the same kind. */
  dated: boolean;
}

/** The outbox and upload state of one local directory. */
export class Journal {
  private readonly db: Database.Database;
  private readonly s;

  constructor(path: string, endpoint: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // As the local tier: a process crash loses nothing committed; fsync on every write would cost milliseconds per put.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 10000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, blob TEXT, at INTEGER NOT NULL,
        claimed_until INTEGER NOT NULL DEFAULT 0, claimed_by TEXT);
      CREATE INDEX IF NOT EXISTS outbox_key ON outbox (key, seq);
      CREATE TABLE IF NOT EXISTS uploads (key TEXT NOT NULL, blob_id TEXT NOT NULL, upload_id TEXT NOT NULL, part_size INTEGER NOT NULL,
        part_count INTEGER NOT NULL, parts TEXT NOT NULL DEFAULT '[]', started_at INTEGER NOT NULL, dated INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (key, blob_id));`);
    const bound = this.db.prepare("SELECT value FROM settings WHERE name = 'endpoint'").get() as { value: string } | undefined;
    if (bound && bound.value !== endpoint) {
      this.db.close();
      throw new OptionError(
        'EOPTION',
        `The directory of ${path} belongs to the cloud API at ${bound.value}, not ${endpoint}: its queued writes are for that one. Use another dir (CACHENESS_DIR) for this endpoint.`,
      );
    }
    if (!bound) this.db.prepare("INSERT INTO settings (name, value) VALUES ('endpoint', ?)").run(endpoint);
    this.s = {
      enqueue: this.db.prepare('INSERT INTO outbox (op, key, body, blob, at, claimed_until, claimed_by) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      pending: this.db.prepare('SELECT seq, op, key, body, blob, at FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?'),
      done: this.db.prepare('DELETE FROM outbox WHERE seq = ?'),
      count: this.db.prepare('SELECT count(*) AS n FROM outbox'),
      blobs: this.db.prepare('SELECT blob FROM outbox WHERE blob IS NOT NULL'),
      upload: this.db.prepare('SELECT upload_id, part_size, part_count, parts, dated FROM uploads WHERE key = ? AND blob_id = ?'),
      uploads: this.db.prepare('SELECT key, blob_id, dated FROM uploads ORDER BY started_at'),
      saveUpload: this.db.prepare('INSERT OR REPLACE INTO uploads (key, blob_id, upload_id, part_size, part_count, parts, started_at, dated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      claim: this.db.prepare('UPDATE outbox SET claimed_until = ?, claimed_by = ? WHERE seq = ?'),
      item: this.db.prepare('SELECT claimed_until, claimed_by FROM outbox WHERE seq = ?'),
      addPart: this.db.prepare("UPDATE uploads SET parts = json_insert(parts, '$[#]', json(?)) WHERE key = ? AND blob_id = ? AND upload_id = ?"),
      dropUpload: this.db.prepare('DELETE FROM uploads WHERE key = ? AND blob_id = ?'),
      later: this.db.prepare("SELECT 1 FROM outbox WHERE key = ? AND seq > ? AND op IN ('put', 'delete') LIMIT 1"),
      fileOf: this.db.prepare('SELECT blob FROM outbox WHERE seq = ?'),
      queuedFor: this.db.prepare("SELECT 1 FROM outbox WHERE key = ? AND op IN ('put', 'delete') LIMIT 1"),
      setting: this.db.prepare('SELECT value FROM settings WHERE name = ?'),
      setSetting: this.db.prepare('INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING'),
      queuedPut: this.db.prepare("SELECT 1 FROM outbox WHERE op = 'put' AND key = ? AND json_extract(body, '$.record.blobId') = ? LIMIT 1"),
      lease: this.db.prepare(
        "INSERT INTO settings (name, value) VALUES ('sync', json_object('owner', ?, 'until', ?)) ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE json_extract(value, '$.owner') = ? OR json_extract(value, '$.until') < ?",
      ),
      release: this.db.prepare("DELETE FROM settings WHERE name = 'sync' AND json_extract(value, '$.owner') = ?"),
    };
  }

  /**
   * Queues a write; returns its sequence number. (Also the write-ahead record of a live put in mode
   * `auto`, claimed by this process until `claimUntil`: see {@link Journal.claim}.)
   */
  enqueue(op: OutboxOp, key: string, body: unknown, blob: string | null, at: number, claimUntil = 0): number {
    const by = claimUntil === 0 ? null : processOwner();
    return Number(this.s.enqueue.run(op, key, JSON.stringify(body ?? null), blob, at, claimUntil, by).lastInsertRowid);
  }

  /** Queued writes after `afterSeq`, oldest first. */
  pending(afterSeq: number, limit: number): OutboxItem[] {
    const rows = this.s.pending.all(afterSeq, limit) as { seq: number; op: OutboxOp; key: string; body: string; blob: string | null; at: number }[];
    return rows.map((r) => ({ ...r, body: JSON.parse(r.body) as unknown }));
  }

  /** The file a queued put keeps its bytes in. */
  fileOf(seq: number): string | null {
    return (this.s.fileOf.get(seq) as { blob: string | null } | undefined)?.blob ?? null;
  }

  /** Claims a queued write for its own writer until `until` (a live put pushing it): no drain pushes it meanwhile. 0 releases it. */
  claim(seq: number, until: number): void {
    this.s.claim.run(until, until === 0 ? null : processOwner(), seq);
  }

  /** Whether queued write `seq` is still queued, and free for a drain to push at `now` (its claim lapsed, or its writer died). */
  pushable(seq: number, now: number): boolean {
    const r = this.s.item.get(seq) as { claimed_until: number; claimed_by: string | null } | undefined;
    return r !== undefined && (r.claimed_until <= now || r.claimed_by === null || !isOwnerAlive(r.claimed_by));
  }

  /** Forgets a write that was pushed (or superseded). */
  done(seq: number): void {
    this.s.done.run(seq);
  }

  /** Writes still queued. */
  get queued(): number {
    return (this.s.count.get() as { n: number }).n;
  }

  /** Files the outbox owns (to tell them from leftovers). */
  blobFiles(): Set<string> {
    return new Set((this.s.blobs.all() as { blob: string }[]).map((r) => r.blob));
  }

  /** The upload in progress of `blobId` under `key`, if one was started. */
  upload(key: string, blobId: string): UploadState | undefined {
    const r = this.s.upload.get(key, blobId) as { upload_id: string; part_size: number; part_count: number; parts: string; dated: number } | undefined;
    return r && { uploadId: r.upload_id, partSize: r.part_size, partCount: r.part_count, parts: JSON.parse(r.parts) as SentPart[], dated: r.dated === 1 };
  }

  /** Uploads in progress, oldest first. */
  uploads(): { key: string; blobId: string; dated: boolean }[] {
    return (this.s.uploads.all() as { key: string; blob_id: string; dated: number }[]).map((r) => ({ key: r.key, blobId: r.blob_id, dated: r.dated === 1 }));
  }

  saveUpload(key: string, blobId: string, u: Omit<UploadState, 'parts'>, at: number): void {
    this.s.saveUpload.run(key, blobId, u.uploadId, u.partSize, u.partCount, '[]', at, u.dated ? 1 : 0);
  }

  /** Records a part sent (committed before the next part is counted as done). */
  addPart(key: string, blobId: string, uploadId: string, part: SentPart): void {
    this.s.addPart.run(JSON.stringify(part), key, blobId, uploadId);
  }

  dropUpload(key: string, blobId: string): void {
    this.s.dropUpload.run(key, blobId);
  }

  /** True when a put or delete of `key` was queued after `seq` (which it supersedes). */
  hasLaterWrite(key: string, seq: number): boolean {
    return this.s.later.get(key, seq) !== undefined;
  }

  /** True when a put or delete of `key` waits in the outbox (its local copy is newer than the cloud's). */
  hasQueuedWrite(key: string): boolean {
    return this.s.queuedFor.get(key) !== undefined;
  }

  /**
   * Binds this directory to the cloud namespace `keyId` opens (the first namespace seen), and
   * remembers the key as checked; false when the directory belongs to another namespace.
   */
  bindNamespace(namespace: string, keyId: string): boolean {
    this.s.setSetting.run('namespace', namespace);
    if ((this.s.setting.get('namespace') as { value: string }).value !== namespace) return false;
    this.s.setSetting.run(`key:${keyId}`, 'checked');
    return true;
  }

  /** True when `keyId` was checked to open this directory's namespace. */
  knowsKey(keyId: string): boolean {
    return this.s.setting.get(`key:${keyId}`) !== undefined;
  }

  /** True when a put of `blobId` under `key` is queued. */
  queuedPutFile(key: string, blobId: string): boolean {
    return this.s.queuedPut.get(key, blobId) !== undefined;
  }

  /** Takes (or renews) the right to push this directory's outbox for `ttlMs`: false while another live owner holds it. */
  claimLease(owner: string, now: number, ttlMs: number): boolean {
    return this.s.lease.run(owner, now + ttlMs, owner, now).changes > 0;
  }

  releaseLease(owner: string): void {
    this.s.release.run(owner);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

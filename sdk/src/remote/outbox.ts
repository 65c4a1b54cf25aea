/**
 * Work a remote cache owes the cloud: writes made while the API was unreachable (queued in the journal,
 * pushed in order by {@link Outbox.sync}), and uploads a process left unfinished
 * ({@link Outbox.resumeUploads}).
 * @module
 */
import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { EntryRecord, StoredEntry } from '../entry.js';
import { CachenessError, RemoteError } from '../errors.js';
import { processOwner } from '../owner.js';
import { openFileReader } from '../stores/fs-blobs.js';
import type { BlobReader, PutRecordOptions } from '../stores/types.js';
import type { TableColumns, TableOptions, TableRow } from '../tables/schema.js';
import type { Cloud } from './cloud.js';
import type { Journal, OutboxItem } from './journal.js';
import type { Link } from './link.js';
import { pushEntry } from './push.js';

/** Result of {@link Outbox.sync}. */
export interface SyncResult {
  /** Queued writes the API took. */
  pushed: number;
  /** Queued writes dropped because a later write of their key won (queued after them, or already in the cloud). */
  superseded: number;
  /** Queued writes the API refused (reported through `onError`); they stay in the local tier only. */
  refused: number;
  /** Writes still queued (the API became unreachable again, or another process is pushing them). */
  queued: number;
}

/** What the outbox works with. */
export interface OutboxDeps {
  cloud: Cloud;
  link: Link;
  journal: Journal;
  /** Where queued puts keep their bytes (hard links to local blobs). */
  dir: string;
  concurrency: number;
  onError: (err: CachenessError) => void;
  /** The local copy of an entry and its bytes, which an unfinished upload resumes from. */
  localCopy(key: string): Promise<{ entry: StoredEntry; open: () => Promise<BlobReader | undefined> } | undefined>;
}

const SYNC_LEASE_MS = 10 * 60_000;

/** Queued writes and unfinished uploads of one local directory. */
export class Outbox {
  private readonly owner = processOwner();
  private syncing: Promise<SyncResult> | undefined;
  private closed = false;

  constructor(private readonly d: OutboxDeps) {}

  /** Queues a put: its record, and its bytes as a file of the outbox's own (a hard link to the local blob, `blobPath`). */
  async enqueuePut(record: EntryRecord, opts: PutRecordOptions, blobPath: string | undefined): Promise<void> {
    let file: string | null = null;
    if (!record.inline && blobPath) {
      await mkdir(this.d.dir, { recursive: true });
      file = join(this.d.dir, randomBytes(12).toString('hex'));
      await link(blobPath, file).catch(() => copyFile(blobPath, file as string));
    }
    const inline = record.inline ? Buffer.from(record.inline).toString('base64') : null;
    this.d.journal.enqueue('put', record.key, { record: { ...record, inline }, tables: opts.tables ?? null }, file, record.createdAt);
  }

  /** Queues another write. */
  enqueue(op: Exclude<OutboxItem['op'], 'put'>, key: string, body: unknown, at: number): void {
    this.d.journal.enqueue(op, key, body, null, at);
  }

  /** Pushes in the background (reporting failures through `onError`). */
  syncInBackground(): void {
    if (this.closed) return;
    void this.sync().catch((err) => this.d.onError(err));
  }

  /**
   * Pushes the queued writes, oldest first. A put or delete followed by a later queued write of its key
   * is skipped; one the cloud holds a later write of is dropped (later write wins). Stops, keeping the
   * rest, when the API becomes unreachable. One process at a time pushes a directory's outbox.
   */
  sync(): Promise<SyncResult> {
    this.syncing ??= this.drain().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async drain(): Promise<SyncResult> {
    const { journal, link } = this.d;
    const result: SyncResult = { pushed: 0, superseded: 0, refused: 0, queued: 0 };
    if (journal.queued === 0 || !(await link.probe()) || !journal.claimLease(this.owner, Date.now(), SYNC_LEASE_MS)) {
      result.queued = journal.queued;
      return result;
    }
    try {
      for (let after = 0; !this.closed; ) {
        const batch = journal.pending(after, 100);
        if (batch.length === 0) break;
        for (const item of batch) {
          if (this.closed) break;
          after = item.seq;
          if ((item.op === 'put' || item.op === 'delete') && journal.hasLaterWrite(item.key, item.seq)) result.superseded++;
          else {
            try {
              await this.push(item);
              result.pushed++;
            } catch (err) {
              if (err instanceof CachenessError && err.code === 'ECONFLICT') result.superseded++;
              else if (link.isOutage(err)) {
                link.goOffline();
                return result;
              } else {
                result.refused++;
                this.d.onError(
                  new RemoteError('EREMOTE', `A write of '${item.key}' made offline was refused by the cloud API (${(err as Error).message}); it stays in the local store only.`, {
                    cause: err,
                    details: { key: item.key, op: item.op },
                  }),
                );
              }
            }
          }
          journal.done(item.seq);
          if (item.blob) await rm(item.blob, { force: true });
          journal.claimLease(this.owner, Date.now(), SYNC_LEASE_MS);
        }
      }
      return result;
    } finally {
      journal.releaseLease(this.owner);
      result.queued = journal.queued;
    }
  }

  private async push(item: OutboxItem): Promise<void> {
    const { cloud } = this.d;
    const body = item.body as Record<string, unknown>;
    switch (item.op) {
      case 'put': {
        const { record, tables } = body as { record: EntryRecord & { inline: string | null }; tables: Record<string, TableRow[]> | null };
        const r: EntryRecord = { ...record, inline: record.inline === null ? null : Buffer.from(record.inline, 'base64') };
        const open = () => (item.blob ? openFileReader(item.blob) : Promise.resolve(undefined));
        await pushEntry(cloud.api, this.d.journal, { record: r, tables: tables ?? undefined, open }, { concurrency: this.d.concurrency });
        return;
      }
      case 'delete':
        await cloud.delete(item.key, item.at);
        return;
      case 'touch':
        await cloud.touch(item.key, (body as { expiresAt: number | null }).expiresAt);
        return;
      case 'defineTable': {
        const { columns, options } = body as { columns: TableColumns; options?: TableOptions };
        await cloud.defineTable(item.key, columns, options);
        return;
      }
      case 'deletePrefix':
        await cloud.deletePrefix(item.key);
        return;
    }
  }

  /**
   * Finishes uploads a process left unfinished (killed, or cut off): each resumes from the parts S3
   * already has, reading the local copy of its entry. Returns how many were finished.
   */
  async resumeUploads(): Promise<number> {
    const { journal } = this.d;
    let finished = 0;
    for (const { key, blobId } of journal.uploads()) {
      if (journal.queuedPutFile(key, blobId)) continue; // the outbox pushes it (and resumes the upload) in order
      const copy = await this.d.localCopy(key);
      if (!copy || copy.entry.blobId !== blobId) {
        journal.dropUpload(key, blobId); // its local copy was replaced, removed or evicted: a re-put starts over
        continue;
      }
      try {
        await pushEntry(this.d.cloud.api, journal, { record: copy.entry, open: copy.open }, { concurrency: this.d.concurrency });
        finished++;
      } catch (err) {
        if (!(err instanceof CachenessError && err.code === 'ECONFLICT')) throw err;
      }
    }
    return finished;
  }

  /** Waits for a push in progress to stop at its next write. */
  async close(): Promise<void> {
    this.closed = true;
    await this.syncing?.catch(() => {});
  }
}

/**
 * Work a remote cache owes the cloud: writes made while the API was unreachable (queued in the journal,
 * pushed in order by {@link Outbox.sync}), and uploads a process left unfinished
 * ({@link Outbox.resumeUploads}).
 * @module
 */
import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, readdir, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { EntryRecord, StoredEntry } from '../entry.js';
import { asCachenessError, CachenessError, RemoteError } from '../errors.js';
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
  /** Drops the local copy of a queued put that lost to a later write (only that version). */
  dropLocal(record: EntryRecord): Promise<void>;
}

const SYNC_LEASE_MS = 10 * 60_000;
/** How long a live put's own claim on its queued record holds if its writer dies mid-push. */
const CLAIM_MS = 10 * 60_000;
const LEASE_RENEW_MS = 60_000;
/**
 * Refusals that are not about one write (the key refused, a directory of another namespace, a stack
 * older than this SDK): they stop the push and keep the queue. Any other refusal is about the write,
 * which can never be pushed: it is dropped and reported.
 */
function blocksEveryWrite(err: unknown): boolean {
  if (!(err instanceof CachenessError)) return false;
  if (err.code === 'EAUTH' || err.code === 'EOPTION') return true;
  return err.code === 'EREMOTE' && err.details?.status === 404 && /No route/.test(err.message);
}

/** Queued writes and unfinished uploads of one local directory. */
export class Outbox {
  /** This instance, as the holder of the push lease (two caches of one process are two holders). */
  private readonly owner = randomBytes(8).toString('hex');
  private syncing: Promise<SyncResult> | undefined;
  private readonly stop = new AbortController();
  /** Queued puts this process is pushing itself right now (live writes of mode `auto`): the drain leaves them alone. */
  readonly pushing = new Set<number>();

  constructor(private readonly d: OutboxDeps) {}

  private get closed(): boolean {
    return this.stop.signal.aborted;
  }

  /** Queues a put: its record, and its bytes as a file of the outbox's own (a hard link to the local blob, `blobPath`). Returns its sequence number. */
  async enqueuePut(record: EntryRecord, opts: PutRecordOptions, blobPath: string | undefined, pushingNow = false): Promise<number> {
    let file: string | null = null;
    if (!record.inline && blobPath) {
      await mkdir(this.d.dir, { recursive: true });
      file = join(this.d.dir, randomBytes(12).toString('hex'));
      await link(blobPath, file).catch(() => copyFile(blobPath, file as string));
      const now = new Date();
      await utimes(file, now, now); // a link shares its blob's (old) times: make it new, so no sweep takes it for a leftover
    }
    const inline = record.inline ? Buffer.from(record.inline).toString('base64') : null;
    // A put its writer is about to push itself: no drain pushes it too, in this process or another, until
    // the writer releases it (an outage) or the claim lapses (the writer died).
    const claim = pushingNow ? Date.now() + CLAIM_MS : 0;
    const seq = this.d.journal.enqueue('put', record.key, { record: { ...record, inline }, tables: opts.tables ?? null }, file, record.createdAt, claim);
    if (pushingNow) this.pushing.add(seq);
    return seq;
  }

  /** Forgets a queued write (pushed, or given up), with its file. */
  async done(seq: number): Promise<void> {
    const file = this.d.journal.fileOf(seq);
    this.d.journal.done(seq);
    if (file) await rm(file, { force: true });
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
      await link.ensureBound(); // queued writes go only to the namespace this directory belongs to
    } catch (err) {
      journal.releaseLease(this.owner);
      if (!link.isOutage(err)) throw err;
      link.goOffline();
      result.queued = journal.queued;
      return result;
    }
    // The lease outlives one long upload: renewed while pushing; a push that loses it stops.
    let leased = true;
    const renew = setInterval(() => {
      leased = journal.claimLease(this.owner, Date.now(), SYNC_LEASE_MS);
    }, LEASE_RENEW_MS);
    renew.unref();
    try {
      for (let after = 0; leased && !this.closed; ) {
        const batch = journal.pending(after, 100);
        if (batch.length === 0) break;
        for (const item of batch) {
          if (!leased || this.closed) break;
          after = item.seq;
          if (this.pushing.has(item.seq) || !journal.pushable(item.seq, Date.now())) continue; // its writer pushes it, or it is gone
          if ((item.op === 'put' || item.op === 'delete') && journal.hasLaterWrite(item.key, item.seq)) result.superseded++;
          else {
            try {
              await this.push(item);
              result.pushed++;
            } catch (err) {
              if (err instanceof CachenessError && err.code === 'ECONFLICT') {
                if (item.op === 'put' && (await this.alreadyThere(this.recordOf(item)))) result.pushed++;
                else {
                  result.superseded++;
                  if (item.op === 'put') await this.d.dropLocal(this.recordOf(item));
                }
              } else if (this.closed || link.isOutage(err)) {
                if (!this.closed) link.goOffline();
                return result;
              } else if (!blocksEveryWrite(err)) {
                result.refused++;
                this.d.onError(
                  new RemoteError('EREMOTE', `A write of '${item.key}' made offline was refused by the cloud API (${(err as Error).message}); it stays in the local store only.`, {
                    cause: err,
                    details: { key: item.key, op: item.op },
                  }),
                );
              } else {
                // Not about this write (a refused key, an API that predates this SDK): keep the queue, and say what to fix.
                this.d.onError(
                  new RemoteError(
                    'EREMOTE',
                    `Writes made offline cannot be pushed (${(err as Error).message}); they stay queued. Fix the cause (API key, its scopes, the stack's version) and call cache.sync().`,
                    { cause: err, details: { key: item.key, op: item.op } },
                  ),
                );
                return result;
              }
            }
          }
          await this.done(item.seq);
        }
      }
      return result;
    } finally {
      clearInterval(renew);
      journal.releaseLease(this.owner);
      result.queued = journal.queued;
    }
  }

  /** Whether the cloud already holds this very value under its key (its first push landed, its answer did not). */
  private async alreadyThere(record: EntryRecord): Promise<boolean> {
    const stored = await this.d.cloud.entry(record.key, false);
    return stored !== undefined && stored.entry.contentHash === record.contentHash && stored.entry.handler === record.handler;
  }

  private recordOf(item: OutboxItem): EntryRecord {
    const { record } = item.body as { record: EntryRecord & { inline: string | null } };
    return { ...record, inline: record.inline === null ? null : Buffer.from(record.inline, 'base64') };
  }

  private async push(item: OutboxItem): Promise<void> {
    const { cloud } = this.d;
    const body = item.body as Record<string, unknown>;
    switch (item.op) {
      case 'put': {
        const { tables } = body as { tables: Record<string, TableRow[]> | null };
        const open = () => (item.blob ? openFileReader(item.blob) : Promise.resolve(undefined));
        await pushEntry(
          cloud.api,
          this.d.journal,
          { record: this.recordOf(item), tables: tables ?? undefined, open },
          { concurrency: this.d.concurrency, dated: true, keepOnAbort: true, control: { signal: this.stop.signal } },
        );
        return;
      }
      case 'delete':
        await cloud.delete(item.key, item.at);
        return;
      case 'touch':
        await cloud.touch(item.key, (body as { expiresAt: number | null }).expiresAt, item.at);
        return;
      case 'defineTable': {
        const { columns, options } = body as { columns: TableColumns; options?: TableOptions };
        await cloud.defineTable(item.key, columns, options);
        return;
      }
      case 'deletePrefix':
        await cloud.deletePrefix(item.key, item.at);
        return;
    }
  }

  /**
   * Finishes uploads a process left unfinished (killed, or cut off): each resumes from the parts S3
   * already has, reading the local copy of its entry. Returns how many were finished.
   */
  async resumeUploads(): Promise<number> {
    const { journal } = this.d;
    if (journal.uploads().length > 0) await this.d.link.ensureBound(); // uploads go only to this directory's namespace
    let finished = 0;
    let failed: unknown;
    for (const { key, blobId, dated } of journal.uploads()) {
      if (journal.queuedPutFile(key, blobId)) continue; // the outbox pushes it (and resumes the upload) in order
      const copy = await this.d.localCopy(key);
      if (!copy || copy.entry.blobId !== blobId) {
        journal.dropUpload(key, blobId); // its local copy was replaced, removed or evicted: a re-put starts over
        continue;
      }
      try {
        // Finished as it began: a live write's upload takes the server's time, a replay's its own.
        await pushEntry(this.d.cloud.api, journal, { record: copy.entry, open: copy.open }, { concurrency: this.d.concurrency, dated });
        finished++;
      } catch (err) {
        if (err instanceof CachenessError && err.code === 'ECONFLICT') continue; // a later write won: nothing to finish
        if (this.d.link.isOutage(err)) throw err; // the rest would fail the same way
        failed ??= err; // this one cannot finish now; the others may
      }
    }
    if (failed !== undefined) throw asCachenessError(failed);
    return finished;
  }

  /** Removes outbox files no queued write owns (a crash between linking and queuing), older than `olderThanMs`. */
  async sweepFiles(olderThanMs: number): Promise<number> {
    const owned = this.d.journal.blobFiles();
    let removed = 0;
    for (const f of await readdir(this.d.dir).catch(() => [] as string[])) {
      const path = join(this.d.dir, f);
      const st = await stat(path).catch(() => undefined);
      if (st && !owned.has(path) && Date.now() - st.mtimeMs > olderThanMs) {
        await rm(path, { force: true });
        removed++;
      }
    }
    return removed;
  }

  /** Waits for a push in progress to stop at its next write. */
  async close(): Promise<void> {
    this.stop.abort(); // an upload in progress stops, resumable
    await this.syncing?.catch(() => {});
  }
}

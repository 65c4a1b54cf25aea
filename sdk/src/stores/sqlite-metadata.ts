/**
 * SQLite metadata store (better-sqlite3): WAL, synchronous=NORMAL, busy timeout, immediate write
 * transactions. Reference counts and counters are kept by triggers, so every code path and every
 * process sees the same numbers.
 * @module
 */
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { StoredCodec } from '../compression.js';
import type { EntryRecord, JsonObject, StoredEntry } from '../entry.js';
import { StoreError, TableError } from '../errors.js';
import type { Json } from '../key/projection.js';
import {
  decodeCell,
  defineTableDefinition,
  encodeCell,
  encodeRow,
  isCompatibleExtension,
  type SqlValue,
  type TableColumns,
  type TableDefinition,
  type TableOptions,
  type TableRow,
  validateTableName,
} from '../tables/schema.js';
import { compileOrderBy, compileWhere, type FieldRef, type FieldResolver, type Scalar } from '../tables/where.js';
import { RowMemo } from './row-memo.js';
import type {
  AccessRecord,
  BlobReservation,
  EntryVersion,
  EvictionPolicy,
  ListQuery,
  MetadataStore,
  PutRecordOptions,
  ReadRecord,
  RemovalReason,
  StoreCounters,
  TableQuery,
} from './types.js';

/** Schema version of the SQLite layout, stored in `_schema`. */
export const SQLITE_SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS _schema (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
  key TEXT PRIMARY KEY,
  params TEXT,
  handler TEXT NOT NULL,
  type TEXT NOT NULL,
  codec TEXT NOT NULL,
  size INTEGER NOT NULL,
  stored_size INTEGER NOT NULL,
  content_hash TEXT NOT NULL,
  blob_id TEXT,
  inline BLOB,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  description TEXT,
  metadata TEXT
);
CREATE INDEX IF NOT EXISTS _entries_expires_at ON entries(expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS _entries_blob_id ON entries(blob_id) WHERE blob_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS _blobs (
  id TEXT PRIMARY KEY,
  gen TEXT NOT NULL,
  size INTEGER NOT NULL,
  refs INTEGER NOT NULL DEFAULT 0,
  ready INTEGER NOT NULL DEFAULT 0,
  doomed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS _blobs_garbage ON _blobs(refs) WHERE refs <= 0;
CREATE TABLE IF NOT EXISTS _pins (token TEXT PRIMARY KEY, blob_id TEXT NOT NULL, owner TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS _pins_blob ON _pins(blob_id);
CREATE TABLE IF NOT EXISTS _counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO _counters (name, value) VALUES
  ('entries', 0), ('bytes', 0), ('hits', 0), ('misses', 0), ('evictions', 0), ('expirations', 0), ('corruptions', 0);
CREATE TABLE IF NOT EXISTS _tables (name TEXT PRIMARY KEY, definition TEXT NOT NULL);
-- Reads update hits and access times in batches; a narrow table keeps those batches to few pages.
CREATE TABLE IF NOT EXISTS _access (key TEXT PRIMARY KEY, hits INTEGER NOT NULL DEFAULT 0, accessed_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS entries_after_insert AFTER INSERT ON entries BEGIN
  UPDATE _counters SET value = value + 1 WHERE name = 'entries';
  UPDATE _counters SET value = value + NEW.stored_size WHERE name = 'bytes';
  UPDATE _blobs SET refs = refs + 1, ready = 1 WHERE NEW.blob_id IS NOT NULL AND id = NEW.blob_id;
  INSERT OR REPLACE INTO _access (key, hits, accessed_at) VALUES (NEW.key, 0, NEW.created_at);
END;
CREATE TRIGGER IF NOT EXISTS entries_after_delete AFTER DELETE ON entries BEGIN
  UPDATE _counters SET value = value - 1 WHERE name = 'entries';
  UPDATE _counters SET value = value - OLD.stored_size WHERE name = 'bytes';
  UPDATE _blobs SET refs = refs - 1 WHERE OLD.blob_id IS NOT NULL AND id = OLD.blob_id;
  DELETE FROM _access WHERE key = OLD.key;
END;
CREATE TRIGGER IF NOT EXISTS entries_after_rewrite AFTER UPDATE OF created_at ON entries BEGIN
  UPDATE _access SET hits = 0, accessed_at = NEW.created_at WHERE key = NEW.key;
END;
CREATE TRIGGER IF NOT EXISTS entries_after_update AFTER UPDATE OF stored_size, blob_id ON entries BEGIN
  UPDATE _counters SET value = value + NEW.stored_size - OLD.stored_size WHERE name = 'bytes';
  UPDATE _blobs SET refs = refs - 1 WHERE OLD.blob_id IS NOT NULL AND id = OLD.blob_id;
  UPDATE _blobs SET refs = refs + 1, ready = 1 WHERE NEW.blob_id IS NOT NULL AND id = NEW.blob_id;
END;
`;

const ENTRY_COLUMNS =
  'e.key, e.params, e.handler, e.type, e.codec, e.size, e.stored_size, e.content_hash, e.blob_id, e.created_at, a.accessed_at, e.expires_at, a.hits, e.description, e.metadata, b.gen';
/** FROM clause for full entry rows: blob generation and access statistics joined in. */
const ENTRY_FROM = 'entries e LEFT JOIN _blobs b ON b.id = e.blob_id LEFT JOIN _access a ON a.key = e.key';

interface EntryRow {
  key: string;
  params: string | null;
  handler: string;
  type: string;
  codec: string;
  size: number;
  stored_size: number;
  content_hash: string;
  blob_id: string | null;
  inline?: Uint8Array | null;
  created_at: number;
  accessed_at: number;
  expires_at: number | null;
  hits: number;
  description: string | null;
  metadata: string | null;
  gen: string | null;
}

/** The read fields of an inline record being written. */
function toReadRecord(r: EntryRecord): ReadRecord {
  const { key, handler, type, codec, size, storedSize, contentHash, blobId, inline, createdAt, expiresAt } = r;
  return { key, handler, type, codec, size, storedSize, contentHash, blobId, blobName: null, inline, createdAt, expiresAt };
}

/** Columns of the `read` statement, in order. */
type ReadRow = [string, string, string, number, number, string, string | null, string | null, Uint8Array | null, number, number | null];

function rowToEntry(r: EntryRow): StoredEntry {
  return {
    key: r.key,
    params: r.params === null ? null : (JSON.parse(r.params) as Json),
    handler: r.handler,
    type: r.type,
    codec: r.codec as StoredCodec,
    size: r.size,
    storedSize: r.stored_size,
    contentHash: r.content_hash,
    blobId: r.blob_id,
    blobName: r.blob_id && r.gen ? `${r.blob_id}.${r.gen}` : null,
    inline: r.inline ?? null,
    createdAt: r.created_at,
    accessedAt: r.accessed_at,
    expiresAt: r.expires_at,
    hits: r.hits,
    description: r.description,
    metadata: r.metadata === null ? null : (JSON.parse(r.metadata) as JsonObject),
  };
}

/** Entry fields usable in `list({ where })` and their columns. */
const ENTRY_FIELDS: Record<string, { column: string; kind: 'text' | 'number' | 'time' }> = {
  key: { column: 'e.key', kind: 'text' },
  handler: { column: 'e.handler', kind: 'text' },
  type: { column: 'e.type', kind: 'text' },
  codec: { column: 'e.codec', kind: 'text' },
  contentHash: { column: 'e.content_hash', kind: 'text' },
  description: { column: 'e.description', kind: 'text' },
  size: { column: 'e.size', kind: 'number' },
  storedSize: { column: 'e.stored_size', kind: 'number' },
  hits: { column: 'a.hits', kind: 'number' },
  createdAt: { column: 'e.created_at', kind: 'time' },
  accessedAt: { column: 'a.accessed_at', kind: 'time' },
  expiresAt: { column: 'e.expires_at', kind: 'time' },
};

function bindPlain(v: Scalar): SqlValue {
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v as SqlValue;
}

/** Binds a value compared against a JSON path (params/metadata are stored as JSON). */
function bindJson(v: Scalar): SqlValue {
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'bigint') return v.toString();
  return v as SqlValue;
}

/** `a.b.0` → `$."a"."b"[0]`: dot-separated members, all-digit segments index arrays. */
function jsonPath(segments: string[]): string {
  return `$${segments.map((s) => (/^\d+$/.test(s) ? `[${s}]` : `."${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`)).join('')}`;
}

function jsonResolver(column: string, prefix: string[] = []): FieldResolver {
  return {
    field(name): FieldRef {
      return { sql: `json_extract(${column}, ?)`, params: [jsonPath([...prefix, ...name.split('.')])], bind: bindJson };
    },
  };
}

const entryResolver: FieldResolver = {
  field(name) {
    const f = ENTRY_FIELDS[name];
    if (!f) {
      throw new TableError('ECOLUMN', `Cannot filter entries on '${name}': use params: {...}, metadata: {...}, or one of ${Object.keys(ENTRY_FIELDS).join(', ')}.`);
    }
    return { sql: f.column, bind: bindPlain };
  },
  nested(name) {
    if (name === 'params') return jsonResolver('e.params');
    if (name === 'metadata') return jsonResolver('e.metadata');
    return undefined;
  },
};

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Options of {@link SqliteMetadataStore}. */
export interface SqliteMetadataStoreOptions {
  /** Database file, or `':memory:'`. */
  path: string;
  /** Milliseconds to wait for another process's write lock. Default 30 000. */
  busyTimeoutMs?: number;
  /** Bytes of small entries memoized in this process for repeated reads (see RowMemo); 0 disables. Default 32 MiB. */
  readCacheBytes?: number;
}

/** {@link MetadataStore} on SQLite. Several processes may share one database file. */
export class SqliteMetadataStore implements MetadataStore {
  readonly db: Database.Database;
  private readonly s: ReturnType<SqliteMetadataStore['prepare']>;
  private tableDefs = new Map<string, TableDefinition>();
  private evictionIndexes = new Set<string>();
  private readonly tableStatements = new Map<string, { del: Database.Statement; ins: Database.Statement }>();
  private readonly memo: RowMemo;

  constructor(opts: SqliteMetadataStoreOptions) {
    try {
      this.db = new Database(opts.path, { timeout: opts.busyTimeoutMs ?? 30_000 });
    } catch (cause) {
      throw new StoreError('ESTORE', `Cannot open the SQLite database at ${opts.path}: ${(cause as Error).message}. Check the directory exists and is writable.`, { cause });
    }
    const db = this.db;
    try {
      if (opts.path !== ':memory:') db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      db.pragma('cache_size = -16000');
      db.pragma('temp_store = MEMORY');
      db.pragma('case_sensitive_like = ON'); // LIKE matches case as the Postgres store does
    } catch (cause) {
      db.close();
      throw new StoreError('ESTORE', `${opts.path} is not a usable SQLite database (${(cause as Error).message}). Move it away, or point the cache at another directory.`, {
        cause,
      });
    }
    this.immediate(() => {
      db.exec(SCHEMA);
      const v = db.prepare("SELECT value FROM _schema WHERE name = 'version'").get() as { value: string } | undefined;
      if (!v) db.prepare("INSERT INTO _schema (name, value) VALUES ('version', ?)").run(String(SQLITE_SCHEMA_VERSION));
      else if (Number(v.value) > SQLITE_SCHEMA_VERSION) {
        throw new StoreError('ESTORE', `This cache directory was written by a newer cacheness (schema ${v.value} > ${SQLITE_SCHEMA_VERSION}). Upgrade cacheness to open it.`);
      }
    });
    this.s = this.prepare();
    const dataVersion = db.prepare('PRAGMA data_version').pluck();
    this.memo = new RowMemo(opts.readCacheBytes ?? 32 * 1024 * 1024, () => dataVersion.get() as number);
    this.loadTables();
  }

  private prepare() {
    const db = this.db;
    return {
      read: db
        .prepare(
          'SELECT e.handler, e.type, e.codec, e.size, e.stored_size, e.content_hash, e.blob_id, b.gen, e.inline, e.created_at, e.expires_at FROM entries e LEFT JOIN _blobs b ON b.id = e.blob_id WHERE e.key = ?',
        )
        .raw(),
      get: db.prepare(`SELECT ${ENTRY_COLUMNS}, e.inline FROM ${ENTRY_FROM} WHERE e.key = ?`),
      head: db.prepare(`SELECT ${ENTRY_COLUMNS} FROM ${ENTRY_FROM} WHERE e.key = ?`),
      upsert: db.prepare(`INSERT INTO entries (key, params, handler, type, codec, size, stored_size, content_hash, blob_id, inline, created_at, expires_at, description, metadata)
        VALUES (@key, @params, @handler, @type, @codec, @size, @storedSize, @contentHash, @blobId, @inline, @createdAt, @expiresAt, @description, @metadata)
        ON CONFLICT(key) DO UPDATE SET params = excluded.params, handler = excluded.handler, type = excluded.type, codec = excluded.codec,
          size = excluded.size, stored_size = excluded.stored_size, content_hash = excluded.content_hash, blob_id = excluded.blob_id,
          inline = excluded.inline, created_at = excluded.created_at, expires_at = excluded.expires_at,
          description = excluded.description, metadata = excluded.metadata`),
      unpin: db.prepare('DELETE FROM _pins WHERE token = ?'),
      pin: db.prepare('INSERT INTO _pins (token, blob_id, owner, at) VALUES (?, ?, ?, ?)'),
      stalePins: db.prepare('DELETE FROM _pins WHERE at < ?'),
      pinOwners: db.prepare('SELECT DISTINCT owner FROM _pins').pluck(),
      dropOwner: db.prepare('DELETE FROM _pins WHERE owner = ?'),
      delete: db.prepare('DELETE FROM entries WHERE key = ?'),
      deleteIf: db.prepare('DELETE FROM entries WHERE key = ? AND created_at = ? AND content_hash = ? AND blob_id IS ?'),
      blobGen: db.prepare('SELECT gen FROM _blobs WHERE id = ? AND doomed = 0').pluck(),
      deleteRange: db.prepare('DELETE FROM entries WHERE key >= @start AND (@end IS NULL OR key < @end)'),
      touch: db.prepare('UPDATE entries SET expires_at = ? WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)'),
      touchAccess: db.prepare('UPDATE _access SET accessed_at = max(accessed_at, ?) WHERE key = ?'),
      access: db.prepare('UPDATE _access SET hits = hits + ?, accessed_at = max(accessed_at, ?) WHERE key = ?'),
      bump: db.prepare('UPDATE _counters SET value = value + ? WHERE name = ?'),
      counters: db.prepare('SELECT name, value FROM _counters'),
      bytes: db.prepare("SELECT value FROM _counters WHERE name = 'bytes'").pluck(),
      expired: db.prepare('DELETE FROM entries WHERE key IN (SELECT key FROM entries WHERE expires_at <= ? LIMIT ?) RETURNING key').pluck(),
      clear: db.prepare('DELETE FROM entries'),
      blobRow: db.prepare('SELECT gen, ready, doomed FROM _blobs WHERE id = ?'),
      blobInsert: db.prepare('INSERT INTO _blobs (id, gen, size, refs, ready, doomed) VALUES (?, ?, ?, 0, 0, 0)'),
      blobRenew: db.prepare('UPDATE _blobs SET gen = ?, size = ?, ready = 0, doomed = 0 WHERE id = ?'),
      garbage: db.prepare('SELECT id, gen FROM _blobs b WHERE refs <= 0 AND NOT EXISTS (SELECT 1 FROM _pins p WHERE p.blob_id = b.id) LIMIT ?'),
      doom: db.prepare('UPDATE _blobs SET doomed = 1 WHERE id = ? AND gen = ?'),
      dropBlob: db.prepare('DELETE FROM _blobs WHERE id = ? AND gen = ? AND doomed = 1 AND refs <= 0'),
      liveBlob: db.prepare('SELECT 1 FROM _blobs WHERE id = ? AND gen = ? AND doomed = 0').pluck(),
      tableDefs: db.prepare('SELECT name, definition FROM _tables'),
    };
  }

  /** Runs `fn` in a BEGIN IMMEDIATE transaction (takes the write lock up front: no upgrade deadlocks). */
  private immediate<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  private loadTables(): void {
    this.tableDefs = new Map((this.s.tableDefs.all() as { name: string; definition: string }[]).map((r) => [r.name, JSON.parse(r.definition) as TableDefinition]));
    this.tableStatements.clear();
  }

  private tableDef(name: string): TableDefinition {
    let def = this.tableDefs.get(name);
    if (!def) {
      this.loadTables(); // another process may have defined it
      def = this.tableDefs.get(name);
    }
    if (!def) {
      validateTableName(name);
      throw new TableError('ETABLE', `Unknown table '${name}': define it first with cache.defineTable('${name}', { column: 'type', ... }).`, { details: { table: name } });
    }
    return def;
  }

  async read(key: string): Promise<ReadRecord | undefined> {
    const memo = this.memo.get(key);
    if (memo) return memo;
    const r = this.s.read.get(key) as ReadRow | undefined;
    if (!r) return undefined;
    const record: ReadRecord = {
      key,
      handler: r[0],
      type: r[1],
      codec: r[2] as StoredCodec,
      size: r[3],
      storedSize: r[4],
      contentHash: r[5],
      blobId: r[6],
      blobName: r[6] && r[7] ? `${r[6]}.${r[7]}` : null,
      inline: r[8],
      createdAt: r[9],
      expiresAt: r[10],
    };
    if (record.inline) this.memo.set(record, false);
    return record;
  }

  async storedBytes(): Promise<number> {
    return this.s.bytes.get() as number;
  }

  async get(key: string): Promise<StoredEntry | undefined> {
    const r = this.s.get.get(key) as EntryRow | undefined;
    return r && rowToEntry(r);
  }

  async head(key: string): Promise<StoredEntry | undefined> {
    const r = this.s.head.get(key) as EntryRow | undefined;
    return r && rowToEntry(r);
  }

  async put(record: EntryRecord, opts: PutRecordOptions = {}): Promise<void> {
    const { tables, pin } = opts;
    const bound = {
      ...record,
      params: record.params === null ? null : JSON.stringify(record.params),
      metadata: record.metadata === null ? null : JSON.stringify(record.metadata),
    };
    this.memo.delete(record.key);
    if (!tables && !record.blobId) {
      this.s.upsert.run(bound); // one statement: its own transaction
      this.memo.set(toReadRecord(record), true);
      return;
    }
    const encoded = tables ? this.encodeTables(tables) : [];
    try {
      this.immediate(() => {
        if (pin !== undefined) {
          // The reservation must still hold: a pin dropped as stale may have let its blob be collected.
          const gen = record.blobId ? (this.s.blobGen.get(record.blobId) as string | undefined) : undefined;
          if (this.s.unpin.run(pin).changes !== 1 || gen === undefined || `${record.blobId}.${gen}` !== opts.blobName) {
            throw new StoreError('ESTORE', `The blob reservation for '${record.key}' expired before the write committed; write it again.`, { details: { retry: true } });
          }
        }
        this.s.upsert.run(bound);
        for (const { def, rows } of encoded) {
          const st = this.tableStatementsFor(def);
          st.del.run(record.key);
          for (const row of rows) st.ins.run(record.key, ...row);
        }
      });
      if (record.inline) this.memo.set(toReadRecord(record), true);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new TableError(
          'ECONSTRAINT',
          `Nothing was stored for key '${record.key}': ${(err as Error).message.replace(/^UNIQUE constraint failed: /, 'a unique constraint failed on ')}. Another entry already has that value.`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /** Encodes rows per table; an unknown column triggers one reload (another process may have added it). */
  private encodeTables(tables: Record<string, TableRow[]>, reloaded = false): { def: TableDefinition; rows: SqlValue[][] }[] {
    try {
      return Object.entries(tables).map(([name, rows]) => {
        const def = this.tableDef(name);
        return { def, rows: rows.map((row) => encodeRow(def, row)) };
      });
    } catch (err) {
      if (reloaded || !(err instanceof TableError) || err.code !== 'ECOLUMN') throw err;
      this.loadTables();
      return this.encodeTables(tables, true);
    }
  }

  private tableStatementsFor(def: TableDefinition) {
    let st = this.tableStatements.get(def.name);
    if (!st) {
      const cols = Object.keys(def.columns);
      st = {
        del: this.db.prepare(`DELETE FROM ${quoteIdent(def.name)} WHERE key = ?`),
        ins: this.db.prepare(`INSERT INTO ${quoteIdent(def.name)} (key, ${cols.map(quoteIdent).join(', ')}) VALUES (?, ${cols.map(() => '?').join(', ')})`),
      };
      this.tableStatements.set(def.name, st);
    }
    return st;
  }

  async delete(key: string, reason: RemovalReason = 'delete', ifMatch?: EntryVersion): Promise<boolean> {
    this.memo.delete(key);
    const counter = reason === 'expired' ? 'expirations' : reason === 'evicted' ? 'evictions' : reason === 'corrupt' ? 'corruptions' : null;
    const run = () => (ifMatch ? this.s.deleteIf.run(key, ifMatch.createdAt, ifMatch.contentHash, ifMatch.blobId) : this.s.delete.run(key)).changes;
    if (!counter) return run() > 0;
    return this.immediate(() => {
      const n = run();
      if (n) this.s.bump.run(n, counter);
      return n > 0;
    });
  }

  async deletePrefix(prefix: string): Promise<number> {
    this.memo.deletePrefix(prefix);
    return this.s.deleteRange.run({ start: prefix, end: prefixEnd(prefix) }).changes;
  }

  async touch(key: string, expiresAt: number | null, now: number): Promise<boolean> {
    this.memo.delete(key);
    return this.immediate(() => {
      const touched = this.s.touch.run(expiresAt, key, now).changes > 0;
      if (touched) this.s.touchAccess.run(now, key);
      return touched;
    });
  }

  async recordAccess(accesses: AccessRecord[], counters: Partial<StoreCounters>): Promise<void> {
    this.immediate(() => {
      for (const a of accesses) this.s.access.run(a.hits, a.accessedAt, a.key);
      for (const [name, n] of Object.entries(counters)) if (n) this.s.bump.run(n, name);
    });
  }

  private listSql(q: Omit<ListQuery, 'limit' | 'after'> & { after?: string }): { where: string; params: SqlValue[] } {
    const parts: string[] = [];
    const params: SqlValue[] = [];
    if (!q.includeExpired) {
      parts.push('(e.expires_at IS NULL OR e.expires_at > ?)');
      params.push(q.now);
    }
    if (q.prefix) {
      const end = prefixEnd(q.prefix);
      parts.push(end === null ? 'e.key >= ?' : 'e.key >= ? AND e.key < ?');
      params.push(q.prefix, ...(end === null ? [] : [end]));
    }
    if (q.after !== undefined) {
      parts.push('e.key > ?');
      params.push(q.after);
    }
    const w = compileWhere(q.where, entryResolver);
    parts.push(w.sql);
    params.push(...w.params);
    return { where: parts.join(' AND '), params };
  }

  async list(q: ListQuery): Promise<StoredEntry[]> {
    const { where, params } = this.listSql(q);
    const rows = this.db.prepare(`SELECT ${ENTRY_COLUMNS} FROM ${ENTRY_FROM} WHERE ${where} ORDER BY e.key LIMIT ?`).all(...params, q.limit) as EntryRow[];
    return rows.map(rowToEntry);
  }

  async count(q: Omit<ListQuery, 'limit' | 'after'>): Promise<number> {
    const { where, params } = this.listSql(q);
    return this.db
      .prepare(`SELECT count(*) FROM entries e LEFT JOIN _access a ON a.key = e.key WHERE ${where}`)
      .pluck()
      .get(...params) as number;
  }

  async counters(): Promise<StoreCounters> {
    const out = Object.fromEntries((this.s.counters.all() as { name: string; value: number }[]).map((r) => [r.name, r.value]));
    return out as unknown as StoreCounters;
  }

  async deleteExpired(now: number, limit: number): Promise<number> {
    return this.immediate(() => {
      const keys = this.s.expired.all(now, limit) as string[];
      for (const k of keys) this.memo.delete(k);
      const n = keys.length;
      if (n) this.s.bump.run(n, 'expirations');
      return n;
    });
  }

  async evict(policy: Exclude<EvictionPolicy, 'none'>, maxBytes: number, now: number, protect?: string): Promise<number> {
    if (!this.evictionIndexes.has(policy)) {
      const index = policy === 'lru' ? '_access(accessed_at)' : policy === 'lfu' ? '_access(hits, accessed_at)' : 'entries(created_at)';
      this.db.exec(`CREATE INDEX IF NOT EXISTS _evict_${policy} ON ${index}`);
      this.evictionIndexes.add(policy);
    }
    const victims = this.db.prepare(
      policy === 'fifo'
        ? 'SELECT key, stored_size FROM entries WHERE key <> ? ORDER BY created_at, key LIMIT 256'
        : `SELECT a.key, e.stored_size FROM _access a JOIN entries e ON e.key = a.key WHERE a.key <> ? ORDER BY ${policy === 'lru' ? 'a.accessed_at' : 'a.hits, a.accessed_at'}, a.key LIMIT 256`,
    );
    return this.immediate(() => {
      // Expired entries are dead weight: they go before any live entry is evicted.
      const expired = this.s.expired.all(now, 1_000_000) as string[];
      for (const k of expired) this.memo.delete(k);
      if (expired.length) this.s.bump.run(expired.length, 'expirations');
      let evicted = 0;
      let bytes = this.s.bytes.get() as number;
      while (bytes > maxBytes) {
        const batch = victims.all(protect ?? '') as { key: string; stored_size: number }[];
        if (batch.length === 0) break;
        for (const v of batch) {
          if (bytes <= maxBytes) break;
          this.s.delete.run(v.key);
          this.memo.delete(v.key);
          bytes -= v.stored_size;
          evicted++;
        }
      }
      if (evicted) this.s.bump.run(evicted, 'evictions');
      return evicted;
    });
  }

  async clear(): Promise<number> {
    this.memo.clear();
    return this.s.clear.run().changes;
  }

  async acquireBlob(id: string, size: number, now: number, owner: string): Promise<BlobReservation> {
    const pin = randomBytes(8).toString('hex');
    return this.immediate(() => {
      const row = this.s.blobRow.get(id) as { gen: string; ready: number; doomed: number } | undefined;
      this.s.pin.run(pin, id, owner, now);
      if (!row || row.doomed) {
        const gen = randomBytes(4).toString('hex');
        if (row) this.s.blobRenew.run(gen, size, id);
        else this.s.blobInsert.run(id, gen, size);
        return { name: `${id}.${gen}`, ready: false, pin };
      }
      return { name: `${id}.${row.gen}`, ready: row.ready === 1, pin };
    });
  }

  async releasePin(pin: string): Promise<void> {
    this.s.unpin.run(pin);
  }

  async reapPins(isAlive: (owner: string) => boolean): Promise<number> {
    const dead = (this.s.pinOwners.all() as string[]).filter((o) => !isAlive(o));
    if (dead.length === 0) return 0;
    return this.immediate(() => dead.reduce((n, o) => n + this.s.dropOwner.run(o).changes, 0));
  }

  async claimGarbage(staleBefore: number, limit: number): Promise<string[]> {
    return this.immediate(() => {
      this.s.stalePins.run(staleBefore);
      const rows = this.s.garbage.all(limit) as { id: string; gen: string }[];
      for (const r of rows) this.s.doom.run(r.id, r.gen);
      return rows.map((r) => `${r.id}.${r.gen}`);
    });
  }

  async dropGarbage(names: string[]): Promise<number> {
    return this.immediate(() => {
      let dropped = 0;
      for (const name of names) {
        const [id, gen] = name.split('.');
        dropped += this.s.dropBlob.run(id, gen).changes;
      }
      return dropped;
    });
  }

  async isLiveBlob(name: string): Promise<boolean> {
    const [id, gen] = name.split('.');
    return this.s.liveBlob.get(id, gen) === 1;
  }

  async defineTable(name: string, columns: TableColumns, options?: TableOptions): Promise<TableDefinition> {
    const def = defineTableDefinition(name, columns, options);
    return this.immediate(() => {
      const existingRow = this.db.prepare('SELECT definition FROM _tables WHERE name = ?').get(name) as { definition: string } | undefined;
      // SQLite names are case-insensitive: 'Runs' and 'runs' (or a user object of another kind) would clash.
      const clash = this.db
        .prepare('SELECT name FROM sqlite_master WHERE lower(name) = lower(?) AND name <> ?')
        .pluck()
        .get(name, existingRow ? name : '') as string | undefined;
      if (clash)
        throw new TableError('ETABLE', `Table name '${name}' clashes with the existing '${clash}' (names are case-insensitive): choose another name.`, {
          details: { table: name },
        });
      const existing = existingRow ? (JSON.parse(existingRow.definition) as TableDefinition) : undefined;
      const t = quoteIdent(name);
      if (existing) {
        if (!isCompatibleExtension(existing, def)) {
          throw new TableError(
            'ETABLE',
            `Table '${name}' already exists with a different definition (columns ${JSON.stringify(existing.columns)}, unique ${JSON.stringify(existing.unique)}). Columns can be added, not changed or removed: pick a new table name.`,
            { details: { table: name } },
          );
        }
        for (const [c, type] of Object.entries(def.columns)) {
          if (!(c in existing.columns)) this.db.exec(`ALTER TABLE ${t} ADD COLUMN ${quoteIdent(c)} ${sqliteType(type)}`);
        }
      } else {
        const cols = Object.entries(def.columns).map(([c, type]) => `${quoteIdent(c)} ${sqliteType(type)}`);
        this.db.exec(`CREATE TABLE ${t} (key TEXT NOT NULL REFERENCES entries(key) ON DELETE CASCADE, ${cols.join(', ')})`);
        this.db.exec(`CREATE INDEX ${quoteIdent(`_t_${name}__key`)} ON ${t}(key)`);
        for (const [i, g] of def.unique.entries()) {
          this.db.exec(`CREATE UNIQUE INDEX ${quoteIdent(`_t_${name}__unique_${i}`)} ON ${t}(${g.map(quoteIdent).join(', ')})`);
        }
      }
      for (const g of def.index) {
        this.db.exec(`CREATE INDEX IF NOT EXISTS ${quoteIdent(`_t_${name}__index__${g.join('__')}`)} ON ${t}(${g.map(quoteIdent).join(', ')})`);
      }
      const merged: TableDefinition = existing ? { ...def, columns: { ...existing.columns, ...def.columns }, index: dedupeGroups([...existing.index, ...def.index]) } : def;
      this.db.prepare('INSERT INTO _tables (name, definition) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET definition = excluded.definition').run(name, JSON.stringify(merged));
      this.loadTables();
      return merged;
    });
  }

  async tables(): Promise<Record<string, TableDefinition>> {
    this.loadTables();
    return structuredClone(Object.fromEntries(this.tableDefs));
  }

  async query(table: string, q: TableQuery, reloaded = false): Promise<Record<string, unknown>[]> {
    try {
      return this.queryWith(this.tableDef(table), q);
    } catch (err) {
      if (reloaded || !(err instanceof TableError) || err.code !== 'ECOLUMN') throw err;
      this.loadTables(); // another process may have added the column
      return this.query(table, q, true);
    }
  }

  private queryWith(def: TableDefinition, q: TableQuery): Record<string, unknown>[] {
    const table = def.name;
    const resolver: FieldResolver = {
      field(name) {
        if (name === 'key') return { sql: 't.key', bind: bindPlain };
        if (!(name in def.columns)) {
          throw new TableError('ECOLUMN', `Table '${table}' has no column '${name}' (columns: key, ${Object.keys(def.columns).join(', ')}).`, { details: { table, column: name } });
        }
        return { sql: `t.${quoteIdent(name)}`, bind: (v) => (v === null ? null : encodeCell(def, name, v)) };
      },
    };
    const w = compileWhere(q.where, resolver);
    const o = compileOrderBy(q.orderBy, resolver);
    const params: SqlValue[] = [];
    let sql = `SELECT t.* FROM ${quoteIdent(table)} t JOIN entries e ON e.key = t.key WHERE ${w.sql}`;
    params.push(...w.params);
    if (!q.includeExpired) {
      sql += ' AND (e.expires_at IS NULL OR e.expires_at > ?)';
      params.push(q.now);
    }
    sql += o.sql;
    params.push(...o.params);
    if (q.limit !== undefined || q.offset !== undefined) {
      sql += ' LIMIT ? OFFSET ?';
      params.push(checkCount(q.limit ?? -1, 'limit', true), checkCount(q.offset ?? 0, 'offset'));
    }
    const rows = this.db.prepare(sql).all(...params) as Record<string, unknown>[];
    return rows.map((r) => decodeTableRow(def, r));
  }

  async sql(text: string, params: unknown[] | Record<string, unknown> = []): Promise<Record<string, unknown>[]> {
    let stmt: Database.Statement;
    try {
      stmt = this.db.prepare(text);
    } catch (cause) {
      throw new TableError('EQUERY', `SQL error: ${(cause as Error).message}`, { cause });
    }
    // PRAGMA assignments count as read-only to SQLite yet reconfigure the shared connection (locking mode, page limits).
    if (!stmt.readonly || !stmt.reader || /^pragma\b/i.test(stripLeadingComments(text))) {
      throw new TableError(
        'EREADONLY',
        'cache.sql() runs read-only statements (SELECT / WITH ... SELECT; pragma_*() table functions are fine); use the cache methods to change data.',
      );
    }
    try {
      return (Array.isArray(params) ? stmt.all(...params) : stmt.all(params)) as Record<string, unknown>[];
    } catch (cause) {
      throw new TableError('EQUERY', `SQL error: ${(cause as Error).message}`, { cause });
    }
  }

  async rowsOf(key: string): Promise<Record<string, TableRow[]>> {
    this.loadTables();
    const out: Record<string, TableRow[]> = {};
    for (const def of this.tableDefs.values()) {
      const rows = this.db.prepare(`SELECT * FROM ${quoteIdent(def.name)} WHERE key = ?`).all(key) as Record<string, unknown>[];
      if (rows.length) {
        out[def.name] = rows.map((r) => {
          const { key: _k, ...rest } = decodeTableRow(def, r);
          return rest;
        });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    this.memo.clear();
    if (this.db.open) this.db.close();
  }
}

function decodeTableRow(def: TableDefinition, r: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { key: r.key };
  for (const [c, type] of Object.entries(def.columns)) out[c] = decodeCell(type, r[c]);
  return out;
}

function sqliteType(t: string): string {
  return t === 'text' || t === 'json' ? 'TEXT' : t === 'real' ? 'REAL' : 'INTEGER';
}

function dedupeGroups(groups: string[][]): string[][] {
  const seen = new Set<string>();
  return groups.filter((g) => {
    const k = g.join('\0');
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function checkCount(n: number, what: string, allowAll = false): number {
  if (!Number.isInteger(n) || n < (allowAll ? -1 : 0)) throw new TableError('EQUERY', `${what} must be a non-negative integer; got ${n}.`);
  return n;
}

/** `text` without leading whitespace and SQL comments. */
function stripLeadingComments(text: string): string {
  let t = text.trimStart();
  for (;;) {
    if (t.startsWith('--')) t = t.slice(t.indexOf('\n') + 1 || t.length).trimStart();
    else if (t.startsWith('/*')) t = t.slice(t.indexOf('*/') + 2 || t.length).trimStart();
    else return t;
  }
}

/**
 * The least string greater than every string that starts with `prefix` (code point order, which is
 * SQLite's order for UTF-8 text), or null when there is none (the prefix is all U+10FFFF).
 */
export function prefixEnd(prefix: string): string | null {
  const cps = [...prefix].map((c) => c.codePointAt(0) as number);
  while (cps.length && cps.at(-1) === 0x10ffff) cps.pop();
  if (!cps.length) return null;
  let last = (cps.pop() as number) + 1;
  if (last === 0xd800) last = 0xe000; // surrogates are not characters
  return String.fromCodePoint(...cps, last);
}

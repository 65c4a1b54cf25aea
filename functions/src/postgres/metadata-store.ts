/**
 * {@link MetadataStore} on PostgreSQL, one namespace (tenant) per instance. Every statement is scoped
 * to that namespace here, in one place: this class is the data-access layer that tenancy relies on.
 * Semantics match the SQLite store (the shared contract suite runs against both).
 * @module
 */
import { createHash, randomBytes, randomInt } from 'node:crypto';
import {
  type AccessRecord,
  type BlobReservation,
  type CellValue,
  checkCell,
  compileOrderBy,
  compileWhere,
  defineTableDefinition,
  type EntryRecord,
  type EntryVersion,
  type EvictionPolicy,
  type FieldRef,
  type FieldResolver,
  isCompatibleExtension,
  type ListQuery,
  type MetadataStore,
  type PutRecordOptions,
  type ReadRecord,
  type RemovalReason,
  type Scalar,
  type StoreCounters,
  type StoredEntry,
  StoreError,
  type TableColumns,
  type TableDefinition,
  TableError,
  type TableOptions,
  type TableQuery,
  type TableRow,
  ValueError,
} from 'cacheness/model';
import type { Sql, TransactionSql } from 'postgres';

type Db = Sql | TransactionSql;
type Row = Record<string, unknown>;
type Param = string | number | bigint | boolean | Date | Buffer | Uint8Array | null | string[];

/** Options of {@link PostgresMetadataStore}. */
export interface PostgresMetadataStoreOptions {
  /** A `postgres` connection (pool) whose search_path reaches the migrated schema. */
  sql: Sql;
  /** The tenant whose data this instance reads and writes. */
  namespace: string;
}

/** Custom tables per namespace (each is a physical table shared by nobody else). */
const MAX_TABLES = 100;
const COUNTERS: (keyof StoreCounters)[] = ['entries', 'bytes', 'hits', 'misses', 'evictions', 'expirations', 'corruptions'];
/** Errors of text or JSON holding a NUL character, which PostgreSQL cannot store. */
const NUL_REFUSED = new Set(['22P05', '22021']);
/** Rows each read counter (hits, misses) is spread over, named `hits#0` to `hits#15`; reads sum them. */
export const READ_COUNTER_SHARDS = 16;
const shardedCounter = (name: string) => `${name}#${randomInt(READ_COUNTER_SHARDS)}`;
const PG_TYPES: Record<string, string> = { text: 'text COLLATE "C"', integer: 'bigint', real: 'double precision', boolean: 'boolean', timestamp: 'timestamptz', json: 'jsonb' };

/** `?` placeholders (as the shared where compiler writes them) to `$n`, starting after `offset`. */
function numbered(text: string, offset: number): string {
  let n = offset;
  return text.replace(/\?/g, () => `$${++n}`);
}

function ms(v: unknown): number {
  return v instanceof Date ? v.getTime() : Number(v);
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Smallest string greater than every string starting with `prefix` (code point order), or null. */
function prefixEnd(prefix: string): string | null {
  const cps = [...prefix].map((c) => c.codePointAt(0) as number);
  while (cps.length && cps.at(-1) === 0x10ffff) cps.pop();
  if (!cps.length) return null;
  let last = (cps.pop() as number) + 1;
  if (last === 0xd800) last = 0xe000;
  return String.fromCodePoint(...cps, last);
}

const ENTRY_FIELDS: Record<string, string> = {
  key: 'e.key',
  handler: 'e.handler',
  type: 'e.type',
  codec: 'e.codec',
  contentHash: 'e.content_hash',
  description: 'e.description',
  size: 'e.size',
  storedSize: 'e.stored_size',
  hits: 'a.hits',
  createdAt: 'e.created_at',
  accessedAt: 'a.accessed_at',
  expiresAt: 'e.expires_at',
};

function bindPlain(v: Scalar): never {
  return (typeof v === 'bigint' ? v.toString() : v) as never;
}

/**
 * Compared against JSONB: the value in its stored JSON form (Dates as ISO strings, bigints as decimal
 * strings), sent as JSON text and cast (`?::text::jsonb`): one unambiguous path for every JS type.
 */
function bindJson(v: Scalar): never {
  return JSON.stringify(v instanceof Date ? v.toISOString() : typeof v === 'bigint' ? v.toString() : v) as never;
}
const JSONB = '?::text::jsonb';

function jsonResolver(column: string): FieldResolver {
  return {
    field(name): FieldRef {
      const path = name.split('.') as unknown as never;
      // JSON null reads as SQL NULL, as SQLite's json_extract does.
      return {
        sql: `nullif(${column} #> ?::text[], 'null'::jsonb)`,
        likeSql: `(${column} #>> ?::text[])`,
        params: [path],
        placeholder: JSONB,
        bind: bindJson,
        // {path: value} containment lets the GIN index (jsonb_path_ops) find candidates. Not for paths
        // with an all-digit segment: that may index an array, which an object pattern would not match.
        indexHint: (path as unknown as string[]).some((k) => /^\d+$/.test(k))
          ? undefined
          : (value) => ({
              sql: `${column} @> ?::text::jsonb`,
              params: [(path as unknown as string[]).reduceRight((inner: string, k) => `{${JSON.stringify(k)}:${inner}}`, bindJson(value) as string)],
            }),
      };
    },
  };
}

const entryResolver: FieldResolver = {
  field(name) {
    const col = Object.hasOwn(ENTRY_FIELDS, name) ? ENTRY_FIELDS[name] : undefined;
    if (!col) throw new TableError('ECOLUMN', `Cannot filter entries on '${name}': use params: {...}, metadata: {...}, or one of ${Object.keys(ENTRY_FIELDS).join(', ')}.`);
    return { sql: col, bind: bindPlain };
  },
  nested(name) {
    if (name === 'params') return jsonResolver('e.params');
    if (name === 'metadata') return jsonResolver('e.metadata');
    return undefined;
  },
};

/** The object name of blob row `b` (see migration 4). */
const BLOB_NAME = `(coalesce(b.object, b.id || '.' || b.gen) COLLATE "C")`;

const FULL_ENTRY = `SELECT e.key, e.params, e.handler, e.type, e.codec, e.size, e.stored_size, e.content_hash, e.blob_id, e.created_at, e.expires_at,
  e.description, e.metadata, a.hits, a.accessed_at, ${BLOB_NAME} AS blob_name`;
const FULL_FROM = `FROM entries e
  LEFT JOIN blobs b ON b.namespace = e.namespace AND b.id = e.blob_id
  LEFT JOIN access a ON a.namespace = e.namespace AND a.key = e.key`;

/** The read fields of an entry row (inline bytes as selected, or null). */
function toRead(r: Row): ReadRecord {
  const blobId = (r.blob_id as string | null) ?? null;
  return {
    key: r.key as string,
    handler: r.handler as string,
    type: r.type as string,
    codec: r.codec as ReadRecord['codec'],
    size: Number(r.size),
    storedSize: Number(r.stored_size),
    contentHash: r.content_hash as string,
    blobId,
    blobName: blobId ? ((r.blob_name as string | null) ?? null) : null,
    inline: (r.inline as Uint8Array | null | undefined) ?? null,
    createdAt: ms(r.created_at),
    expiresAt: r.expires_at === null ? null : ms(r.expires_at),
  };
}

function toStored(r: Row): StoredEntry {
  return {
    ...toRead(r),
    params: (r.params ?? null) as StoredEntry['params'],
    accessedAt: r.accessed_at === null || r.accessed_at === undefined ? ms(r.created_at) : ms(r.accessed_at),
    hits: Number(r.hits ?? 0),
    description: (r.description ?? null) as string | null,
    metadata: (r.metadata ?? null) as StoredEntry['metadata'],
  };
}

export class PostgresMetadataStore implements MetadataStore {
  private readonly db: Sql;
  readonly namespace: string;
  private defs = new Map<string, TableDefinition & { id: number }>();

  constructor(opts: PostgresMetadataStoreOptions) {
    if (typeof opts.namespace !== 'string' || opts.namespace.length === 0) throw new StoreError('ESTORE', 'A Postgres metadata store needs a non-empty namespace.');
    this.db = opts.sql;
    this.namespace = opts.namespace;
  }

  /**
   * Runs `fn` in a transaction that first locks this namespace's row: every writer of a namespace
   * takes this one lock before any other, as SQLite's BEGIN IMMEDIATE does, so writers never lock
   * rows (counters, blobs, access) in different orders and cannot deadlock.
   */
  private write<T>(fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
    return this.db.begin(async (tx) => {
      await this.q('INSERT INTO namespaces (namespace) VALUES ($1) ON CONFLICT (namespace) DO UPDATE SET namespace = excluded.namespace', [], tx);
      return fn(tx);
    }) as Promise<T>;
  }

  private q(text: string, params: Param[] = [], db: Db = this.db): Promise<Row[]> {
    return db.unsafe(text, [this.namespace, ...params] as never[]) as unknown as Promise<Row[]>;
  }

  async read(key: string): Promise<ReadRecord | undefined> {
    const [r] = await this.q(
      `SELECT e.key, e.handler, e.type, e.codec, e.size, e.stored_size, e.content_hash, e.blob_id, ${BLOB_NAME} AS blob_name, e.inline, e.created_at, e.expires_at
       FROM entries e LEFT JOIN blobs b ON b.namespace = e.namespace AND b.id = e.blob_id WHERE e.namespace = $1 AND e.key = $2`,
      [key],
    );
    return r && toRead(r);
  }

  async get(key: string): Promise<StoredEntry | undefined> {
    const [r] = await this.q(`${FULL_ENTRY}, e.inline ${FULL_FROM} WHERE e.namespace = $1 AND e.key = $2`, [key]);
    return r && toStored(r);
  }

  async head(key: string): Promise<StoredEntry | undefined> {
    const [r] = await this.q(`${FULL_ENTRY} ${FULL_FROM} WHERE e.namespace = $1 AND e.key = $2`, [key]);
    return r && toStored(r);
  }

  async put(record: EntryRecord, opts: PutRecordOptions = {}): Promise<void> {
    const { tables, pin } = opts;
    const upsert = (db: Db) =>
      this.q(
        `INSERT INTO entries (namespace, key, params, handler, type, codec, size, stored_size, content_hash, blob_id, inline, created_at, expires_at, description, metadata)
         VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb)
         ON CONFLICT (namespace, key) DO UPDATE SET params = excluded.params, handler = excluded.handler, type = excluded.type, codec = excluded.codec,
           size = excluded.size, stored_size = excluded.stored_size, content_hash = excluded.content_hash, blob_id = excluded.blob_id, inline = excluded.inline,
           created_at = excluded.created_at, expires_at = excluded.expires_at, description = excluded.description, metadata = excluded.metadata`,
        [
          record.key,
          record.params as never,
          record.handler,
          record.type,
          record.codec,
          record.size,
          record.storedSize,
          record.contentHash,
          record.blobId,
          record.inline === null ? null : Buffer.from(record.inline.buffer, record.inline.byteOffset, record.inline.byteLength),
          new Date(record.createdAt),
          record.expiresAt === null ? null : new Date(record.expiresAt),
          record.description,
          record.metadata as never,
        ],
        db,
      );
    const encoded = tables ? await this.encodeTables(tables) : [];
    try {
      await this.write(async (tx) => {
        if (pin !== undefined) {
          const released = await this.q('DELETE FROM pins WHERE namespace = $1 AND token = $2 RETURNING blob_id', [pin], tx);
          const [blob] = record.blobId
            ? await this.q(`SELECT ${BLOB_NAME} AS name FROM blobs b WHERE namespace = $1 AND id = $2 AND NOT doomed FOR UPDATE`, [record.blobId], tx)
            : [];
          if (released.length !== 1 || !blob || blob.name !== opts.blobName) {
            throw new StoreError('ESTORE', `The blob reservation for '${record.key}' expired before the write committed; write it again.`, { details: { retry: true } });
          }
        }
        await upsert(tx);
        for (const { def, rows } of encoded) {
          const t = `ct_${def.id}`;
          await this.q(`DELETE FROM ${t} WHERE namespace = $1 AND key = $2`, [record.key], tx);
          const cols = Object.keys(def.columns);
          for (const row of rows) {
            const values = cols.map((_c, i) => `$${i + 3}${row.casts[i]}`).join(', ');
            await this.q(`INSERT INTO ${t} (namespace, key, ${cols.map(quoteIdent).join(', ')}) VALUES ($1, $2, ${values})`, [record.key, ...row.values], tx);
          }
        }
      });
    } catch (err) {
      if ((err as { code?: string }).code === '23505') {
        throw new TableError(
          'ECONSTRAINT',
          `Nothing was stored for key '${record.key}': a unique constraint failed (${(err as { detail?: string }).detail ?? (err as Error).message}). Another entry already has that value.`,
          { cause: err },
        );
      }
      if (NUL_REFUSED.has((err as { code?: string }).code ?? '')) {
        throw new ValueError(
          'EVALUETYPE',
          `Nothing was stored for key '${record.key}': PostgreSQL cannot store the NUL character (\\u0000) in text or JSON. Remove it from params, metadata, description or table rows.`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /** Checks rows against their tables; an unknown column triggers one reload (another instance may have added it). */
  private async encodeTables(
    tables: Record<string, TableRow[]>,
    reloaded = false,
  ): Promise<{ def: TableDefinition & { id: number }; rows: { values: Param[]; casts: string[] }[] }[]> {
    try {
      const out = [];
      for (const [name, rows] of Object.entries(tables)) {
        const def = await this.tableDef(name);
        out.push({
          def,
          rows: rows.map((row) => {
            if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new TableError('ECOLUMN', `A row of table '${name}' must be an object of column values.`);
            for (const col of Object.keys(row)) if (!(col in def.columns)) checkCell(def, col, undefined);
            const cells = Object.keys(def.columns).map((col) => checkCell(def, col, row[col]));
            return { values: cells.map(cellParam), casts: Object.values(def.columns).map((t) => (t === 'json' ? '::text::jsonb' : '')) };
          }),
        });
      }
      return out;
    } catch (err) {
      if (reloaded || !(err instanceof TableError) || err.code !== 'ECOLUMN') throw err;
      await this.loadTables();
      return this.encodeTables(tables, true);
    }
  }

  async delete(key: string, reason: RemovalReason = 'delete', ifMatch?: EntryVersion): Promise<boolean> {
    const counter = reason === 'expired' ? 'expirations' : reason === 'evicted' ? 'evictions' : reason === 'corrupt' ? 'corruptions' : null;
    return this.write(async (tx) => {
      const deleted = ifMatch
        ? await this.q(
            'DELETE FROM entries WHERE namespace = $1 AND key = $2 AND created_at = $3 AND content_hash = $4 AND blob_id IS NOT DISTINCT FROM $5 RETURNING key',
            [key, new Date(ifMatch.createdAt), ifMatch.contentHash, ifMatch.blobId],
            tx,
          )
        : await this.q('DELETE FROM entries WHERE namespace = $1 AND key = $2 RETURNING key', [key], tx);
      if (deleted.length && counter) await this.q('SELECT bump_counter($1, $2, $3)', [counter, 1], tx);
      return deleted.length > 0;
    });
  }

  async deletePrefix(prefix: string): Promise<number> {
    const end = prefixEnd(prefix);
    const rows = await this.q(
      `DELETE FROM entries WHERE namespace = $1 AND key >= $2 ${end === null ? '' : 'AND key < $3'} RETURNING key`,
      end === null ? [prefix] : [prefix, end],
    );
    return rows.length;
  }

  async touch(key: string, expiresAt: number | null, now: number): Promise<boolean> {
    return this.write(async (tx) => {
      const rows = await this.q(
        'UPDATE entries SET expires_at = $3 WHERE namespace = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $4) RETURNING key',
        [key, expiresAt === null ? null : new Date(expiresAt), new Date(now)],
        tx,
      );
      if (!rows.length) return false;
      await this.q('UPDATE access SET accessed_at = greatest(accessed_at, $3) WHERE namespace = $1 AND key = $2', [key, new Date(now)], tx);
      return true;
    });
  }

  /**
   * Read statistics stay off the write lock, so a namespace's reads run in parallel. A single read
   * (every API request) sends two autocommit statements, pipelined in one round trip: the counters,
   * spread over {@link READ_COUNTER_SHARDS} rows so concurrent readers rarely meet on one, then the
   * entry's access row. Neither holds a lock while waiting for another kind, so they cannot deadlock
   * with writers (which never touch read counters). Batches of several keys (a cache flushing its
   * buffered hits) take the namespace lock as writers do, because their row locks come in no fixed order.
   */
  async recordAccess(accesses: AccessRecord[], counters: Partial<StoreCounters>): Promise<void> {
    const reads = (['hits', 'misses'] as const).filter((c) => counters[c]);
    const others = Object.entries(counters).filter(([name, n]) => n && name !== 'hits' && name !== 'misses');
    if (accesses.length > 1 || others.length) {
      await this.write(async (tx) => {
        await this.updateAccess(accesses, tx);
        for (const name of reads) await this.q('SELECT bump_counter($1, $2, $3)', [shardedCounter(name), counters[name] as number], tx);
        for (const [name, n] of others) await this.q('SELECT bump_counter($1, $2, $3)', [name, n as number], tx);
      });
      return;
    }
    const pending: Promise<unknown>[] = [];
    if (reads.length) {
      const values = reads.map((_, i) => `($1, $${2 + 2 * i}, $${3 + 2 * i})`).join(', ');
      pending.push(
        this.q(
          `INSERT INTO counters (namespace, name, value) VALUES ${values} ON CONFLICT (namespace, name) DO UPDATE SET value = counters.value + excluded.value`,
          reads.flatMap((name) => [shardedCounter(name), counters[name] as number]),
        ),
      );
    }
    if (accesses.length) pending.push(this.updateAccess(accesses));
    await Promise.all(pending);
  }

  private async updateAccess(accesses: AccessRecord[], db: Db = this.db): Promise<void> {
    if (!accesses.length) return;
    await this.q(
      `UPDATE access a SET hits = a.hits + u.hits, accessed_at = greatest(a.accessed_at, u.at)
       FROM (SELECT key, sum(hits) AS hits, max(at) AS at FROM unnest($2::text[], $3::bigint[], $4::timestamptz[]) AS x(key, hits, at) GROUP BY key) u
       WHERE a.namespace = $1 AND a.key = u.key`,
      [accesses.map((a) => a.key), accesses.map((a) => String(a.hits)) as never, accesses.map((a) => new Date(a.accessedAt).toISOString()) as never],
      db,
    );
  }

  private listWhere(q: Omit<ListQuery, 'limit' | 'after'> & { after?: string }): { where: string; params: Param[] } {
    const parts = ['e.namespace = $1'];
    const params: Param[] = [];
    const add = (text: string, ...values: Param[]) => {
      parts.push(numbered(text, 1 + params.length));
      params.push(...values);
    };
    if (!q.includeExpired) add('(e.expires_at IS NULL OR e.expires_at > ?)', new Date(q.now));
    if (q.prefix) {
      const end = prefixEnd(q.prefix);
      if (end === null) add('e.key >= ?', q.prefix);
      else add('e.key >= ? AND e.key < ?', q.prefix, end);
    }
    if (q.after !== undefined) add('e.key > ?', q.after);
    const w = compileWhere(q.where, entryResolver);
    add(w.sql, ...(w.params as Param[]));
    return { where: parts.join(' AND '), params };
  }

  async list(q: ListQuery): Promise<StoredEntry[]> {
    const { where, params } = this.listWhere(q);
    const rows = await this.q(`${FULL_ENTRY} ${FULL_FROM} WHERE ${where} ORDER BY e.key LIMIT ${Math.max(0, Math.floor(q.limit))}`, params);
    return rows.map((r) => toStored(r));
  }

  async count(q: Omit<ListQuery, 'limit' | 'after'>): Promise<number> {
    const { where, params } = this.listWhere(q);
    const [r] = await this.q(`SELECT count(*) AS n FROM entries e LEFT JOIN access a ON a.namespace = e.namespace AND a.key = e.key WHERE ${where}`, params);
    return Number(r?.n ?? 0);
  }

  async counters(): Promise<StoreCounters> {
    // Sharded counters (`hits#3`) add up under their base name.
    const rows = await this.q("SELECT split_part(name, '#', 1) AS name, sum(value) AS value FROM counters WHERE namespace = $1 GROUP BY 1");
    const out = Object.fromEntries(COUNTERS.map((c) => [c, 0])) as unknown as StoreCounters;
    for (const r of rows) if (COUNTERS.includes(r.name as keyof StoreCounters)) out[r.name as keyof StoreCounters] = Number(r.value);
    return out;
  }

  async storedBytes(): Promise<number> {
    const [r] = await this.q("SELECT value FROM counters WHERE namespace = $1 AND name = 'bytes'");
    return Number(r?.value ?? 0);
  }

  async deleteExpired(now: number, limit: number): Promise<number> {
    return this.write(async (tx) => {
      // A CTE runs once: `IN (SELECT ... LIMIT ... SKIP LOCKED)` may be re-evaluated and exceed the limit.
      const rows = await this.q(
        `WITH victims AS (SELECT key FROM entries WHERE namespace = $1 AND expires_at <= $2 ORDER BY expires_at LIMIT $3 FOR UPDATE SKIP LOCKED)
         DELETE FROM entries e USING victims v WHERE e.namespace = $1 AND e.key = v.key RETURNING e.key`,
        [new Date(now), limit],
        tx,
      );
      if (rows.length) await this.q("SELECT bump_counter($1, 'expirations', $2)", [rows.length], tx);
      return rows.length;
    });
  }

  async evict(policy: Exclude<EvictionPolicy, 'none'>, maxBytes: number, now: number, protect?: string): Promise<number> {
    await this.deleteExpired(now, 1_000_000);
    const order =
      policy === 'fifo'
        ? 'SELECT e.key, e.stored_size, e.created_at FROM entries e WHERE e.namespace = $1 AND e.key <> $2 ORDER BY e.created_at, e.key LIMIT 256'
        : `SELECT a.key, e.stored_size, e.created_at FROM access a JOIN entries e ON e.namespace = a.namespace AND e.key = a.key
           WHERE a.namespace = $1 AND a.key <> $2 ORDER BY ${policy === 'lru' ? 'a.accessed_at' : 'a.hits, a.accessed_at'}, a.key LIMIT 256`;
    return this.write(async (tx) => {
      let evicted = 0;
      const [b] = await this.q("SELECT value FROM counters WHERE namespace = $1 AND name = 'bytes'", [], tx);
      let bytes = Number(b?.value ?? 0);
      while (bytes > maxBytes) {
        const victims = await this.q(order, [protect ?? ''], tx);
        if (!victims.length) break;
        for (const v of victims) {
          if (bytes <= maxBytes) break;
          const gone = await this.q('DELETE FROM entries WHERE namespace = $1 AND key = $2 AND created_at = $3 RETURNING stored_size', [v.key as string, v.created_at as Date], tx);
          if (!gone.length) continue;
          bytes -= Number(gone[0]?.stored_size);
          evicted++;
        }
      }
      if (evicted) await this.q("SELECT bump_counter($1, 'evictions', $2)", [evicted], tx);
      return evicted;
    });
  }

  async clear(): Promise<number> {
    return this.write(async (tx) => (await this.q('DELETE FROM entries WHERE namespace = $1 RETURNING key', [], tx)).length);
  }

  async acquireBlob(id: string, size: number, now: number, owner: string): Promise<BlobReservation> {
    const pin = randomBytes(8).toString('hex');
    const gen = randomBytes(8).toString('hex');
    return this.write(async (tx) => {
      await this.buryIfDoomed(id, tx);
      // A missing or doomed blob gets a fresh generation; a live one is pinned as it is.
      const [row] = await this.q(
        `INSERT INTO blobs (namespace, id, gen, size) VALUES ($1, $2, $3, $4)
         ON CONFLICT (namespace, id) DO UPDATE SET
           gen = CASE WHEN blobs.doomed THEN excluded.gen ELSE blobs.gen END,
           object = CASE WHEN blobs.doomed THEN NULL ELSE blobs.object END,
           ready = CASE WHEN blobs.doomed THEN false ELSE blobs.ready END,
           size = CASE WHEN blobs.doomed THEN excluded.size ELSE blobs.size END,
           doomed = false
         RETURNING coalesce(object, id || '.' || gen) AS name, ready`,
        [id, gen, size],
        tx,
      );
      await this.q('INSERT INTO pins (token, namespace, blob_id, owner, at) VALUES ($2, $1, $3, $4, $5)', [pin, id, owner, new Date(now)], tx);
      return { name: row?.name as string, ready: row?.ready === true, pin };
    });
  }

  async releasePin(pin: string): Promise<void> {
    await this.write((tx) => this.q('DELETE FROM pins WHERE namespace = $1 AND token = $2', [pin], tx));
  }

  async reapPins(isAlive: (owner: string) => boolean): Promise<number> {
    const owners = (await this.q('SELECT DISTINCT owner FROM pins WHERE namespace = $1')).map((r) => r.owner as string);
    const dead = owners.filter((o) => !isAlive(o));
    if (!dead.length) return 0;
    return this.write(async (tx) => (await this.q('DELETE FROM pins WHERE namespace = $1 AND owner = ANY($2::text[]) RETURNING token', [dead], tx)).length);
  }

  /**
   * Drops pins taken before `staleBefore`, then marks up to `limit` unreferenced, unpinned blobs doomed
   * and returns their object names, in name order. With `after` (a name), only blobs whose name sorts
   * after it: passing the last name returned walks a namespace's garbage once, so blobs a caller could
   * not delete are not claimed again and again in the same pass.
   */
  async claimGarbage(staleBefore: number, limit: number, after = ''): Promise<string[]> {
    return this.write(async (tx) => {
      await this.q('DELETE FROM pins WHERE namespace = $1 AND at < $2', [new Date(staleBefore)], tx);
      const rows = await this.q(
        `WITH garbage AS (
           SELECT id FROM blobs b WHERE b.namespace = $1 AND b.refs <= 0 AND ${BLOB_NAME} > $3
             AND NOT EXISTS (SELECT 1 FROM pins p WHERE p.namespace = b.namespace AND p.blob_id = b.id)
           ORDER BY ${BLOB_NAME} LIMIT $2 FOR UPDATE SKIP LOCKED),
         doomed AS (UPDATE blobs b SET doomed = true FROM garbage g WHERE b.namespace = $1 AND b.id = g.id RETURNING ${BLOB_NAME} AS name)
         SELECT name FROM doomed ORDER BY name`,
        [limit, after],
        tx,
      );
      return rows.map((r) => r.name as string);
    });
  }

  async dropGarbage(names: string[]): Promise<number> {
    if (!names.length) return 0;
    return this.write(
      async (tx) =>
        (
          await this.q(
            `DELETE FROM blobs b WHERE b.namespace = $1 AND b.refs <= 0 AND b.doomed
               AND (b.id = ANY($3::text[]) OR b.object = ANY($2::text[])) AND ${BLOB_NAME} = ANY($2::text[]) RETURNING b.id`,
            [names, names.map((n) => n.split('.')[0] as string)],
            tx,
          )
        ).length,
    );
  }

  async isLiveBlob(name: string): Promise<boolean> {
    const id = name.split('.')[0] ?? '';
    return (await this.q(`SELECT 1 FROM blobs b WHERE namespace = $1 AND (id = $2 OR object = $3) AND ${BLOB_NAME} = $3 AND NOT doomed`, [id, name])).length > 0;
  }

  /**
   * Settles a streamed upload once its content hash is known. Its bytes were uploaded under a staged
   * blob (reserved with {@link acquireBlob} under a random id and pinned by `pin`); they become the
   * blob of `contentId`, in one transaction:
   * - the namespace already holds those bytes (a live, ready blob): the pin moves to that blob, and
   *   the staged one, unpinned, is garbage the sweeper deletes (`deduplicated`);
   * - no live blob has that id: the staged object becomes it (the row keeps the staged object name);
   * - another upload of the same bytes is still in flight: the staged blob stays as it is, under its
   *   own id, so neither upload waits for the other.
   * The staged object has a pinned row at every moment, so a crash anywhere leaves garbage the
   * sweeper finds, never a stray object. The returned pin must then be passed to {@link put}.
   * @throws {StoreError} `ESTORE` (retryable) when the pin expired first.
   */
  async adoptStagedBlob(stagedName: string, pin: string, contentId: string, size: number): Promise<{ blobId: string; name: string; deduplicated: boolean }> {
    const stagedId = stagedName.split('.')[0] as string;
    return this.write(async (tx) => {
      const [mine] = await this.q('SELECT blob_id FROM pins WHERE namespace = $1 AND token = $2 FOR UPDATE', [pin], tx);
      if (!mine) throw new StoreError('ESTORE', 'The upload reservation expired before it completed; upload again.', { details: { retry: true } });
      if (mine.blob_id !== stagedId) {
        // Adopted already by an earlier attempt whose entry write then failed: the same answer again.
        const [held] = await this.q(`SELECT ${BLOB_NAME} AS name FROM blobs b WHERE namespace = $1 AND id = $2 AND NOT doomed`, [mine.blob_id as string], tx);
        if (!held) throw new StoreError('ESTORE', 'The upload reservation expired before it completed; upload again.', { details: { retry: true } });
        return { blobId: mine.blob_id as string, name: held.name as string, deduplicated: held.name !== stagedName };
      }
      const [b] = await this.q(`SELECT ready, doomed, size, ${BLOB_NAME} AS name FROM blobs b WHERE namespace = $1 AND id = $2 FOR UPDATE`, [contentId], tx);
      if (b && !b.doomed && b.ready && Number(b.size) === size) {
        await this.q('UPDATE pins SET blob_id = $3 WHERE namespace = $1 AND token = $2', [pin, contentId], tx);
        return { blobId: contentId, name: b.name as string, deduplicated: true };
      }
      if (b && !b.doomed) {
        // Another upload of these bytes is in flight (or a blob of that id has another size): keep ours apart.
        await this.q('UPDATE blobs SET size = $3 WHERE namespace = $1 AND id = $2', [stagedId, size], tx);
        return { blobId: stagedId, name: stagedName, deduplicated: false };
      }
      // A doomed row of the same id names another object: that name goes to the graveyard; the row now names ours.
      if (b) await this.buryIfDoomed(contentId, tx);
      await this.q('DELETE FROM blobs WHERE namespace = $1 AND id = $2', [stagedId], tx);
      await this.q(
        `INSERT INTO blobs (namespace, id, gen, size, object) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (namespace, id) DO UPDATE SET gen = excluded.gen, size = excluded.size, object = excluded.object, refs = 0, ready = false, doomed = false`,
        [contentId, randomBytes(8).toString('hex'), size, stagedName],
        tx,
      );
      await this.q('UPDATE pins SET blob_id = $3 WHERE namespace = $1 AND token = $2', [pin, contentId], tx);
      return { blobId: contentId, name: stagedName, deduplicated: false };
    });
  }

  /** Records the object name of blob `id` if it is doomed (about to be renamed), so its object is still reclaimed. */
  private async buryIfDoomed(id: string, tx: TransactionSql): Promise<void> {
    await this.q(
      `INSERT INTO blob_graveyard (namespace, name) SELECT namespace, ${BLOB_NAME} FROM blobs b WHERE namespace = $1 AND id = $2 AND doomed ON CONFLICT DO NOTHING`,
      [id],
      tx,
    );
  }

  /**
   * Object names of blobs renamed while doomed (see migration 7), oldest first, that no live blob
   * uses. The sweeper deletes (or tags) their objects, then {@link forgetBuried} them.
   */
  async buried(limit: number): Promise<string[]> {
    const rows = await this.q(
      `SELECT g.name FROM blob_graveyard g WHERE g.namespace = $1
         AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.namespace = g.namespace AND ${BLOB_NAME} = g.name AND NOT b.doomed
                           AND (b.id = split_part(g.name, '.', 1) OR b.object = g.name))
       ORDER BY g.at, g.name LIMIT $2`,
      [limit],
    );
    return rows.map((r) => r.name as string);
  }

  /** Forgets graveyard names whose objects are gone or tagged; returns how many it forgot. */
  async forgetBuried(names: string[]): Promise<number> {
    if (!names.length) return 0;
    return (await this.q('DELETE FROM blob_graveyard WHERE namespace = $1 AND name = ANY($2::text[]) RETURNING name', [names])).length;
  }

  private async loadTables(): Promise<void> {
    const rows = await this.q('SELECT id, name, definition FROM custom_tables WHERE namespace = $1');
    this.defs = new Map(rows.map((r) => [r.name as string, { ...(r.definition as TableDefinition), id: Number(r.id) }]));
  }

  private async tableDef(name: string): Promise<TableDefinition & { id: number }> {
    let def = this.defs.get(name);
    if (!def) {
      await this.loadTables();
      def = this.defs.get(name);
    }
    if (!def) throw new TableError('ETABLE', `Unknown table '${name}': define it first with cache.defineTable('${name}', { column: 'type', ... }).`, { details: { table: name } });
    return def;
  }

  async defineTable(name: string, columns: TableColumns, options?: TableOptions): Promise<TableDefinition> {
    const def = defineTableDefinition(name, columns, options);
    const merged = await this.write(async (tx) => {
      const [existing] = await this.q('SELECT id, name, definition FROM custom_tables WHERE namespace = $1 AND lower(name) = lower($2) FOR UPDATE', [name], tx);
      if (existing && existing.name !== name)
        throw new TableError('ETABLE', `Table name '${name}' clashes with the existing '${existing.name}' (names are case-insensitive): choose another name.`);
      let id: number;
      let result: TableDefinition;
      if (existing) {
        const old = existing.definition as TableDefinition;
        if (!isCompatibleExtension(old, def)) {
          throw new TableError(
            'ETABLE',
            `Table '${name}' already exists with a different definition (columns ${JSON.stringify(old.columns)}, unique ${JSON.stringify(old.unique)}). Columns can be added, not changed or removed: pick a new table name.`,
          );
        }
        id = Number(existing.id);
        for (const [c, type] of Object.entries(def.columns)) if (!(c in old.columns)) await tx.unsafe(`ALTER TABLE ct_${id} ADD COLUMN ${quoteIdent(c)} ${PG_TYPES[type]}`);
        const index = [...old.index, ...def.index].filter((g, i, all) => all.findIndex((h) => h.join('\0') === g.join('\0')) === i);
        result = { ...def, columns: { ...old.columns, ...def.columns }, index };
        await this.q('UPDATE custom_tables SET definition = $2::jsonb WHERE id = $3 AND namespace = $1', [result as never, id], tx);
      } else {
        const [{ n } = { n: 0 }] = (await this.q('SELECT count(*)::int AS n FROM custom_tables WHERE namespace = $1', [], tx)) as { n: number }[];
        if (n >= MAX_TABLES) throw new TableError('ETABLE', `A namespace may define at most ${MAX_TABLES} custom tables; reuse or extend one.`);
        result = def;
        const [row] = await this.q('INSERT INTO custom_tables (namespace, name, definition) VALUES ($1, $2, $3::jsonb) RETURNING id', [name, def as never], tx);
        id = Number(row?.id);
        const cols = Object.entries(def.columns).map(([c, type]) => `${quoteIdent(c)} ${PG_TYPES[type]}`);
        await tx.unsafe(
          // No foreign key onto the shared entries table (it would add a cascade trigger there for every
          // tenant's table): the entries trigger deletes this namespace's rows itself.
          `CREATE TABLE ct_${id} (namespace text NOT NULL, key text COLLATE "C" NOT NULL, ${cols.join(', ')})`,
        );
        await tx.unsafe(`CREATE INDEX ct_${id}_key ON ct_${id} (namespace, key)`);
        for (const [i, g] of def.unique.entries()) await tx.unsafe(`CREATE UNIQUE INDEX ct_${id}_unique_${i} ON ct_${id} (namespace, ${g.map(quoteIdent).join(', ')})`);
      }
      for (const g of result.index) {
        const suffix = createHash('sha1').update(g.join('\0')).digest('hex').slice(0, 16);
        await tx.unsafe(`CREATE INDEX IF NOT EXISTS ct_${id}_ix_${suffix} ON ct_${id} (namespace, ${g.map(quoteIdent).join(', ')})`);
      }
      return result;
    });
    await this.loadTables();
    return structuredClone(merged);
  }

  async tables(): Promise<Record<string, TableDefinition>> {
    await this.loadTables();
    return Object.fromEntries([...this.defs].map(([n, { id: _id, ...def }]) => [n, structuredClone(def)]));
  }

  async query(table: string, q: TableQuery, reloaded = false): Promise<Record<string, unknown>[]> {
    const def = await this.tableDef(table);
    try {
      const resolver: FieldResolver = {
        field(name) {
          if (name === 'key') return { sql: 't.key', bind: bindPlain };
          if (!(name in def.columns))
            throw new TableError('ECOLUMN', `Table '${table}' has no column '${name}' (columns: key, ${Object.keys(def.columns).join(', ')}).`, {
              details: { table, column: name },
            });
          const type = def.columns[name];
          return {
            sql: `t.${quoteIdent(name)}`,
            placeholder: type === 'json' ? JSONB : '?',
            likeSql: type === 'json' ? `t.${quoteIdent(name)}::text` : undefined,
            bind: (v) => (v === null ? null : cellParam(checkCell(def, name, v))) as never,
          };
        },
      };
      const params: Param[] = [];
      const add = (text: string, values: unknown[]) => {
        const out = numbered(text, 1 + params.length);
        params.push(...(values as Param[]));
        return out;
      };
      const w = compileWhere(q.where, resolver);
      let text = `SELECT t.* FROM ct_${def.id} t JOIN entries e ON e.namespace = t.namespace AND e.key = t.key WHERE t.namespace = $1 AND ${add(w.sql, w.params)}`;
      if (!q.includeExpired) text += ` AND ${add('(e.expires_at IS NULL OR e.expires_at > ?)', [new Date(q.now)])}`;
      const o = compileOrderBy(q.orderBy, resolver);
      text += add(o.sql, o.params);
      if (q.limit !== undefined) text += ` LIMIT ${checkCount(q.limit, 'limit')}`;
      if (q.offset !== undefined) text += ` OFFSET ${checkCount(q.offset, 'offset')}`;
      const rows = await this.q(text, params);
      return rows.map((r) => {
        const out: Record<string, unknown> = { key: r.key };
        for (const [c, type] of Object.entries(def.columns)) out[c] = decodePg(type, r[c]);
        return out;
      });
    } catch (err) {
      if (reloaded || !(err instanceof TableError) || err.code !== 'ECOLUMN') throw err;
      await this.loadTables();
      return this.query(table, q, true);
    }
  }

  async sql(): Promise<Record<string, unknown>[]> {
    throw new TableError('EQUERY', 'Raw SQL is not available on the cloud store (tenants share its tables); use query() on custom tables and list({ where }) on entries.');
  }

  async rowsOf(key: string): Promise<Record<string, TableRow[]>> {
    await this.loadTables();
    const out: Record<string, TableRow[]> = {};
    for (const def of this.defs.values()) {
      const rows = await this.q(`SELECT * FROM ct_${def.id} WHERE namespace = $1 AND key = $2`, [key]);
      if (rows.length) out[def.name] = rows.map((r) => Object.fromEntries(Object.entries(def.columns).map(([c, type]) => [c, decodePg(type, r[c])])));
    }
    return out;
  }

  async close(): Promise<void> {}
}

function cellParam(v: CellValue): Param {
  if (v !== null && typeof v === 'object' && 'json' in v) return v.json; // JSON text, cast ::text::jsonb in the statement
  return v as Param;
}

function decodePg(type: string | undefined, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (type === 'integer') return Number(v);
  if (type === 'timestamp') return v instanceof Date ? v : new Date(v as string);
  return v;
}

function checkCount(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0) throw new TableError('EQUERY', `${what} must be a non-negative integer; got ${n}.`);
  return n;
}

/**
 * The cloud API's entry and table calls, typed, in the stores' shapes: what a remote cache asks the API
 * besides uploads (push.ts) and byte transfers (transfer.ts).
 * @module
 */
import type { StoredEntry } from '../entry.js';
import { CachenessError } from '../errors.js';
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
  WireEntry,
} from '../protocol.js';
import type { AccessRecord, ListQuery, StoreCounters, TableQuery } from '../stores/types.js';
import type { TableColumns, TableDefinition, TableOptions, TableRow } from '../tables/schema.js';
import type { ApiClient } from './client.js';
import { entryPath } from './push.js';

/** Entries per list request: a page of 10,000 could pass Lambda's 6 MB answer limit. */
const LIST_PAGE_MAX = 1_000;
const ACCESS_BATCH = 10_000;

const iso = (ms: number) => new Date(ms).toISOString();

/** True for the API's 404 (no such entry). */
export function isNotFound(err: unknown): boolean {
  return err instanceof CachenessError && err.details?.status === 404;
}

/** An entry of the wire, in the stores' shape. */
function storedFromWire(w: WireEntry, blobId: string | null, inline: Uint8Array | null): StoredEntry {
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
    blobName: null,
    createdAt: Date.parse(w.createdAt),
    accessedAt: Date.parse(w.accessedAt),
    expiresAt: w.expiresAt === null ? null : Date.parse(w.expiresAt),
    hits: w.hits,
    description: w.description,
    metadata: w.metadata,
  };
}

/** The entry and table calls of one cloud API namespace (the API key's). */
export class Cloud {
  /** Custom table definitions seen, to give rows from JSON their column types. */
  private readonly definitions = new Map<string, TableDefinition>();

  constructor(readonly api: ApiClient) {}

  /**
   * The entry without counting a read; with `payload`, its inline bytes or a presigned URL for its
   * blob (`blobName` is left for the caller). Undefined when absent or expired.
   */
  async entry(key: string, payload: boolean): Promise<{ entry: StoredEntry; url?: string } | undefined> {
    let r: GetEntryResponse | EntryOnlyResponse;
    try {
      r = await this.api.request<GetEntryResponse | EntryOnlyResponse>('GET', `${entryPath(key)}?count=0${payload ? '' : '&payload=0'}`);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const inline = 'body' in r ? Buffer.from(r.body, 'base64') : null;
    const entry = storedFromWire(r.entry, r.blobId ?? null, inline);
    return 'url' in r ? { entry, url: r.url } : { entry };
  }

  /** Deletes `key`; with `at` (a replayed delete), only if it was written at or before then. True when it did. */
  async delete(key: string, at?: number): Promise<boolean> {
    const when = at === undefined ? '' : `?writtenAt=${encodeURIComponent(iso(at))}`;
    return (await this.api.request<DeleteResponse>('DELETE', `${entryPath(key)}${when}`)).deleted;
  }

  /** Sets a live entry's expiry; false when it is absent or expired. With `at` (a replayed touch), `ECONFLICT` when it was written later. */
  async touch(key: string, expiresAt: number | null, at?: number): Promise<boolean> {
    try {
      const body = { expiresAt: expiresAt === null ? null : iso(expiresAt), ...(at === undefined ? {} : { writtenAt: iso(at) }) };
      await this.api.request('POST', `${entryPath(key)}/touch`, { body, idempotent: true });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Deletes entries under `prefix`; with `at` (a replayed delete), only those written at or before it. */
  async deletePrefix(prefix: string, at?: number): Promise<number> {
    const body = { prefix, ...(at === undefined ? {} : { writtenAt: iso(at) }) };
    return (await this.api.request<DeletePrefixResponse>('POST', 'entries/delete', { body, idempotent: true })).deleted;
  }

  async defineTable(name: string, columns: TableColumns, options: TableOptions | undefined): Promise<TableDefinition> {
    const { table } = await this.api.request<DefineTableResponse>('PUT', `tables/${encodeURIComponent(name)}`, {
      body: { columns, unique: options?.unique, index: options?.index },
    });
    this.definitions.set(name, table);
    return table;
  }

  /** Reads counted by the client, in batches the API takes. */
  async recordAccess(accesses: AccessRecord[], counters: Partial<StoreCounters>): Promise<void> {
    for (let i = 0; i === 0 || i < accesses.length; i += ACCESS_BATCH) {
      const body: AccessRequest = {
        accesses: accesses.slice(i, i + ACCESS_BATCH).map((a) => ({ key: a.key, hits: a.hits, accessedAt: iso(a.accessedAt) })),
        ...(i === 0 ? { hits: counters.hits ?? 0, misses: counters.misses ?? 0 } : {}),
      };
      await this.api.request('POST', 'access', { body, idempotent: false });
    }
  }

  /** At least `q.limit` entries (when there are that many), in API pages of up to 10,000. */
  async list(q: ListQuery): Promise<StoredEntry[]> {
    const out: StoredEntry[] = [];
    let cursor = q.after === undefined ? undefined : Buffer.from(q.after, 'utf8').toString('base64url');
    do {
      const r = await this.api.request<ListResponse>('POST', 'entries/list', {
        body: { prefix: q.prefix, where: q.where, includeExpired: q.includeExpired, limit: Math.min(LIST_PAGE_MAX, q.limit - out.length), cursor },
        idempotent: true,
      });
      for (const w of r.entries) out.push(storedFromWire(w, null, null));
      cursor = r.cursor;
    } while (cursor && out.length < q.limit);
    return out;
  }

  async count(q: Omit<ListQuery, 'limit' | 'after'>): Promise<number> {
    return (await this.api.request<CountResponse>('POST', 'entries/count', { body: { prefix: q.prefix, where: q.where, includeExpired: q.includeExpired }, idempotent: true }))
      .count;
  }

  async counters(): Promise<StoreCounters> {
    const { hitRate: _, ...c } = await this.api.request<StatsResponse>('GET', 'stats');
    return c;
  }

  async tables(): Promise<Record<string, TableDefinition>> {
    const { tables } = await this.api.request<TablesResponse>('GET', 'tables');
    for (const [name, d] of Object.entries(tables)) this.definitions.set(name, d);
    return tables;
  }

  async query(table: string, q: TableQuery): Promise<Record<string, unknown>[]> {
    const { rows } = await this.api.request<QueryResponse>('POST', `tables/${encodeURIComponent(table)}/query`, {
      body: { where: q.where, orderBy: q.orderBy, limit: q.limit, offset: q.offset, includeExpired: q.includeExpired },
      idempotent: true,
    });
    return this.revive(table, rows);
  }

  async rowsOf(key: string): Promise<Record<string, TableRow[]>> {
    const { tables } = await this.api.request<RowsResponse>('GET', `${entryPath(key)}/rows`);
    const out: Record<string, TableRow[]> = {};
    for (const [name, rows] of Object.entries(tables)) out[name] = (await this.revive(name, rows)) as TableRow[];
    return out;
  }

  /** Rows of `table` from JSON: timestamps (ISO strings on the wire) as Dates again. */
  private async revive(table: string, rows: Record<string, unknown>[]): Promise<Record<string, unknown>[]> {
    if (rows.length && !this.definitions.has(table)) await this.tables();
    const stamps = Object.entries(this.definitions.get(table)?.columns ?? {})
      .filter(([, type]) => type === 'timestamp')
      .map(([col]) => col);
    for (const row of rows) for (const col of stamps) if (typeof row[col] === 'string') row[col] = new Date(row[col] as string);
    return rows;
  }
}

/**
 * Portable dumps: `cache.export(file)` / `cache.import(file)`. A dump is a plain tar archive,
 * readable with `tar tf dump.tar`: `cacheness-dump.json` (format, tables), then per entry
 * `entries/<n>.json` (human-readable metadata and custom-table rows) and `entries/<n>.bin` (the
 * stored bytes, in the codec the JSON names). Imports verify every payload against its content hash.
 * @module
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { Cache } from './cache.js';
import { type EntryRecord, isExpired } from './entry.js';
import { CachenessError, IntegrityError, StoreError } from './errors.js';
import { validateStringKey } from './key/index.js';
import type { TableDefinition, TableRow } from './tables/schema.js';

/** Format identifier and version written in `cacheness-dump.json`. */
export const DUMP_FORMAT = { format: 'cacheness-dump', version: 1 } as const;

interface DumpHeader {
  format: string;
  version: number;
  exportedAt: string;
  source: string;
  tables: Record<string, TableDefinition>;
}

/** An entry in a dump: the entry model minus store-local fields, with ISO times and its table rows. */
type DumpEntry = Omit<EntryRecord, 'blobId' | 'inline' | 'createdAt' | 'accessedAt' | 'expiresAt' | 'hits'> & {
  createdAt: string;
  expiresAt: string | null;
  tables: Record<string, TableRow[]>;
};

/** Result of an export or import. */
export interface DumpResult {
  /** Entries written (export) or stored (import). */
  entries: number;
  /** Payload bytes written or read. */
  bytes: number;
  /** Entries left out: expired (import), or failing their hash check (export, each reported through onError). */
  skipped?: number;
}

/** Writes every live entry of `cache` to a tar file at `path` (atomically: a temp file renamed into place). */
export async function exportCache(cache: Cache, path: string): Promise<DumpResult> {
  const pack = tar.pack();
  const tmp = `${path}.${process.pid}.partial`;
  const done = pipeline(pack, createWriteStream(tmp));
  const result: DumpResult = { entries: 0, bytes: 0, skipped: 0 };
  const add = (name: string, body: Uint8Array | string) =>
    new Promise<void>((resolve, reject) => pack.entry({ name, mtime: new Date(0) }, Buffer.from(body as Uint8Array), (err) => (err ? reject(err) : resolve())));
  try {
    const header: DumpHeader = { ...DUMP_FORMAT, exportedAt: new Date().toISOString(), source: cache.location, tables: await cache.tables() };
    await add('cacheness-dump.json', `${JSON.stringify(header, null, 2)}\n`);
    for await (const info of cache.entries()) {
      const found = await cache.readStored(info.key);
      if (!found) continue; // deleted meanwhile
      const e = found.entry;
      if (!cache.storedBytesMatch(e, found.stored)) {
        // A damaged entry is left out (and reported) rather than making the whole dump unimportable.
        cache.report(
          new IntegrityError('EINTEGRITY', `Entry '${e.key}' was left out of the export: its stored bytes do not match their hash. Run cache.verify().`, {
            details: { key: e.key },
          }),
        );
        result.skipped = (result.skipped ?? 0) + 1;
        continue;
      }
      const n = String(++result.entries).padStart(8, '0');
      const meta: DumpEntry = {
        key: e.key,
        params: e.params,
        handler: e.handler,
        type: e.type,
        codec: e.codec,
        size: e.size,
        storedSize: e.storedSize,
        contentHash: e.contentHash,
        createdAt: new Date(e.createdAt).toISOString(),
        expiresAt: e.expiresAt === null ? null : new Date(e.expiresAt).toISOString(),
        description: e.description,
        metadata: e.metadata,
        tables: found.tables,
      };
      await add(`entries/${n}.json`, `${JSON.stringify(meta, null, 2)}\n`);
      await add(`entries/${n}.bin`, found.stored);
      result.bytes += found.stored.length;
    }
    pack.finalize();
    await done;
    await rename(tmp, path);
    return result;
  } catch (err) {
    pack.destroy(err as Error);
    await done.catch(() => {});
    await rm(tmp, { force: true });
    if (err instanceof CachenessError) throw err;
    throw new StoreError('EDUMP', `Could not write the dump to ${path}: ${(err as Error).message}.`, { cause: err });
  }
}

/** Reads a dump written by {@link exportCache} into `cache`; existing keys are replaced. */
export async function importCache(cache: Cache, path: string, now: number): Promise<DumpResult> {
  const extract = tar.extract();
  const source = createReadStream(path);
  source.on('error', (err) => extract.destroy(err));
  source.pipe(extract);
  const result: DumpResult = { entries: 0, bytes: 0, skipped: 0 };
  const bad = (why: string, cause?: unknown) => new StoreError('EDUMP', `${path} is not a valid cacheness dump: ${why}.`, cause === undefined ? undefined : { cause });
  let header: DumpHeader | undefined;
  let pending: DumpEntry | undefined;
  try {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks);
      const name = entry.header.name;
      if (!header) {
        if (name !== 'cacheness-dump.json') throw bad('it does not start with cacheness-dump.json');
        header = parseJson(body, name, bad) as DumpHeader;
        if (header.format !== DUMP_FORMAT.format || typeof header.version !== 'number' || header.version > DUMP_FORMAT.version) {
          throw bad(`format ${header.format} version ${header.version} is not supported by this cacheness`);
        }
        if (typeof header.tables !== 'object' || header.tables === null) throw bad('its header has no tables object');
        for (const def of Object.values(header.tables)) await cache.defineTable(def.name, def.columns, { unique: def.unique, index: def.index });
      } else if (name.endsWith('.json')) {
        pending = parseJson(body, name, bad) as DumpEntry;
      } else if (name.endsWith('.bin')) {
        if (!pending) throw bad(`${name} has no metadata before it`);
        const e = pending;
        pending = undefined;
        const record = checkEntry(e, now, (why) => bad(`${name}: ${why}`));
        if (isExpired(record, now)) {
          result.skipped = (result.skipped ?? 0) + 1;
          continue;
        }
        // Every table of the dump gets this entry's rows replaced (an entry without rows there has none).
        const tables = Object.fromEntries(Object.keys(header.tables).map((t) => [t, e.tables?.[t] ?? []]));
        await cache.writeStored(record, body, tables);
        result.entries++;
        result.bytes += body.length;
      }
    }
  } catch (err) {
    if (err instanceof CachenessError) throw err;
    throw bad((err as Error).message, err);
  } finally {
    source.destroy();
    extract.destroy();
  }
  if (!header) throw bad('it is empty');
  return result;
}

function parseJson(body: Buffer, name: string, bad: (why: string, cause?: unknown) => StoreError): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw bad(`${name} is not JSON`, cause);
  }
}

/** Validates one dumped entry into a record; `fail` builds the error. */
function checkEntry(e: DumpEntry, now: number, fail: (why: string) => StoreError): EntryRecord {
  if (typeof e !== 'object' || e === null) throw fail('entry metadata is not an object');
  try {
    validateStringKey(e.key);
  } catch (err) {
    throw fail((err as Error).message);
  }
  const createdAt = Date.parse(e.createdAt);
  const expiresAt = e.expiresAt === null ? null : Date.parse(e.expiresAt);
  if (!Number.isFinite(createdAt) || (expiresAt !== null && !Number.isFinite(expiresAt))) throw fail('createdAt / expiresAt are not ISO dates');
  if (e.metadata !== null && (typeof e.metadata !== 'object' || Array.isArray(e.metadata))) throw fail('metadata is not an object');
  for (const f of ['handler', 'type', 'codec', 'contentHash'] as const) if (typeof e[f] !== 'string') throw fail(`${f} is missing`);
  if (!Number.isSafeInteger(e.size) || !Number.isSafeInteger(e.storedSize)) throw fail('size / storedSize are not integers');
  return {
    key: e.key,
    params: e.params ?? null,
    handler: e.handler,
    type: e.type,
    codec: e.codec,
    size: e.size,
    storedSize: e.storedSize,
    contentHash: e.contentHash,
    blobId: null,
    inline: null,
    createdAt,
    accessedAt: now,
    expiresAt,
    hits: 0,
    description: typeof e.description === 'string' ? e.description : null,
    metadata: e.metadata ?? null,
  };
}

/**
 * Apache Arrow tables (`apache-arrow`, an optional peer dependency), stored in the Arrow IPC file
 * format (Feather v2): the columnar format Arrow itself defines, read as it is by pyarrow
 * (`pyarrow.feather.read_table`), polars (`pl.read_ipc`), DuckDB and every Arrow implementation, with
 * schema, types, nulls and dictionary columns kept exactly. The cache compresses the bytes (lz4 or
 * zstd) like any other payload.
 *
 * The entry's type records the table's rows and schema (see table-info.ts): `arrow.Table{"rows":…}`,
 * reported as `EntryInfo.valueInfo`. Entries written before that have the type `arrow.Table` alone
 * and read the same (the payload did not change, so neither did the version).
 * @module
 */
import { createRequire } from 'node:module';
import { HandlerError } from '../errors.js';
import type { ValueHandler } from './handler.js';
import { describeTable, tableType } from './table-info.js';

interface ArrowModule {
  Table: abstract new (...args: never[]) => unknown;
  tableToIPC(table: unknown, type: 'file'): Uint8Array;
  tableFromIPC(bytes: Uint8Array): unknown;
}

/**
 * apache-arrow ships an ES module and a CommonJS build, and a table made by one cannot be written by
 * the other: both are loaded (lazily), and a table goes to the build its class comes from.
 */
let builds: Promise<{ esm: ArrowModule | null; cjs: ArrowModule | null }> | undefined;

function arrowBuilds() {
  builds ??= (async () => {
    const esm = (await import('apache-arrow').catch(() => null)) as ArrowModule | null;
    let cjs: ArrowModule | null = null;
    try {
      cjs = createRequire(import.meta.url)('apache-arrow') as ArrowModule;
    } catch {}
    return { esm, cjs };
  })();
  return builds;
}

/** The parts of an Arrow table this handler looks at. */
interface ArrowTable {
  schema: { fields: { name: string; type: unknown; nullable: boolean }[] };
  numRows: number;
  batches: unknown[];
}

function isArrowTable(v: unknown): v is ArrowTable {
  if (typeof v !== 'object' || v === null || v.constructor?.name !== 'Table') return false;
  const t = v as { schema?: { fields?: unknown }; numRows?: unknown; batches?: unknown };
  return Array.isArray(t.schema?.fields) && typeof t.numRows === 'number' && Array.isArray(t.batches);
}

const TYPE = 'arrow.Table';

export const arrowHandler: ValueHandler = {
  name: 'arrow',
  version: 1,
  canHandle: isArrowTable,
  async serialize(value) {
    const { esm, cjs } = await arrowBuilds();
    const m = esm && value instanceof esm.Table ? esm : cjs && value instanceof cjs.Table ? cjs : (esm ?? cjs);
    if (!m) throw new HandlerError('EHANDLER', 'Storing an Arrow table needs the apache-arrow package: npm install apache-arrow.');
    const { schema, numRows } = value as ArrowTable;
    const columns = schema.fields.map((f) => ({ name: f.name, type: String(f.type), nullable: f.nullable }));
    return { bytes: m.tableToIPC(value, 'file'), type: tableType(TYPE, numRows, columns) };
  },
  async deserialize(bytes) {
    const { esm, cjs } = await arrowBuilds();
    const m = esm ?? cjs;
    if (!m) throw new HandlerError('ENOHANDLER', 'This entry is an Arrow table: install apache-arrow (npm install apache-arrow) to read it.', { details: { handler: 'arrow' } });
    return m.tableFromIPC(bytes);
  },
  /** `{ rows, columns, schema: [{ name, type, nullable, dictionary? }] }`; types as Arrow prints them (`Int32`, `Dictionary<Int32, Utf8>`). */
  describe(type) {
    const info = describeTable(TYPE, type);
    for (const c of info?.schema ?? []) if (String(c.type).startsWith('Dictionary<')) c.dictionary = true;
    return info;
  },
};

/**
 * polars DataFrames (`nodejs-polars`, an optional peer dependency), stored as polars writes them with
 * `df.writeIPC()`: the Arrow IPC file format, the same standard bytes the `arrow` handler stores, so
 * the payload reads as it is in pyarrow, Python polars (`pl.read_ipc`), DuckDB and apache-arrow
 * (which reads it as a `Table`). Polars' own IPC compression is left off: the cache compresses the
 * payload (lz4 or zstd) like any other, and every Arrow reader reads uncompressed IPC.
 *
 * A DataFrame is recognized by its shape (`[object DataFrame]` with `writeIPC`), so nothing is
 * imported to store one, and nodejs-polars is loaded only to read one back (`pl.readIPC`). The
 * entry's type records the frame's rows and schema (see table-info.ts), with dtypes as polars names
 * them: `polars.DataFrame{"rows":3,"columns":2,"schema":[["id","Int64"],["t","Datetime(ms)"]]}`.
 * @module
 */
import { HandlerError } from '../errors.js';
import type { ValueHandler } from './handler.js';
import { describeTable, tableType } from './table-info.js';

/** The parts of a polars DataType this handler reads: `variant` (`Int64`, `List`) and its parameters. */
interface PolarsDataType {
  variant?: string;
  inner?: unknown[] | null;
}

/** The parts of a polars DataFrame this handler uses. */
interface PolarsDataFrame {
  height: number;
  columns: string[];
  dtypes: PolarsDataType[];
  writeIPC(options: { compression: 'uncompressed' }): Uint8Array;
}

interface PolarsModule {
  readIPC(source: Buffer): unknown;
}

let polars: Promise<PolarsModule | null> | undefined;

/** nodejs-polars (a CommonJS package), loaded on first read; null when it is not installed. */
function loadPolars(): Promise<PolarsModule | null> {
  polars ??= import('nodejs-polars').then(
    (m) => ((m as { default?: unknown }).default ?? m) as PolarsModule,
    () => null,
  );
  return polars;
}

function isDataFrame(v: unknown): v is PolarsDataFrame {
  return (
    typeof v === 'object' &&
    v !== null &&
    Object.prototype.toString.call(v) === '[object DataFrame]' &&
    typeof (v as Partial<PolarsDataFrame>).writeIPC === 'function' &&
    typeof (v as Partial<PolarsDataFrame>).height === 'number'
  );
}

/** A dtype as polars names it: `Int64`, `String`, `Datetime(ms, UTC)`, `List(Float64)`, `Struct(a: Int32, b: String)`. */
function dtypeName(t: PolarsDataType): string {
  if (typeof t?.variant !== 'string') return String(t);
  if (!Array.isArray(t.inner)) return t.variant;
  const parts = t.inner
    .filter((x) => x !== null && x !== undefined && x !== '') // Datetime('ms') has an empty time zone
    .map((x) => {
      const f = x as { name?: unknown; dtype?: PolarsDataType; variant?: unknown };
      if (typeof f.variant === 'string') return dtypeName(f as PolarsDataType);
      if (typeof f.name === 'string' && f.dtype) return `${f.name}: ${dtypeName(f.dtype)}`;
      return String(x);
    });
  return `${t.variant}(${parts.join(', ')})`;
}

const TYPE = 'polars.DataFrame';

export const polarsHandler: ValueHandler = {
  name: 'polars',
  version: 1,
  canHandle: isDataFrame,
  serialize(value) {
    const df = value as PolarsDataFrame;
    const dtypes = df.dtypes; // computed on every access: once here, not once per column
    const columns = df.columns.map((name, i) => ({ name, type: dtypeName(dtypes[i] as PolarsDataType) }));
    return { bytes: df.writeIPC({ compression: 'uncompressed' }), type: tableType(TYPE, df.height, columns) };
  },
  async deserialize(bytes) {
    const pl = await loadPolars();
    if (!pl) {
      throw new HandlerError('ENOHANDLER', 'This entry is a polars DataFrame: install nodejs-polars (npm install nodejs-polars) to read it.', {
        details: { handler: 'polars' },
      });
    }
    // readIPC takes a Buffer (a string would be a path): a view of the same memory, no copy.
    return pl.readIPC(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  },
  /** `{ rows, columns, schema: [{ name, type }] }`; polars has no per-column nullability to record. */
  describe(type) {
    return describeTable(TYPE, type);
  },
};

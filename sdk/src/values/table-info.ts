/**
 * Rows, columns and schema of a table (an Arrow `Table`, a polars `DataFrame`), recorded in the
 * entry's `type` so that `getEntry` and `list` report them without reading the value, locally or from
 * a remote entry.
 *
 * The type is the handler's base name followed by compact JSON: `arrow.Table{"rows":3,"columns":2,
 * "schema":[["id","Int32",0],["label","Dictionary<Int32, Utf8>",1]]}`, one `[name, type]` per column
 * plus `nullable` as 0 or 1 where the library has the notion. JSON, because column names hold any
 * character; tuples rather than objects, so that a wide table's schema takes about half the room.
 * The whole type stays within {@link MAX_TYPE_LENGTH}: a name or type longer than 200 characters is
 * cut (ending in '…'), and a schema that does not fit lists its first columns only (`columns` still
 * counts them all, and the description says `schemaTruncated: true`).
 * @module
 */
import { type JsonObject, MAX_TYPE_LENGTH } from '../entry.js';

/** One column as recorded: its name, its type as the library names it, and whether it may hold nulls when known. */
export interface ColumnInfo {
  name: string;
  type: string;
  nullable?: boolean;
}

/** Longest column name or type recorded, in characters; longer ones are cut. */
const MAX_FIELD = 200;

function cut(s: string): string {
  if (s.length <= MAX_FIELD) return s;
  const chars = Array.from(s.slice(0, MAX_FIELD)); // whole code points: no lone surrogate at the cut
  return `${chars.slice(0, -1).join('')}…`;
}

/** `base` followed by the table's rows, column count and as much of its schema as fits. */
export function tableType(base: string, rows: number, columns: readonly ColumnInfo[]): string {
  let out = `${base}{"rows":${rows},"columns":${columns.length},"schema":[`;
  const end = ']}';
  let first = true;
  for (const c of columns) {
    const tuple: (string | number)[] = [cut(c.name), cut(c.type)];
    if (c.nullable !== undefined) tuple.push(c.nullable ? 1 : 0);
    const item = (first ? '' : ',') + JSON.stringify(tuple);
    if (out.length + item.length + end.length > MAX_TYPE_LENGTH) break;
    out += item;
    first = false;
  }
  return out + end;
}

/**
 * The description recorded by {@link tableType}: `{ rows, columns, schema: [{ name, type, nullable? }],
 * schemaTruncated? }`, or undefined for a type that records none (`base` alone, as written before).
 */
export function describeTable(base: string, type: string): (JsonObject & { schema: JsonObject[] }) | undefined {
  if (!type.startsWith(`${base}{`)) return undefined;
  const o = JSON.parse(type.slice(base.length)) as { rows?: unknown; columns?: unknown; schema?: unknown };
  if (typeof o.rows !== 'number' || typeof o.columns !== 'number' || !Array.isArray(o.schema)) return undefined;
  const schema = (o.schema as unknown[][]).map(([name, t, nullable]) => {
    const c: JsonObject = { name: String(name), type: String(t) };
    if (nullable !== undefined) c.nullable = nullable === 1;
    return c;
  });
  return schema.length < o.columns ? { rows: o.rows, columns: o.columns, schema, schemaTruncated: true } : { rows: o.rows, columns: o.columns, schema };
}

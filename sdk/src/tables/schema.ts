/**
 * Custom metadata tables: definitions, validation, and row encoding to SQL values.
 * @module
 */
import { describeType, TableError } from '../errors.js';

/** Column types of custom tables. */
export type ColumnType = 'text' | 'integer' | 'real' | 'boolean' | 'timestamp' | 'json';
/** Column name → type. */
export type TableColumns = Record<string, ColumnType>;
/** Options of `defineTable`. */
export interface TableOptions {
  /** Columns (or column groups) whose values must be unique across the table. */
  unique?: (string | string[])[];
  /** Columns (or column groups) to index for faster queries. */
  index?: (string | string[])[];
}
/** A validated table definition, as stored. */
export interface TableDefinition {
  name: string;
  columns: TableColumns;
  unique: string[][];
  index: string[][];
}
/** A row as the user gives it: column → value (missing columns are NULL). */
export type TableRow = Record<string, unknown>;

/** Timestamps every store can hold: 0001-01-01 to 9999-12-31. */
const MIN_TIME = Date.parse('0001-01-01T00:00:00.000Z');
const MAX_TIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const COLUMN_TYPES = new Set<ColumnType>(['text', 'integer', 'real', 'boolean', 'timestamp', 'json']);
const NAME = /^[A-Za-z][A-Za-z0-9_]{0,62}$/;
/** Names that custom tables cannot take (internal tables, SQLite's own). */
const RESERVED_TABLES = new Set(['entries']);
/** Column names reserved for the entry link. */
const RESERVED_COLUMNS = new Set(['key']);

/** Checks a table name (letters, digits, underscores; starts with a letter; not reserved). */
export function validateTableName(name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name) || RESERVED_TABLES.has(name.toLowerCase()) || name.toLowerCase().startsWith('sqlite_')) {
    throw new TableError('ETABLE', `Invalid table name ${JSON.stringify(name)}: use 1-63 letters, digits and underscores, starting with a letter (not 'entries' or 'sqlite_*').`);
  }
  return name;
}

/** Validates `defineTable` arguments into a {@link TableDefinition}. */
export function defineTableDefinition(name: string, columns: TableColumns, opts: TableOptions = {}): TableDefinition {
  validateTableName(name);
  if (typeof columns !== 'object' || columns === null || Object.keys(columns).length === 0) {
    throw new TableError('ETABLE', `Table '${name}' needs at least one column, e.g. { accuracy: 'real' }.`);
  }
  const cols: TableColumns = {};
  for (const [col, type] of Object.entries(columns)) {
    if (!NAME.test(col) || RESERVED_COLUMNS.has(col.toLowerCase())) {
      throw new TableError(
        'ECOLUMN',
        `Invalid column name ${JSON.stringify(col)} in table '${name}': use letters, digits and underscores, starting with a letter ('key' is reserved for the entry key).`,
      );
    }
    if (!COLUMN_TYPES.has(type)) {
      throw new TableError('ECOLUMN', `Column '${col}' of table '${name}' has unknown type ${JSON.stringify(type)}: use one of ${[...COLUMN_TYPES].join(', ')}.`);
    }
    cols[col] = type;
  }
  const groups = (list: (string | string[])[] | undefined, what: string) =>
    (list ?? []).map((g) => {
      const group = Array.isArray(g) ? g : [g];
      if (group.length === 0) throw new TableError('ECOLUMN', `${what} column groups of table '${name}' must name at least one column.`);
      for (const c of group) {
        if (!(c in cols)) throw new TableError('ECOLUMN', `${what} column '${c}' is not a column of table '${name}' (columns: ${Object.keys(cols).join(', ')}).`);
      }
      return group;
    });
  return { name, columns: cols, unique: groups(opts.unique, 'Unique'), index: groups(opts.index, 'Index') };
}

/** True when `b` keeps every column of `a` with the same type, and the same constraints. */
export function isCompatibleExtension(a: TableDefinition, b: TableDefinition): boolean {
  for (const [c, t] of Object.entries(a.columns)) if (b.columns[c] !== t) return false;
  return JSON.stringify(a.unique) === JSON.stringify(b.unique);
}

/** SQLite value for one cell. */
export type SqlValue = string | number | bigint | null;

/** A checked cell value in its natural JS form (what every SQL dialect encodes from). */
export type CellValue = string | number | boolean | Date | { json: string } | null;

/**
 * Checks a user value for column `col` of `def` and normalizes it: integers within ±2^53, timestamps as
 * `Date`, JSON as its serialized text.
 */
export function checkCell(def: TableDefinition, col: string, value: unknown): CellValue {
  const type = def.columns[col] as ColumnType;
  const encoded = encodeCell(def, col, value);
  if (encoded === null) return null;
  switch (type) {
    case 'boolean':
      return encoded === 1;
    case 'timestamp':
      return new Date(encoded as number);
    case 'json':
      return { json: encoded as string };
    default:
      return encoded as string | number;
  }
}

/** Encodes a user value for column `col` of `def` as SQLite stores it, checking its type. */
export function encodeCell(def: TableDefinition, col: string, value: unknown): SqlValue {
  const type = def.columns[col];
  if (!type)
    throw new TableError('ECOLUMN', `Table '${def.name}' has no column '${col}' (columns: ${Object.keys(def.columns).join(', ')}).`, { details: { table: def.name, column: col } });
  if (value === null || value === undefined) return null;
  const bad = (want: string): never => {
    throw new TableError('ECOLUMN', `Column '${def.name}.${col}' is ${type}: expected ${want}, got ${describeType(value)} ${safePreview(value)}.`, {
      details: { table: def.name, column: col },
    });
  };
  switch (type) {
    case 'text':
      return typeof value === 'string' ? value : bad('a string');
    case 'integer':
      if (typeof value === 'bigint')
        return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
          ? Number(value)
          : bad('an integer within ±2^53 (larger ones would not read back exactly)');
      return typeof value === 'number' && Number.isInteger(value) ? value : bad('an integer');
    case 'real':
      return typeof value === 'number' && !Number.isNaN(value) ? value : bad('a number');
    case 'boolean':
      return typeof value === 'boolean' ? (value ? 1 : 0) : bad('a boolean');
    case 'timestamp': {
      const ms = value instanceof Date ? value.getTime() : typeof value === 'number' ? value : typeof value === 'string' ? Date.parse(value) : Number.NaN;
      return Number.isFinite(ms) && ms >= MIN_TIME && ms <= MAX_TIME ? ms : bad('a Date, milliseconds since the epoch, or an ISO-8601 string, in the years 1 to 9999');
    }
    case 'json':
      try {
        return JSON.stringify(value);
      } catch {
        return bad('a JSON-serializable value');
      }
  }
}

/** Decodes a SQLite cell back to the column's JS type. */
export function decodeCell(type: ColumnType, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  switch (type) {
    case 'boolean':
      return value === 1 || value === 1n;
    case 'timestamp':
      return new Date(Number(value));
    case 'json':
      return JSON.parse(String(value));
    default:
      return value;
  }
}

/** Encodes a full row (missing columns are NULL; unknown columns are an error). */
export function encodeRow(def: TableDefinition, row: TableRow): SqlValue[] {
  if (typeof row !== 'object' || row === null || Array.isArray(row)) {
    throw new TableError('ECOLUMN', `A row of table '${def.name}' must be an object of column values; got ${describeType(row)}.`);
  }
  for (const col of Object.keys(row)) if (!(col in def.columns)) encodeCell(def, col, undefined);
  return Object.keys(def.columns).map((col) => encodeCell(def, col, row[col]));
}

function safePreview(v: unknown): string {
  try {
    const s = typeof v === 'bigint' ? `${v}n` : JSON.stringify(v);
    return s === undefined ? '' : `(${s.length > 40 ? `${s.slice(0, 40)}…` : s})`;
  } catch {
    return '';
  }
}

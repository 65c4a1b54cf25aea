/**
 * The where language shared by `query()` (custom tables) and `list()` (entries): equality,
 * `eq, ne, gt, gte, lt, lte, in, like, isNull`, and `and` / `or`, always compiled to
 * parameterized SQL. Field names are resolved by the caller, so nothing user-given is ever
 * spliced into SQL text.
 * @module
 */
import { describeType, TableError } from '../errors.js';
import type { SqlValue } from './schema.js';

/** A value compared against. */
export type Scalar = string | number | bigint | boolean | Date | null;
/** Operators of one field condition; several in one object are ANDed. */
export interface Operators {
  eq?: Scalar;
  ne?: Scalar;
  gt?: Scalar;
  gte?: Scalar;
  lt?: Scalar;
  lte?: Scalar;
  in?: Scalar[];
  like?: string;
  isNull?: boolean;
}
/** A field condition: a scalar (equality) or operators. */
export type Condition = Scalar | Operators;
/** A where clause: field conditions ANDed, plus `and` / `or` groups. */
export type Where = { and?: Where[]; or?: Where[] } & { [field: string]: Condition | Where | Where[] | undefined };

/** How a field name maps to SQL. */
export interface FieldRef {
  /** SQL expression for the field (built by the caller from validated names only). */
  sql: string;
  /** Converts a compared value to its bound SQL value. */
  bind(value: Scalar): SqlValue;
  /** Extra bound parameters that `sql` itself uses (e.g. a JSON path), placed before the compared value. */
  params?: SqlValue[];
  /** How a compared value is written (default `?`; e.g. `?::jsonb` in Postgres). */
  placeholder?: string;
  /** The field as text, for LIKE (default: `sql`). */
  likeSql?: string;
  /**
   * For `field = value`: a condition implied by the equality that an index can answer (e.g. JSONB
   * containment for a GIN index). It is ANDed before the exact comparison, which still decides.
   */
  indexHint?(value: Scalar): Compiled;
}

/** Resolves a field (or a nested where object, for JSON fields) to SQL. */
export interface FieldResolver {
  /** A plain field; throw `ECOLUMN` for unknown names. */
  field(name: string): FieldRef;
  /**
   * A field whose condition is itself an object of sub-fields (`params: { model: 'x' }`):
   * returns the resolver for those sub-fields, or undefined when `name` is a plain field.
   */
  nested?(name: string): FieldResolver | undefined;
}

/** Compiled SQL fragment with its parameters. */
export interface Compiled {
  sql: string;
  params: SqlValue[];
}

const OPS: Record<string, string> = { eq: '=', ne: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' };
const OP_NAMES = new Set([...Object.keys(OPS), 'in', 'like', 'isNull']);

/** Compiles `where` to a SQL boolean expression (`TRUE` when empty; portable to SQLite and Postgres). */
export function compileWhere(where: Where | undefined, resolver: FieldResolver): Compiled {
  if (where === undefined) return { sql: 'TRUE', params: [] };
  if (typeof where !== 'object' || where === null || Array.isArray(where)) {
    throw new TableError('EQUERY', `A where clause must be an object like { column: value }; got ${describeType(where)}.`);
  }
  const parts: string[] = [];
  const params: SqlValue[] = [];
  const push = (c: Compiled) => {
    parts.push(c.sql);
    params.push(...c.params);
  };
  for (const [name, cond] of Object.entries(where)) {
    if (cond === undefined) continue;
    if (name === 'and' || name === 'or') {
      if (!Array.isArray(cond) || cond.length === 0) throw new TableError('EQUERY', `'${name}' takes a non-empty array of where clauses.`);
      const subs = cond.map((w) => compileWhere(w as Where, resolver));
      push({ sql: `(${subs.map((s) => s.sql).join(name === 'and' ? ' AND ' : ' OR ')})`, params: subs.flatMap((s) => s.params) });
      continue;
    }
    const nested = resolver.nested?.(name);
    if (nested) {
      push(compileWhere(cond as Where, nested));
      continue;
    }
    push(compileCondition(resolver.field(name), name, cond as Condition));
  }
  return parts.length ? { sql: parts.join(' AND '), params } : { sql: 'TRUE', params: [] };
}

function isScalar(v: unknown): v is Scalar {
  return v === null || v instanceof Date || ['string', 'number', 'bigint', 'boolean'].includes(typeof v);
}

function compileCondition(ref: FieldRef, name: string, cond: Condition): Compiled {
  const pre = ref.params ?? [];
  const ph = ref.placeholder ?? '?';
  if (isScalar(cond)) {
    if (cond === null) return { sql: `${ref.sql} IS NULL`, params: [...pre] };
    const hint = ref.indexHint?.(cond);
    if (hint) return { sql: `(${hint.sql} AND ${ref.sql} = ${ph})`, params: [...hint.params, ...pre, ref.bind(cond)] };
    return { sql: `${ref.sql} = ${ph}`, params: [...pre, ref.bind(cond)] };
  }
  if (typeof cond !== 'object' || Array.isArray(cond)) {
    throw new TableError('EQUERY', `Condition on '${name}' must be a value or an object of operators (${[...OP_NAMES].join(', ')}); got ${describeType(cond)}.`);
  }
  const parts: string[] = [];
  const params: SqlValue[] = [];
  for (const [op, val] of Object.entries(cond)) {
    if (val === undefined) continue;
    if (!OP_NAMES.has(op)) throw new TableError('EQUERY', `Unknown operator '${op}' on '${name}': use ${[...OP_NAMES].join(', ')}.`);
    if (op === 'isNull') {
      if (typeof val !== 'boolean') throw new TableError('EQUERY', `'isNull' on '${name}' takes true or false.`);
      parts.push(`${ref.sql} IS ${val ? '' : 'NOT '}NULL`);
      params.push(...pre);
    } else if (op === 'in') {
      if (!Array.isArray(val) || !val.every(isScalar)) throw new TableError('EQUERY', `'in' on '${name}' takes an array of values.`);
      if (val.length === 0) {
        parts.push('FALSE');
        continue;
      }
      parts.push(`${ref.sql} IN (${val.map(() => ph).join(', ')})`);
      params.push(...pre, ...val.map((v) => ref.bind(v)));
    } else if (op === 'like') {
      if (typeof val !== 'string') throw new TableError('EQUERY', `'like' on '${name}' takes a string pattern (% and _ wildcards).`);
      parts.push(`${ref.likeSql ?? ref.sql} LIKE ?`);
      params.push(...pre, val);
    } else {
      if (!isScalar(val) || val === null) throw new TableError('EQUERY', `'${op}' on '${name}' takes a non-null value; use isNull for nulls.`);
      parts.push(`${ref.sql} ${OPS[op]} ${ph}`);
      params.push(...pre, ref.bind(val));
    }
  }
  if (parts.length === 0) throw new TableError('EQUERY', `Condition on '${name}' has no operator.`);
  return { sql: parts.length === 1 ? (parts[0] as string) : `(${parts.join(' AND ')})`, params };
}

/** `orderBy: { col: 'asc' | 'desc' }` or an array of those. */
export type OrderBy = Record<string, 'asc' | 'desc'> | Record<string, 'asc' | 'desc'>[];

/** Compiles an ORDER BY list (empty string when none). */
export function compileOrderBy(orderBy: OrderBy | undefined, resolver: FieldResolver): Compiled {
  if (!orderBy) return { sql: '', params: [] };
  const list = Array.isArray(orderBy) ? orderBy : [orderBy];
  const parts: string[] = [];
  const params: SqlValue[] = [];
  for (const item of list) {
    for (const [name, dir] of Object.entries(item)) {
      if (dir !== 'asc' && dir !== 'desc') throw new TableError('EQUERY', `orderBy '${name}' must be 'asc' or 'desc'.`);
      const ref = resolver.field(name);
      parts.push(`${ref.sql} ${dir === 'asc' ? 'ASC' : 'DESC'}`);
      params.push(...(ref.params ?? []));
    }
  }
  return { sql: parts.length ? ` ORDER BY ${parts.join(', ')}` : '', params };
}

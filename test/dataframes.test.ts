/**
 * Tables: Apache Arrow `Table`s and nodejs-polars `DataFrame`s through real caches (SQLite + files,
 * and memory), edge cases included (unicode column names, null-heavy and dictionary columns, zero
 * rows, wide tables), and the rows, columns and schema that `put`, `getEntry` and `list` report for
 * them without reading the value.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import { type Cache, createCache, type EntryInfo, listHandlers, MAX_TYPE_LENGTH, registerHandler, type SerializedBytes, type ValueHandler } from 'cacheness';
import { fromWireEntry, toWireEntry } from 'cacheness/model';
import pl from 'nodejs-polars';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { arrowHandler } from '../sdk/src/values/arrow.js';
import { describeValue, resetHandlers } from '../sdk/src/values/index.js';
import { polarsHandler } from '../sdk/src/values/polars.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cacheness-frames-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const STORES = [
  ['sqlite', { store: 'sqlite' as const }],
  ['memory', { store: 'memory' as const }],
] as const;

/** Column names no store or JSON encoding may mangle. */
const UNICODE_NAMES = ['température °C', '名前', 'emoji 🧪', 'עברית', 'quote " comma , brace {} [', 'back\\slash', 'tab\tnewline\n', 'Zero\u200bwidth'];

/** A field as the description reports it, from the table's own schema. */
const arrowField = (f: arrow.Field) => ({
  name: f.name,
  type: String(f.type),
  nullable: f.nullable,
  ...(arrow.DataType.isDictionary(f.type) ? { dictionary: true } : {}),
});

/** The values of every column, as plain arrays (dictionary and nested values decoded). */
const columnsOf = (t: arrow.Table) => Object.fromEntries(t.schema.fields.map((f) => [f.name, JSON.parse(JSON.stringify(t.getChild(f.name)?.toArray() ?? null, big))]));
const big = (_k: string, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v);

/** The column names an entry's description lists. */
const columnNames = (e: EntryInfo | undefined) => ((e?.valueInfo?.schema ?? []) as { name: string }[]).map((c) => c.name);

describe.each(STORES)('Apache Arrow tables (%s)', (_label, options) => {
  let cache: Cache;
  beforeAll(async () => {
    cache = createCache({ ...options, dir: await mkdtemp(join(dir, 'arrow-')) });
  });
  afterAll(() => cache.close());

  /** Stores `table` under `key`, reads it back, and checks schema, rows and values survived. */
  async function roundTrip(table: arrow.Table, key: string): Promise<{ back: arrow.Table; put: EntryInfo }> {
    const put = await cache.put(table, key);
    const back = (await cache.get(key)) as arrow.Table;
    expect(back).toBeInstanceOf(arrow.Table);
    expect(back.numRows).toBe(table.numRows);
    expect(back.schema.fields.map(arrowField)).toEqual(table.schema.fields.map(arrowField));
    expect(columnsOf(back)).toEqual(columnsOf(table));
    return { back, put };
  }

  it('reports rows, columns and schema from put, getEntry and list', async () => {
    const table = new arrow.Table({
      id: arrow.vectorFromArray([1, 2, 3], new arrow.Int32()),
      score: arrow.vectorFromArray([0.5, null, 2.5], new arrow.Float64()),
      label: arrow.vectorFromArray(['a', 'b', 'a'], new arrow.Dictionary(new arrow.Utf8(), new arrow.Int16())),
      at: arrow.vectorFromArray([new Date(0), null, new Date(86_400_000)], new arrow.TimestampMillisecond()),
      tags: arrow.vectorFromArray([[1, 2], [], null], new arrow.List(new arrow.Field('item', new arrow.Int32(), true))),
      point: arrow.vectorFromArray(
        [{ x: 1, y: 'p' }, null, { x: 3, y: null }],
        new arrow.Struct([new arrow.Field('x', new arrow.Float64()), new arrow.Field('y', new arrow.Utf8(), true)]),
      ),
    });
    const { put } = await roundTrip(table, 'described');
    const expected = { rows: 3, columns: 6, schema: table.schema.fields.map(arrowField) };
    expect(expected.schema.map((c) => c.type)).toEqual(['Int32', 'Float64', 'Dictionary<Int16, Utf8>', 'Timestamp<MILLISECOND>', 'List<Int32>', 'Struct<{x:Float64, y:Utf8}>']);
    expect(put.valueInfo).toEqual(expected);
    expect((await cache.getEntry('described'))?.valueInfo).toEqual(expected);
    expect((await cache.list({ prefix: 'described' })).entries[0]?.valueInfo).toEqual(expected);
    // Arrow entries can be found by handler, or by type with LIKE (the type begins with arrow.Table).
    expect((await cache.list({ where: { type: { like: 'arrow.Table%' }, key: 'described' } })).entries).toHaveLength(1);
  });

  it('round-trips unicode and punctuation in column names, and reports them as they are', async () => {
    const table = arrow.tableFromArrays(Object.fromEntries(UNICODE_NAMES.map((name, i) => [name, Float64Array.from([i, i + 0.5])])));
    const { put } = await roundTrip(table, 'unicode');
    expect(columnNames(put)).toEqual(UNICODE_NAMES);
    expect((await cache.getEntry('unicode'))?.valueInfo).toEqual(put.valueInfo);
  });

  it('round-trips null-heavy and all-null columns with their null counts', async () => {
    const n = 20_000;
    const table = new arrow.Table({
      sparse: arrow.vectorFromArray(
        Array.from({ length: n }, (_, i) => (i % 1000 === 0 ? i / 7 : null)),
        new arrow.Float64(),
      ),
      text: arrow.vectorFromArray(
        Array.from({ length: n }, (_, i) => (i % 997 === 0 ? `row ${i}` : null)),
        new arrow.Utf8(),
      ),
      empty: arrow.vectorFromArray(new Array<null>(n).fill(null), new arrow.Int64()),
      nothing: arrow.vectorFromArray(new Array<null>(n).fill(null), new arrow.Null()),
    });
    const { back } = await roundTrip(table, 'nulls');
    for (const name of ['sparse', 'text', 'empty', 'nothing'] as const) expect(back.getChild(name)?.nullCount, name).toBe(table.getChild(name)?.nullCount);
    expect(back.getChild('empty')?.nullCount).toBe(n);
    expect((await cache.getEntry('nulls'))?.valueInfo).toMatchObject({ rows: n, columns: 4, schema: [{ type: 'Float64' }, { type: 'Utf8' }, { type: 'Int64' }, { type: 'Null' }] });
  });

  it('round-trips dictionary columns with their index type, dictionary and nulls', async () => {
    const values = Array.from({ length: 5000 }, (_, i) => (i % 11 === 0 ? null : (['train', 'test', 'val', 'ünïcode'][i % 4] as string)));
    const table = new arrow.Table({
      int8: arrow.vectorFromArray(values, new arrow.Dictionary(new arrow.Utf8(), new arrow.Int8())),
      int32: arrow.vectorFromArray(values, new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32())),
      floats: arrow.vectorFromArray(
        values.map((v) => (v === null ? null : v.length * 1.5)),
        new arrow.Dictionary(new arrow.Float64(), new arrow.Uint16()),
      ),
    });
    const { back } = await roundTrip(table, 'dictionaries');
    for (const f of back.schema.fields) expect(arrow.DataType.isDictionary(f.type), f.name).toBe(true);
    expect(back.getChild('int8')?.data[0]?.dictionary?.toArray()).toEqual(table.getChild('int8')?.data[0]?.dictionary?.toArray());
    expect((await cache.getEntry('dictionaries'))?.valueInfo?.schema).toEqual([
      { name: 'int8', type: 'Dictionary<Int8, Utf8>', nullable: true, dictionary: true },
      { name: 'int32', type: 'Dictionary<Int32, Utf8>', nullable: true, dictionary: true },
      { name: 'floats', type: 'Dictionary<Uint16, Float64>', nullable: true, dictionary: true },
    ]);
  });

  it('round-trips zero-row tables with their schema', async () => {
    const table = new arrow.Table({
      id: arrow.vectorFromArray([], new arrow.Int32()),
      label: arrow.vectorFromArray([], new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32())),
      at: arrow.vectorFromArray([], new arrow.TimestampMicrosecond()),
    });
    await roundTrip(table, 'zero-rows');
    expect((await cache.getEntry('zero-rows'))?.valueInfo).toEqual({ rows: 0, columns: 3, schema: table.schema.fields.map(arrowField) });
    await roundTrip(new arrow.Table(), 'no-columns');
    expect((await cache.getEntry('no-columns'))?.valueInfo).toEqual({ rows: 0, columns: 0, schema: [] });
  });

  it('round-trips wide tables, recording as much of the schema as fits and saying so', async () => {
    const width = 3000;
    const table = arrow.tableFromArrays(Object.fromEntries(Array.from({ length: width }, (_, i) => [`feature_${i}`, Float32Array.from([i, -i])])));
    const { put } = await roundTrip(table, 'wide');
    const entry = await cache.getEntry('wide');
    expect(entry?.type.length).toBeLessThanOrEqual(MAX_TYPE_LENGTH);
    const info = entry?.valueInfo as { rows: number; columns: number; schema: { name: string }[]; schemaTruncated?: boolean };
    expect(info).toMatchObject({ rows: 2, columns: width, schemaTruncated: true });
    expect(info.schema.length).toBeGreaterThan(50);
    expect(info.schema.length).toBeLessThan(width);
    expect(info.schema.map((c) => c.name)).toEqual(table.schema.fields.slice(0, info.schema.length).map((f) => f.name)); // the first columns, in order
    expect(put.valueInfo).toEqual(info);
  });

  it('cuts very long column names in the description only', async () => {
    const long = `${'x'.repeat(300)}🧪`;
    const table = arrow.tableFromArrays({ [long]: Int32Array.from([1]) });
    await roundTrip(table, 'long-name'); // the table itself keeps the name whole
    expect(columnNames(await cache.getEntry('long-name'))).toEqual([`${'x'.repeat(199)}…`]);
  });
});

describe('entry descriptions', () => {
  afterEach(() => resetHandlers());

  it('are absent for Arrow entries written before they were recorded, which still read', async () => {
    // The arrow handler as it was: the same payload, with the type 'arrow.Table' alone.
    const before: ValueHandler = { ...arrowHandler, serialize: async (v, c) => ({ ...(await arrowHandler.serialize(v, c)), type: 'arrow.Table' }) };
    const cache = createCache({ store: 'memory' });
    try {
      const table = arrow.tableFromArrays({ x: Float64Array.from([1, 2, 3]) });
      registerHandler(before);
      expect((await cache.put(table, 'old')).type).toBe('arrow.Table');
      resetHandlers();
      const entry = await cache.getEntry('old');
      expect(entry).toMatchObject({ handler: 'arrow@1', type: 'arrow.Table' });
      expect(entry).not.toHaveProperty('valueInfo');
      expect(((await cache.get('old')) as arrow.Table).getChild('x')?.toArray()).toEqual(Float64Array.from([1, 2, 3]));
    } finally {
      await cache.close();
    }
  });

  it('come from the entry alone (a wire entry serves), and never fail a listing', async () => {
    const cache = createCache({ store: 'memory' });
    try {
      const info = await cache.put(arrow.tableFromArrays({ x: Int32Array.from([1]) }), 't');
      const { valueInfo, ...wire } = fromWireEntry(JSON.parse(JSON.stringify(toWireEntry(info))));
      expect(describeValue(wire)).toEqual(valueInfo);
      expect(describeValue({ ...wire, type: 'arrow.Table{"rows":' })).toBeUndefined(); // garbled
      expect(describeValue({ ...wire, handler: 'arrow@2' })).toBeUndefined(); // newer than the registered handler
      expect(describeValue({ ...wire, handler: 'unknown@1' })).toBeUndefined();
      expect(describeValue({ handler: 'structured@1', type: 'object', size: 10 })).toBeUndefined(); // nothing to tell
      // A handler whose describe throws leaves the entry listed, without a description.
      registerHandler({ ...arrowHandler, describe: () => JSON.parse('{') });
      expect((await cache.getEntry('t'))?.valueInfo).toBeUndefined();
      expect((await cache.list()).entries).toHaveLength(1);
    } finally {
      await cache.close();
    }
  });
});

/** A frame with one column of each dtype the handler is tested with, nulls in every nullable one. */
function everyDtype(): pl.DataFrame {
  return pl.DataFrame([
    pl.Series('i8', [1, -2, null], pl.Int8),
    pl.Series('i16', [300, null, -300], pl.Int16),
    pl.Series('i32', [null, 70_000, -70_000], pl.Int32),
    pl.Series('i64', [2 ** 40, -(2 ** 40), null], pl.Int64),
    pl.Series('u8', [0, 255, null], pl.UInt8),
    pl.Series('u32', [4_000_000_000, null, 1], pl.UInt32),
    pl.Series('f32', [1.5, null, -0.25], pl.Float32),
    pl.Series('f64', [Math.PI, Number.NaN, null], pl.Float64),
    pl.Series('str', ['a', 'ünïcode 🧪', null], pl.String),
    pl.Series('bool', [true, false, null], pl.Bool),
    pl.Series('date', [new Date('2024-01-02'), null, new Date('1969-12-31')], pl.Date),
    pl.Series('datetime', [new Date('2024-01-02T03:04:05.678Z'), null, new Date(0)], pl.Datetime('ms')),
    pl.Series('datetime_us_utc', [new Date('2024-06-01T00:00:00Z'), new Date(1), null], pl.Datetime('us', 'UTC')),
    pl.Series('cat', ['x', 'y', null], pl.Categorical),
    pl.Series('list', [[1, 2], [], null], pl.List(pl.Int32)),
    pl.Series('struct', [
      { a: 1, b: 'p' },
      { a: 2, b: null },
      { a: null, b: 'r' },
    ]),
  ]);
}

describe.each(STORES)('polars DataFrames (%s)', (_label, options) => {
  let cache: Cache;
  beforeAll(async () => {
    cache = createCache({ ...options, dir: await mkdtemp(join(dir, 'polars-')) });
  });
  afterAll(() => cache.close());

  /** Stores `df` under `key`, reads it back, and checks shape, dtypes and values (nulls equal) survived. */
  async function roundTrip(df: pl.DataFrame, key: string): Promise<{ back: pl.DataFrame; put: EntryInfo }> {
    const put = await cache.put(df, key);
    expect(put.handler).toBe('polars@1');
    const back = (await cache.get(key)) as pl.DataFrame;
    expect(back.shape).toEqual(df.shape);
    expect(back.columns).toEqual(df.columns);
    expect(back.dtypes.map(String)).toEqual(df.dtypes.map(String));
    expect(back.frameEqual(df, true)).toBe(true);
    return { back, put };
  }

  it('round-trips every dtype with nulls, and reports rows, columns and dtypes', async () => {
    const df = everyDtype();
    const { back, put } = await roundTrip(df, 'dtypes');
    expect(back.getColumn('f64').toArray()).toEqual([Math.PI, Number.NaN, null]); // NaN stays NaN, null stays null
    expect(back.getColumn('i64').toArray()).toEqual(df.getColumn('i64').toArray());
    const expected = {
      rows: 3,
      columns: 16,
      schema: [
        { name: 'i8', type: 'Int8' },
        { name: 'i16', type: 'Int16' },
        { name: 'i32', type: 'Int32' },
        { name: 'i64', type: 'Int64' },
        { name: 'u8', type: 'UInt8' },
        { name: 'u32', type: 'UInt32' },
        { name: 'f32', type: 'Float32' },
        { name: 'f64', type: 'Float64' },
        { name: 'str', type: 'String' },
        { name: 'bool', type: 'Bool' },
        { name: 'date', type: 'Date' },
        { name: 'datetime', type: 'Datetime(ms)' },
        { name: 'datetime_us_utc', type: 'Datetime(us, UTC)' },
        { name: 'cat', type: 'Categorical' },
        { name: 'list', type: 'List(Int32)' },
        { name: 'struct', type: 'Struct(a: Float64, b: String)' },
      ],
    };
    expect(put.valueInfo).toEqual(expected);
    expect((await cache.getEntry('dtypes'))?.valueInfo).toEqual(expected);
    expect((await cache.list({ prefix: 'dtypes' })).entries[0]?.valueInfo).toEqual(expected);
    expect(put.type.startsWith('polars.DataFrame{')).toBe(true);
  });

  it('round-trips unicode column names and null-heavy columns', async () => {
    const n = 20_000;
    const df = pl.DataFrame([...UNICODE_NAMES.map((name, i) => pl.Series(name, [i, null, i * 2])), pl.Series('pad', [0, 0, 0])]);
    const { put } = await roundTrip(df, 'unicode');
    expect(columnNames(put)).toEqual([...UNICODE_NAMES, 'pad']);
    const sparse = pl.DataFrame([
      pl.Series(
        'sparse',
        Array.from({ length: n }, (_, i) => (i % 1000 === 0 ? i : null)),
        pl.Float64,
      ),
      pl.Series(
        'text',
        Array.from({ length: n }, (_, i) => (i % 997 === 0 ? `row ${i}` : null)),
        pl.String,
      ),
      pl.Series('all_null', new Array<null>(n).fill(null), pl.Int32),
    ]);
    const { back } = await roundTrip(sparse, 'sparse');
    expect(back.nullCount().row(0)).toEqual(sparse.nullCount().row(0));
    expect(back.getColumn('all_null').nullCount()).toBe(n);
  });

  it('round-trips empty frames: zero rows with a schema, and no columns at all', async () => {
    const zero = everyDtype().head(0);
    expect(zero.height).toBe(0);
    await roundTrip(zero, 'zero-rows');
    expect((await cache.getEntry('zero-rows'))?.valueInfo).toMatchObject({ rows: 0, columns: 16, schema: expect.arrayContaining([{ name: 'cat', type: 'Categorical' }]) });
    await roundTrip(pl.DataFrame({}), 'no-columns');
    expect((await cache.getEntry('no-columns'))?.valueInfo).toEqual({ rows: 0, columns: 0, schema: [] });
  });

  it('round-trips wide frames, recording as much of the schema as fits', async () => {
    const width = 1000;
    const df = pl.DataFrame(Object.fromEntries(Array.from({ length: width }, (_, i) => [`c${i}`, [i, i + 1]])));
    await roundTrip(df, 'wide');
    const entry = await cache.getEntry('wide');
    expect(entry?.type.length).toBeLessThanOrEqual(MAX_TYPE_LENGTH);
    expect(entry?.valueInfo).toMatchObject({ rows: 2, columns: width, schemaTruncated: true, schema: expect.arrayContaining([{ name: 'c0', type: 'Float64' }]) });
  });
});

describe('polars and Arrow together', () => {
  it('store the same standard bytes: an Arrow IPC file that each library reads', async () => {
    const df = everyDtype();
    const { bytes } = (await polarsHandler.serialize(df)) as SerializedBytes;
    expect(Buffer.from(bytes.subarray(0, 6)).toString()).toBe('ARROW1'); // the IPC file magic
    const table = (await arrowHandler.deserialize(bytes, 'arrow.Table', 1)) as arrow.Table; // what apache-arrow reads of a polars entry
    expect(table.numRows).toBe(3);
    expect(table.schema.fields.map((f) => f.name)).toEqual(df.columns);
    expect(table.getChild('str')?.toArray()).toEqual(['a', 'ünïcode 🧪', null]);
    const fromArrow = ((await arrowHandler.serialize(arrow.tableFromArrays({ id: Int32Array.from([1, 2]), label: ['a', null] }))) as SerializedBytes).bytes;
    const back = (await polarsHandler.deserialize(fromArrow, 'polars.DataFrame', 1)) as pl.DataFrame; // and the other way
    expect(back.getColumn('label').toArray()).toEqual(['a', null]);
  });

  it('each go to their own handler, after arrow in the built-in order', async () => {
    expect(listHandlers().map((h) => h.name)).toEqual(['bytes', 'ndarray', 'arrow', 'polars', 'structured']);
    const cache = createCache({ store: 'memory' });
    try {
      expect((await cache.put(pl.DataFrame({ a: [1] }), 'df')).handler).toBe('polars@1');
      expect((await cache.put(arrow.tableFromArrays({ a: Int32Array.from([1]) }), 'table')).handler).toBe('arrow@1');
      expect(await cache.get('df')).toBeInstanceOf(Object);
      expect(Object.prototype.toString.call(await cache.get('df'))).toBe('[object DataFrame]');
    } finally {
      await cache.close();
    }
  });
});

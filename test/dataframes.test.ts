/**
 * Tables: Apache Arrow `Table`s through real caches (SQLite + files, and memory), edge cases
 * included (unicode column names, null-heavy and dictionary columns, zero rows, wide tables), and the
 * rows, columns and schema that `put`, `getEntry` and `list` report for them without reading the value.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import { type Cache, createCache, type EntryInfo, MAX_TYPE_LENGTH, registerHandler, type ValueHandler } from 'cacheness';
import { fromWireEntry, toWireEntry } from 'cacheness/model';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { arrowHandler } from '../sdk/src/values/arrow.js';
import { describeValue, resetHandlers } from '../sdk/src/values/index.js';

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

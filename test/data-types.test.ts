/**
 * Typed arrays, n-d arrays and the handler registry, through real caches (SQLite + files and memory).
 */
import { randomFillSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import { type Cache, createCache, listHandlers, registerHandler, unregisterHandler, type ValueHandler } from 'cacheness';
import ndarray, { type NdArray as NdArrayPkg } from 'ndarray';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { resetHandlers, shuffle, unshuffle } from '../sdk/src/values/index.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cacheness-types-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const CLASSES = [Int8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array] as const;

function sample(cls: (typeof CLASSES)[number], n: number) {
  const a = new cls(n);
  for (let i = 0; i < n; i++) {
    const v = Math.sin(i / 10) * 100;
    (a as unknown as (number | bigint)[])[i] = a instanceof BigInt64Array || a instanceof BigUint64Array ? BigInt(Math.abs(Math.round(v)) * 1_000_003 + i) : v;
  }
  return a;
}

describe.each([
  ['sqlite, lz4', { store: 'sqlite' as const }],
  ['sqlite, no compression', { store: 'sqlite' as const, compression: { codec: 'none' as const } }],
  ['memory', { store: 'memory' as const }],
])('typed and n-d arrays (%s)', (_label, options) => {
  let cache: Cache;
  beforeAll(async () => {
    cache = createCache({ ...options, dir: await mkdtemp(join(dir, 'c-')) });
  });
  afterAll(() => cache.close());

  it.each(CLASSES.map((c) => [c.name, c] as const))('round-trips %s as the same class over one buffer, byte-exact', async (_name, cls) => {
    for (const n of [0, 1, 3, 5000]) {
      const a = sample(cls, n);
      await cache.put(a, { t: cls.name, n });
      const back = await cache.get({ t: cls.name, n });
      expect(back).toBeInstanceOf(cls);
      expect(back).toEqual(a);
      expect(await cache.getEntry({ t: cls.name, n })).toMatchObject({ handler: 'ndarray@1', valueInfo: { dtype: cls.name, shape: [n] } });
    }
  });

  it('stores only the bytes of a view into a larger buffer', async () => {
    const big = sample(Float64Array, 1000);
    const view = big.subarray(17, 517);
    await cache.put(view, 'view');
    const back = (await cache.get('view')) as Float64Array;
    expect(back.length).toBe(500);
    expect(back).toEqual(view);
    const entry = await cache.getEntry('view');
    expect(entry?.size).toBe(500 * 8); // the view's elements, not the 8,000-byte buffer behind it
  });

  it('round-trips { data, shape } n-d arrays, including empty dimensions', async () => {
    const m = { data: sample(Float32Array, 6), shape: [2, 3] };
    await cache.put(m, 'matrix');
    const back = (await cache.get('matrix')) as { data: Float32Array; shape: number[] };
    expect(back.shape).toEqual([2, 3]);
    expect(back.data).toBeInstanceOf(Float32Array);
    expect(back.data).toEqual(m.data);
    expect(await cache.getEntry('matrix')).toMatchObject({ type: 'ndarray<Float32Array>[2,3]', valueInfo: { dtype: 'Float32Array', shape: [2, 3] } });
    await cache.put({ data: new Int32Array(0), shape: [4, 0, 2] }, 'empty');
    expect(await cache.get('empty')).toEqual({ data: new Int32Array(0), shape: [4, 0, 2] });
  });

  it('records the layout in the type: shape, and whether large payloads were shuffled for compression', async () => {
    const big = sample(Float64Array, 200_000); // 1.6 MB: above the compression threshold, written without a copy
    await cache.put({ data: big, shape: [1000, 200] }, 'big');
    const info = await cache.getEntry('big');
    expect(info?.size).toBe(big.byteLength); // the payload is the elements and nothing else
    expect(info?.type).toBe(
      (options as { compression?: { codec: string } }).compression?.codec === 'none' ? 'ndarray<Float64Array>[1000,200]' : 'ndarray<Float64Array>[1000,200]/shuffled',
    );
    expect(info?.valueInfo).toEqual({ dtype: 'Float64Array', shape: [1000, 200] }); // shuffled or not
    big[0] = -1; // the caller's array changing after put does not change what was stored
    expect(((await cache.get('big')) as { data: Float64Array }).data[0]).not.toBe(-1);
  });

  it('refuses a shape that does not match the data, storing nothing', async () => {
    await expect(cache.put({ data: new Float32Array(5), shape: [2, 3] }, 'bad')).rejects.toMatchObject({
      code: 'EVALUETYPE',
      message: expect.stringContaining('holds 6 elements'),
    });
    await expect(cache.put({ data: new Float32Array(2), shape: [2, -1] }, 'bad')).rejects.toMatchObject({ code: 'EVALUETYPE' });
    expect(await cache.has('bad')).toBe(false);
  });
});

describe('arrays of the ndarray package', () => {
  /** Elements in row-major order, read through the array's own get(). */
  const elements = (a: NdArrayPkg<Float64Array | Int16Array>) => {
    const out: number[] = [];
    const walk = (prefix: number[]) => {
      if (prefix.length === a.shape.length) out.push(a.get(...prefix));
      else for (let i = 0; i < (a.shape[prefix.length] as number); i++) walk([...prefix, i]);
    };
    walk([]);
    return out;
  };

  it('round-trips contiguous arrays and strided views (transposed, sliced) as ndarrays with the same elements', async () => {
    const cache = createCache({ store: 'memory' });
    try {
      const base = ndarray(
        Float64Array.from({ length: 24 }, (_, i) => i * 1.5),
        [2, 3, 4],
      );
      const cases: [string, NdArrayPkg<Float64Array | Int16Array>][] = [
        ['contiguous', base],
        ['transposed', base.transpose(2, 0, 1)],
        ['sliced', base.hi(2, 2, 3).lo(1, 1, 1)],
        ['stepped', base.step(1, -1, 2)],
        ['int16', ndarray(new Int16Array([1, -2, 3, -4]), [2, 2])],
        ['empty', ndarray(new Float64Array(0), [0, 3])],
      ];
      for (const [key, a] of cases) {
        await cache.put(a, key);
        const back = (await cache.get(key)) as NdArrayPkg<Float64Array | Int16Array>;
        expect(back.shape, key).toEqual(a.shape);
        expect(back.data.constructor, key).toBe(a.data.constructor);
        expect(elements(back), key).toEqual(elements(a));
        expect(back.data.length, key).toBe(a.size); // a view stores only its own elements
        expect(await cache.getEntry(key), key).toMatchObject({
          type: `ndarray-package<${a.data.constructor.name}>[${a.shape.join(',')}]`,
          valueInfo: { dtype: a.data.constructor.name, shape: a.shape },
        });
      }
    } finally {
      await cache.close();
    }
  });
});

describe('Apache Arrow tables', () => {
  it('round-trip with schema, types, nulls, dictionary columns and unicode column names, in the Arrow IPC file format', async () => {
    const cache = createCache({ dir: await mkdtemp(join(dir, 'arrow-')) });
    try {
      const n = 10_000;
      const table: arrow.Table = arrow.tableFromArrays({
        id: Int32Array.from({ length: n }, (_, i) => i),
        score: Float64Array.from({ length: n }, (_, i) => Math.sqrt(i)),
        label: Array.from({ length: n }, (_, i) => (i % 3 === 0 ? null : ['train', 'test', 'val'][i % 3])), // dictionary, with nulls
        'température °C': Float32Array.from({ length: n }, (_, i) => 20 + Math.sin(i)),
        sparse: Array.from({ length: n }, (_, i) => (i % 100 === 0 ? `row ${i}` : null)), // null-heavy
      });
      await cache.put(table, 'runs');
      const back = (await cache.get('runs')) as arrow.Table;
      expect(back).toBeInstanceOf(arrow.Table);
      expect(back.numRows).toBe(n);
      expect(back.schema.fields.map((f) => `${f.name}:${f.type}:${f.nullable}`)).toEqual(table.schema.fields.map((f) => `${f.name}:${f.type}:${f.nullable}`));
      for (const f of table.schema.fields) expect(back.getChild(f.name)?.toArray(), f.name).toEqual(table.getChild(f.name)?.toArray());
      expect(back.getChild('label')?.nullCount).toBe(table.getChild('label')?.nullCount);
      const entry = await cache.getEntry('runs');
      expect(entry).toMatchObject({ handler: 'arrow@1', type: expect.stringMatching(/^arrow\.Table\{/) });
      expect(entry?.valueInfo).toMatchObject({ rows: n, columns: 5 }); // more in dataframes.test.ts
      // The stored payload is a standard Arrow IPC file that Arrow itself reads.
      expect(arrow.tableFromIPC(arrow.tableToIPC(back, 'file')).numRows).toBe(n);
      const empty = arrow.tableFromArrays({ x: new Float64Array(0) });
      await cache.put(empty, 'empty');
      expect(((await cache.get('empty')) as arrow.Table).numRows).toBe(0);
    } finally {
      await cache.close();
    }
  });
});

describe('byte shuffle', () => {
  it('is its own inverse for every element size, with or without a partial tail', () => {
    for (const size of [2, 4, 8]) {
      for (const n of [0, 1, 7, 1000, 1003]) {
        const src = Uint8Array.from({ length: n }, (_, i) => (i * 31 + size) & 255);
        const s = shuffle(src, size);
        expect(unshuffle(s, size)).toEqual(src);
        if (n >= size * 2) expect(s).not.toEqual(src);
      }
    }
  });

  it('lays bytes out plane by plane exactly as defined, across tiles, aligned or not (the stored format)', () => {
    const reference = (src: Uint8Array, size: number) => {
      const n = Math.floor(src.length / size);
      const out = new Uint8Array(src.length);
      for (let b = 0; b < size; b++) for (let i = 0; i < n; i++) out[b * n + i] = src[i * size + b] as number;
      out.set(src.subarray(n * size), n * size);
      return out;
    };
    for (const size of [2, 4, 8]) {
      for (const offset of [0, 1]) {
        // 2.5 tiles of elements plus a partial element; offset 1 takes the byte-at-a-time path.
        const memory = Uint8Array.from({ length: offset + size * 40_961 + 1 }, (_, i) => (i * 2654435761) >>> 24);
        const src = memory.subarray(offset);
        const want = reference(src, size);
        const got = shuffle(src, size);
        expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
        expect(Buffer.from(unshuffle(got, size)).equals(Buffer.from(src))).toBe(true);
        const into = new Uint8Array(src.length + 1).subarray(1); // an unaligned destination for unshuffle
        expect(Buffer.from(unshuffle(want, size, into)).equals(Buffer.from(src))).toBe(true);
      }
    }
  });

  it('makes smooth float data compress where it otherwise would not, and reads back exactly with or without compression', async () => {
    const signal = Float32Array.from({ length: 1 << 18 }, (_, i) => Math.sin(i / 1000) * 3.25 + i * 1e-4);
    const sizes: Record<string, number | undefined> = {};
    for (const [label, compression] of [
      ['lz4', undefined],
      ['none', { codec: 'none' as const }],
    ] as const) {
      const cache = createCache({ dir: await mkdtemp(join(dir, 'shuffle-')), compression });
      try {
        await cache.put(signal, 'signal');
        sizes[label] = (await cache.getEntry('signal'))?.storedSize;
        expect(await cache.get('signal')).toEqual(signal);
      } finally {
        await cache.close();
      }
    }
    // Without shuffling, lz4 barely compresses float32 noise-free signals; with it, the exponent bytes line up.
    expect(sizes.lz4).toBeLessThan(0.85 * (sizes.none as number));
  });
});

describe('handler registry', () => {
  class Point {
    constructor(
      readonly x: number,
      readonly y: number,
    ) {}
  }
  const pointHandler: ValueHandler = {
    name: 'point',
    version: 1,
    canHandle: (v) => v instanceof Point,
    serialize: (v) => ({ bytes: Buffer.from(JSON.stringify(v)), type: 'Point' }),
    deserialize: (bytes) => {
      const { x, y } = JSON.parse(Buffer.from(bytes).toString()) as Point;
      return new Point(x, y);
    },
  };
  afterEach(() => resetHandlers());

  it('stores class instances with a registered handler, and reads them back as the class', async () => {
    const cache = createCache({ store: 'memory' });
    try {
      await expect(cache.put(new Point(1, 2), 'p')).rejects.toMatchObject({ code: 'EVALUETYPE' }); // no handler yet
      registerHandler(pointHandler);
      expect(listHandlers().map((h) => h.name)).toEqual(['point', 'bytes', 'ndarray', 'arrow', 'polars', 'structured']);
      await cache.put(new Point(1, 2), 'p');
      const back = await cache.get('p');
      expect(back).toBeInstanceOf(Point);
      expect(back).toEqual(new Point(1, 2));
      expect((await cache.getEntry('p'))?.handler).toBe('point@1');
      // Unregistered, its entries fail with a clear error rather than garbage.
      expect(unregisterHandler('point')).toBe(true);
      await expect(cache.get('p')).rejects.toMatchObject({ code: 'ENOHANDLER', details: { handler: 'point' } });
    } finally {
      await cache.close();
    }
  });

  it('lets the user change the priority order, and per-cache handlers go first', async () => {
    const tagged: ValueHandler = {
      ...pointHandler,
      name: 'tagged-floats',
      canHandle: (v) => v instanceof Float32Array,
      serialize: (v) => ({ bytes: Buffer.from((v as Float32Array).buffer), type: 'tagged' }),
      deserialize: (b) => new Float32Array(new Uint8Array(b).buffer),
    };
    registerHandler(tagged, { position: { after: 'ndarray' } });
    expect(listHandlers().map((h) => h.name)).toEqual(['bytes', 'ndarray', 'tagged-floats', 'arrow', 'polars', 'structured']);
    const own = createCache({ store: 'memory', handlers: [tagged] });
    const global = createCache({ store: 'memory' });
    try {
      await own.put(new Float32Array([1, 2]), 'f');
      await global.put(new Float32Array([1, 2]), 'f');
      expect((await own.getEntry('f'))?.handler).toBe('tagged-floats@1');
      expect((await global.getEntry('f'))?.handler).toBe('ndarray@1'); // ndarray comes first globally
      registerHandler(tagged, { position: 'first' }); // re-registering moves it
      await global.put(new Float32Array([3]), 'g');
      expect((await global.getEntry('g'))?.handler).toBe('tagged-floats@1');
    } finally {
      await own.close();
      await global.close();
    }
  });

  it('refuses malformed handlers and unknown anchors with EHANDLER', () => {
    expect(() => registerHandler({ ...pointHandler, name: 'bad name' })).toThrow(expect.objectContaining({ code: 'EHANDLER' }));
    expect(() => registerHandler({ ...pointHandler, version: 0 })).toThrow(expect.objectContaining({ code: 'EHANDLER' }));
    expect(() => registerHandler({ ...pointHandler, name: 'structured' })).toThrow(expect.objectContaining({ code: 'EHANDLER' }));
    expect(() => registerHandler(pointHandler, { position: { before: 'nope' } })).toThrow(expect.objectContaining({ code: 'EHANDLER' }));
    expect(() => createCache({ store: 'memory', handlers: [{ ...pointHandler, serialize: undefined as never }] })).toThrow(expect.objectContaining({ code: 'EHANDLER' }));
    expect(listHandlers().map((h) => h.name)).toEqual(['bytes', 'ndarray', 'arrow', 'polars', 'structured']); // nothing changed
  });
});

describe.each([
  { stored: 'whole', chunkSize: 8 * 1024 * 1024, raw: 'none', compressed: 'lz4' },
  { stored: 'in chunks', chunkSize: 1024 * 1024, raw: 'chunked', compressed: 'chunked' },
])('arrays that do not compress, stored $stored', ({ chunkSize, raw, compressed }) => {
  it('are stored in their natural order, not shuffled, so reads need no unshuffle', async () => {
    const cache = createCache({ dir: await mkdtemp(join(dir, 'raw-')), chunkSize });
    try {
      const noise = new Float32Array(randomFillSync(new Uint8Array(4 * 1024 * 1024)).buffer).map((x) => (Number.isFinite(x) ? x : 0));
      const smooth = Float32Array.from({ length: 1024 * 1024 }, (_, i) => Math.sin(i / 500));
      await cache.put(noise, 'noise');
      await cache.put(smooth, 'smooth');
      expect(await cache.getEntry('noise')).toMatchObject({ codec: raw, type: 'Float32Array' });
      expect(await cache.getEntry('smooth')).toMatchObject({ codec: compressed, type: 'Float32Array/shuffled', valueInfo: { dtype: 'Float32Array', shape: [1024 * 1024] } });
      expect((await cache.getEntry('smooth'))?.storedSize).toBeLessThan(0.8 * 4 * 1024 * 1024);
      expect(await cache.get('noise')).toEqual(noise);
      expect(await cache.get('smooth')).toEqual(smooth);
    } finally {
      await cache.close();
    }
  });
});

describe('the compression probe', () => {
  it('judges a payload on slices from all of it: incompressible first five eighths, compressible rest', async () => {
    const { maybeCompress, resolveCompression } = await import('../sdk/src/compression.js');
    const data = Buffer.alloc(8 * 1024 * 1024);
    randomFillSync(data, 0, (data.length / 8) * 5); // noise over the start and the middle, then zeros
    // (a shuffled float array looks like this: noisy mantissa bytes first, exponent bytes last)
    const out = maybeCompress(data, resolveCompression({ codec: 'lz4' }));
    expect(out.codec).toBe('lz4');
    expect(out.bytes.length).toBeLessThan(0.7 * data.length);
    const noise = Buffer.from(data.subarray(0, data.length / 2));
    expect(maybeCompress(noise, resolveCompression({ codec: 'lz4' })).codec).toBe('none'); // still skips real noise
  });
});

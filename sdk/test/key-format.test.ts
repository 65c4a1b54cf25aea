/**
 * Key format version 1 (docs/key-format.md): golden vectors, an independent re-encoding of the
 * spec, the properties the encoding promises, its errors, and stability across processes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { xxh3 } from '@node-rs/xxhash';
import { describe, expect, it } from 'vitest';
import {
  CachenessError,
  encodeKeyParams,
  file,
  KEY_FORMAT_VERSION,
  type KeyParams,
  keyOf,
  MAX_KEY_LENGTH,
  projectParams,
  registerKeyEncoder,
  resolveKey,
  unregisterKeyEncoder,
  validateStringKey,
} from '../src/index.js';

/** Runs `fn` and returns the CachenessError it throws (fails the test if it throws nothing or something else). */
function thrown(fn: () => unknown): CachenessError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CachenessError);
    return err as CachenessError;
  }
  throw new Error('expected a CachenessError, but nothing was thrown');
}

/** Runs `fn` with `URL` instances keyed by their href (as in the docs), then unregisters. */
function withUrlEncoder<T>(fn: () => T): T {
  registerKeyEncoder(URL, (u) => u.href, 'URL');
  try {
    return fn();
  } finally {
    unregisterKeyEncoder(URL);
  }
}

// ---------------------------------------------------------------------------------------------
// (a) Golden vectors.
//
// These keys are HARD-CODED ON PURPOSE: they pin key format version 1 across releases, machines
// and languages (the same table is in docs/key-format.md). Keys are persisted identities, so if one
// of these changes, entries written by earlier versions become unreachable. Never "update" a value
// here to make a test pass: a change of encoding is a new KEY_FORMAT_VERSION with its own table.
// ---------------------------------------------------------------------------------------------

const GOLDEN: [label: string, params: () => KeyParams, key: string][] = [
  ['{}', () => ({}), '3d689d955f165908'],
  ['{ a: 1 }', () => ({ a: 1 }), '500bdc66f0d03798'],
  ["{ a: '1' }", () => ({ a: '1' }), 'fa430578440b1a53'],
  ['{ a: true }', () => ({ a: true }), '7e4886832a518a1a'],
  ['{ a: false }', () => ({ a: false }), '7fce067c1c4ba6a7'],
  ['{ a: 1n }', () => ({ a: 1n }), 'a8206f1be0ceeef0'],
  ['{ a: null }', () => ({ a: null }), 'f4cb4765ce65030f'],
  ["{ model: 'xgb', dataset: 'train' }", () => ({ model: 'xgb', dataset: 'train' }), 'b758891c575e5d54'],
  ['{ n: -0 }', () => ({ n: -0 }), '0fe2db4b55dec78b'],
  ['{ n: NaN }', () => ({ n: Number.NaN }), '1804e00b5ebef30f'],
  ['{ n: -Infinity }', () => ({ n: Number.NEGATIVE_INFINITY }), 'e1e397275f568616'],
  ['{ n: 1.5 }', () => ({ n: 1.5 }), '3d952ef3d1a828c9'],
  ["{ s: 'héllo €😀' }", () => ({ s: 'héllo €😀' }), 'b898d9a5f067ae30'],
  ['{ big: -12345678901234567890n }', () => ({ big: -12345678901234567890n }), '470686cbbac43b76'],
  ["{ arr: [1, 'two', null, undefined, [false]] }", () => ({ arr: [1, 'two', null, undefined, [false]] }), 'af8fa1f31963f737'],
  ['{ nested: { b: 2, a: 1 }, skip: undefined }', () => ({ nested: { b: 2, a: 1 }, skip: undefined }), 'd17ee3aa05bf6e93'],
  ["{ d: new Date('2024-01-02T03:04:05.678Z') }", () => ({ d: new Date('2024-01-02T03:04:05.678Z') }), '98d40d6b55352393'],
  [
    "{ m: new Map([['b', 2], [1, 'a']]) }",
    () => ({
      m: new Map<unknown, unknown>([
        ['b', 2],
        [1, 'a'],
      ]),
    }),
    '5f1cd9300e24f9d0',
  ],
  ["{ s: new Set(['b', 'a', 3]) }", () => ({ s: new Set<unknown>(['b', 'a', 3]) }), 'e6504b86eca25d5c'],
  ['{ bytes: new Uint8Array([1, 2, 3]) }', () => ({ bytes: new Uint8Array([1, 2, 3]) }), 'c83ea2c4e0de7b80'],
  ['{ f32: new Float32Array([1.5, -2]) }', () => ({ f32: new Float32Array([1.5, -2]) }), 'a577174f00ca67d1'],
  ['{ i64: new BigInt64Array([1n, -1n]) }', () => ({ i64: new BigInt64Array([1n, -1n]) }), 'b42bf822dd3a7c23'],
  ["{ '\\uFF61': 1, '\\u{1F600}': 2 }", () => ({ '\uFF61': 1, '\u{1F600}': 2 }), '2b8da27fac661c64'],
  ["{ empty: '', list: [], obj: {} }", () => ({ empty: '', list: [], obj: {} }), '00053aeef3492417'],
];

describe('key format 1: golden vectors', () => {
  it('is version 1 for params without content markers (KEY_FORMAT_VERSION is the newest format, 2)', () => {
    expect(KEY_FORMAT_VERSION).toBe(2);
    expect(encodeKeyParams({ a: 1 }).subarray(0, 16)).toEqual(HEADER);
  });

  it.each(GOLDEN)('%s -> %s', (_label, params, key) => {
    expect(keyOf(params())).toBe(key);
    expect(resolveKey(params())).toBe(key);
  });

  it('file markers hash their resolved absolute path (POSIX path in the vector)', () => {
    if (process.platform === 'win32') return; // '/data/in.csv' resolves to a drive-letter path there
    expect(keyOf({ input: file('/data/in.csv', { by: 'path' }) })).toBe('77c98b9dd9e95544');
  });

  it('custom encoders: tag X + name + encoded value', () => {
    expect(withUrlEncoder(() => keyOf({ u: new URL('https://example.com/a?b=1') }))).toBe('326e2027b747d303');
  });

  it('the rich vector that is also re-encoded by hand below', () => {
    if (process.platform === 'win32') return;
    expect(keyOf(richParams())).toBe('7526cebebd736396');
  });
});

// ---------------------------------------------------------------------------------------------
// Independent re-encoding: the expected bytes are built by hand from docs/key-format.md with
// Buffer operations and hashed with @node-rs/xxhash directly, so the spec is checked, not just the
// implementation against itself. Member order below is written out by hand, already sorted.
// ---------------------------------------------------------------------------------------------

const tag = (c: string): Buffer => Buffer.from(c, 'latin1');
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const f64 = (n: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(n);
  return b;
};
const str = (s: string): Buffer => {
  const utf8 = Buffer.from(s, 'utf8');
  return Buffer.concat([u32(utf8.length), utf8]);
};
/** XXH3-128 digest as 16 big-endian bytes. */
const xxh128BE = (bytes: Buffer): Buffer => Buffer.from(xxh3.xxh128(bytes).toString(16).padStart(32, '0'), 'hex');
const HEADER = Buffer.from('63616368656e6573732d6b65792f310a', 'hex'); // "cacheness-key/1\n"
const hashHex = (bytes: Buffer): string => xxh3.xxh64(bytes, 0n).toString(16).padStart(16, '0');

function richParams(): KeyParams {
  return {
    t: new Uint8Array([1, 2, 3]),
    n: -0,
    b: [1, 'é', undefined, null, true],
    a: { '\u{1F600}': 2n, '\uFF61': new Date(0) },
    m: new Map<unknown, unknown>([
      ['x', false],
      [1, 'y'],
    ]),
    s: new Set([2, 1]),
    p: file('/data/in.csv', { by: 'path' }),
    skip: undefined,
  };
}

function richParamsByHand(): Buffer {
  return Buffer.concat([
    HEADER,
    tag('O'),
    u32(7), // a b m n p s t ('skip' is undefined: dropped)
    str('a'),
    tag('O'),
    u32(2),
    str('\uFF61'), // U+FF61 (ef bd a1) sorts before U+1F600 (f0 9f 98 80) by code point, although its UTF-16 unit is larger
    tag('d'),
    f64(0),
    str('\u{1F600}'),
    tag('I'),
    str('2'),
    str('b'),
    tag('A'),
    u32(5),
    tag('D'),
    f64(1),
    tag('S'),
    str('é'),
    tag('U'),
    tag('N'),
    tag('T'),
    str('m'),
    tag('M'),
    u32(2),
    // pairs sorted by their bytes: 'D'... (1 -> 'y') before 'S'... ('x' -> false)
    tag('D'),
    f64(1),
    tag('S'),
    str('y'),
    tag('S'),
    str('x'),
    tag('F'),
    str('n'),
    tag('D'),
    f64(0), // -0 is normalised to 0
    str('p'),
    tag('P'),
    str(resolve('/data/in.csv')),
    str('s'),
    tag('E'),
    u32(2),
    tag('D'),
    f64(1),
    tag('D'),
    f64(2),
    str('t'),
    tag('B'),
    str('uint8'),
    f64(3),
    xxh128BE(Buffer.from([1, 2, 3])),
  ]);
}

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

describe('key format 1: independent re-encoding of the spec', () => {
  it('the header is "cacheness-key/1\\n" and {} is an empty object after it', () => {
    const bytes = Buffer.concat([HEADER, tag('O'), u32(0)]);
    expect(Buffer.from('cacheness-key/1\n', 'utf8').equals(HEADER)).toBe(true);
    expect(encodeKeyParams({}).equals(bytes)).toBe(true);
    expect(keyOf({})).toBe(hashHex(bytes));
  });

  it('rich params: every native type, sorting rules and normalisation', () => {
    const bytes = richParamsByHand();
    expect(encodeKeyParams(richParams()).toString('hex')).toBe(bytes.toString('hex'));
    expect(keyOf(richParams())).toBe(hashHex(bytes));
  });

  it('typed arrays (little-endian raw bytes), negative bigints and custom encoders', () => {
    const raw = Buffer.alloc(8);
    raw.writeFloatLE(1.5, 0);
    raw.writeFloatLE(-2, 4);
    const bytes = Buffer.concat([
      HEADER,
      tag('O'),
      u32(3),
      str('f32'),
      tag('B'),
      str('float32'),
      f64(2), // element count, not byte count
      xxh128BE(raw),
      str('neg'),
      tag('I'),
      str('-42'),
      str('pt'),
      tag('X'),
      str('Point'),
      tag('O'),
      u32(2),
      str('x'),
      tag('D'),
      f64(1),
      str('y'),
      tag('D'),
      f64(2),
    ]);
    registerKeyEncoder(Point, (p) => ({ y: p.y, x: p.x }));
    try {
      const params = { pt: new Point(1, 2), neg: -42n, f32: new Float32Array([1.5, -2]) };
      expect(encodeKeyParams(params).toString('hex')).toBe(bytes.toString('hex'));
      expect(keyOf(params)).toBe(hashHex(bytes));
    } finally {
      unregisterKeyEncoder(Point);
    }
  });

  it('keys are 16 lowercase hex characters, zero-padded', () => {
    // '00053aeef3492417' (a golden vector) starts with zeros: the hash is padded, not truncated.
    expect(keyOf({ empty: '', list: [], obj: {} })).toBe('00053aeef3492417');
    for (const [, params] of GOLDEN) expect(keyOf(params())).toMatch(/^[0-9a-f]{16}$/);
  });
});

// ---------------------------------------------------------------------------------------------
// (b) Properties.
// ---------------------------------------------------------------------------------------------

describe('key format 1: properties', () => {
  it('1, "1", true, 1n, null, Date(1), [1] and { v: 1 } all differ', () => {
    const keys = [1, '1', true, 1n, null, new Date(1), [1], { v: 1 }].map((v) => keyOf({ v }));
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('object member order does not matter, also nested', () => {
    expect(keyOf({ a: 1, b: 2 })).toBe(keyOf({ b: 2, a: 1 }));
    expect(keyOf({ x: { p: 1, q: [{ m: 1, n: 2 }] }, y: 0 })).toBe(keyOf({ y: 0, x: { q: [{ n: 2, m: 1 }], p: 1 } }));
    // integer-like names, which JS enumerates first, are sorted as strings too
    expect(keyOf({ b: 1, 10: 2, 9: 3 })).toBe(keyOf({ 9: 3, b: 1, 10: 2 }));
  });

  it('arrays keep their order', () => {
    expect(keyOf({ a: [1, 2] })).not.toBe(keyOf({ a: [2, 1] }));
    expect(keyOf({ a: [[1], 2] })).not.toBe(keyOf({ a: [1, [2]] }));
  });

  it('is injective where naive joins are not', () => {
    expect(keyOf({ a: 'x,b:y' })).not.toBe(keyOf({ a: 'x', b: 'y' }));
    expect(keyOf({ a: 'x', b: 'y' })).not.toBe(keyOf({ 'a:x,b': 'y' }));
    expect(keyOf({ a: ['x', 'y'] })).not.toBe(keyOf({ a: ['xy'] }));
    expect(keyOf({ a: [''] })).not.toBe(keyOf({ a: [] }));
    expect(keyOf({ a: 'b' })).not.toBe(keyOf({ b: 'a' }));
  });

  it('an undefined member equals an absent one; null does not', () => {
    expect(keyOf({ a: 1, b: undefined })).toBe(keyOf({ a: 1 }));
    expect(keyOf({ a: 1, b: null })).not.toBe(keyOf({ a: 1 }));
    expect(keyOf({ a: { b: undefined } })).toBe(keyOf({ a: {} }));
  });

  it('undefined inside arrays is kept (and sparse holes read as undefined)', () => {
    expect(keyOf({ a: [undefined] })).not.toBe(keyOf({ a: [] }));
    expect(keyOf({ a: [undefined] })).not.toBe(keyOf({ a: [null] }));
    // biome-ignore lint/suspicious/noSparseArray: a hole is the point
    expect(keyOf({ a: [, 1] })).toBe(keyOf({ a: [undefined, 1] }));
  });

  it('Map insertion order does not matter', () => {
    const m1 = new Map<unknown, unknown>([
      ['a', 1],
      [2, 'b'],
      [{ k: 1 }, [1]],
    ]);
    const m2 = new Map<unknown, unknown>([
      [{ k: 1 }, [1]],
      [2, 'b'],
      ['a', 1],
    ]);
    expect(keyOf({ m: m1 })).toBe(keyOf({ m: m2 }));
    expect(keyOf({ m: new Map([['a', 1]]) })).not.toBe(keyOf({ m: new Map([['a', 2]]) }));
    expect(keyOf({ m: new Map([['a', 1]]) })).not.toBe(keyOf({ m: { a: 1 } }));
    expect(keyOf({ m: new Map([['a', undefined]]) })).not.toBe(keyOf({ m: new Map() }));
  });

  it('Set order does not matter', () => {
    expect(keyOf({ s: new Set([1, 'a', 2n]) })).toBe(keyOf({ s: new Set([2n, 1, 'a']) }));
    expect(keyOf({ s: new Set([1, 2]) })).not.toBe(keyOf({ s: [1, 2] }));
    expect(keyOf({ s: new Set([1, 2]) })).not.toBe(keyOf({ s: new Set([1]) }));
  });

  it('Dates are keyed by their time', () => {
    expect(keyOf({ d: new Date(1_700_000_000_000) })).toBe(keyOf({ d: new Date('2023-11-14T22:13:20.000Z') }));
    expect(keyOf({ d: new Date(1000) })).not.toBe(keyOf({ d: new Date(1001) }));
    expect(keyOf({ d: new Date(1000) })).not.toBe(keyOf({ d: 1000 }));
  });

  it('Buffer, Uint8Array, ArrayBuffer and DataView with the same bytes have the same key', () => {
    const k = keyOf({ b: new Uint8Array([1, 2, 3]) });
    expect(keyOf({ b: Buffer.from([1, 2, 3]) })).toBe(k);
    expect(keyOf({ b: new Uint8Array([1, 2, 3]).buffer })).toBe(k);
    expect(keyOf({ b: new DataView(new Uint8Array([0, 1, 2, 3]).buffer, 1) })).toBe(k);
    expect(keyOf({ b: new Uint8ClampedArray([1, 2, 3]) })).not.toBe(k);
    expect(keyOf({ b: new Int8Array([1, 2, 3]) })).not.toBe(k);
  });

  it('a Float32Array and a Uint8Array over the same bytes differ', () => {
    const f = new Float32Array([1.5, -2]);
    expect(keyOf({ b: f })).not.toBe(keyOf({ b: new Uint8Array(f.buffer) }));
    expect(keyOf({ b: new Float32Array([1.5]) })).not.toBe(keyOf({ b: new Float64Array([1.5]) }));
  });

  it('typed array views hash only their own bytes', () => {
    const whole = new Uint8Array([9, 1, 2, 3, 9]);
    expect(keyOf({ b: whole.subarray(1, 4) })).toBe(keyOf({ b: new Uint8Array([1, 2, 3]) }));
    const f = new Float64Array([7, 1.5, -2, 7]);
    expect(keyOf({ b: f.subarray(1, 3) })).toBe(keyOf({ b: new Float64Array([1.5, -2]) }));
    const pooled = Buffer.from('abc'); // small Buffers share a pooled ArrayBuffer
    expect(keyOf({ b: pooled })).toBe(keyOf({ b: new TextEncoder().encode('abc') }));
  });

  it('-0 equals 0, and all NaNs are one value (plain numbers)', () => {
    expect(keyOf({ n: -0 })).toBe(keyOf({ n: 0 }));
    expect(keyOf({ n: [-0] })).toBe(keyOf({ n: [0] }));
    const otherNaN = new Float64Array(new BigUint64Array([0x7ff8_0000_0000_0001n]).buffer)[0]!;
    expect(Number.isNaN(otherNaN)).toBe(true);
    expect(keyOf({ n: otherNaN })).toBe(keyOf({ n: Number.NaN }));
    expect(keyOf({ n: Number.NaN })).not.toBe(keyOf({ n: 0 }));
  });

  it('object member names are sorted by code point (UTF-8 bytes), not UTF-16 code units', () => {
    // UTF-16: '\u{1F600}' starts with 0xD83D < 0xFF61; code points: 0xFF61 < 0x1F600.
    expect('\u{1F600}' < '\uFF61').toBe(true);
    const bytes = encodeKeyParams({ '\u{1F600}': 1, '\uFF61': 2 });
    const astral = bytes.indexOf(Buffer.from('\u{1F600}', 'utf8'));
    const bmp = bytes.indexOf(Buffer.from('\uFF61', 'utf8'));
    expect(bmp).toBeGreaterThan(0);
    expect(astral).toBeGreaterThan(bmp);
    expect(keyOf({ '\u{1F600}': 1, '\uFF61': 2 })).toBe(keyOf({ '\uFF61': 2, '\u{1F600}': 1 }));
    // a proper prefix sorts first
    const prefix = encodeKeyParams({ ab: 1, a: 2 });
    expect(prefix.indexOf(str('a'))).toBeLessThan(prefix.indexOf(str('ab')));
  });

  it("file('a.txt', { by: 'path' }) equals file(absolute path of a.txt), and differs from the plain string", () => {
    const byPath = { by: 'path' } as const;
    expect(keyOf({ f: file('a.txt', byPath) })).toBe(keyOf({ f: file(resolve('a.txt'), byPath) }));
    expect(keyOf({ f: file('./x/../a.txt', byPath) })).toBe(keyOf({ f: file('a.txt', byPath) }));
    expect(keyOf({ f: file('a.txt', byPath) })).not.toBe(keyOf({ f: resolve('a.txt') }));
    expect(keyOf({ f: file('a.txt', byPath) })).not.toBe(keyOf({ f: file('b.txt', byPath) }));
  });

  it('registerKeyEncoder works, subclasses inherit it, and unregistering makes it throw again', () => {
    class Sub extends Point {}
    expect(thrown(() => keyOf({ p: new Point(1, 2) })).code).toBe('EKEYTYPE');
    registerKeyEncoder(Point, (p) => [p.x, p.y]);
    try {
      const k = keyOf({ p: new Point(1, 2) });
      expect(keyOf({ p: new Point(1, 2) })).toBe(k);
      expect(keyOf({ p: new Point(2, 1) })).not.toBe(k);
      expect(keyOf({ p: new Sub(1, 2) })).toBe(k); // found through the prototype chain, under the name 'Point'
      expect(keyOf({ p: [1, 2] })).not.toBe(k); // the name is part of the encoding
      registerKeyEncoder(Point, (p) => [p.x, p.y], 'Point2');
      expect(keyOf({ p: new Point(1, 2) })).not.toBe(k);
    } finally {
      expect(unregisterKeyEncoder(Point)).toBe(true);
    }
    expect(unregisterKeyEncoder(Point)).toBe(false);
    const err = thrown(() => keyOf({ p: new Point(1, 2) }));
    expect(err.code).toBe('EKEYTYPE');
    expect(err.message).toContain('registerKeyEncoder');
  });

  it('null-prototype objects encode like plain objects', () => {
    const o = Object.create(null) as Record<string, unknown>;
    o.a = 1;
    expect(keyOf({ o })).toBe(keyOf({ o: { a: 1 } }));
    expect(keyOf(o)).toBe(keyOf({ a: 1 }));
  });

  it('shared (non-circular) references are fine', () => {
    const shared = { x: 1 };
    expect(keyOf({ a: shared, b: [shared, shared] })).toBe(keyOf({ a: { x: 1 }, b: [{ x: 1 }, { x: 1 }] }));
  });
});

// ---------------------------------------------------------------------------------------------
// (c) Errors.
// ---------------------------------------------------------------------------------------------

describe('key format 1: errors', () => {
  const cases: [string, () => KeyParams, string][] = [
    ['a function', () => ({ a: { b: [1, () => 1] } }), 'a.b[1]'],
    ['a symbol', () => ({ s: Symbol('x') }), 's'],
    ['a class instance without an encoder', () => ({ deep: { p: new Point(1, 2) } }), 'deep.p'],
    ['a RegExp', () => ({ r: /x/ }), 'r'],
    ['a boxed string', () => ({ s: Object('x') }), 's'],
    [
      'a circular reference',
      () => {
        const o: Record<string, unknown> = { x: {} };
        (o.x as Record<string, unknown>).self = o;
        return o;
      },
      'x.self',
    ],
    [
      'a circular reference through an array',
      () => {
        const arr: unknown[] = [];
        arr.push(arr);
        return { arr };
      },
      'arr[0]',
    ],
    ['an invalid Date', () => ({ d: new Date(Number.NaN) }), 'd'],
    ['a lone surrogate in a string', () => ({ s: ['ok', '\uD800'] }), 's[1]'],
    ['a lone surrogate in a member name', () => ({ o: { 'a\uDC00': 1 } }), 'o.a\uDC00'],
  ];

  it.each(cases)('%s -> EKEYTYPE naming the path', (_label, params, path) => {
    const err = thrown(() => keyOf(params()));
    expect(err).toBeInstanceOf(CachenessError);
    expect(err.code).toBe('EKEYTYPE');
    expect(err.message).toContain(`at ${path}:`);
    expect(err.details?.path).toBe(path);
  });

  it('top-level params must be a plain object', () => {
    for (const bad of [[1], new Map(), new Date(0), new Point(1, 2)]) {
      expect(thrown(() => keyOf(bad as unknown as KeyParams)).code).toBe('EKEYTYPE');
    }
    expect(thrown(() => resolveKey(42 as unknown as string)).code).toBe('EKEY');
    expect(thrown(() => resolveKey(null as unknown as string)).code).toBe('EKEY');
  });

  it('string keys: empty, too long and control characters -> EKEY', () => {
    for (const bad of ['', 'x'.repeat(MAX_KEY_LENGTH + 1), 'a\nb', 'a\u0085b', '\u0000', '\u001f', '\u007f', '\u009f']) {
      const err = thrown(() => resolveKey(bad));
      expect(err.code).toBe('EKEY');
      expect(thrown(() => validateStringKey(bad)).code).toBe('EKEY');
    }
    expect(MAX_KEY_LENGTH).toBe(1024);
  });

  it('string keys: up to 1024 UTF-16 code units, used verbatim', () => {
    const long = 'x'.repeat(1024);
    expect(resolveKey(long)).toBe(long);
    expect(resolveKey('😀'.repeat(512))).toBe('😀'.repeat(512)); // 1024 code units
    expect(thrown(() => resolveKey(`${'😀'.repeat(512)}x`)).code).toBe('EKEY');
    for (const ok of ['models/churn/v3', ' spaced ', '\u00a0', '\u2028', 'é']) expect(resolveKey(ok)).toBe(ok);
  });
});

// ---------------------------------------------------------------------------------------------
// Stability across processes.
// ---------------------------------------------------------------------------------------------

describe('key format 1: stable across processes', () => {
  it('a child node process computes the same key for rich params', async () => {
    const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
    const sdk = pathToFileURL(fileURLToPath(new URL('../src/index.ts', import.meta.url))).href;
    const dir = mkdtempSync(join(tmpdir(), 'cacheness-key-'));
    try {
      // One definition of the params (and of its custom encoder), imported by this process and by the child.
      const fixture = join(dir, 'rich-params.ts');
      writeFileSync(
        fixture,
        `import { file, keyOf, registerKeyEncoder } from ${JSON.stringify(sdk)};
export { keyOf };
export class Tagged { constructor(readonly tag: string) {} }
registerKeyEncoder(Tagged, (t) => ({ tag: t.tag }), 'Tagged');
export function richParams(): Record<string, unknown> {
  return {
    model: 'xgb', version: 3, ratio: 0.1 + 0.2, neg: -0, nan: NaN, inf: Infinity, big: 2n ** 70n, yes: true, nothing: null, gone: undefined,
    text: 'héllo \\u{1F600} \\uFF61 \\u0000', list: [1, 'a', [null, undefined], { z: 1, y: 2 }],
    when: new Date('2024-02-29T12:00:00.000Z'),
    map: new Map<unknown, unknown>([['b', 1], [2, new Set(['x', 'y'])], [{ k: 1 }, 'obj']]),
    set: new Set([3, 1, 2]),
    bytes: Buffer.from('hello'), f64: new Float64Array([Math.PI, -1e300]), u16: new Uint16Array([1, 65535]).subarray(1),
    ab: new Uint8Array([5, 6]).buffer, input: file('/data/in.csv', { by: 'path' }), tagged: new Tagged('t'),
    nested: { b: { d: 1, c: [new Date(0)] }, a: '' },
  };
}
`,
      );
      const child = join(dir, 'child.ts');
      writeFileSync(
        child,
        `import { keyOf, richParams } from ${JSON.stringify(pathToFileURL(fixture).href)};
process.stdout.write(keyOf(richParams()));
`,
      );
      const childKey = execFileSync(process.execPath, ['--import', 'tsx', child], { cwd: repoRoot, encoding: 'utf8' }).trim();
      const here = (await import(pathToFileURL(fixture).href)) as { keyOf: typeof keyOf; richParams: () => KeyParams };
      expect(childKey).toMatch(/^[0-9a-f]{16}$/);
      expect(childKey).toBe(here.keyOf(here.richParams()));
      expect(childKey).not.toBe(keyOf({})); // sanity: the child really hashed the params
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('review follow-ups', () => {
  it('rejects string keys with a lone surrogate', () => {
    expect(() => resolveKey('a\uD800b')).toThrow(expect.objectContaining({ code: 'EKEY' }));
    expect(resolveKey('ok 😀')).toBe('ok 😀');
  });

  it('rejects a key encoder that returns its own class (instead of recursing forever)', () => {
    class Box {
      constructor(readonly v: number) {}
    }
    registerKeyEncoder(Box, (b) => new Box(b.v));
    try {
      expect(() => keyOf({ b: new Box(1) })).toThrow(expect.objectContaining({ code: 'EKEYTYPE' }));
    } finally {
      unregisterKeyEncoder(Box);
    }
  });

  it('projects binary params by dtype and encoded instances by their encoder', () => {
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
    }
    registerKeyEncoder(Point, (p) => [p.x, p.y]);
    try {
      const p = projectParams({ f: new Float32Array([1, 2]), b: Buffer.from('hi'), pt: new Point(3, 4) }) as Record<string, Record<string, unknown>>;
      expect(p.f).toMatchObject({ $bytes: 'float32', length: 2 });
      expect(p.b).toMatchObject({ $bytes: 'uint8', length: 2 });
      expect(p.pt).toEqual({ $type: 'Point', value: [3, 4] });
    } finally {
      unregisterKeyEncoder(Point);
    }
  });
});

describe('portable key size', () => {
  it('limits string keys to 2048 UTF-8 bytes as well as 1024 characters', () => {
    expect(resolveKey('é'.repeat(1024))).toHaveLength(1024); // 2048 bytes: fits
    expect(() => resolveKey('語'.repeat(1000))).toThrow(expect.objectContaining({ code: 'EKEY', message: expect.stringMatching(/2048 bytes/) }));
  });
});

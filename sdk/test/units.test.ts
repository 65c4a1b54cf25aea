import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decompress, maybeCompress, resolveCompression } from '../src/compression.js';
import { ttlToMs } from '../src/duration.js';
import { CachenessError, CodecError, KeyError, TableError } from '../src/errors.js';

describe('ttlToMs', () => {
  it.each([
    [0, 0],
    [1.5, 1500],
    ['250ms', 250],
    ['90s', 90_000],
    ['15m', 900_000],
    ['24h', 86_400_000],
    ['7d', 604_800_000],
    ['2w', 1_209_600_000],
    [' 1.5h ', 5_400_000],
    [null, null],
  ] as const)('%j → %j', (ttl, ms) => {
    expect(ttlToMs(ttl)).toBe(ms);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY, '', '10', '10 years', 'h', '-5s', {}])('rejects %j with ETTL', (bad) => {
    expect(() => ttlToMs(bad as never)).toThrow(expect.objectContaining({ code: 'ETTL', message: expect.stringMatching(/'90s'/) }));
  });
});

describe('compression', () => {
  const lz4 = resolveCompression({});
  it('stores small payloads raw', () => {
    expect(maybeCompress(Buffer.alloc(100), lz4).codec).toBe('none');
  });
  it('compresses when it pays and round-trips', () => {
    const data = Buffer.from('hello world '.repeat(10_000));
    const out = maybeCompress(data, lz4);
    expect(out.codec).toBe('lz4');
    expect(out.bytes.length).toBeLessThan(data.length / 10);
    expect(Buffer.from(decompress(out.codec, out.bytes, data.length)).equals(data)).toBe(true);
  });
  it('stores incompressible payloads raw, small and large (sampled)', () => {
    expect(maybeCompress(randomBytes(10_000), lz4).codec).toBe('none');
    const big = randomBytes(2_000_000);
    const out = maybeCompress(big, lz4);
    expect(out.codec).toBe('none');
    expect(out.bytes).toBe(big); // no copy
  });
  it('supports zstd with a level', () => {
    const data = Buffer.from('abc'.repeat(100_000));
    const out = maybeCompress(data, resolveCompression({ codec: 'zstd', level: 19 }));
    expect(out.codec).toBe('zstd');
    expect(Buffer.from(decompress('zstd', out.bytes, data.length)).equals(data)).toBe(true);
  });
  it('rejects unknown codecs on both sides', () => {
    expect(() => resolveCompression({ codec: 'brotli' as never })).toThrow(CodecError);
    expect(() => decompress('brotli', Buffer.alloc(1), 1)).toThrow(expect.objectContaining({ code: 'ECODEC' }));
  });
});

describe('errors', () => {
  it('carry name, code, details and cause, and are CachenessErrors', () => {
    const cause = new Error('low level');
    const e = new TableError('ECOLUMN', 'bad column', { cause, details: { column: 'x' } });
    expect(e).toBeInstanceOf(CachenessError);
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('TableError');
    expect(e.code).toBe('ECOLUMN');
    expect(e.details).toEqual({ column: 'x' });
    expect(e.cause).toBe(cause);
    expect(new KeyError('EKEY', 'x').name).toBe('KeyError');
    expect(String(new KeyError('EKEY', 'msg'))).toBe('KeyError: msg');
  });
});

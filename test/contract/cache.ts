/**
 * Contract suite for the Cache API: every mode (local SQLite, memory; remote in a later issue)
 * must behave the same. The harness builds caches with a controllable clock.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type Cache, CachenessError, type CacheOptions, file, keyOf, type Where } from 'cacheness';
import { xxh128Hex } from 'cacheness/stores';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

export interface CacheHarness {
  /** A new cache with these options on this harness's store. */
  open(opts?: CacheOptions): Promise<Cache>;
  /** True when a second `open()` sees the first one's data (persistent stores). */
  persistent: boolean;
  /** Whether `cache.sql()` is available (local stores) or refused (the shared cloud store). Default true. */
  sql?: boolean;
  dispose(): Promise<void>;
}

/** A settable clock, starting at a fixed time. */
export class TestClock {
  now = 1_700_000_000_000;
  readonly fn = () => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

const HOUR = 3_600_000;

/** What sets a family of caches apart, known when the suite is defined (so tests can be skipped, not passed empty). */
export interface CacheTraits {
  /**
   * A remote cache: `maxSize`, eviction and `cleanup()` act on its local tier (a copy of what it read
   * and wrote), while the cloud keeps every entry until it expires or is deleted. Eviction tests are
   * skipped, and cleanup's counts are of the local tier.
   */
  tiered?: boolean;
}

export function cacheContract(label: string, makeHarness: () => Promise<CacheHarness>, traits: CacheTraits = {}): void {
  const tiered = traits.tiered ?? false;
  describe(`Cache contract: ${label}`, () => {
    let h: CacheHarness;
    let clock: TestClock;
    let cache: Cache;
    const errors: CachenessError[] = [];
    const open = (opts: CacheOptions = {}) => h.open({ clock: clock.fn, onError: (e) => errors.push(e), ...opts });
    beforeEach(async () => {
      h = await makeHarness();
      clock = new TestClock();
      errors.length = 0;
      cache = await open();
    });
    afterEach(async () => {
      if (!cache.isClosed) await cache.close();
      await h.dispose();
    });

    describe('values', () => {
      const values: [string, unknown][] = [
        ['object', { a: 1, b: 'two', c: [1, 2, { d: null }], e: true }],
        ['array', [1, 'x', null, [2]]],
        ['string', 'hello ✓ 😀'],
        ['number', 3.25],
        ['NaN and Infinity', [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]],
        ['boolean', false],
        ['null', null],
        ['undefined', undefined],
        ['bigint', 2n ** 100n],
        ['Date', new Date('2024-05-06T07:08:09.010Z')],
        ['RegExp', /ab+c/gi],
        [
          'Map',
          new Map<unknown, unknown>([
            [1, 'one'],
            ['k', { nested: new Map([['x', 1]]) }],
            [{ o: 1 }, [1]],
          ]),
        ],
        ['Set', new Set([1, 'a', 2n])],
        ['Buffer', Buffer.from('binary\x00data')],
        ['Uint8Array', new Uint8Array([1, 2, 3])],
        ['ArrayBuffer', new Uint8Array([9, 8, 7]).buffer],
        ['Float64Array', new Float64Array([1.5, -2.25])],
        ['Int32Array', new Int32Array([-1, 2 ** 31 - 1])],
        ['BigInt64Array', new BigInt64Array([-5n, 2n ** 62n])],
        ['nested mix', { when: new Date(0), tags: new Set(['x']), m: new Map([['k', [new Uint16Array([1, 2])]]]), u: undefined, n: null }],
        ['large compressible', { text: 'abc'.repeat(50_000) }],
      ];
      it.each(values)('round-trips %s with its types', async (_name, value) => {
        await cache.put(value, { case: _name });
        const back = await cache.get({ case: _name });
        expect(back).toStrictEqual(value);
        if (value !== null && typeof value === 'object') expect(Object.getPrototypeOf(back)).toBe(Object.getPrototypeOf(value));
      });

      it('round-trips values above the inline threshold as blobs (compressible and not)', async () => {
        const random = randomBytes(200_000);
        const zeros = Buffer.alloc(300_000);
        await cache.put(random, 'r');
        await cache.put(zeros, 'z');
        expect(Buffer.compare((await cache.get('r')) as Buffer, random)).toBe(0);
        expect(Buffer.compare((await cache.get('z')) as Buffer, zeros)).toBe(0);
        expect((await cache.getEntry('r'))?.codec).toBe('none');
        const z = await cache.getEntry('z');
        expect(z?.codec).toBe('lz4');
        expect(z?.storedSize).toBeLessThan(z!.size / 10);
      });

      it('keeps circular structures', async () => {
        const v: Record<string, unknown> = { name: 'loop' };
        v.self = v;
        await cache.put(v, 'cyc');
        const back = (await cache.get('cyc')) as Record<string, unknown>;
        expect(back.self).toBe(back);
      });

      it('refuses functions, symbols and class instances, writing nothing', async () => {
        class Model {
          w = 1;
        }
        for (const bad of [() => 1, Symbol('s'), new Model(), { nested: [new Model()] }, { f: () => 2 }]) {
          const err = await cache.put(bad, 'bad').catch((e) => e);
          expect(err).toBeInstanceOf(CachenessError);
          expect(err.code).toBe('EVALUETYPE');
          expect(err.message).toMatch(/Cannot store/);
        }
        expect(await cache.has('bad')).toBe(false);
        expect((await cache.stats()).entries).toBe(0);
      });

      it('distinguishes a stored undefined from a miss via has()', async () => {
        await cache.put(undefined, 'u');
        expect(await cache.has('u')).toBe(true);
        expect(await cache.get('u')).toBeUndefined();
        expect(await cache.has('nothing')).toBe(false);
      });

      it('reads entries written with another codec after settings change', async () => {
        const big = { text: 'xyz'.repeat(40_000) };
        await cache.put(big, 'lz4-entry');
        await cache.close();
        if (!h.persistent) return;
        cache = await open({ compression: { codec: 'zstd', level: 5 } });
        expect(await cache.get('lz4-entry')).toEqual(big);
        await cache.put(big, 'zstd-entry');
        expect((await cache.getEntry('zstd-entry'))?.codec).toBe('zstd');
        await cache.close();
        cache = await open({ compression: { codec: 'none' } });
        expect(await cache.get('zstd-entry')).toEqual(big);
        await cache.put(big, 'raw');
        expect((await cache.getEntry('raw'))?.codec).toBe('none');
      });
    });

    describe('keys and entries', () => {
      it('uses key params order-independently and string keys verbatim', async () => {
        const info = await cache.put('v', { model: 'xgb', dataset: 'train' });
        expect(info.key).toBe(keyOf({ dataset: 'train', model: 'xgb' }));
        expect(info.key).toMatch(/^[0-9a-f]{16}$/);
        expect(cache.keyOf({ dataset: 'train', model: 'xgb' })).toBe(info.key);
        expect(await cache.get({ dataset: 'train', model: 'xgb' })).toBe('v');
        expect(await cache.get({ dataset: 'train', model: 'xgb', extra: undefined })).toBe('v');
        expect(await cache.get({ dataset: 'train', model: 'lgbm' })).toBeUndefined();
        const s = await cache.put(1, 'models/churn/v3');
        expect(s.key).toBe('models/churn/v3');
        expect(await cache.get('models/churn/v3')).toBe(1);
      });

      it('describes entries fully', async () => {
        const info = await cache.put(
          { a: 1 },
          { model: 'xgb', at: new Date(0), n: 5n, f: file('data.csv', { by: 'path' }) },
          { ttl: '24h', metadata: { owner: 'ana' }, description: 'features v2' },
        );
        expect(info).toMatchObject({
          params: { model: 'xgb', at: '1970-01-01T00:00:00.000Z', n: '5', f: { $file: expect.stringMatching(/data\.csv$/) } },
          type: 'object',
          handler: 'structured@1',
          codec: 'none',
          hits: 0,
          description: 'features v2',
          metadata: { owner: 'ana' },
        });
        expect(info.size).toBeGreaterThan(0);
        expect(info.contentHash).toMatch(/^[0-9a-f]{32}$/);
        expect(info.createdAt.getTime()).toBe(clock.now);
        expect(info.expiresAt?.getTime()).toBe(clock.now + 24 * HOUR);
        expect(await cache.getEntry(info.key)).toEqual(info);
        expect(await cache.getEntry('nope')).toBeUndefined();
      });

      it('keeps key params out of the store when storeKeyParams is false', async () => {
        const c2 = await open({ storeKeyParams: false });
        const info = await c2.put(1, { secret: 'token-123' });
        expect(info.params).toBeNull();
        expect(JSON.stringify((await c2.list()).entries)).not.toContain('token-123');
        if (h.sql !== false) expect(JSON.stringify(await c2.sql('SELECT * FROM entries'))).not.toContain('token-123');
        expect(await c2.get({ secret: 'token-123' })).toBe(1);
        await c2.close();
      });

      it('rejects bad keys with EKEY / EKEYTYPE and writes nothing', async () => {
        for (const [key, code] of [
          ['', 'EKEY'],
          ['x'.repeat(1025), 'EKEY'],
          ['a\nb', 'EKEY'],
          [{ f: () => 1 }, 'EKEYTYPE'],
          [{ s: Symbol('x') }, 'EKEYTYPE'],
          [{ c: new (class Foo {})() }, 'EKEYTYPE'],
          [null, 'EKEY'],
          [42, 'EKEY'],
        ] as const) {
          await expect(cache.put(1, key as never)).rejects.toMatchObject({ code });
          await expect(cache.get(key as never)).rejects.toMatchObject({ code });
        }
        expect((await cache.stats()).entries).toBe(0);
      });

      it('replaces on re-put, resetting hits and creation time', async () => {
        await cache.put(1, 'k');
        await cache.get('k');
        clock.advance(1000);
        await cache.put(2, 'k');
        const e = await cache.getEntry('k');
        expect(await cache.get('k')).toBe(2);
        expect(e?.createdAt.getTime()).toBe(clock.now);
        expect(e?.hits).toBe(0);
      });

      it('deletes and clears', async () => {
        await cache.put(1, 'a');
        await cache.put(randomBytes(100_000), 'b');
        expect(await cache.delete('a')).toBe(true);
        expect(await cache.delete('a')).toBe(false);
        expect(await cache.get('a')).toBeUndefined();
        await cache.put(3, 'c');
        expect(await cache.clear()).toBe(2);
        expect(await cache.get('b')).toBeUndefined();
        expect((await cache.stats()).bytes).toBe(0);
      });

      it('validates put options, writing nothing on error', async () => {
        await expect(cache.put(1, 'k', { ttl: 'soon' })).rejects.toMatchObject({ code: 'ETTL' });
        await expect(cache.put(1, 'k', { ttl: -1 })).rejects.toMatchObject({ code: 'ETTL' });
        await expect(cache.put(1, 'k', { metadata: [1] as never })).rejects.toMatchObject({ code: 'EOPTION' });
        await expect(cache.put(1, 'k', { metadata: { n: 1n } as never })).rejects.toMatchObject({ code: 'EOPTION' });
        await expect(cache.put(1, 'k', { description: 5 as never })).rejects.toMatchObject({ code: 'EOPTION' });
        expect(await cache.has('k')).toBe(false);
      });

      it('fails with ECLOSED after close', async () => {
        await cache.close();
        await expect(cache.get('k')).rejects.toMatchObject({ code: 'ECLOSED' });
        await expect(cache.put(1, 'k')).rejects.toMatchObject({ code: 'ECLOSED' });
        await cache.close(); // idempotent
      });
    });

    describe('TTL', () => {
      it('expires at write time + ttl on every read path', async () => {
        await cache.put('v', 'k', { ttl: '90s' });
        await cache.put('forever', 'f');
        clock.advance(89_999);
        expect(await cache.get('k')).toBe('v');
        clock.advance(1);
        expect(await cache.get('k')).toBeUndefined();
        expect(await cache.has('k')).toBe(false);
        expect(await cache.getEntry('k')).toBeUndefined();
        expect((await cache.list()).entries.map((e) => e.key)).toEqual(['f']);
        expect((await cache.list({ includeExpired: true })).entries.map((e) => e.key)).toEqual(['f', 'k']);
        expect(await cache.get('f')).toBe('forever');
      });

      it('accepts seconds and unit strings, null for never', async () => {
        for (const [ttl, ms] of [
          [30, 30_000],
          ['15m', 15 * 60_000],
          ['24h', 24 * HOUR],
          ['7d', 7 * 24 * HOUR],
          [null, null],
        ] as const) {
          const info = await cache.put(1, `ttl-${ttl}`, { ttl });
          expect(info.expiresAt === null ? null : info.expiresAt.getTime() - clock.now).toBe(ms);
        }
      });

      it('applies defaultTtl, overridable per put', async () => {
        const c2 = await open({ defaultTtl: '1h' });
        expect((await c2.put(1, 'd')).expiresAt?.getTime()).toBe(clock.now + HOUR);
        expect((await c2.put(1, 'n', { ttl: null })).expiresAt).toBeNull();
        await c2.close();
      });

      it('touch resets expiry from now, and fails on expired entries', async () => {
        await cache.put(1, 'k', { ttl: '1h' });
        clock.advance(HOUR - 1);
        expect(await cache.touch('k', { ttl: '1h' })).toBe(true);
        clock.advance(HOUR - 1);
        expect(await cache.get('k')).toBe(1);
        expect(await cache.touch('k', { ttl: null })).toBe(true);
        clock.advance(1000 * HOUR);
        expect(await cache.get('k')).toBe(1);
        await cache.put(2, 'e', { ttl: 1 });
        clock.advance(1000);
        expect(await cache.touch('e')).toBe(false);
        expect(await cache.touch('missing')).toBe(false);
      });

      it('cleanup deletes expired entries and counts them', async () => {
        await cache.defineTable('t', { v: 'integer' });
        for (let i = 0; i < 5; i++) await cache.put(randomBytes(50_000), `e${i}`, { ttl: 10, tables: { t: { v: i } } });
        await cache.put(1, 'live');
        clock.advance(10_000);
        const r = await cache.cleanup();
        expect(r.expired).toBe(5);
        expect(r.orphans).toBe(5); // the five expired blobs were collected
        if (!tiered) {
          // A remote cache cleans its local tier; the cloud's sweeper removes expired entries on its schedule.
          const st = await cache.stats();
          expect(st.entries).toBe(1);
          expect(st.expirations).toBe(5);
        }
        expect(await cache.count()).toBe(1);
        if (!tiered) expect(await cache.query('t', { includeExpired: true })).toEqual([]);
        expect((await cache.verify()).orphans).toEqual([]);
      });
    });

    describe('eviction', () => {
      const payload = (seed: number) => randomBytes(40_000 + seed); // incompressible, above inline threshold

      it.skipIf(tiered)('evicts least recently used first by default', async () => {
        const c = await open({ maxSize: 130_000 });
        await c.put(payload(0), 'a');
        clock.advance(10);
        await c.put(payload(1), 'b');
        clock.advance(10);
        await c.put(payload(2), 'c');
        clock.advance(10);
        await c.get('a'); // a is now more recent than b
        await c.flush();
        clock.advance(10);
        await c.put(payload(3), 'd');
        expect(await c.has('b')).toBe(false);
        expect((await Promise.all(['a', 'c', 'd'].map((k) => c.has(k)))).every(Boolean)).toBe(true);
        const st = await c.stats();
        expect(st.evictions).toBe(1);
        expect(st.bytes).toBeLessThanOrEqual(130_000);
        await c.close();
      });

      it.skipIf(tiered)('evicts least frequently used with lfu, oldest with fifo, never with none', async () => {
        for (const [eviction, expectGone] of [
          ['lfu', 'c'],
          ['fifo', 'a'],
          ['none', null],
        ] as const) {
          const c = await open({ maxSize: 130_000, eviction });
          await c.clear();
          await c.put(payload(0), 'a');
          clock.advance(10);
          await c.put(payload(1), 'b');
          clock.advance(10);
          await c.put(payload(2), 'c');
          for (let i = 0; i < 3; i++) await c.get('a');
          await c.get('b');
          await c.flush();
          await c.put(payload(3), 'd');
          const present = await Promise.all(['a', 'b', 'c', 'd'].map((k) => c.has(k)));
          if (expectGone === null) expect(present).toEqual([true, true, true, true]);
          else expect(present[['a', 'b', 'c', 'd'].indexOf(expectGone)]).toBe(false);
          await c.close();
        }
      });

      it.skipIf(tiered)('refuses a single value larger than maxSize', async () => {
        const c = await open({ maxSize: 10_000 });
        await expect(c.put(randomBytes(20_000), 'huge')).rejects.toMatchObject({ code: 'EVALUETOOLARGE' });
        expect(await c.has('huge')).toBe(false);
        await c.close();
      });

      it('never turns reads into one write each: hits are batched and still counted', async () => {
        await cache.put(1, 'k');
        for (let i = 0; i < 5; i++) await cache.get('k');
        await cache.get('miss');
        expect((await cache.getEntry('k'))?.hits).toBe(5);
        const st = await cache.stats();
        expect([st.hits, st.misses]).toEqual([5, 1]);
        expect(st.hitRate).toBeCloseTo(5 / 6);
      });
    });

    describe('list', () => {
      beforeEach(async () => {
        for (let i = 0; i < 25; i++) {
          await cache.put(i, { i, group: i % 2 === 0 ? 'even' : 'odd', at: new Date(i * 1000) }, { metadata: { owner: i < 10 ? 'ana' : 'bo', score: i / 10 } });
        }
        for (const k of ['runs/1', 'runs/2', 'other/1']) await cache.put(k, k);
      });

      it('pages with a cursor through every entry exactly once', async () => {
        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await cache.list({ limit: 7, cursor });
          seen.push(...page.entries.map((e) => e.key));
          cursor = page.cursor;
          pages++;
        } while (cursor);
        expect(pages).toBe(4);
        expect(new Set(seen).size).toBe(28);
        expect([...seen]).toEqual([...seen].sort());
        const all: string[] = [];
        for await (const e of cache.entries()) all.push(e.key);
        expect(all).toEqual(seen);
      });

      it('filters by prefix, params, metadata and entry fields', async () => {
        expect((await cache.list({ prefix: 'runs/' })).entries.map((e) => e.key)).toEqual(['runs/1', 'runs/2']);
        const even = await cache.list({ where: { params: { group: 'even' }, metadata: { owner: 'ana' } } });
        expect(even.entries.map((e) => (e.params as { i: number }).i).sort((a, b) => a - b)).toEqual([0, 2, 4, 6, 8]);
        const ops = await cache.list({ where: { params: { i: { in: [1, 2, 3] } }, metadata: { score: { gte: 0.2 } } } });
        expect(ops.entries.map((e) => (e.params as { i: number }).i).sort()).toEqual([2, 3]);
        const dates = await cache.list({ where: { params: { at: { lt: new Date(3000) } } } });
        expect(dates.entries.length).toBe(3);
        expect((await cache.list({ where: { or: [{ key: 'runs/1' }, { key: { like: 'other/%' } }] } })).entries.map((e) => e.key)).toEqual(['other/1', 'runs/1']);
        expect(await cache.count({ where: { metadata: { owner: 'bo' } } })).toBe(15);
        await expect(cache.list({ cursor: 'not a cursor!' })).rejects.toMatchObject({ code: 'EOPTION' });
        await expect(cache.list({ limit: 0 })).rejects.toMatchObject({ code: 'EOPTION' });
        await expect(cache.list({ where: { params: { i: { between: 1 } } } as never })).rejects.toMatchObject({ code: 'EQUERY' });
      });
    });

    describe('custom tables', () => {
      beforeEach(async () => {
        await cache.defineTable(
          'experiments',
          { experiment_id: 'text', model_type: 'text', accuracy: 'real', epochs: 'integer', params: 'json', trained_at: 'timestamp', ok: 'boolean' },
          { unique: ['experiment_id'], index: ['accuracy'] },
        );
        const rows = [
          ['e1', 'xgb', 0.95, 10],
          ['e2', 'xgb', 0.85, 20],
          ['e3', 'lgbm', 0.91, 30],
          ['e4', 'xgb', 0.97, null],
        ] as const;
        for (const [id, model, acc, epochs] of rows) {
          await cache.put(
            { id },
            { exp: id },
            { tables: { experiments: { experiment_id: id, model_type: model, accuracy: acc, epochs, params: { depth: 3 }, trained_at: new Date(1000), ok: acc > 0.9 } } },
          );
        }
      });

      it('queries with the where language, order and limit; rows carry their key', async () => {
        const top = await cache.query('experiments', { where: { accuracy: { gte: 0.9 }, model_type: 'xgb' }, orderBy: { accuracy: 'desc' }, limit: 5 });
        expect(top.map((r) => r.experiment_id)).toEqual(['e4', 'e1']);
        expect(top[0]).toMatchObject({ key: cache.keyOf({ exp: 'e4' }), params: { depth: 3 }, trained_at: new Date(1000), ok: true, epochs: null });
        const q = (where: Where) => cache.query('experiments', { where, orderBy: { experiment_id: 'asc' } }).then((r) => r.map((x) => x.experiment_id));
        expect(await q({ model_type: { ne: 'xgb' } })).toEqual(['e3']);
        expect(await q({ accuracy: { gt: 0.9, lt: 0.96 } })).toEqual(['e1', 'e3']);
        expect(await q({ epochs: { lte: 20 } })).toEqual(['e1', 'e2']);
        expect(await q({ experiment_id: { in: ['e2', 'e3', 'zz'] } })).toEqual(['e2', 'e3']);
        expect(await q({ experiment_id: { in: [] } })).toEqual([]);
        expect(await q({ model_type: { like: 'lg%' } })).toEqual(['e3']);
        expect(await q({ epochs: { isNull: true } })).toEqual(['e4']);
        expect(await q({ epochs: null })).toEqual(['e4']);
        expect(await q({ or: [{ model_type: 'lgbm' }, { and: [{ accuracy: { lt: 0.9 } }, { ok: false }] }] })).toEqual(['e2', 'e3']);
        expect(await q({ trained_at: { eq: new Date(1000) } })).toHaveLength(4);
        expect((await cache.query('experiments', { orderBy: [{ model_type: 'asc' }, { accuracy: 'asc' }], limit: 2, offset: 1 })).map((r) => r.experiment_id)).toEqual([
          'e2',
          'e1',
        ]);
      });

      it('binds hostile values as data', async () => {
        const evil = "x'; DROP TABLE experiments; --";
        await cache.put(1, 'evil', { tables: { experiments: { experiment_id: evil, model_type: evil } } });
        expect((await cache.query('experiments', { where: { model_type: evil } })).map((r) => r.experiment_id)).toEqual([evil]);
        expect(await cache.query('experiments', { where: { model_type: "' OR 1=1 --" } })).toEqual([]);
        expect((await cache.query('experiments', {})).length).toBe(5);
      });

      it('rows live and die with their entry', async () => {
        const ids = async () => (await cache.query('experiments', { orderBy: { experiment_id: 'asc' } })).map((r) => r.experiment_id);
        await cache.delete({ exp: 'e1' });
        expect(await ids()).toEqual(['e2', 'e3', 'e4']);
        await cache.put({ id: 'e2b' }, { exp: 'e2' }); // re-put without tables keeps rows
        expect(await ids()).toEqual(['e2', 'e3', 'e4']);
        await cache.put({ id: 'e2c' }, { exp: 'e2' }, { tables: { experiments: { experiment_id: 'e2-new', accuracy: 0.1 } } });
        expect(await ids()).toEqual(['e2-new', 'e3', 'e4']);
        await cache.put(1, 'short', { ttl: 1, tables: { experiments: { experiment_id: 'tmp' } } });
        clock.advance(1000);
        expect(await ids()).toEqual(['e2-new', 'e3', 'e4']);
        await cache.cleanup();
        if (!tiered) expect((await cache.query('experiments', { includeExpired: true })).length).toBe(3);
        await cache.clear();
        expect(await ids()).toEqual([]);
      });

      it.skipIf(tiered)('rows go when their entry is evicted', async () => {
        const c = await open({ maxSize: 100_000 });
        await c.defineTable('blobs_meta', { n: 'integer' });
        for (let i = 0; i < 4; i++) {
          clock.advance(10);
          await c.put(randomBytes(40_000), `b${i}`, { tables: { blobs_meta: { n: i } } });
        }
        const left = (await c.query('blobs_meta', { orderBy: { n: 'asc' } })).map((r) => r.n);
        expect(left).toEqual([2, 3]);
        await c.close();
      });

      it('fails a unique violation with ECONSTRAINT and stores nothing', async () => {
        const before = await cache.get({ exp: 'e2' });
        const err = await cache.put({ changed: true }, { exp: 'e2' }, { tables: { experiments: { experiment_id: 'e1' } } }).catch((e) => e);
        expect(err).toBeInstanceOf(CachenessError);
        expect(err.code).toBe('ECONSTRAINT');
        expect(err.message).toMatch(/experiment_id/);
        expect(await cache.get({ exp: 'e2' })).toEqual(before);
        await expect(cache.put(1, 'new-key', { tables: { experiments: { experiment_id: 'e1' } } })).rejects.toMatchObject({ code: 'ECONSTRAINT' });
        expect(await cache.has('new-key')).toBe(false);
        expect((await cache.stats()).entries).toBe(4);
      });

      it('rejects unknown tables, columns and wrong types with clear errors', async () => {
        await expect(cache.query('nope', {})).rejects.toMatchObject({ code: 'ETABLE', message: expect.stringMatching(/defineTable/) });
        await expect(cache.query('experiments', { where: { nope: 1 } })).rejects.toMatchObject({ code: 'ECOLUMN' });
        await expect(cache.query('experiments', { orderBy: { nope: 'asc' } })).rejects.toMatchObject({ code: 'ECOLUMN' });
        await expect(cache.query('experiments', { orderBy: { accuracy: 'sideways' as 'asc' } })).rejects.toMatchObject({ code: 'EQUERY' });
        await expect(cache.put(1, 'k', { tables: { experiments: { accuracy: 'high' } } })).rejects.toMatchObject({
          code: 'ECOLUMN',
          message: expect.stringMatching(/accuracy.*real/),
        });
        await expect(cache.put(1, 'k', { tables: { experiments: { epochs: 1.5 } } })).rejects.toMatchObject({ code: 'ECOLUMN' });
        await expect(cache.put(1, 'k', { tables: { experiments: { ok: 'yes' } } })).rejects.toMatchObject({ code: 'ECOLUMN' });
        await expect(cache.put(1, 'k', { tables: { experiments: { trained_at: 'not a date' } } })).rejects.toMatchObject({ code: 'ECOLUMN' });
        await expect(cache.put(1, 'k', { tables: { experiments: { bogus: 1 } } })).rejects.toMatchObject({ code: 'ECOLUMN' });
        await expect(cache.put(1, 'k', { tables: [] as never })).rejects.toMatchObject({ code: 'ETABLE' });
        expect(await cache.has('k')).toBe(false);
      });

      it('answers read-only SQL over entries and tables, and refuses writes (or refuses SQL altogether)', async () => {
        if (h.sql === false) {
          await expect(cache.sql('SELECT 1')).rejects.toMatchObject({ code: 'EQUERY' });
          return;
        }
        const rows = await cache.sql('SELECT e.key, x.accuracy FROM experiments x JOIN entries e ON e.key = x.key WHERE x.accuracy > ? ORDER BY x.accuracy DESC', [0.96]);
        expect(rows).toEqual([{ key: cache.keyOf({ exp: 'e4' }), accuracy: 0.97 }]);
        await expect(cache.sql('DELETE FROM experiments')).rejects.toMatchObject({ code: 'EREADONLY' });
        await expect(cache.sql("UPDATE entries SET description = 'x'")).rejects.toMatchObject({ code: 'EREADONLY' });
        expect((await cache.query('experiments', {})).length).toBe(4);
      });
    });

    describe('streams and chunked payloads', () => {
      const CHUNK = 64 * 1024;
      /** Compressible and random stretches, so chunks differ in codec. */
      const payload = (n: number) => {
        const out = Buffer.alloc(n);
        for (let off = 0; off < n; off += 50_000) {
          const len = Math.min(50_000, n - off);
          if ((off / 50_000) % 2) randomBytes(len).copy(out, off);
          else out.fill(off % 251, off, off + len);
        }
        return out;
      };
      /** The bytes in pieces of uneven sizes, empty ones included. */
      const pieces = (b: Buffer) => {
        const out: Buffer[] = [];
        for (let off = 0, i = 0; off < b.length; i++) {
          const n = [1, 7777, 0, 65_536, 100_003][i % 5] as number;
          out.push(b.subarray(off, off + n));
          off += n;
        }
        return out;
      };
      const drain = async (s: NodeJS.ReadableStream | undefined) => {
        const parts: Buffer[] = [];
        for await (const p of s as AsyncIterable<Buffer>) parts.push(p);
        return Buffer.concat(parts);
      };

      it('stores a Node stream in chunks and reads it back whole, as a stream and by byte ranges', async () => {
        cache = await open({ chunkSize: CHUNK });
        const data = payload(1_000_003);
        const info = await cache.put(Readable.from(pieces(data)), 'stream');
        expect(info).toMatchObject({ codec: 'chunked', size: data.length, type: 'Buffer', handler: 'bytes@1', contentHash: xxh128Hex(data) });
        expect(info.storedSize).toBeLessThan(data.length * 0.7); // the filled stretches compressed
        expect(Buffer.compare((await cache.get('stream')) as Buffer, data)).toBe(0);
        expect((await drain(await cache.getStream('stream'))).equals(data)).toBe(true);
        const ranges: [number | undefined, number | undefined][] = [
          [0, 0],
          [CHUNK - 1, CHUNK],
          [CHUNK, 3 * CHUNK + 5],
          [123_456, 876_543],
          [data.length - 1, undefined],
          [undefined, 10],
          [500_000, data.length + 1000],
        ];
        for (const [start, end] of ranges) {
          const want = data.subarray(start ?? 0, end === undefined ? data.length : end + 1);
          expect((await drain(await cache.getStream('stream', { start, end }))).equals(want), `range ${start}-${end}`).toBe(true);
        }
        expect((await drain(await cache.getStream('stream', { start: data.length + 5 }))).length).toBe(0);
        expect(await cache.verify()).toMatchObject({ checked: 1, dangling: [], mismatched: [], orphans: [] });
      });

      it('takes web ReadableStreams and async iterables, and stores short or empty streams like buffers', async () => {
        cache = await open({ chunkSize: CHUNK });
        const data = payload(300_000);
        const web = new ReadableStream<Uint8Array>({
          start(c) {
            for (const p of pieces(data)) c.enqueue(new Uint8Array(p));
            c.close();
          },
        });
        expect((await cache.put(web, 'web')).codec).toBe('chunked');
        expect(Buffer.compare((await cache.get('web')) as Buffer, data)).toBe(0);
        const gen = async function* () {
          yield* pieces(data.subarray(0, 1000));
        };
        const small = await cache.put(gen(), 'small');
        expect(small.codec).not.toBe('chunked');
        expect(Buffer.compare((await cache.get('small')) as Buffer, data.subarray(0, 1000))).toBe(0);
        expect((await drain(await cache.getStream('small', { start: 10, end: 19 }))).equals(data.subarray(10, 20))).toBe(true);
        const empty = await cache.put(Readable.from([]), 'empty');
        expect(empty).toMatchObject({ size: 0, type: 'Buffer' });
        expect(((await cache.get('empty')) as Buffer).length).toBe(0);
        expect((await drain(await cache.getStream('empty'))).length).toBe(0);
        expect(await cache.getStream('absent')).toBeUndefined();
      });

      it('stores buffers and typed arrays larger than a chunk in chunks, the same as streams of the same bytes', async () => {
        cache = await open({ chunkSize: CHUNK });
        const data = payload(400_000);
        const a = await cache.put(data, 'a');
        const b = await cache.put(Readable.from(pieces(data)), 'b');
        expect(a).toMatchObject({ codec: 'chunked', contentHash: b.contentHash, storedSize: b.storedSize });
        await cache.delete('a');
        expect(Buffer.compare((await cache.get('b')) as Buffer, data)).toBe(0);
        const floats = new Float32Array(100_000).map((_, i) => Math.sin(i / 50));
        const f = await cache.put(floats, 'floats');
        expect(f.codec).toBe('chunked');
        expect(await cache.get('floats')).toEqual(floats);
        expect(await cache.verify()).toMatchObject({ dangling: [], mismatched: [], orphans: [] });
      });

      it('stores the same bytes with and without compression workers', async () => {
        const data = payload(500_000);
        cache = await open({ chunkSize: CHUNK, workers: 0 });
        const here = await cache.put(data, 'here');
        const other = await open({ chunkSize: CHUNK, workers: 2 });
        try {
          const there = await other.put(Readable.from(pieces(data)), 'there');
          expect(there).toMatchObject({ storedSize: here.storedSize, contentHash: here.contentHash });
          const copy = Buffer.from(data);
          expect(await other.put(data, 'value')).toMatchObject({ storedSize: here.storedSize });
          expect(data.equals(copy)).toBe(true); // the caller's memory was copied to the workers, never handed over
          expect(Buffer.compare((await other.get('there')) as Buffer, data)).toBe(0);
        } finally {
          await other.close();
        }
      });

      it('stores nothing when a stream fails or yields something other than bytes', async () => {
        cache = await open({ chunkSize: CHUNK });
        const failing = async function* () {
          yield randomBytes(200_000);
          throw new Error('disk unplugged');
        };
        await expect(cache.put(failing(), 'f')).rejects.toMatchObject({ code: 'ESTREAM', message: expect.stringContaining('disk unplugged') });
        await expect(cache.put(Readable.from(['text', 'more']), 's')).rejects.toMatchObject({ code: 'EVALUETYPE' });
        const strings = async function* () {
          yield randomBytes(200_000);
          yield 'late string';
        };
        await expect(cache.put(strings(), 's2')).rejects.toMatchObject({ code: 'EVALUETYPE' });
        expect(await cache.has('f')).toBe(false);
        expect(await cache.count()).toBe(0);
        expect(await cache.verify()).toMatchObject({ orphans: [], partial: 0 });
      });

      it('refuses a stream larger than maxSize and keeps the previous value', async () => {
        cache = await open({ chunkSize: CHUNK, maxSize: 300_000, compression: { codec: 'none' } });
        await cache.put(Buffer.from('old'), 'k');
        const big = randomBytes(400_000);
        if (tiered) {
          // A remote cache stores it in the cloud; only its local copy is bounded by maxSize.
          await cache.put(Readable.from([big]), 'k');
          expect(Buffer.compare((await cache.get('k')) as Buffer, big)).toBe(0);
          expect((await cache.stats()).bytes).toBeGreaterThanOrEqual(big.length);
          return;
        }
        await expect(cache.put(Readable.from([big]), 'k')).rejects.toMatchObject({ code: 'EVALUETOOLARGE' });
        expect(((await cache.get('k')) as Buffer).toString()).toBe('old');
        expect(await cache.verify()).toMatchObject({ orphans: [], partial: 0 });
      });

      it('checks getStream ranges', async () => {
        await cache.put(Buffer.from('abc'), 'k');
        await expect(cache.getStream('k', { start: 5, end: 2 })).rejects.toMatchObject({ code: 'EOPTION' });
        await expect(cache.getStream('k', { start: -1 })).rejects.toMatchObject({ code: 'EOPTION' });
        await expect(cache.getStream('k', { end: 1.5 })).rejects.toMatchObject({ code: 'EOPTION' });
      });

      it('puts and gets files, atomically and with clear errors', async () => {
        cache = await open({ chunkSize: CHUNK });
        const dir = await mkdtemp(join(tmpdir(), 'cacheness-files-'));
        try {
          const data = payload(700_000);
          await writeFile(join(dir, 'in.bin'), data);
          expect((await cache.putFile(join(dir, 'in.bin'), 'file')).size).toBe(data.length);
          await writeFile(join(dir, 'out.bin'), 'previous contents');
          expect(await cache.getFile('file', join(dir, 'out.bin'))).toBe(true);
          expect((await readFile(join(dir, 'out.bin'))).equals(data)).toBe(true);
          expect(await cache.getFile('absent', join(dir, 'untouched.bin'))).toBe(false);
          await expect(cache.getFile('file', join(dir, 'no-such-dir', 'x.bin'))).rejects.toMatchObject({ code: 'EFILE' });
          await expect(cache.putFile(join(dir, 'missing.bin'), 'm')).rejects.toMatchObject({ code: 'EFILE' });
          await expect(cache.putFile(dir, 'd')).rejects.toMatchObject({ code: 'EFILE' });
          expect((await readdir(dir)).sort()).toEqual(['in.bin', 'out.bin']); // no temp files left
          expect(await cache.has('m')).toBe(false);
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });

      it('exports and imports chunked entries', async () => {
        cache = await open({ chunkSize: CHUNK });
        const data = payload(300_000);
        await cache.put(Readable.from(pieces(data)), 'big');
        const dir = await mkdtemp(join(tmpdir(), 'cacheness-dump-'));
        try {
          await cache.export(join(dir, 'dump.tar'));
          const other = await h.open({ store: 'memory', clock: clock.fn, chunkSize: CHUNK });
          expect((await other.import(join(dir, 'dump.tar'))).entries).toBe(1);
          expect(Buffer.compare((await other.get('big')) as Buffer, data)).toBe(0);
          expect((await other.getEntry('big'))?.codec).toBe('chunked');
          await other.close();
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });
    });

    describe('integrity and maintenance', () => {
      it('verifies a healthy store as clean', async () => {
        await cache.put(randomBytes(100_000), 'blob');
        await cache.put({ small: 1 }, 'inline');
        await cache.put({ t: 'q'.repeat(100_000) }, 'compressed');
        const r = await cache.verify();
        expect(r).toMatchObject({ checked: 3, dangling: [], mismatched: [], orphans: [] });
      });

      it('stores identical payloads once and frees them with the last entry', async () => {
        const data = randomBytes(100_000);
        await cache.put(data, 'one');
        await cache.put(data, 'two');
        await cache.delete('one');
        expect(Buffer.compare((await cache.get('two')) as Buffer, data)).toBe(0);
        await cache.delete('two');
        expect((await cache.verify()).orphans).toEqual([]);
      });

      it('exports and imports entries, metadata, tables and expiry', async () => {
        await cache.defineTable('runs', { name: 'text', score: 'real' }, { unique: ['name'] });
        await cache.put({ a: new Map([[1, 2]]) }, { p: 1 }, { metadata: { m: 1 }, description: 'd', ttl: '2h', tables: { runs: { name: 'r1', score: 1.5 } } });
        await cache.put(randomBytes(100_000), 'blob');
        await cache.put(1, 'gone', { ttl: 1 });
        clock.advance(1000);
        const dir = await mkdtemp(join(tmpdir(), 'cacheness-dump-'));
        try {
          const out = await cache.export(join(dir, 'dump.tar'));
          expect(out.entries).toBe(2);
          const other = await h.open({ store: 'memory', clock: clock.fn });
          const r = await other.import(join(dir, 'dump.tar'));
          expect(r.entries).toBe(2);
          expect(await other.get({ p: 1 })).toEqual({ a: new Map([[1, 2]]) });
          expect(Buffer.compare((await other.get('blob')) as Buffer, (await cache.get('blob')) as Buffer)).toBe(0);
          const e = await other.getEntry({ p: 1 });
          expect(e).toMatchObject({ description: 'd', metadata: { m: 1 }, params: { p: 1 } });
          expect(e?.expiresAt?.getTime()).toBe((await cache.getEntry({ p: 1 }))?.expiresAt?.getTime());
          expect(await other.query('runs', {})).toEqual([{ key: cache.keyOf({ p: 1 }), name: 'r1', score: 1.5 }]);
          await other.close();
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });

      it('rejects a file that is not a dump', async () => {
        const dir = await mkdtemp(join(tmpdir(), 'cacheness-dump-'));
        try {
          const { writeFile } = await import('node:fs/promises');
          await writeFile(join(dir, 'x.tar'), 'not a tar');
          await expect(cache.import(join(dir, 'x.tar'))).rejects.toMatchObject({ code: 'EDUMP' });
          await expect(cache.import(join(dir, 'missing.tar'))).rejects.toMatchObject({ code: 'EDUMP' });
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });
    });

    it('never serves a stale value after another connection writes (in-process read cache)', async () => {
      if (!h.persistent) return;
      const other = await open();
      await cache.put({ v: 1 }, 'k');
      expect(await other.get('k')).toEqual({ v: 1 }); // now memoized by other
      expect(await other.get('k')).toEqual({ v: 1 });
      await cache.put({ v: 2 }, 'k');
      expect(await other.get('k')).toEqual({ v: 2 });
      await cache.touch('k', { ttl: 1 });
      clock.advance(1000);
      expect(await other.get('k')).toBeUndefined();
      await cache.put({ v: 3 }, 'k');
      expect(await other.get('k')).toEqual({ v: 3 });
      await cache.delete('k');
      expect(await other.get('k')).toBeUndefined();
      await other.close();
    });

    it('hands out values that callers may mutate without affecting the store', async () => {
      await cache.put(Buffer.from('abc'), 'b');
      const first = (await cache.get('b')) as Buffer;
      first[0] = 0x7a;
      expect(((await cache.get('b')) as Buffer).toString()).toBe('abc');
      const obj = { list: [1] };
      await cache.put(obj, 'o');
      obj.list.push(2);
      ((await cache.get('o')) as { list: number[] }).list.push(3);
      expect(await cache.get('o')).toEqual({ list: [1] });
      expect(errors).toEqual([]);
    });

    it('shares data and counters between two caches on one persistent store', async () => {
      if (!h.persistent) return;
      const other = await open();
      await cache.put({ v: 1 }, 'shared');
      expect(await other.get('shared')).toEqual({ v: 1 });
      await other.get('shared');
      await other.close();
      expect((await cache.stats()).hits).toBe(2);
    });
  });
}

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Cache, type CachenessError, cached, createCache, getDefaultCache } from 'cacheness';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TestClock } from './contract/cache.js';

/** A promise the test resolves itself: holds a function mid-call without sleeping. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('cached()', () => {
  let cache: Cache;
  let clock: TestClock;
  const errors: CachenessError[] = [];
  beforeEach(() => {
    clock = new TestClock();
    errors.length = 0;
    cache = createCache({ store: 'memory', clock: clock.fn, onError: (e) => errors.push(e) });
  });
  afterEach(() => cache.close());

  it('memoizes async and sync functions, returning promises', async () => {
    let calls = 0;
    const add = cached(
      (a: number, b: number) => {
        calls++;
        return a + b;
      },
      { cache },
    );
    const p = add(1, 2);
    expect(p).toBeInstanceOf(Promise);
    expect(await p).toBe(3);
    expect(await add(1, 2)).toBe(3);
    expect(await add(2, 1)).toBe(3);
    expect(calls).toBe(2);
    const slow = cached(
      async (x: { n: number }) => {
        calls++;
        return { doubled: x.n * 2, at: new Date(0) };
      },
      { cache },
    );
    expect(await slow({ n: 4 })).toEqual({ doubled: 8, at: new Date(0) });
    expect(await slow({ n: 4 })).toEqual({ doubled: 8, at: new Date(0) });
    expect(calls).toBe(3);
    expect(await add.cacheInfo()).toEqual({ hits: 1, misses: 2, size: 2, ttl: undefined });
  });

  it('runs concurrent calls with one key once (single flight)', async () => {
    const gate = deferred();
    let calls = 0;
    const f = cached(
      async (x: number) => {
        calls++;
        await gate.promise;
        return x * 10;
      },
      { cache },
    );
    const burst = Array.from({ length: 20 }, () => f(7));
    const other = f(8);
    gate.resolve();
    expect(await Promise.all(burst)).toEqual(Array(20).fill(70));
    expect(await other).toBe(80);
    expect(calls).toBe(2);
  });

  it('treats a cached undefined or null as a hit', async () => {
    let calls = 0;
    const u = cached(
      async (kind: string) => {
        calls++;
        return kind === 'null' ? null : undefined;
      },
      { cache },
    );
    expect(await u('undefined')).toBeUndefined();
    expect(await u('undefined')).toBeUndefined();
    expect(await u('null')).toBeNull();
    expect(await u('null')).toBeNull();
    expect(calls).toBe(2);
  });

  it('never caches errors', async () => {
    let calls = 0;
    const flaky = cached(
      async () => {
        calls++;
        if (calls === 1) throw new Error('boom');
        return 'ok';
      },
      { cache },
    );
    await expect(flaky()).rejects.toThrow('boom');
    expect(await flaky()).toBe('ok');
    expect(await flaky()).toBe('ok');
    expect(calls).toBe(2);
  });

  it('stores only results that pass condition', async () => {
    let calls = 0;
    const f = cached(
      async (x: number) => {
        calls++;
        return x;
      },
      { cache, condition: (r) => r > 0 },
    );
    await f(-1);
    await f(-1);
    await f(1);
    await f(1);
    expect(calls).toBe(3);
  });

  it('keys by a custom key function (ignoring an argument)', async () => {
    let calls = 0;
    const f = cached(
      async (data: number[], _logger: { log(): void }) => {
        calls++;
        return data.length;
      },
      { cache, key: (data) => ({ data }) },
    );
    await f([1, 2], { log() {} });
    await f([1, 2], { log() {} }); // a different logger object, same key
    expect(calls).toBe(1);
    expect(f.cacheKey([1, 2], { log() {} })).toBe(f.cacheKey([1, 2], { log: () => 0 }));
    const bad = cached(async (_l: { log(): void }) => 1, { cache });
    await expect(bad({ log() {} })).rejects.toMatchObject({ code: 'EKEYTYPE' });
  });

  it('keys by function identity: name plus source, or keyPrefix', async () => {
    const v1 = cached(
      function train(x: number) {
        return x + 1;
      },
      { cache },
    );
    const v2 = cached(
      function train(x: number) {
        return x + 2; // edited body: must not serve v1's results
      },
      { cache },
    );
    expect(v1.functionId).toMatch(/^train-[0-9a-f]{8}$/);
    expect(v1.functionId).not.toBe(v2.functionId);
    expect(await v1(1)).toBe(2);
    expect(await v2(1)).toBe(3);
    const p1 = cached((x: number) => x + 1, { cache, keyPrefix: 'stable' });
    const p2 = cached((x: number) => x + 100, { cache, keyPrefix: 'stable' });
    expect(await p1(1)).toBe(2);
    expect(await p2(1)).toBe(2); // same prefix: results shared across edits, by design
    expect(p1.cacheKey(1)).toMatch(/^cached\/stable\/[0-9a-f]{16}$/);
  });

  it('clears only its own entries', async () => {
    const a = cached(async (x: number) => x, { cache, keyPrefix: 'a' });
    const ab = cached(async (x: number) => x, { cache, keyPrefix: 'a/b' });
    await a(1);
    await a(2);
    await ab(1);
    await cache.put('plain', 'cached/a');
    expect(await a.cacheClear()).toBe(2);
    expect((await a.cacheInfo()).size).toBe(0);
    expect((await ab.cacheInfo()).size).toBe(1);
    expect(await cache.get('cached/a')).toBe('plain');
  });

  it('honours ttl', async () => {
    let calls = 0;
    const f = cached(async () => ++calls, { cache, ttl: '1h' });
    await f();
    clock.advance(3_599_999);
    expect(await f()).toBe(1);
    clock.advance(1);
    expect(await f()).toBe(2);
  });

  it('returns a result it cannot store, and reports it', async () => {
    class Model {
      w = [1, 2];
    }
    let calls = 0;
    const f = cached(
      async () => {
        calls++;
        return new Model();
      },
      { cache },
    );
    expect(await f()).toBeInstanceOf(Model);
    expect(await f()).toBeInstanceOf(Model);
    expect(calls).toBe(2);
    expect(errors.map((e) => e.code)).toEqual(['EVALUETYPE', 'EVALUETYPE']);
  });

  it('stores the arguments as queryable params', async () => {
    const f = cached(async (model: string, depth: number) => `${model}:${depth}`, { cache, keyPrefix: 'fit' });
    await f('xgb', 3);
    await f('lgbm', 5);
    const found = await cache.list({ prefix: 'cached/fit/', where: { params: { fn: 'fit', 'args.0': 'xgb' } } });
    expect(found.entries.map((e) => e.params)).toEqual([{ fn: 'fit', args: ['xgb', 3] }]);
  });
});

describe('default cache', () => {
  let dir: string;
  const saved = process.env.CACHENESS_DIR;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cacheness-default-'));
    process.env.CACHENESS_DIR = dir;
  });
  afterEach(async () => {
    await getDefaultCache().close();
    if (saved === undefined) delete process.env.CACHENESS_DIR;
    else process.env.CACHENESS_DIR = saved;
    await rm(dir, { recursive: true, force: true });
  });

  it('is one shared cache per process, in CACHENESS_DIR or ./.cacheness', async () => {
    const f = cached(async (x: number) => x, { keyPrefix: 'f' });
    const g = cached(async (x: number) => x, { keyPrefix: 'g' });
    await f(1);
    await g(1);
    const shared = getDefaultCache();
    expect(shared.location).toBe(dir);
    expect(await shared.count({ prefix: 'cached/' })).toBe(2);
    expect(getDefaultCache()).toBe(shared);
  });
});

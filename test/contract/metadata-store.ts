/**
 * Contract suite every MetadataStore implementation must pass (SQLite now; Postgres with the cloud API).
 * Usage: `metadataStoreContract('sqlite file', async () => ({ store, dispose }))`.
 */
import type { EntryRecord } from 'cacheness';
import type { MetadataStore, Where } from 'cacheness/stores';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

export interface MetadataStoreHarness {
  store: MetadataStore;
  dispose(): Promise<void>;
}

const T0 = 1_700_000_000_000;
const OWNER = 'host:1';

/** A valid record with sensible defaults. */
export function record(key: string, over: Partial<EntryRecord> = {}): EntryRecord {
  return {
    key,
    params: null,
    handler: 'structured@1',
    type: 'object',
    codec: 'none',
    size: 10,
    storedSize: 10,
    contentHash: '0'.repeat(32),
    blobId: null,
    inline: new Uint8Array(10).fill(1),
    createdAt: T0,
    accessedAt: T0,
    expiresAt: null,
    hits: 0,
    description: null,
    metadata: null,
    ...over,
  };
}

/** What a store offers beyond the common contract. */
export interface StoreCapabilities {
  /** Read-only raw SQL over the store (the local SQLite store; not the shared cloud store). */
  sql: boolean;
}

export function metadataStoreContract(name: string, make: () => Promise<MetadataStoreHarness>, caps: StoreCapabilities = { sql: true }): void {
  describe(`MetadataStore contract: ${name}`, () => {
    let h: MetadataStoreHarness;
    let s: MetadataStore;
    beforeEach(async () => {
      h = await make();
      s = h.store;
    });
    afterEach(async () => {
      await h.dispose();
    });

    it('puts, gets and heads a record; head leaves out inline bytes', async () => {
      const r = record('a', { params: { m: 'x', n: [1, 2] }, metadata: { owner: 'ana' }, description: 'd', expiresAt: T0 + 5 });
      await s.put(r);
      const got = await s.get('a');
      expect(got).toMatchObject({ ...r, inline: expect.any(Uint8Array), blobName: null });
      expect(Buffer.from(got!.inline!)).toEqual(Buffer.from(r.inline!));
      const head = await s.head('a');
      expect(head?.inline).toBeNull();
      expect(head?.metadata).toEqual({ owner: 'ana' });
      expect(await s.get('missing')).toBeUndefined();
      expect(await s.head('missing')).toBeUndefined();
    });

    it('reads what a value read needs, consistent with get', async () => {
      const r = record('a', { expiresAt: T0 + 5, codec: 'lz4', size: 99, storedSize: 10, contentHash: 'f'.repeat(32) });
      await s.put(r);
      const read = await s.read('a');
      const full = await s.get('a');
      expect(read).toMatchObject({
        key: 'a',
        handler: r.handler,
        type: r.type,
        codec: 'lz4',
        size: 99,
        storedSize: 10,
        contentHash: 'f'.repeat(32),
        blobId: null,
        blobName: null,
        inline: full?.inline,
        createdAt: T0,
        expiresAt: T0 + 5,
      });
      expect(await s.read('missing')).toBeUndefined();
      expect(await s.storedBytes()).toBe(10);
    });

    it('replaces on put and keeps counters exact', async () => {
      await s.put(record('a', { storedSize: 10 }));
      await s.put(record('b', { storedSize: 5 }));
      await s.put(record('a', { storedSize: 30, description: 'v2' }));
      expect((await s.get('a'))?.description).toBe('v2');
      const c = await s.counters();
      expect(c.entries).toBe(2);
      expect(c.bytes).toBe(35);
      expect(await s.delete('a')).toBe(true);
      expect(await s.delete('a')).toBe(false);
      expect((await s.counters()).bytes).toBe(5);
    });

    it('counts removals by reason', async () => {
      for (const k of ['a', 'b', 'c', 'd']) await s.put(record(k));
      await s.delete('a', 'expired');
      await s.delete('b', 'evicted');
      await s.delete('c', 'corrupt');
      await s.delete('d');
      const c = await s.counters();
      expect([c.expirations, c.evictions, c.corruptions, c.entries]).toEqual([1, 1, 1, 0]);
    });

    it('deletes by prefix, only that prefix', async () => {
      for (const k of ['p/a', 'p/b', 'p/c/d', 'pa', 'q/p/a']) await s.put(record(k));
      expect(await s.deletePrefix('p/')).toBe(3);
      expect((await s.list({ limit: 10, now: T0 })).map((e) => e.key)).toEqual(['pa', 'q/p/a']);
    });

    it('touches only live entries', async () => {
      await s.put(record('a', { expiresAt: T0 + 100 }));
      expect(await s.touch('a', T0 + 1000, T0 + 50)).toBe(true);
      expect((await s.head('a'))?.expiresAt).toBe(T0 + 1000);
      expect(await s.touch('a', null, T0 + 2000)).toBe(false); // expired at T0+2000
      expect(await s.touch('missing', null, T0)).toBe(false);
    });

    it('starts an entry at zero hits, accessed when written, and resets on rewrite', async () => {
      await s.put(record('a', { createdAt: T0 + 3, accessedAt: T0 + 99, hits: 7 }));
      expect(await s.head('a')).toMatchObject({ hits: 0, accessedAt: T0 + 3 });
      await s.recordAccess([{ key: 'a', hits: 2, accessedAt: T0 + 50 }], {});
      await s.put(record('a', { createdAt: T0 + 60 }));
      expect(await s.head('a')).toMatchObject({ hits: 0, accessedAt: T0 + 60 });
      expect(await s.touch('a', null, T0 + 70)).toBe(true);
      expect((await s.head('a'))?.accessedAt).toBe(T0 + 70);
    });

    it('records batched accesses and counters', async () => {
      await s.put(record('a'));
      await s.recordAccess(
        [
          { key: 'a', hits: 3, accessedAt: T0 + 9 },
          { key: 'gone', hits: 1, accessedAt: T0 },
        ],
        { hits: 4, misses: 2 },
      );
      const a = await s.head('a');
      expect([a?.hits, a?.accessedAt]).toEqual([3, T0 + 9]);
      await s.recordAccess([{ key: 'a', hits: 1, accessedAt: T0 + 1 }], {});
      expect((await s.head('a'))?.accessedAt).toBe(T0 + 9); // never goes back in time
      const c = await s.counters();
      expect([c.hits, c.misses]).toEqual([4, 2]);
    });

    it('lists in key order with keyset pagination, prefix, expiry and where', async () => {
      for (let i = 0; i < 12; i++) {
        await s.put(
          record(`k${String(i).padStart(2, '0')}`, {
            params: { i, even: i % 2 === 0, tag: i < 6 ? 'low' : 'high' },
            metadata: { owner: i % 3 === 0 ? 'ana' : 'bo' },
            expiresAt: i === 11 ? T0 : null,
            size: i,
          }),
        );
      }
      const page1 = await s.list({ limit: 5, now: T0 });
      expect(page1.map((e) => e.key)).toEqual(['k00', 'k01', 'k02', 'k03', 'k04']);
      const page2 = await s.list({ limit: 5, after: 'k04', now: T0 });
      expect(page2[0]?.key).toBe('k05');
      expect((await s.list({ limit: 50, now: T0 })).length).toBe(11); // k11 expired
      expect((await s.list({ limit: 50, now: T0, includeExpired: true })).length).toBe(12);
      expect((await s.list({ limit: 50, now: T0, prefix: 'k1' })).map((e) => e.key)).toEqual(['k10']);
      const where = await s.list({ limit: 50, now: T0, where: { params: { even: true, i: { gte: 4 } }, metadata: { owner: 'ana' } } });
      expect(where.map((e) => e.key)).toEqual(['k06']);
      const or = await s.list({ limit: 50, now: T0, where: { or: [{ params: { i: 1 } }, { size: { gt: 9 } }] } });
      expect(or.map((e) => e.key)).toEqual(['k01', 'k10']);
      expect(await s.count({ now: T0, where: { params: { tag: 'low' } } })).toBe(6);
      await expect(s.list({ limit: 5, now: T0, where: { nope: 1 } })).rejects.toMatchObject({ code: 'ECOLUMN' });
    });

    it('matches nested params and metadata by path, digits indexing arrays', async () => {
      await s.put(record('n1', { params: { args: ['train', 3], opt: { lr: 0.1, name: 'adam' } }, metadata: { tags: { env: 'prod' } } }));
      await s.put(record('n2', { params: { args: ['test', 3], opt: { lr: 0.2, name: 'adam' } }, metadata: { tags: { env: 'dev' } } }));
      const keys = async (where: Where) => (await s.list({ limit: 10, now: T0, where })).map((e) => e.key);
      expect(await keys({ params: { 'args.0': 'train' } })).toEqual(['n1']);
      expect(await keys({ params: { 'args.1': 3 } })).toEqual(['n1', 'n2']);
      expect(await keys({ params: { 'opt.name': 'adam', 'opt.lr': 0.2 } })).toEqual(['n2']);
      expect(await keys({ metadata: { 'tags.env': 'prod' } })).toEqual(['n1']);
      expect(await keys({ params: { 'opt.name': 'sgd' } })).toEqual([]);
    });

    it('deletes expired entries in batches', async () => {
      for (let i = 0; i < 5; i++) await s.put(record(`e${i}`, { expiresAt: T0 + i }));
      await s.put(record('live'));
      expect(await s.deleteExpired(T0 + 10, 3)).toBe(3);
      expect(await s.deleteExpired(T0 + 10, 3)).toBe(2);
      expect(await s.deleteExpired(T0 + 10, 3)).toBe(0);
      expect((await s.counters()).expirations).toBe(5);
      expect(await s.head('live')).toBeDefined();
    });

    it.each([
      ['lru', ['b', 'c']],
      ['lfu', ['a', 'c']],
      ['fifo', ['c', 'b']],
    ] as const)('evicts by %s until under the limit, sparing the protected key', async (policy, survivors) => {
      // created: c < a < b; accessed: a < b < c; hits: b fewest
      await s.put(record('c', { createdAt: T0 }));
      await s.put(record('a', { createdAt: T0 + 1 }));
      await s.put(record('b', { createdAt: T0 + 2 }));
      await s.recordAccess(
        [
          { key: 'a', hits: 5, accessedAt: T0 + 10 },
          { key: 'b', hits: 0, accessedAt: T0 + 20 },
          { key: 'c', hits: 9, accessedAt: T0 + 30 },
        ],
        {},
      );
      const protect = policy === 'fifo' ? 'c' : undefined; // c is oldest: fifo must skip it and take a
      expect(await s.evict(policy, 20, T0, protect)).toBe(1);
      expect((await s.list({ limit: 10, now: T0 })).map((e) => e.key).sort()).toEqual([...survivors].sort());
      expect((await s.counters()).evictions).toBe(1);
    });

    it('drops expired entries before evicting live ones', async () => {
      await s.put(record('live-old', { createdAt: T0 }));
      await s.put(record('expired-new', { createdAt: T0 + 5, expiresAt: T0 + 6 }));
      await s.put(record('live-new', { createdAt: T0 + 7 }));
      expect(await s.evict('fifo', 20, T0 + 10)).toBe(0);
      expect((await s.list({ limit: 10, now: T0, includeExpired: true })).map((e) => e.key)).toEqual(['live-new', 'live-old']);
      expect((await s.counters()).expirations).toBe(1);
    });

    it('deletes conditionally, only the version it was given', async () => {
      await s.put(record('k', { createdAt: T0, contentHash: 'a'.repeat(32) }));
      const seen = await s.get('k');
      await s.put(record('k', { createdAt: T0 + 1, contentHash: 'b'.repeat(32) }));
      expect(await s.delete('k', 'corrupt', seen)).toBe(false);
      expect((await s.head('k'))?.contentHash).toBe('b'.repeat(32));
      expect(await s.delete('k', 'corrupt', await s.get('k'))).toBe(true);
      expect((await s.counters()).corruptions).toBe(1);
    });

    it('refuses a commit whose blob reservation went stale, and keeps the pin released', async () => {
      const r = await s.acquireBlob('9a'.repeat(16), 1, T0, OWNER);
      expect(await s.claimGarbage(T0 + 1, 10)).toEqual([r.name]); // the pin was older than the bound
      await s.dropGarbage([r.name]);
      await expect(s.put(record('k', { blobId: '9a'.repeat(16), inline: null }), { pin: r.pin, blobName: r.name })).rejects.toMatchObject({
        code: 'ESTORE',
        details: { retry: true },
      });
      expect(await s.head('k')).toBeUndefined();
    });

    it('clears everything', async () => {
      for (const k of ['a', 'b']) await s.put(record(k));
      expect(await s.clear()).toBe(2);
      expect((await s.counters()).entries).toBe(0);
    });

    describe('blob protocol', () => {
      it('pins, commits, frees and collects a blob', async () => {
        const r1 = await s.acquireBlob('ab'.repeat(16), 100, T0, OWNER);
        expect(r1.ready).toBe(false);
        expect(r1.name).toMatch(/^(ab){16}\.[0-9a-f]+$/);
        expect(await s.claimGarbage(T0 - 1, 10)).toEqual([]); // pinned
        expect(await s.claimGarbage(T0 - 1, 10)).toEqual([]); // still pinned by the write in flight
        await s.put(record('a', { blobId: 'ab'.repeat(16), inline: null, storedSize: 100 }), { pin: r1.pin, blobName: r1.name });
        expect(await s.isLiveBlob(r1.name)).toBe(true);
        expect((await s.get('a'))?.blobName).toBe(r1.name);
        expect((await s.read('a'))?.blobName).toBe(r1.name);
        const r2 = await s.acquireBlob('ab'.repeat(16), 100, T0, OWNER);
        expect(r2).toMatchObject({ name: r1.name, ready: true });
        await s.put(record('b', { blobId: 'ab'.repeat(16), inline: null, storedSize: 100 }), { pin: r2.pin, blobName: r2.name });
        await s.delete('a');
        expect(await s.claimGarbage(T0 - 1, 10)).toEqual([]); // still referenced by b
        await s.delete('b');
        const garbage = await s.claimGarbage(T0 - 1, 10);
        expect(garbage).toEqual([r1.name]);
        expect(await s.isLiveBlob(r1.name)).toBe(false);
        expect(await s.dropGarbage(garbage)).toBe(1);
        expect(await s.dropGarbage(garbage)).toBe(0); // already forgotten: counted once
        expect(await s.claimGarbage(T0 - 1, 10)).toEqual([]);
        expect((await s.acquireBlob('ab'.repeat(16), 100, T0, OWNER)).ready).toBe(false);
      });

      it('gives a doomed blob a new name when re-acquired, and keeps it', async () => {
        const id = 'cd'.repeat(16);
        const first = await s.acquireBlob(id, 1, T0, OWNER);
        await s.put(record('a', { blobId: id, inline: null }), { pin: first.pin, blobName: first.name });
        await s.delete('a');
        const [doomed] = await s.claimGarbage(T0 - 1, 10);
        expect(doomed).toBe(first.name);
        const again = await s.acquireBlob(id, 1, T0, OWNER);
        expect(again.name).not.toBe(first.name);
        expect(again.ready).toBe(false);
        await s.dropGarbage([first.name]); // must not forget the re-acquired blob
        expect(await s.isLiveBlob(again.name)).toBe(true);
        await s.put(record('b', { blobId: id, inline: null }), { pin: again.pin, blobName: again.name });
        expect((await s.get('b'))?.blobName).toBe(again.name);
        expect(await s.claimGarbage(T0 - 1, 10)).toEqual([]);
      });

      it('treats a stale pin (a writer that hung or died elsewhere) as garbage', async () => {
        const r = await s.acquireBlob('ef'.repeat(16), 1, T0, OWNER);
        expect(await s.claimGarbage(T0 - 1, 10)).toEqual([]);
        expect(await s.claimGarbage(T0 + 1, 10)).toEqual([r.name]);
      });

      it('reaps pins of dead owners only, and releases abandoned pins', async () => {
        const dead = await s.acquireBlob('a1'.repeat(16), 1, T0, 'host:dead');
        const live = await s.acquireBlob('b2'.repeat(16), 1, T0, 'host:live');
        const shared1 = await s.acquireBlob('c3'.repeat(16), 1, T0, 'host:dead');
        await s.acquireBlob('c3'.repeat(16), 1, T0, 'host:live'); // a live writer of the same bytes
        expect(await s.reapPins((o) => o !== 'host:dead')).toBe(2);
        expect(await s.claimGarbage(T0 - 1, 10)).toEqual([dead.name]);
        await s.dropGarbage([dead.name]);
        expect(shared1.name).toMatch(/^(c3){16}\./);
        await s.releasePin(live.pin);
        expect(await s.claimGarbage(T0 - 1, 10)).toEqual([live.name]);
      });

      it('moves references when an entry changes blobs', async () => {
        const x = '11'.repeat(16);
        const y = '22'.repeat(16);
        const rx = await s.acquireBlob(x, 1, T0, OWNER);
        await s.put(record('a', { blobId: x, inline: null }), { pin: rx.pin, blobName: rx.name });
        const ry = await s.acquireBlob(y, 1, T0, OWNER);
        await s.put(record('a', { blobId: y, inline: null }), { pin: ry.pin, blobName: ry.name });
        expect(await s.claimGarbage(T0 - 1, 10)).toEqual([rx.name]);
      });
    });

    describe('custom tables', () => {
      const cols = { exp: 'text', acc: 'real', epochs: 'integer', ok: 'boolean', at: 'timestamp', cfg: 'json' } as const;

      it('defines, fills, queries, and cascades with entries', async () => {
        await s.defineTable('runs', cols, { unique: ['exp'], index: ['acc'] });
        await s.put(record('a'), { tables: { runs: [{ exp: 'e1', acc: 0.9, epochs: 3, ok: true, at: new Date(T0), cfg: { lr: 0.1 } }] } });
        await s.put(record('b'), { tables: { runs: [{ exp: 'e2', acc: 0.5, ok: false }] } });
        const rows = await s.query('runs', { where: { acc: { gt: 0.6 } }, now: T0 });
        expect(rows).toEqual([{ key: 'a', exp: 'e1', acc: 0.9, epochs: 3, ok: true, at: new Date(T0), cfg: { lr: 0.1 } }]);
        expect((await s.query('runs', { where: { ok: false }, now: T0 })).map((r) => r.key)).toEqual(['b']);
        expect((await s.query('runs', { where: { at: { isNull: true } }, now: T0 })).map((r) => r.key)).toEqual(['b']);
        expect((await s.query('runs', { orderBy: { acc: 'asc' }, limit: 1, now: T0 })).map((r) => r.exp)).toEqual(['e2']);
        expect(await s.rowsOf('a')).toEqual({ runs: [{ exp: 'e1', acc: 0.9, epochs: 3, ok: true, at: new Date(T0), cfg: { lr: 0.1 } }] });
        await s.delete('a');
        expect((await s.query('runs', { now: T0 })).map((r) => r.key)).toEqual(['b']);
        await s.clear();
        expect(await s.query('runs', { now: T0 })).toEqual([]);
      });

      it('replaces rows only for tables named in a put', async () => {
        await s.defineTable('t1', { v: 'integer' });
        await s.defineTable('t2', { v: 'integer' });
        await s.put(record('a'), { tables: { t1: [{ v: 1 }, { v: 2 }], t2: [{ v: 3 }] } });
        await s.put(record('a'), { tables: { t1: [{ v: 9 }] } });
        expect((await s.query('t1', { now: T0 })).map((r) => r.v)).toEqual([9]);
        expect((await s.query('t2', { now: T0 })).map((r) => r.v)).toEqual([3]);
        await s.put(record('a'));
        expect((await s.query('t1', { now: T0 })).map((r) => r.v)).toEqual([9]);
      });

      it('fails a unique violation without storing anything', async () => {
        await s.defineTable('u', { name: 'text' }, { unique: ['name'] });
        await s.put(record('a', { description: 'old' }), { tables: { u: [{ name: 'x' }] } });
        await s.put(record('b', { description: 'old' }));
        await expect(s.put(record('b', { description: 'new' }), { tables: { u: [{ name: 'x' }] } })).rejects.toMatchObject({ code: 'ECONSTRAINT' });
        expect((await s.head('b'))?.description).toBe('old');
        expect((await s.counters()).entries).toBe(2);
      });

      it('rejects bad names, unknown tables and columns, and wrong types', async () => {
        await expect(s.defineTable('x; DROP TABLE entries', { a: 'text' })).rejects.toMatchObject({ code: 'ETABLE' });
        await expect(s.defineTable('entries', { a: 'text' })).rejects.toMatchObject({ code: 'ETABLE' });
        await expect(s.defineTable('ok', { 'a"b': 'text' })).rejects.toMatchObject({ code: 'ECOLUMN' });
        await expect(s.defineTable('ok', { a: 'varchar' as 'text' })).rejects.toMatchObject({ code: 'ECOLUMN' });
        await s.defineTable('ok', { a: 'integer' });
        await expect(s.put(record('a'), { tables: { nope: [{ a: 1 }] } })).rejects.toMatchObject({ code: 'ETABLE' });
        await expect(s.put(record('a'), { tables: { ok: [{ b: 1 }] } })).rejects.toMatchObject({ code: 'ECOLUMN' });
        await expect(s.put(record('a'), { tables: { ok: [{ a: 1.5 }] } })).rejects.toMatchObject({ code: 'ECOLUMN' });
        await expect(s.put(record('a'), { tables: { ok: [{ a: '1' }] } })).rejects.toMatchObject({ code: 'ECOLUMN' });
        expect(await s.head('a')).toBeUndefined();
        await expect(s.query('ok', { where: { 'a = 1 OR 1': 1 }, now: T0 })).rejects.toMatchObject({ code: 'ECOLUMN' });
        await expect(s.query('ok', { where: { a: { regex: 1 } as never }, now: T0 })).rejects.toMatchObject({ code: 'EQUERY' });
      });

      it('matches LIKE case-sensitively and refuses timestamps outside years 1 to 9999', async () => {
        await s.defineTable('cs', { name: 'text', at: 'timestamp' });
        await s.put(record('k1'), { tables: { cs: [{ name: 'Alpha' }] } });
        await s.put(record('k2'), { tables: { cs: [{ name: 'alpha' }] } });
        expect((await s.query('cs', { where: { name: { like: 'A%' } }, now: T0 })).map((r) => r.key)).toEqual(['k1']);
        await expect(s.put(record('k3'), { tables: { cs: [{ at: 1e15 }] } })).rejects.toMatchObject({ code: 'ECOLUMN' });
        await s.put(record('k4'), { tables: { cs: [{ at: new Date('9999-12-31T00:00:00Z') }] } });
      });

      it('extends a table with new columns but refuses changes', async () => {
        await s.defineTable('g', { a: 'integer' });
        await s.put(record('k'), { tables: { g: [{ a: 1 }] } });
        await s.defineTable('g', { a: 'integer', b: 'text' });
        await s.put(record('k2'), { tables: { g: [{ a: 2, b: 'x' }] } });
        expect((await s.query('g', { orderBy: { a: 'asc' }, now: T0 })).map((r) => [r.a, r.b])).toEqual([
          [1, null],
          [2, 'x'],
        ]);
        await expect(s.defineTable('g', { a: 'text' })).rejects.toMatchObject({ code: 'ETABLE' });
        expect(Object.keys((await s.tables()).g?.columns ?? {})).toEqual(['a', 'b']);
      });

      it('hides rows of expired entries unless asked', async () => {
        await s.defineTable('h', { a: 'integer' });
        await s.put(record('old', { expiresAt: T0 }), { tables: { h: [{ a: 1 }] } });
        await s.put(record('new'), { tables: { h: [{ a: 2 }] } });
        expect((await s.query('h', { now: T0 })).map((r) => r.a)).toEqual([2]);
        expect((await s.query('h', { now: T0, includeExpired: true })).length).toBe(2);
      });
    });

    if (!caps.sql) {
      it('refuses raw SQL with a clear error', async () => {
        await expect(s.sql('SELECT 1')).rejects.toMatchObject({ code: 'EQUERY', message: expect.stringMatching(/query\(\)/) });
      });
    } else {
      it('runs read-only SQL and refuses writes', async () => {
        await s.put(record('a', { size: 42 }));
        expect(await s.sql('SELECT key, size FROM entries WHERE size > ?', [10])).toEqual([{ key: 'a', size: 42 }]);
        for (const bad of [
          'DELETE FROM entries',
          "INSERT INTO _counters VALUES ('x', 1)",
          'DROP TABLE entries',
          'PRAGMA journal_mode = DELETE',
          "ATTACH DATABASE ':memory:' AS x",
        ]) {
          await expect(s.sql(bad), bad).rejects.toMatchObject({ code: expect.stringMatching(/^(EREADONLY|EQUERY)$/) });
        }
        await expect(s.sql('SELECT 1; DELETE FROM entries')).rejects.toMatchObject({ code: 'EQUERY' });
        await expect(s.sql('SELEC nonsense')).rejects.toMatchObject({ code: 'EQUERY' });
        expect((await s.counters()).entries).toBe(1);
      });
    }
  });
}

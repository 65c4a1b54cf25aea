/**
 * Regressions for defects found in review: each test reproduces the original failure with real
 * SQLite and files (interleavings are forced by wrapping a real blob store, not by mocking it).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Cache, type CachenessError, createCache } from 'cacheness';
import { type BlobStore, FsBlobStore, SqliteMetadataStore } from 'cacheness/stores';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TestClock } from './contract/cache.js';
import { blobFiles } from './fixtures/files.js';

let dir: string;
const opened: Cache[] = [];
const errors: CachenessError[] = [];
const open = (opts: Parameters<typeof createCache>[0] = {}) => {
  const c = createCache({ dir, onError: (e) => errors.push(e), ...opts });
  opened.push(c);
  return c;
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cacheness-review-'));
  errors.length = 0;
});
afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
  await rm(dir, { recursive: true, force: true });
});

/** The real filesystem blob store, with a hook that runs inside `read` or `write`. */
function hookedBlobs(hooks: { beforeRead?: () => Promise<void>; beforeWrite?: () => Promise<void> }): BlobStore {
  const real = new FsBlobStore({ dir });
  return Object.assign(Object.create(real) as BlobStore, {
    async read(name: string) {
      await hooks.beforeRead?.();
      return real.read(name);
    },
    async write(name: string, data: Uint8Array) {
      await hooks.beforeWrite?.();
      return real.write(name, data);
    },
  });
}

describe('review regressions', () => {
  it('a reader never deletes a value that another writer stored meanwhile', async () => {
    const writer = open();
    await writer.put(randomBytes(100_000), 'k');
    let rewrites = 0;
    const reader = createCache({
      stores: {
        metadata: new SqliteMetadataStore({ path: join(dir, 'cache.db') }),
        blobs: hookedBlobs({
          async beforeRead() {
            if (rewrites++ < 3) await writer.put(randomBytes(100_000), 'k'); // the old blob is collected under the reader
          },
        }),
      },
      onError: (e) => errors.push(e),
    });
    opened.push(reader);
    await reader.get('k');
    expect(await writer.has('k')).toBe(true);
    expect(((await writer.get('k')) as Buffer).length).toBe(100_000);
    expect(errors).toEqual([]);
    expect((await writer.stats()).corruptions).toBe(0);
  });

  it('a put whose blob reservation went stale during a slow write still stores its value', async () => {
    const clock = new TestClock();
    const other = open({ clock: clock.fn });
    let stalled = false;
    const slow = createCache({
      clock: clock.fn,
      stores: {
        metadata: new SqliteMetadataStore({ path: join(dir, 'cache.db') }),
        blobs: hookedBlobs({
          async beforeWrite() {
            if (stalled) return;
            stalled = true;
            clock.advance(2 * 3_600_000); // the write takes "two hours"...
            await other.cleanup(); // ...and a cleanup meanwhile drops the stale pin and collects the blob
          },
        }),
      },
      onError: (e) => errors.push(e),
    });
    opened.push(slow);
    const data = randomBytes(100_000);
    await slow.put(data, 'big');
    expect(Buffer.compare((await slow.get('big')) as Buffer, data)).toBe(0);
    expect(await slow.verify()).toMatchObject({ dangling: [], mismatched: [], orphans: [] });
  });

  it('recreates a removed tmp/ folder instead of retrying forever', async () => {
    const c = open();
    await rm(join(dir, 'tmp'), { recursive: true });
    await c.put(randomBytes(100_000), 'k');
    expect(((await c.get('k')) as Buffer).length).toBe(100_000);
  });

  it('keeps table names apart from internal objects and from each other regardless of case', async () => {
    const c = open({ maxSize: 100_000 });
    await c.defineTable('evict_lru', { n: 'integer' });
    for (let i = 0; i < 4; i++) await c.put(randomBytes(40_000), `b${i}`, { tables: { evict_lru: { n: i } } });
    expect((await c.stats()).evictions).toBe(2);
    await c.defineTable('runs', { a: 'text' });
    await expect(c.defineTable('RUNS', { a: 'text' })).rejects.toMatchObject({ code: 'ETABLE' });
    await expect(c.defineTable('t', { a: 'text' }, { unique: [[]] })).rejects.toMatchObject({ code: 'ECOLUMN' });
  });

  it('refuses PRAGMA statements in sql() and wraps run-time SQL errors', async () => {
    const c = open();
    for (const text of ['PRAGMA max_page_count = 1', '  /* hi */ pragma locking_mode = EXCLUSIVE', '-- x\nPRAGMA busy_timeout = 0']) {
      await expect(c.sql(text)).rejects.toMatchObject({ code: 'EREADONLY' });
    }
    expect(await c.sql('SELECT count(*) AS n FROM pragma_table_info(?)', ['entries'])).toEqual([{ n: expect.any(Number) }]);
    await expect(c.sql("SELECT json_extract('{', '$')")).rejects.toMatchObject({ code: 'EQUERY' });
    await expect(c.sql('SELECT ?', [])).rejects.toMatchObject({ code: 'EQUERY' });
    await c.put(1, 'still-writable');
    expect(await c.get('still-writable')).toBe(1);
  });

  it('evicts expired entries before live ones', async () => {
    const clock = new TestClock();
    const c = open({ maxSize: 100_000, clock: clock.fn });
    await c.put(randomBytes(40_000), 'short', { ttl: 1 });
    clock.advance(10);
    await c.put(randomBytes(40_000), 'live');
    clock.advance(2000);
    await c.put(randomBytes(40_000), 'new');
    expect(await c.has('live')).toBe(true);
    expect((await c.stats()).expirations).toBe(1);
  });

  it('reads an undecodable payload as a miss and drops it, instead of throwing forever', async () => {
    const c = open({ verifyIntegrity: false });
    await c.put({ a: 1 }, 'k');
    await c.close();
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(join(dir, 'cache.db'));
    db.prepare("UPDATE entries SET inline = x'c1c1c1c1', size = 4, stored_size = 4 WHERE key = 'k'").run();
    db.close();
    const again = open({ verifyIntegrity: false });
    expect(await again.get('k')).toBeUndefined();
    expect(errors.map((e) => e.code)).toEqual(['EINTEGRITY']);
    expect(await again.has('k')).toBe(false);
  });

  it('validates options before opening anything', async () => {
    expect(() => createCache({ dir, defaultTtl: 'soon' })).toThrow(expect.objectContaining({ code: 'ETTL' }));
    expect(() => createCache({ dir, readCacheBytes: -1 })).toThrow(expect.objectContaining({ code: 'EOPTION' }));
    expect(() => createCache({ dir, verifyIntegrity: 'no' as never })).toThrow(expect.objectContaining({ code: 'EOPTION' }));
    await writeFile(join(dir, 'a-file'), 'x');
    expect(() => createCache({ dir: join(dir, 'a-file') })).toThrow(expect.objectContaining({ code: 'ESTORE' }));
    const broken = join(dir, 'broken');
    await mkdir(broken);
    await writeFile(join(broken, 'cache.db'), 'this is not a SQLite database, just text long enough to have a header');
    expect(() => createCache({ dir: broken })).toThrow(expect.objectContaining({ code: 'ESTORE' }));
  });

  it('reports a write lock held too long as a CachenessError (ESTORE), not a raw SQLite error', async () => {
    const c = createCache({ stores: { metadata: new SqliteMetadataStore({ path: join(dir, 'cache.db'), busyTimeoutMs: 50 }), blobs: new FsBlobStore({ dir }) } });
    opened.push(c);
    const Database = (await import('better-sqlite3')).default;
    const holder = new Database(join(dir, 'cache.db'));
    holder.exec('BEGIN IMMEDIATE');
    try {
      const err = await c.put(1, 'k').catch((e) => e);
      expect(err).toMatchObject({ name: 'StoreError', code: 'ESTORE', details: { code: 'SQLITE_BUSY' } });
      expect(err.message).toMatch(/write lock/);
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    await c.put(1, 'k');
    expect(await c.get('k')).toBe(1);
  });

  it('rejects metadata that is not an object after serialization, and ttl beyond 1000 years', async () => {
    const c = open();
    await expect(c.put(1, 'k', { metadata: new Date(0) as never })).rejects.toMatchObject({ code: 'EOPTION' });
    await expect(c.put(1, 'k', { ttl: 1e13 })).rejects.toMatchObject({ code: 'ETTL' });
    expect(await c.has('k')).toBe(false);
  });

  describe('dumps', () => {
    it('fail with EDUMP, and close the file, on anything that is not a dump', async () => {
      const c = open();
      await writeFile(join(dir, 'bad.tar'), 'not a tar at all');
      await expect(c.import(join(dir, 'bad.tar'))).rejects.toMatchObject({ code: 'EDUMP' });
      await expect(c.import(join(dir, 'missing.tar'))).rejects.toMatchObject({ code: 'EDUMP' });
      await expect(c.export(join(dir, 'no', 'such', 'dir', 'x.tar'))).rejects.toMatchObject({ code: 'EDUMP' });
    });

    it('replace rows of every dumped table and honour storeKeyParams: false', async () => {
      const src = open({ dir: join(dir, 'src') });
      await src.defineTable('runs', { name: 'text' });
      await src.put(1, { secret: 'token-123' });
      await src.export(join(dir, 'd.tar'));
      const dst = open({ dir: join(dir, 'dst'), storeKeyParams: false });
      await dst.defineTable('runs', { name: 'text' });
      await dst.put(0, { secret: 'token-123' }, { tables: { runs: { name: 'stale-row' } } });
      await dst.import(join(dir, 'd.tar'));
      expect(await dst.query('runs', {})).toEqual([]);
      expect(await dst.get({ secret: 'token-123' })).toBe(1);
      expect(JSON.stringify(await dst.sql('SELECT params FROM entries'))).not.toContain('token-123');
    });

    it('leave a damaged entry out of an export (reported) instead of breaking the import', async () => {
      const c = open();
      await c.put(randomBytes(100_000), 'bad');
      for (let i = 0; i < 3; i++) await c.put({ i }, `good${i}`);
      await writeFile((await blobFiles(dir))[0] as string, randomBytes(100_000));
      const out = await c.export(join(dir, 'd.tar'));
      expect(out).toMatchObject({ entries: 3, skipped: 1 });
      expect(errors.map((e) => e.code)).toEqual(['EINTEGRITY']);
      const other = open({ store: 'memory' });
      expect((await other.import(join(dir, 'd.tar'))).entries).toBe(3);
    });
  });
});

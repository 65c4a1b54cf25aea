/** Tampered, truncated and missing bytes are detected on read: a miss, the entry dropped and reported, never garbage. */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { type Cache, type CachenessError, createCache } from 'cacheness';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { blobFiles } from './fixtures/files.js';

let dir: string;
let cache: Cache;
const reported: CachenessError[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cacheness-tamper-'));
  reported.length = 0;
  cache = createCache({ dir, onError: (e) => reported.push(e) });
});
afterEach(async () => {
  if (!cache.isClosed) await cache.close();
  await rm(dir, { recursive: true, force: true });
});

async function onlyBlob(): Promise<string> {
  const files = await blobFiles(dir);
  expect(files).toHaveLength(1);
  return files[0] as string;
}

async function expectDropped(key: string) {
  expect(await cache.get(key)).toBeUndefined();
  expect(reported.map((e) => e.code)).toEqual(['EINTEGRITY']);
  expect(reported[0]?.message).toContain(key);
  expect(await cache.has(key)).toBe(false);
  expect((await cache.stats()).corruptions).toBe(1);
}

describe('tamper detection', () => {
  it('detects a flipped byte in a raw blob', async () => {
    await cache.put(randomBytes(100_000), 'raw');
    const f = await onlyBlob();
    const bytes = await readFile(f);
    bytes[5000] = (bytes[5000] as number) ^ 0xff;
    await writeFile(f, bytes);
    await expectDropped('raw');
  });

  it('detects a flipped byte in a compressed blob', async () => {
    // 64 random KiB blocks, each repeated 4 times: lz4 shrinks it ~4x, still far above the inline threshold.
    const blocks = Array.from({ length: 64 }, () => randomBytes(1024));
    await cache.put(Buffer.concat(blocks.flatMap((b) => [b, b, b, b])), 'lz');
    expect((await cache.getEntry('lz'))?.codec).toBe('lz4');
    const f = await onlyBlob();
    const bytes = await readFile(f);
    bytes[bytes.length - 3] = (bytes[bytes.length - 3] as number) ^ 0x01;
    await writeFile(f, bytes);
    await expectDropped('lz');
  });

  it('detects a truncated blob', async () => {
    await cache.put(randomBytes(100_000), 'cut');
    await truncate(await onlyBlob(), 99_999);
    await expectDropped('cut');
  });

  it('detects a missing blob, which verify reports as dangling', async () => {
    await cache.put(randomBytes(100_000), 'gone');
    await unlink(await onlyBlob());
    expect((await cache.verify()).dangling).toEqual(['gone']);
    await expectDropped('gone');
  });

  it('detects tampering of an inline value inside SQLite', async () => {
    await cache.put({ secret: 'value' }, 'inline');
    await cache.close();
    const db = new Database(join(dir, 'cache.db'));
    const row = db.prepare("SELECT inline FROM entries WHERE key = 'inline'").get() as { inline: Buffer };
    row.inline[row.inline.length - 2] = (row.inline[row.inline.length - 2] as number) ^ 0x20;
    db.prepare("UPDATE entries SET inline = ? WHERE key = 'inline'").run(row.inline);
    db.close();
    cache = createCache({ dir, onError: (e) => reported.push(e) });
    await expectDropped('inline');
  });

  it('verify finds bad entries and orphans; repair removes them', async () => {
    await cache.put(randomBytes(100_000), 'bad');
    await cache.put(randomBytes(100_000), 'good');
    const [bad] = (await cache.sql("SELECT blob_id FROM entries WHERE key = 'bad'")) as [{ blob_id: string }];
    const badFile = (await blobFiles(dir)).find((f) => f.includes(bad.blob_id)) as string;
    await truncate(badFile, 10);
    const stray = join(dir, 'blobs', 'ab', 'cd', `abcd${'0'.repeat(28)}.00000000`);
    await mkdir(join(dir, 'blobs', 'ab', 'cd'), { recursive: true });
    await writeFile(stray, 'stray');
    await writeFile(join(dir, 'tmp', '999999999-deadbeef'), 'partial write of a dead process');
    const report = await cache.verify();
    expect(report).toMatchObject({ checked: 2, dangling: [], mismatched: ['bad'], orphans: [`abcd${'0'.repeat(28)}.00000000`], repaired: false });
    const fixed = await cache.verify({ repair: true });
    expect(fixed).toMatchObject({ repaired: true, partial: 1 });
    expect(await cache.verify()).toMatchObject({ checked: 1, mismatched: [], orphans: [] });
    expect(await cache.has('bad')).toBe(false);
    expect((await cache.get('good')) as Buffer).toHaveLength(100_000);
  });

  it('with verifyIntegrity off, skips hashing (size checks still apply)', async () => {
    const c = createCache({ dir: join(dir, 'noverify'), verifyIntegrity: false, onError: (e) => reported.push(e) });
    const data = randomBytes(100_000);
    await c.put(data, 'k');
    const f = (await blobFiles(join(dir, 'noverify')))[0] as string;
    const bytes = await readFile(f);
    bytes[0] = (bytes[0] as number) ^ 1;
    await writeFile(f, bytes);
    expect(((await c.get('k')) as Buffer)[0]).toBe((data[0] as number) ^ 1); // the documented trade-off
    await truncate(f, 5);
    expect(await c.get('k')).toBeUndefined();
    await c.close();
  });
});

describe('tamper detection in chunked payloads', () => {
  const CHUNK = 64 * 1024;
  const drain = async (s: AsyncIterable<Buffer>) => {
    const parts: Buffer[] = [];
    for await (const p of s) parts.push(p);
    return Buffer.concat(parts);
  };
  beforeEach(async () => {
    await cache.close();
    cache = createCache({ dir, onError: (e) => reported.push(e), chunkSize: CHUNK, compression: { codec: 'none' } });
  });

  it('reads ranges around a damaged chunk, fails the ranges that touch it, then drops the entry', async () => {
    const data = randomBytes(10 * CHUNK);
    await cache.put(data, 'big');
    const f = await onlyBlob();
    const bytes = await readFile(f);
    bytes[4 * CHUNK + 100] = (bytes[4 * CHUNK + 100] as number) ^ 0xff; // chunk 4 (stored raw, so offsets match)
    await writeFile(f, bytes);
    // Chunks are verified one by one: a range that avoids chunk 4 is served.
    const before = await drain((await cache.getStream('big', { start: 0, end: 4 * CHUNK - 1 })) as AsyncIterable<Buffer>);
    expect(before.equals(data.subarray(0, 4 * CHUNK))).toBe(true);
    const after = await drain((await cache.getStream('big', { start: 5 * CHUNK })) as AsyncIterable<Buffer>);
    expect(after.equals(data.subarray(5 * CHUNK))).toBe(true);
    expect(reported).toEqual([]);
    // A range through chunk 4 ends with EINTEGRITY after the good bytes before it, and the entry is dropped.
    const s = (await cache.getStream('big', { start: 3 * CHUNK })) as AsyncIterable<Buffer>;
    await expect(drain(s)).rejects.toMatchObject({ code: 'EINTEGRITY', message: expect.stringContaining('chunk 4') });
    expect(reported.map((e) => e.code)).toEqual(['EINTEGRITY']);
    expect(await cache.has('big')).toBe(false);
  });

  it('detects a damaged index and a truncated container on get', async () => {
    await cache.put(randomBytes(3 * CHUNK + 5), 'idx');
    const f = await onlyBlob();
    const bytes = await readFile(f);
    bytes[bytes.length - 30] = (bytes[bytes.length - 30] as number) ^ 0x01; // inside the index
    await writeFile(f, bytes);
    await expectDropped('idx');
    reported.length = 0;
    await cache.put(randomBytes(3 * CHUNK + 5), 'cut');
    const g = (await blobFiles(dir)).at(-1) as string;
    await truncate(g, (await readFile(g)).length - 1);
    expect(await cache.get('cut')).toBeUndefined();
    expect(reported.map((e) => e.code)).toEqual(['EINTEGRITY']);
  });

  it('treats a damaged chunk count in the trailer as damage, on ranged reads too', async () => {
    await cache.put(randomBytes(3 * CHUNK), 'count');
    const f = await onlyBlob();
    const bytes = await readFile(f);
    bytes.writeUInt32LE(0x7fffffff, bytes.length - 24); // the trailer's chunk count
    await writeFile(f, bytes);
    const s = (await cache.getStream('count', { start: 10, end: 20 })) as AsyncIterable<Buffer>;
    await expect(drain(s)).rejects.toMatchObject({ code: 'EINTEGRITY' });
    expect(reported.map((e) => e.code)).toEqual(['EINTEGRITY']);
    expect(await cache.has('count')).toBe(false);
  });

  it('closes the blob when a stream is destroyed before it is read', async () => {
    await cache.put(randomBytes(3 * CHUNK), 'fd');
    const fds = async () => (await readdir('/proc/self/fd')).length;
    const before = await fds();
    for (let i = 0; i < 20; i++) {
      const s = await cache.getStream('fd');
      s?.destroy();
      await new Promise((resolve) => s?.once('close', resolve));
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect(await fds()).toBeLessThanOrEqual(before + 1);
  });

  it('verify reports a damaged chunk', async () => {
    await cache.put(randomBytes(3 * CHUNK), 'v');
    const f = await onlyBlob();
    const bytes = await readFile(f);
    bytes[10] = (bytes[10] as number) ^ 0x01;
    await writeFile(f, bytes);
    expect((await cache.verify()).mismatched).toEqual(['v']);
  });
});

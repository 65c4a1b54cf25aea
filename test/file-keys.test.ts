/**
 * Content-hashed file keys (issue 5): `file()` / `dir()` markers key by content (key format 2), with
 * a stale-proof memo, parallel directory hashing, a by-path option, and format-1 keys unchanged.
 * Real files in a temp dir; no fs mocks: reads are counted by the SDK's own fileHashStats().
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { xxh3 } from '@node-rs/xxhash';
import {
  type Cache,
  CachenessError,
  cached,
  clearFileHashMemo,
  createCache,
  dir,
  encodeKeyParams,
  file,
  fileHashStats,
  hashDir,
  hashFile,
  KeyError,
  keyOf,
  keyOfAsync,
  resolveKey,
  resolveKeyAsync,
} from 'cacheness';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { xxh128Hex } from '../sdk/src/hash.js';

let root: string;
let cache: Cache;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'cacheness-file-keys-'));
  cache = createCache({ store: 'memory' });
  clearFileHashMemo();
});
afterEach(async () => {
  await cache.close();
  rmSync(root, { recursive: true, force: true });
});

/** Writes `data` to `rel` under the temp dir, with an mtime an hour ago (so the memo may keep it: see "racily clean"). */
function put(rel: string, data: string | Uint8Array, mtime = new Date(Date.now() - 3_600_000)): string {
  const p = join(root, rel);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, data);
  utimesSync(p, mtime, mtime);
  return p;
}

/** Bytes read by file hashing while `fn` runs. */
async function bytesReadBy<T>(fn: () => Promise<T>): Promise<{ value: T; bytes: number }> {
  const before = fileHashStats().bytesHashed;
  const value = await fn();
  return { value, bytes: fileHashStats().bytesHashed - before };
}

async function keyError(p: Promise<unknown>): Promise<KeyError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KeyError);
    return err as KeyError;
  }
  throw new Error('expected a KeyError, but nothing was thrown');
}

describe('file(): keyed by content', () => {
  it('a renamed file is a hit', async () => {
    const a = put('a.csv', 'x,y\n1,2\n');
    await cache.put('model', { data: file(a) });
    const b = join(root, 'renamed.csv');
    renameSync(a, b);
    expect(await cache.get({ data: file(b) })).toBe('model');
  });

  it('the same content under another path (and another directory) is a hit', async () => {
    const a = put('a/train.csv', 'same bytes');
    const b = put('elsewhere/deeper/copy.txt', 'same bytes');
    await cache.put('v', { data: file(a) });
    expect(await cache.get({ data: file(b) })).toBe('v');
    expect(await keyOfAsync({ data: file(a) })).toBe(await keyOfAsync({ data: file(b) }));
  });

  it('an edited file is a miss, even with the same size', async () => {
    const a = put('a.csv', 'version 1');
    await cache.put('v1', { data: file(a) });
    put('a.csv', 'version 2', new Date(Date.now() - 1_800_000)); // same length, another (past) mtime
    expect(await cache.get({ data: file(a) })).toBeUndefined();
  });

  it('an unchanged file is not read again: the memo answers', async () => {
    const a = put('big.bin', randomBytes(3 * 1024 * 1024));
    const first = await bytesReadBy(() => keyOfAsync({ data: file(a) }));
    expect(first.bytes).toBe(3 * 1024 * 1024);
    const hits = fileHashStats().memoHits;
    const again = await bytesReadBy(() => keyOfAsync({ data: file(a) }));
    expect(again.value).toBe(first.value);
    expect(again.bytes).toBe(0);
    expect(fileHashStats().memoHits).toBe(hits + 1);
    // ... and through the cache methods
    await cache.put(1, { data: file(a) });
    const got = await bytesReadBy(() => cache.get({ data: file(a) }));
    expect(got).toEqual({ value: 1, bytes: 0 });
  });

  it('touch without change: re-read (the mtime moved, so the memo may not trust it) and still a hit', async () => {
    const a = put('a.bin', randomBytes(100_000));
    await cache.put('v', { data: file(a) });
    const later = new Date(Date.now() - 600_000);
    utimesSync(a, later, later); // touch: new mtime, same bytes
    const r = await bytesReadBy(() => cache.get({ data: file(a) }));
    expect(r).toEqual({ value: 'v', bytes: 100_000 });
    const again = await bytesReadBy(() => cache.get({ data: file(a) }));
    expect(again).toEqual({ value: 'v', bytes: 0 }); // the new mtime is remembered
  });

  it('the memo notices a file replaced by another inode with the same size and mtime', async () => {
    const a = put('a.txt', 'AAAA');
    const k1 = await keyOfAsync({ f: file(a) });
    const { mtime } = statSync(a);
    const tmp = put('tmp.txt', 'BBBB', mtime); // same size, same mtime, other inode
    renameSync(tmp, a);
    const r = await bytesReadBy(() => keyOfAsync({ f: file(a) }));
    expect(r.bytes).toBe(4);
    expect(r.value).not.toBe(k1);
  });

  it('files modified within the last 2 seconds are re-read every time (racily clean)', async () => {
    const a = put('fresh.txt', 'just written', new Date());
    await keyOfAsync({ f: file(a) });
    const again = await bytesReadBy(() => keyOfAsync({ f: file(a) }));
    expect(again.bytes).toBe('just written'.length);
  });

  it('a file larger than the 8 MiB chunk hashes to XXH3-128 of its bytes', async () => {
    const bytes = randomBytes(2 * 8 * 1024 * 1024 + 12_345);
    const a = put('large.bin', bytes);
    const d = await hashFile(a);
    expect(d).toEqual({ kind: 'file', xxh128: xxh128Hex(bytes), size: bytes.length, files: 1 });
    const empty = await hashFile(put('empty', ''));
    expect(empty).toEqual({ kind: 'file', xxh128: xxh128Hex(Buffer.alloc(0)), size: 0, files: 1 });
  });

  it('a missing path is a clear EKEYFILE error, never keyed by name', async () => {
    const missing = join(root, 'nope.csv');
    const err = await keyError(cache.put(1, { data: file(missing) }));
    expect(err.code).toBe('EKEYFILE');
    expect(err.message).toContain(missing);
    expect(err.message).toContain("{ by: 'path' }");
    expect(err.details).toMatchObject({ path: missing, code: 'ENOENT' });
    expect((await keyError(cache.get({ data: dir(join(root, 'nodir')) }))).code).toBe('EKEYFILE');
    expect(await cache.count()).toBe(0);
  });

  it('file() of a directory and dir() of a file are errors that name the right marker', async () => {
    const f = put('d/f.txt', 'x');
    expect((await keyError(keyOfAsync({ a: file(join(root, 'd')) }))).message).toMatch(/is a directory; key it with dir\(path\)/);
    expect((await keyError(keyOfAsync({ a: dir(f) }))).message).toMatch(/is a file; key it with file\(path\)/);
  });

  it("{ by: 'path' } keys by name (format 1): nothing is read, the path need not exist, content does not count", async () => {
    const a = put('a.csv', 'one');
    const r = await bytesReadBy(() => keyOfAsync({ data: file(a, { by: 'path' }) }));
    expect(r.bytes).toBe(0);
    expect(keyOf({ data: file(a, { by: 'path' }) })).toBe(r.value); // synchronous too
    put('a.csv', 'two, longer');
    expect(keyOf({ data: file(a, { by: 'path' }) })).toBe(r.value);
    expect(r.value).not.toBe(await keyOfAsync({ data: file(a) }));
    await cache.put('v', { data: file(join(root, 'missing'), { by: 'path' }) });
    expect(await cache.get({ data: file(join(root, 'missing'), { by: 'path' }) })).toBe('v');
    expect(() => file(a, { by: 'name' as 'path' })).toThrow(/by must be 'content' or 'path'/);
  });
});

describe('dir(): keyed by names and contents', () => {
  function tree(at: string): string {
    put(`${at}/README.md`, '# readme');
    put(`${at}/src/main.ts`, 'export const a = 1;');
    put(`${at}/src/util/strings.ts`, 'export const s = "x";');
    return join(root, at);
  }

  it('renaming or moving the directory itself is a hit', async () => {
    const d = tree('project');
    await cache.put('built', { code: dir(d) });
    renameSync(d, join(root, 'moved'));
    expect(await cache.get({ code: dir(join(root, 'moved')) })).toBe('built');
  });

  it('renaming a file inside is a miss (names are part of a directory)', async () => {
    const d = tree('project');
    await cache.put('built', { code: dir(d) });
    renameSync(join(d, 'src/main.ts'), join(d, 'src/index.ts'));
    expect(await cache.get({ code: dir(d) })).toBeUndefined();
  });

  it('editing, adding or removing a file is a miss; empty directories do not count', async () => {
    const d = tree('project');
    const k = await keyOfAsync({ code: dir(d) });
    mkdirSync(join(d, 'empty/nested'), { recursive: true });
    expect(await keyOfAsync({ code: dir(d) })).toBe(k);
    put('project/src/main.ts', 'export const a = 2;');
    const edited = await keyOfAsync({ code: dir(d) });
    expect(edited).not.toBe(k);
    put('project/empty/new.txt', '');
    const added = await keyOfAsync({ code: dir(d) });
    expect(added).not.toBe(edited);
    rmSync(join(d, 'empty/new.txt'));
    expect(await keyOfAsync({ code: dir(d) })).toBe(edited);
  });

  it('symlinks are followed (a link to a file counts as that file under the link name); dangling links are ignored; a cycle is an error', async () => {
    const d = tree('project');
    const outside = put('outside.txt', 'outside');
    const k = await keyOfAsync({ code: dir(d) });
    symlinkSync(join(root, 'nowhere'), join(d, 'dangling'));
    expect(await keyOfAsync({ code: dir(d) })).toBe(k);
    symlinkSync(outside, join(d, 'link.txt'));
    const linked = await hashDir(d);
    expect(linked.files).toBe(4);
    put('outside.txt', 'outside, edited');
    expect((await hashDir(d)).xxh128).not.toBe(linked.xxh128); // the target's content counts
    // the same tree with a regular file in place of the link has the same key
    const copy = tree('copy');
    put('copy/link.txt', 'outside, edited');
    expect((await hashDir(copy)).xxh128).toBe((await hashDir(d)).xxh128);
    symlinkSync(d, join(d, 'src/loop'));
    const err = await keyError(keyOfAsync({ code: dir(d) }));
    expect(err.code).toBe('EKEYFILE');
    expect(err.message).toMatch(/symbolic link back to an enclosing directory/);
  });

  it('parallel (worker threads) and sequential hashing give the same digest', async () => {
    const files: Buffer[] = [];
    for (let i = 0; i < 120; i++) {
      const bytes = randomBytes(i * 997);
      files.push(bytes);
      put(`many/${i % 4}/f${i}.bin`, bytes);
    }
    put('many/large.bin', randomBytes(9 * 1024 * 1024)); // crosses the 8 MiB chunk in a worker
    const at = join(root, 'many');
    const sequential = await hashDir(at, { parallel: false });
    expect(fileHashStats().workerTasks).toBe(0);
    clearFileHashMemo();
    const parallel = await hashDir(at, { parallel: true });
    expect(fileHashStats().workerTasks).toBeGreaterThan(0);
    expect(parallel).toEqual(sequential);
    clearFileHashMemo();
    const auto = await hashDir(at); // 121 files >= 80: workers
    expect(fileHashStats().workerTasks).toBeGreaterThan(0);
    expect(auto).toEqual(sequential);
    expect(sequential.files).toBe(121);
    // a second call reads nothing: every file is memoized
    const warm = await bytesReadBy(() => hashDir(at));
    expect(warm).toEqual({ value: sequential, bytes: 0 });
  });
});

describe('key format 2 bytes (docs/key-format.md, section 6)', () => {
  const u32 = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  const f64 = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(n);
    return b;
  };
  const str = (s: string | Buffer) => {
    const b = Buffer.from(s);
    return Buffer.concat([u32(b.length), b]);
  };
  const h128 = (b: Buffer) => Buffer.from(xxh3.xxh128(b).toString(16).padStart(32, '0'), 'hex');
  const h64 = (b: Buffer) => xxh3.xxh64(b, 0n).toString(16).padStart(16, '0');
  const HEADER_2 = Buffer.from('cacheness-key/2\n');

  it("{ data: file(p) } is 'C' ‖ f64(size) ‖ XXH3-128(bytes) after header 2", async () => {
    const p = put('in.csv', 'a,b\n1,2\n');
    const bytes = Buffer.concat([HEADER_2, Buffer.from('O'), u32(1), str('data'), Buffer.from('C'), f64(8), h128(Buffer.from('a,b\n1,2\n'))]);
    expect(await keyOfAsync({ data: file(p) })).toBe(h64(bytes));
  });

  it("{ code: dir(p) } is 'R' ‖ XXH3-128(manifest), files in byte order of their relative paths", async () => {
    put('d/b.txt', 'B');
    put('d/a/z.txt', 'Z');
    put('d/a.txt', 'A');
    put('d/Z.txt', 'upper');
    put('d/\u{1F600}.txt', 'astral');
    put('d/\uFF61.txt', 'bmp');
    // by bytes: 'Z' (5a) < 'a.txt' (2e after a) < 'a/z.txt' (2f) < 'b' < U+FF61 (ef bd a1) < U+1F600 (f0 9f 98 80),
    // unlike a locale order (a < b < Z) or JavaScript's UTF-16 order (U+1F600 first: d83d < ff61)
    const entry = (rel: string, content: string) => Buffer.concat([str(rel), f64(content.length), h128(Buffer.from(content))]);
    const manifest = Buffer.concat([
      u32(6),
      entry('Z.txt', 'upper'),
      entry('a.txt', 'A'),
      entry('a/z.txt', 'Z'),
      entry('b.txt', 'B'),
      entry('\uFF61.txt', 'bmp'),
      entry('\u{1F600}.txt', 'astral'),
    ]);
    expect((await hashDir(join(root, 'd'))).xxh128).toBe(h128(manifest).toString('hex'));
    const bytes = Buffer.concat([HEADER_2, Buffer.from('O'), u32(1), str('code'), Buffer.from('R'), h128(manifest)]);
    expect(await keyOfAsync({ code: dir(join(root, 'd')) })).toBe(h64(bytes));
    const empty = join(root, 'empty');
    mkdirSync(empty);
    expect((await hashDir(empty)).xxh128).toBe(h128(u32(0)).toString('hex'));
  });

  it('golden vectors of docs/key-format.md (section 6.6): the same keys wherever the files are', async () => {
    put('g/in.csv', 'a,b\n1,2\n');
    put('g/tree/b.txt', 'B');
    put('g/tree/a/z.txt', 'Z');
    put('g/tree/a.txt', 'A');
    expect(await hashFile(join(root, 'g/in.csv'))).toEqual({ kind: 'file', xxh128: '16d51c327d7d2547a793f8d7bbc4457a', size: 8, files: 1 });
    expect(await keyOfAsync({ data: file(join(root, 'g/in.csv')) })).toBe('44385bfa46b4f88f');
    expect(await hashDir(join(root, 'g/tree'))).toEqual({ kind: 'dir', xxh128: '2c94662c9f65ce10e114f3e0c7a0c984', size: 3, files: 3 });
    expect(await keyOfAsync({ code: dir(join(root, 'g/tree')) })).toBe('f113bfd523d7d738');
    expect(await keyOfAsync({ data: file(join(root, 'g/in.csv')), code: dir(join(root, 'g/tree')), model: 'xgb' })).toBe('7369d7a8e16907f8');
  });

  it('a content marker inside a Map, Set or custom position still makes the key format 2', async () => {
    const p = put('x', 'x');
    const viaMap = await keyOfAsync({ m: new Map([['f', file(p)]]) });
    const d = await hashFile(p);
    const entryBytes = Buffer.concat([Buffer.from('S'), str('f'), Buffer.from('C'), f64(1), Buffer.from(d.xxh128, 'hex')]);
    const bytes = Buffer.concat([HEADER_2, Buffer.from('O'), u32(1), str('m'), Buffer.from('M'), u32(1), entryBytes]);
    expect(viaMap).toBe(h64(bytes));
  });
});

describe('keys without content markers are unchanged (format 1)', () => {
  // Computed with the code before content keys existed (commit d146141): entries stored under
  // these keys must stay addressable.
  const PINNED: [string, () => Record<string, unknown>, string][] = [
    ["{ model: 'xgb', dataset: 'train' }", () => ({ model: 'xgb', dataset: 'train' }), 'b758891c575e5d54'],
    ["{ input: file('/data/in.csv') } (by path)", () => ({ input: file('/data/in.csv', { by: 'path' }) }), '77c98b9dd9e95544'],
    [
      "{ a: [1, { b: file('/srv/x.bin') }], c: new Uint8Array([9]) } (by path)",
      () => ({ a: [1, { b: file('/srv/x.bin', { by: 'path' }) }], c: new Uint8Array([9]) }),
      '271f2348cd2cf57a',
    ],
    ["{ args: [file('/data/in.csv'), 3] } (by path)", () => ({ args: [file('/data/in.csv', { by: 'path' }), 3] }), '948bceb1026aac43'],
    ["{ v: 2, tags: new Set(['a']) }", () => ({ v: 2, tags: new Set(['a']) }), '74defe4b167dc6fc'],
    ['{ model: "xgb", n: 1n }', () => ({ model: 'xgb', n: 1n }), 'd005534131c066c3'],
  ];

  it.each(PINNED)('%s: pinned key, sync and async, header 1', async (_label, params, key) => {
    if (process.platform === 'win32' && _label.includes('file(')) return; // POSIX paths
    expect(keyOf(params())).toBe(key);
    expect(resolveKey(params())).toBe(key);
    expect(cache.keyOf(params())).toBe(key);
    expect(await resolveKeyAsync(params())).toBe(key);
    expect(await cache.resolveKey(params())).toBe(key);
    expect(encodeKeyParams(params()).subarray(0, 16).toString()).toBe('cacheness-key/1\n');
  });

  it('cached() keys are unchanged', () => {
    const f = cached((a: number, b: string) => a + b, { keyPrefix: 'train', cache });
    expect(f.cacheKey(1, 'a')).toBe('cached/train/0924461d9897ac79');
  });

  it('a marker made by an earlier release (no `by`) keys by path', () => {
    const old = Object.freeze({ [Symbol.for('cacheness.file')]: true, path: '/data/in.csv' });
    if (process.platform !== 'win32') expect(keyOf({ input: old })).toBe('77c98b9dd9e95544');
  });
});

describe('resolution: synchronous calls refuse content markers, the cache methods accept them', () => {
  it('keyOf / cache.keyOf / cacheKey throw EKEYASYNC naming the async variants; the async ones agree with put', async () => {
    const p = put('in.csv', 'data');
    const params = { data: file(p), model: 'xgb' };
    for (const sync of [() => keyOf(params), () => cache.keyOf(params), () => encodeKeyParams(params)]) {
      let err: unknown;
      try {
        sync();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CachenessError);
      expect((err as CachenessError).code).toBe('EKEYASYNC');
      expect((err as CachenessError).message).toMatch(/cache\.resolveKey\(key\)/);
    }
    const info = await cache.put('v', params);
    expect(await cache.resolveKey(params)).toBe(info.key);
    expect(await resolveKeyAsync(params)).toBe(info.key);
    expect(info.key).toMatch(/^[0-9a-f]{16}$/);
  });

  it('every key-taking cache method works with content markers, and the params record the digest', async () => {
    const p = put('in.csv', 'data');
    const d = put('src/a.ts', 'a');
    const key = { data: file(p), code: dir(join(root, 'src')), model: 'xgb' };
    const info = await cache.put('v', key);
    expect(info.params).toEqual({
      data: { $file: p, size: 4, xxh128: xxh128Hex(Buffer.from('data')) },
      code: { $dir: join(root, 'src'), files: 1, size: 1, xxh128: (await hashDir(join(root, 'src'))).xxh128 },
      model: 'xgb',
    });
    expect(d).toBe(join(root, 'src/a.ts'));
    expect(await cache.has(key)).toBe(true);
    expect(await cache.get(key)).toBe('v');
    expect((await cache.getEntry(key))?.key).toBe(info.key);
    expect(await cache.touch(key, { ttl: '1h' })).toBe(true);
    expect((await cache.list({ where: { params: { model: 'xgb' } } })).entries).toHaveLength(1);
    expect(await cache.delete(key)).toBe(true);
    expect(await cache.has(key)).toBe(false);
  });

  it('cached(): a file argument is a hit while unchanged and a miss once edited', async () => {
    const p = put('train.csv', '1,2,3');
    let runs = 0;
    const train = cached(
      async (path: string) => {
        runs++;
        return `model of ${path}`;
      },
      { cache, keyPrefix: 'train', key: (path) => ({ data: file(path) }) },
    );
    await train(p);
    await train(p);
    expect(runs).toBe(1);
    const entry = (await cache.list({ prefix: 'cached/train/' })).entries[0];
    expect(entry?.params).toMatchObject({ fn: 'train', args: { data: { $file: p, size: 5 } } });
    expect(entry?.key).toBe(await train.cacheKeyAsync(p));
    expect(() => train.cacheKey(p)).toThrow(/cacheKeyAsync/);
    put('train.csv', '4,5,6', new Date(Date.now() - 60_000));
    await train(p);
    expect(runs).toBe(2);
  });
});

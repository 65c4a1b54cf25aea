/** A custom handler can stream: serialize to an async iterable of pieces, deserialize from one. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Cache, createCache, type ValueHandler } from 'cacheness';
import { afterEach, beforeEach, expect, it } from 'vitest';

/** A "log" of numbered lines, too large to want in memory twice. */
class Log {
  constructor(readonly lines: number) {}
}

let dir: string;
let cache: Cache;
const seen: number[] = [];
const logHandler: ValueHandler = {
  name: 'log',
  version: 1,
  canHandle: (v) => v instanceof Log,
  serialize(v) {
    const log = v as Log;
    return {
      type: 'Log',
      stream: (async function* () {
        for (let i = 0; i < log.lines; i++) yield Buffer.from(`line ${i}\n`);
      })(),
    };
  },
  deserialize(bytes) {
    return new Log(Buffer.from(bytes).toString().split('\n').length - 1);
  },
  async deserializeStream(pieces) {
    let lines = 0;
    for await (const p of pieces) {
      seen.push(p.length);
      for (const b of p) if (b === 10) lines++;
    }
    return new Log(lines);
  },
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cacheness-handlers-'));
  seen.length = 0;
  cache = createCache({ dir, chunkSize: 64 * 1024, handlers: [logHandler] });
});
afterEach(async () => {
  await cache.close();
  await rm(dir, { recursive: true, force: true });
});

it('stores a streamed value in chunks and reads it back through deserializeStream, piece by piece', async () => {
  const info = await cache.put(new Log(100_000), 'log');
  expect(info).toMatchObject({ handler: 'log@1', type: 'Log', codec: 'chunked' });
  expect(info.size).toBeGreaterThan(10 * 64 * 1024);
  const back = (await cache.get('log')) as Log;
  expect(back).toBeInstanceOf(Log);
  expect(back.lines).toBe(100_000);
  expect(seen.length).toBeGreaterThan(10); // it got pieces, not one buffer
  expect(Math.max(...seen)).toBeLessThanOrEqual(64 * 1024);
});

it('uses deserialize for a streamed value that fits in one chunk', async () => {
  await cache.put(new Log(10), 'short');
  expect(((await cache.get('short')) as Log).lines).toBe(10);
  expect(seen).toEqual([]);
});

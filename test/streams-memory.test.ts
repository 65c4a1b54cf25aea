/**
 * Memory stays bounded for streams of any size: a few hundred MB go through put → getStream → getFile
 * in a child process that reports its peak RSS above its own baseline (after warm-up).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { runScript } from './fixtures/spawn.js';

const SCRIPT = fileURLToPath(new URL('../bench/stream-memory.ts', import.meta.url));
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cacheness-memory-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('streams 384 MiB through put, getStream and getFile within 64 MiB of the baseline', { timeout: 120_000 }, async () => {
  const r = JSON.parse(await runScript(SCRIPT, [dir, '384'])) as Record<string, number | boolean | string>;
  expect(r).toMatchObject({ codec: 'chunked', streamMatches: true, fileMatches: true });
  expect(r.storedMiB as number).toBeLessThan(384); // it did compress
  expect(r.aboveBaselineMiB as number).toBeLessThan(64);
});

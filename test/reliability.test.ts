/**
 * Several processes on one directory, kill -9 at arbitrary moments: no lost writes, no torn reads,
 * no "database is locked", and a consistent store afterwards.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CachenessError, createCache } from 'cacheness';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { blobFiles } from './fixtures/files.js';
import { afterTicks, runWorker, startWorker } from './fixtures/spawn.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cacheness-rel-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('multi-process', () => {
  it('four processes writing and reading one directory lose nothing and never see a partial value', async () => {
    const N = 200;
    const outputs = await Promise.all([0, 1, 2, 3].map((id) => runWorker(['contend', dir, String(id), String(N)])));
    const summaries = outputs.map((o) => JSON.parse(o.trim()) as { id: number; ops: number; errors: string[] });
    expect(summaries.flatMap((s) => s.errors)).toEqual([]);
    const cache = createCache({ dir, maxSize: null });
    for (let id = 0; id < 4; id++) {
      for (let j = 0; j < N; j++) expect(await cache.get(`own/${id}/${j}`)).toEqual({ writer: id, j });
    }
    let sharedChecked = 0;
    for (let s = 0; s < 50; s++) {
      const v = (await cache.get(`shared/${s}`)) as { writer: number; j: number; payload: Buffer } | undefined;
      if (!v) continue; // deleted by some worker last
      expect(v.payload.every((b) => b === (v.writer + v.j) % 256)).toBe(true);
      sharedChecked++;
    }
    expect(sharedChecked).toBeGreaterThan(25); // deletes touch a fifth of the slots: most must be readable
    const stats = await cache.stats();
    expect(stats.entries).toBe(4 * N + (await cache.count({ prefix: 'shared/' })));
    const report = await cache.verify();
    expect(report).toMatchObject({ dangling: [], mismatched: [], orphans: [] });
    await cache.close();
  });
});

describe('kill -9', () => {
  it('leaves a consistent cache whenever a writer dies', async () => {
    const integrity: CachenessError[] = [];
    let valuesChecked = 0;
    for (const ticks of [3, 11, 17, 26, 40]) {
      const child = startWorker(['churn', dir]);
      await afterTicks(child, ticks);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));

      const cache = createCache({ dir, maxSize: 40 * 1024 * 1024, onError: (e) => integrity.push(e) });
      for (let slot = 0; slot < 8; slot++) {
        const v = (await cache.get(`slot/${slot}`)) as { sha: string; data: Buffer } | undefined;
        if (!v) continue; // never written yet, or deleted last
        expect(createHash('sha256').update(v.data).digest('hex')).toBe(v.sha);
        valuesChecked++;
      }
      // Every table row belongs to a live entry with the matching value.
      for (const row of await cache.query('churn', {})) {
        const v = (await cache.get(row.key as string)) as { sha: string } | undefined;
        expect(v?.sha).toBe(row.sha);
      }
      const report = await cache.verify();
      expect(report.dangling).toEqual([]);
      expect(report.mismatched).toEqual([]);
      await cache.verify({ repair: true });
      await cache.cleanup();
      const after = await cache.verify();
      expect(after).toMatchObject({ dangling: [], mismatched: [], orphans: [] });
      // The dead writer's half-done blob (pinned, never committed) is gone too: on disk are exactly the referenced blobs.
      const [{ n }] = (await cache.sql('SELECT count(DISTINCT blob_id) AS n FROM entries WHERE blob_id IS NOT NULL')) as [{ n: number }];
      expect(await blobFiles(dir)).toHaveLength(n);
      await cache.close();
    }
    expect(integrity).toEqual([]);
    expect(valuesChecked).toBeGreaterThan(10); // the rounds ran long enough to leave values to check
    const leftovers = await readdir(join(dir, 'tmp'));
    expect(leftovers).toEqual([]);
  });
});

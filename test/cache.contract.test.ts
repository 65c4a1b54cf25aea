/** Runs the Cache contract suite against every local mode. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Cache, createCache } from 'cacheness';
import { cacheContract } from './contract/cache.js';

cacheContract('local (SQLite + files)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cacheness-cache-'));
  const opened: Cache[] = [];
  return {
    persistent: true,
    async open(opts = {}) {
      const c = createCache({ dir, ...opts });
      opened.push(c);
      return c;
    },
    async dispose() {
      await Promise.all(opened.map((c) => c.close()));
      await rm(dir, { recursive: true, force: true });
    },
  };
});

cacheContract('memory', async () => {
  const opened: Cache[] = [];
  return {
    persistent: false,
    async open(opts = {}) {
      const c = createCache({ store: 'memory', ...opts });
      opened.push(c);
      return c;
    },
    async dispose() {
      await Promise.all(opened.map((c) => c.close()));
    },
  };
});

/**
 * The Cache contract suite against remote caches: the cloud API over real HTTP on 127.0.0.1, with real
 * PostgreSQL and the S3-protocol server behind it. Mode `remote` opens each cache on a directory of its
 * own (as if on another machine), so everything shared goes through the API; mode `auto` shares one.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Cache, type CacheMode, createCache } from 'cacheness';
import { afterAll, beforeAll, describe } from 'vitest';
import { cacheContract } from './contract/cache.js';
import { type ApiServer, startApi } from './fixtures/api-server.js';

describe('remote caches', () => {
  let api: ApiServer;
  // The API's clock is the one the suite gives the cache it opens, so TTLs agree on both sides.
  let clock: () => number = Date.now;
  beforeAll(async () => {
    api = await startApi({ clock: () => clock(), rateLimit: false });
  });
  afterAll(async () => {
    await api?.stop();
  });

  const harness = (mode: CacheMode, dirPerCache: boolean) => async () => {
    const key = await api.key(`c-${randomBytes(6).toString('hex')}`, ['read', 'write']);
    const shared = await mkdtemp(join(tmpdir(), 'cacheness-remote-'));
    const dirs = [shared];
    const opened: Cache[] = [];
    return {
      persistent: true,
      sql: false,
      async open(opts: Parameters<typeof createCache>[0] = {}) {
        if (opts.clock) clock = opts.clock;
        let c: Cache;
        if (opts.store === 'memory') c = createCache(opts);
        else {
          const dir = dirPerCache && opened.length > 0 ? await mkdtemp(join(tmpdir(), 'cacheness-remote-')) : shared;
          if (dir !== shared) dirs.push(dir);
          c = createCache({ ...opts, mode, dir, remote: { endpoint: api.base, apiKey: key } });
        }
        opened.push(c);
        return c;
      },
      async dispose() {
        await Promise.all(opened.map((c) => c.close()));
        await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
      },
    };
  };

  cacheContract('remote (cloud API, a local tier per cache)', harness('remote', true), { tiered: true });
  cacheContract('auto (cloud API online, one local tier)', harness('auto', false), { tiered: true });
});

/**
 * `npm start`: opens the local cacheness store on embedded defaults (SQLite + files in
 * ./.cacheness, or $CACHENESS_DIR) and reports what it holds. The HTTP API of the local stack
 * (hono on embedded Postgres + an S3-protocol server) is added by the cloud API issue.
 */
import { resolve } from 'node:path';
import { createCache } from 'cacheness';

const dir = resolve(process.env.INIT_CWD ?? process.cwd(), process.env.CACHENESS_DIR ?? '.cacheness');
const cache = createCache({ dir });
const stats = await cache.stats();
const cleaned = await cache.cleanup();
console.log(`cacheness local store: ${cache.location}`);
console.log(
  `  entries ${stats.entries}, ${(stats.bytes / 1024 / 1024).toFixed(1)} MiB stored, hit rate ${(stats.hitRate * 100).toFixed(1)}% (${stats.hits} hits, ${stats.misses} misses)`,
);
console.log(`  cleanup: ${cleaned.expired} expired, ${cleaned.evicted} evicted, ${cleaned.orphans} orphans removed`);
console.log('  Use it from code: import { createCache } from "cacheness". The local HTTP API is not part of this release yet.');
await cache.close();

import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Cache } from './cache.js';
import { DEFAULT_CHUNK_SIZE } from './chunked/format.js';
import type { CompressionOptions } from './compression.js';
import { resolveCompression } from './compression.js';
import type { Ttl } from './duration.js';
import { ttlToMs } from './duration.js';
import { type CachenessError, OptionError, StoreError } from './errors.js';
import { ApiClient } from './remote/client.js';
import { RemoteTier } from './remote/tier.js';
import { FsBlobStore } from './stores/fs-blobs.js';
import { MemoryBlobStore } from './stores/memory-blobs.js';
import { SqliteMetadataStore } from './stores/sqlite-metadata.js';
import type { BlobStore, EvictionPolicy, MetadataStore } from './stores/types.js';
import { handlerResolver, type ValueHandler } from './values/index.js';

/** The cloud API a remote cache talks to (see docs/remote.md). */
export interface RemoteOptions {
  /** The API's URL (the `ApiUrl` output of `cdk deploy`). Default: `CACHENESS_ENDPOINT`. */
  endpoint?: string;
  /** An API key (`ck_...`). Default: `CACHENESS_API_KEY`. */
  apiKey?: string;
  /** Parts of an upload (and windows of a download) in flight at once. Default 4. */
  concurrency?: number;
  /** Time to open a connection, in ms. Default 3,000 (mode `auto`: 1,000, so a fallback comes quickly). */
  connectTimeoutMs?: number;
  /** Once connected, the longest time with no byte moving, in ms. Default 30,000 (mode `auto`: 10,000). */
  responseTimeoutMs?: number;
  /** Time for one API call, all attempts included, in ms. Default 60,000. */
  deadlineMs?: number;
  /** Attempts after the first for failures worth repeating. Default 4 (mode `auto`: 2). */
  retries?: number;
}

/** Where a cache lives: see {@link CacheOptions.mode}. */
export type CacheMode = 'local' | 'remote' | 'auto';

/** Options of {@link createCache}. */
export interface CacheOptions {
  /**
   * `'local'`: SQLite + files in `dir` only (the default without a remote). `'remote'`: the cloud API,
   * with `dir` as a local copy of what was read and written; an unreachable API is an error (the
   * default with a remote). `'auto'`: the cloud API, falling back to `dir` while it is unreachable,
   * with writes queued and pushed later. Default: `CACHENESS_MODE`, else as said. See docs/remote.md.
   */
  mode?: CacheMode;
  /** The cloud API (modes `remote` and `auto`). Also from `CACHENESS_ENDPOINT` / `CACHENESS_API_KEY`. */
  remote?: RemoteOptions;
  /** Directory of a local cache (SQLite index + blob files), and a remote cache's local tier. Default `CACHENESS_DIR`, else `./.cacheness`. */
  dir?: string;
  /** `'sqlite'` (default): SQLite + files under `dir`. `'memory'`: nothing touches disk; gone on close. */
  store?: 'sqlite' | 'memory';
  /** TTL of entries put without one. Default `null` (never expire). */
  defaultTtl?: Ttl;
  /** Stored bytes above which entries are evicted (a remote cache: from its local tier only). Default 1 GiB; `null` for unbounded. */
  maxSize?: number | null;
  /** Which entries go first when over `maxSize`: `'lru'` (default), `'lfu'`, `'fifo'`, `'none'` (never evict). */
  eviction?: EvictionPolicy;
  /** Compression of stored values. Default lz4 above 4 KiB, kept only when it pays. */
  compression?: CompressionOptions;
  /** Check content hashes on every read. Default true. */
  verifyIntegrity?: boolean;
  /** Store the key params of each entry (queryable by `list({ where: { params } })`). Default true; false keeps sensitive params out of the store. */
  storeKeyParams?: boolean;
  /** Stored values smaller than this many bytes live inside SQLite instead of as files. Default 32 KiB. */
  inlineThreshold?: number;
  /**
   * Payloads larger than this are stored as a chunked container: chunks of this many bytes, each
   * compressed and verified on its own, so memory stays bounded and byte ranges can be read without the
   * rest. From 64 KiB to 256 MiB. Default 1 MiB (see docs/storage.md for the trade-off).
   */
  chunkSize?: number;
  /**
   * Worker threads that compress the chunks of large payloads, for puts up to about 1.6× faster with
   * two (docs/benchmarks.md). Each costs memory (about 30-60 MiB while busy: its own heap, the codec's
   * memory, and buffers in flight), so the default is 0: chunks are compressed in the calling thread
   * and a stream of any size stays within about 64 MiB.
   */
  workers?: number;
  /**
   * Bytes of small (inline) entries this process keeps in memory for repeated reads; every hit is
   * checked against other processes' writes first, so reads are never stale. 0 disables. Default 32 MiB.
   */
  readCacheBytes?: number;
  /** fsync blob files before publishing them (survive power loss; slower). Default false: a process crash loses nothing either way. */
  fsync?: boolean;
  /** Called with problems found in the background (a corrupted entry dropped, a failed statistics flush). Default: `process.emitWarning`. */
  onError?: (err: CachenessError) => void;
  /** Clock in milliseconds since the epoch (tests). Default `Date.now`. */
  clock?: () => number;
  /** Advanced: bring your own stores (they must pass the contract suites). */
  stores?: { metadata: MetadataStore; blobs: BlobStore };
  /**
   * This cache's own value handlers, tried before the process-wide ones (`registerHandler`) and the
   * built-ins, in this order. See docs/data-types.md.
   */
  handlers?: readonly ValueHandler[];
}

const GiB = 1024 ** 3;
const POLICIES = new Set(['lru', 'lfu', 'fifo', 'none']);

/**
 * Creates a cache. With no options it is a local cache in `./.cacheness` (SQLite + files).
 * @example
 * const cache = createCache({ dir: './.cacheness', defaultTtl: '7d' });
 * await cache.put(features, { model: 'xgb', dataset: 'train' });
 */
export function createCache(options: CacheOptions = {}): Cache {
  const maxSize = options.maxSize === undefined ? GiB : options.maxSize;
  if (maxSize !== null && (!Number.isSafeInteger(maxSize) || maxSize <= 0)) {
    throw new OptionError('EOPTION', `maxSize must be a positive number of bytes, or null for unbounded; got ${maxSize}.`);
  }
  const eviction = options.eviction ?? 'lru';
  if (!POLICIES.has(eviction)) throw new OptionError('EOPTION', `eviction must be 'lru', 'lfu', 'fifo' or 'none'; got ${JSON.stringify(eviction)}.`);
  const inlineThreshold = options.inlineThreshold ?? 32 * 1024;
  if (!Number.isSafeInteger(inlineThreshold) || inlineThreshold < 0 || inlineThreshold > 64 * 1024 * 1024) {
    throw new OptionError('EOPTION', `inlineThreshold must be a byte count from 0 to 64 MiB; got ${inlineThreshold}.`);
  }
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 64 * 1024 || chunkSize > 256 * 1024 * 1024) {
    throw new OptionError('EOPTION', `chunkSize must be a byte count from 64 KiB to 256 MiB; got ${chunkSize}.`);
  }
  const workers = options.workers ?? 0;
  if (!Number.isSafeInteger(workers) || workers < 0 || workers > 64) throw new OptionError('EOPTION', `workers must be a whole number from 0 to 64; got ${workers}.`);
  ttlToMs(options.defaultTtl ?? null, 'defaultTtl');
  resolveCompression(options.compression);
  const readCacheBytes = options.readCacheBytes ?? 32 * 1024 * 1024;
  if (!Number.isSafeInteger(readCacheBytes) || readCacheBytes < 0) throw new OptionError('EOPTION', `readCacheBytes must be a byte count (0 disables); got ${readCacheBytes}.`);
  for (const flag of ['verifyIntegrity', 'storeKeyParams', 'fsync'] as const) {
    if (options[flag] !== undefined && typeof options[flag] !== 'boolean') throw new OptionError('EOPTION', `${flag} must be true or false; got ${JSON.stringify(options[flag])}.`);
  }
  const storeKind = options.store ?? 'sqlite';
  if (storeKind !== 'sqlite' && storeKind !== 'memory') throw new OptionError('EOPTION', `store must be 'sqlite' or 'memory'; got ${JSON.stringify(storeKind)}.`);
  const remote = remoteSettings(options);
  const settings = {
    defaultTtl: options.defaultTtl ?? null,
    maxSize,
    eviction,
    compression: options.compression,
    verifyIntegrity: options.verifyIntegrity ?? true,
    storeKeyParams: options.storeKeyParams ?? true,
    inlineThreshold,
    chunkSize,
    workers,
    handlers: handlerResolver(options.handlers ?? []),
    clock: options.clock ?? Date.now,
    onError: options.onError ?? ((err: CachenessError) => process.emitWarning(err.message, { code: `CACHENESS_${err.code}` })),
  };
  if (remote) {
    if (options.stores || storeKind === 'memory') {
      throw new OptionError(
        'EOPTION',
        `Mode '${remote.mode}' keeps its local tier in dir (SQLite + files); it cannot use store: 'memory' or custom stores. Use mode 'local' for those.`,
      );
    }
    const dir = localDir(options.dir);
    if (existsSync(join(dir, 'cache.db')) && !existsSync(join(dir, 'remote.db'))) {
      remote.api.close();
      throw new OptionError(
        'EOPTION',
        `${dir} holds a local cache; a remote cache needs a directory of its own (its local tier): pass another dir or set CACHENESS_DIR. To move the local entries to the cloud, export() them and import() into the remote cache.`,
      );
    }
    const local = new SqliteMetadataStore({ path: join(dir, 'cache.db'), readCacheBytes });
    let tier: RemoteTier;
    try {
      tier = new RemoteTier({
        api: remote.api,
        mode: remote.mode,
        dir,
        local,
        files: new FsBlobStore({ dir, fsync: options.fsync ?? false }),
        maxSize,
        eviction,
        concurrency: remote.concurrency,
        clock: settings.clock,
        onError: settings.onError,
      });
    } catch (err) {
      void local.close();
      remote.api.close();
      throw err;
    }
    // maxSize bounds the local tier (the tier trims it), never what the cloud may store.
    return new Cache(tier.metadata, tier.blobs, {
      ...settings,
      maxSize: null,
      location: `${remote.api.origin} (${remote.mode}, local tier ${dir})`,
      remote: tier.control(),
    });
  }

  let metadata: MetadataStore;
  let blobs: BlobStore;
  let location: string;
  if (options.stores) {
    ({ metadata, blobs } = options.stores);
    location = 'custom stores';
  } else if (storeKind === 'memory') {
    metadata = new SqliteMetadataStore({ path: ':memory:', readCacheBytes });
    blobs = new MemoryBlobStore();
    location = 'memory';
  } else {
    const dir = localDir(options.dir);
    metadata = new SqliteMetadataStore({ path: join(dir, 'cache.db'), readCacheBytes });
    try {
      blobs = new FsBlobStore({ dir, fsync: options.fsync ?? false });
    } catch (cause) {
      void metadata.close();
      throw new StoreError('ESTORE', `Cannot create the blob folders under ${dir}: ${(cause as Error).message}.`, { cause });
    }
    location = dir;
  }
  return new Cache(metadata, blobs, { ...settings, location });
}

/** The local directory (created): `dir`, else `CACHENESS_DIR`, else `./.cacheness`. */
function localDir(given: string | undefined): string {
  const dir = resolve(given ?? process.env.CACHENESS_DIR ?? '.cacheness');
  try {
    mkdirSync(dir, { recursive: true });
  } catch (cause) {
    throw new StoreError('ESTORE', `Cannot use ${dir} as a cache directory: ${(cause as Error).message}. Pass another dir.`, { cause });
  }
  return dir;
}

const MODES = new Set(['local', 'remote', 'auto']);

/** The mode and API client of a remote cache, from the options and the environment; undefined for a local cache. */
function remoteSettings(options: CacheOptions): { mode: 'remote' | 'auto'; api: ApiClient; concurrency: number } | undefined {
  const env = process.env;
  const r = options.remote ?? {};
  if (typeof r !== 'object' || r === null) throw new OptionError('EOPTION', 'remote must be an object like { endpoint, apiKey }.');
  const endpoint = r.endpoint ?? env.CACHENESS_ENDPOINT;
  const mode = (options.mode ?? (env.CACHENESS_MODE || undefined) ?? (endpoint ? 'remote' : 'local')) as CacheMode;
  if (!MODES.has(mode)) throw new OptionError('EOPTION', `mode must be 'local', 'remote' or 'auto' (option mode or CACHENESS_MODE); got ${JSON.stringify(mode)}.`);
  if (mode === 'local') return undefined;
  if (!endpoint) {
    throw new OptionError('EOPTION', `Mode '${mode}' needs the cloud API's URL: pass remote: { endpoint } or set CACHENESS_ENDPOINT (the ApiUrl output of cdk deploy).`);
  }
  const auto = mode === 'auto';
  const concurrency = r.concurrency ?? 4;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw new OptionError('EOPTION', `remote.concurrency must be a whole number from 1 to 64; got ${r.concurrency}.`);
  }
  const api = new ApiClient({
    endpoint,
    apiKey: r.apiKey ?? env.CACHENESS_API_KEY ?? '',
    connectTimeoutMs: r.connectTimeoutMs ?? (auto ? 1_000 : undefined),
    responseTimeoutMs: r.responseTimeoutMs ?? (auto ? 10_000 : undefined),
    deadlineMs: r.deadlineMs,
    retries: r.retries ?? (auto ? 2 : undefined),
  });
  return { mode, api, concurrency };
}

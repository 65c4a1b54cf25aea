/**
 * `cached()`: memoize a function in a cache, keyed by the function's identity and its arguments.
 * @module
 */
import type { Cache } from './cache.js';
import { createCache } from './create.js';
import type { Ttl } from './duration.js';
import type { JsonObject } from './entry.js';
import { CachenessError, OptionError, StoreError } from './errors.js';
import { xxh64Hex } from './hash.js';
import { type ContentDigests, keyOf, resolveKeyFast } from './key/index.js';
import { type Json, projectParams } from './key/projection.js';

/** Options of {@link cached}. */
export interface CachedOptions<A extends unknown[], R> {
  /** Cache to use. Default: one shared cache per process in `./.cacheness`. */
  cache?: Cache;
  /** TTL of results. Default: the cache's `defaultTtl`. */
  ttl?: Ttl;
  /**
   * Identity of the function in keys. Default: its name plus a hash of its source, so editing the
   * function stops serving results computed by the old code. Set it to keep results across edits.
   */
  keyPrefix?: string;
  /** Maps the arguments to key params (to ignore an argument, or key by a derived value). Default: all arguments. */
  key?: (...args: A) => unknown;
  /** Stores a result only when this returns true. Default: every result. */
  condition?: (result: Awaited<R>) => boolean;
  /** Metadata stored with every result. */
  metadata?: JsonObject;
  /** Description stored with every result. */
  description?: string;
}

/** What {@link CachedFunction.cacheInfo} reports. */
export interface CacheInfo {
  /** Calls answered from the cache by this wrapper in this process. */
  hits: number;
  /** Calls that ran the function. */
  misses: number;
  /** Live entries of this function in the cache (all processes). */
  size: number;
  ttl: Ttl | undefined;
}

/** A memoized function. */
export interface CachedFunction<A extends unknown[], R> {
  (...args: A): Promise<Awaited<R>>;
  /** Hits and misses of this wrapper, and how many results are stored. */
  cacheInfo(): Promise<CacheInfo>;
  /** Deletes this function's stored results (only this function's); returns how many. */
  cacheClear(): Promise<number>;
  /**
   * The cache key these arguments map to.
   * @throws {KeyError} `EKEYASYNC` when the key params hold `file()`/`dir()` content markers: use {@link CachedFunction.cacheKeyAsync}.
   */
  cacheKey(...args: A): string;
  /** The cache key these arguments map to, reading the content of `file()`/`dir()` markers among them. */
  cacheKeyAsync(...args: A): Promise<string>;
  /** The function's identity in keys (see `keyPrefix`). */
  readonly functionId: string;
}

const MAX_STORED_ARGS_JSON = 16 * 1024;
let defaultCache: Cache | undefined;

/** The process-wide default cache used by `cached()` without a `cache` option (created on first use). */
export function getDefaultCache(): Cache {
  if (!defaultCache || defaultCache.isClosed) defaultCache = createCache();
  return defaultCache;
}

const inflightByCache = new WeakMap<Cache, Map<string, Promise<unknown>>>();

/**
 * Memoizes `fn` (sync or async) in a cache. Concurrent calls with the same key in one process run
 * `fn` once; a stored `undefined`/`null` is a hit; errors are never stored.
 * @example
 * const train = cached(async (data, params) => fit(data, params), { ttl: '7d', keyPrefix: 'train' });
 */
export function cached<A extends unknown[], R>(fn: (...args: A) => R, options: CachedOptions<A, R> = {}): CachedFunction<A, R> {
  if (typeof fn !== 'function') throw new OptionError('EOPTION', 'cached() takes the function to memoize as its first argument.');
  const functionId =
    options.keyPrefix !== undefined ? checkPrefix(options.keyPrefix) : `${encodeURIComponent(fn.name || 'anonymous')}-${xxh64Hex(Buffer.from(fn.toString())).slice(0, 8)}`;
  const prefix = `cached/${functionId}/`;
  let hits = 0;
  let misses = 0;
  const cacheOf = () => options.cache ?? getDefaultCache();

  const keyParams = (args: A): Record<string, unknown> => ({ args: options.key ? options.key(...args) : args });
  const keyFor = (args: A) => `${prefix}${keyOf(keyParams(args))}`;
  /** The key, and the digests of any file()/dir() content markers (a promise only when there are some). */
  const resolveCall = (params: Record<string, unknown>): { k: string; contents?: ContentDigests } | Promise<{ k: string; contents: ContentDigests }> => {
    const r = resolveKeyFast(params);
    return typeof r === 'string' ? { k: `${prefix}${r}` } : r.then(({ key, contents }) => ({ k: `${prefix}${key}`, contents }));
  };

  const wrapper = (async (...args: A) => {
    const cache = cacheOf();
    const params = keyParams(args);
    const call = resolveCall(params);
    const { k, contents } = call instanceof Promise ? await call : call;
    let inflight = inflightByCache.get(cache);
    if (!inflight) inflightByCache.set(cache, (inflight = new Map()));
    const running = inflight.get(k);
    if (running) return running;
    const run = (async () => {
      const found = await cache.lookup(k);
      if (found.hit) {
        hits++;
        return found.value;
      }
      misses++;
      const result = await fn(...args);
      if (!options.condition || options.condition(result)) {
        try {
          await cache.putResolved(result, k, storedParams(functionId, params, cache, contents), { ttl: options.ttl, metadata: options.metadata, description: options.description });
        } catch (err) {
          if (!(err instanceof CachenessError) || err instanceof StoreError) throw err;
          // The function succeeded; a result that cannot be stored is reported, not thrown.
          cache.report(new CachenessError(err.code, `cached(${functionId}): result not stored: ${err.message}`, { cause: err }));
        }
      }
      return result;
    })();
    inflight.set(k, run);
    try {
      return (await run) as Awaited<R>;
    } finally {
      inflight.delete(k);
    }
  }) as CachedFunction<A, R>;

  Object.defineProperty(wrapper, 'functionId', { value: functionId, enumerable: true });
  wrapper.cacheKey = (...args: A) => keyFor(args);
  wrapper.cacheKeyAsync = async (...args: A) => {
    const call = resolveCall(keyParams(args));
    return (call instanceof Promise ? await call : call).k;
  };
  wrapper.cacheInfo = async () => ({ hits, misses, size: await cacheOf().count({ prefix }), ttl: options.ttl });
  wrapper.cacheClear = async () => cacheOf().deletePrefix(prefix);
  return wrapper;
}

function storedParams(functionId: string, params: Record<string, unknown>, cache: Cache, contents: ContentDigests | undefined): Json | null {
  if (!cache.storesKeyParams) return null;
  const projected = projectParams(params, contents) as { args: Json };
  return JSON.stringify(projected.args).length <= MAX_STORED_ARGS_JSON ? { fn: functionId, args: projected.args } : { fn: functionId, argsTruncated: true };
}

function checkPrefix(p: string): string {
  const encoded = typeof p === 'string' ? encodeURIComponent(p) : '';
  if (encoded.length === 0 || encoded.length > 200) {
    throw new OptionError('EOPTION', 'keyPrefix must be a non-empty string of at most 200 characters once URI-encoded (keys have a 1024-character limit).');
  }
  return encoded;
}

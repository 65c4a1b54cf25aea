/**
 * cacheness: store multi-GB values with SQL-queryable metadata, as a cache or as permanent storage.
 *
 * @example
 * import { createCache, cached } from 'cacheness';
 * const cache = createCache();
 * await cache.put({ rows: 3 }, { model: 'xgb', dataset: 'train' }, { ttl: '24h' });
 * @module
 */

export type { CacheStats, CacheStatus, CleanupResult, GetFileOptions, ListOptions, Lookup, PutOptions, QueryOptions, VerifyReport } from './cache.js';
export { Cache } from './cache.js';
export type { CachedFunction, CachedOptions, CacheInfo } from './cached.js';
export { cached, getDefaultCache } from './cached.js';
export type { CodecName, CompressionOptions, StoredCodec } from './compression.js';
export type { CacheMode, CacheOptions, RemoteOptions } from './create.js';
export { createCache } from './create.js';
export type { DumpResult } from './dump.js';
export { DUMP_FORMAT } from './dump.js';
export type { Ttl } from './duration.js';
export { ttlToMs } from './duration.js';
export type { EntryInfo, EntryRecord, JsonObject, StoredEntry } from './entry.js';
export { isExpired, MAX_TYPE_LENGTH, toEntryInfo } from './entry.js';
export type { ErrorCode } from './errors.js';
export {
  AbortedError,
  CachenessError,
  CodecError,
  HandlerError,
  IntegrityError,
  KeyError,
  OptionError,
  RemoteError,
  StoreError,
  TableError,
  ValueError,
} from './errors.js';
export type { ContentDigest, FileHashStats, FileKeyOptions, FileMarker, HashDirOptions, Key, KeyEncoder, KeyParams } from './key/index.js';
export {
  clearFileHashMemo,
  dir,
  encodeKeyParams,
  file,
  fileHashStats,
  hashDir,
  hashFile,
  isFileMarker,
  KEY_FORMAT_VERSION,
  keyOf,
  keyOfAsync,
  MAX_KEY_LENGTH,
  registerKeyEncoder,
  resolveKey,
  resolveKeyAsync,
  unregisterKeyEncoder,
  validateStringKey,
} from './key/index.js';
export type { Json } from './key/projection.js';
export { projectParams } from './key/projection.js';
export type { SyncResult } from './remote/tier.js';
export type { Progress, TransferControl } from './stores/types.js';
export type { ColumnType, TableColumns, TableDefinition, TableOptions, TableRow } from './tables/schema.js';
export type { Condition, Operators, OrderBy, Scalar, Where } from './tables/where.js';
export type { HandlerContext, HandlerPosition, NdArray, Serialized, SerializedBytes, SerializedStream, ValueHandler } from './values/index.js';
export { listHandlers, registerHandler, unregisterHandler } from './values/index.js';

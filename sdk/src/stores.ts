/**
 * `cacheness/stores`: the store interfaces and the local implementations, for building or testing
 * backends. Every implementation must pass the contract suites.
 * @module
 */

export type { EntryRecord, StoredEntry } from './entry.js';
export { isExpired, toEntryInfo } from './entry.js';
export { type Hasher128, xxh64Hex, xxh128Hex, xxh128Stream } from './hash.js';
export type { FsBlobStoreOptions } from './stores/fs-blobs.js';
export { FsBlobStore } from './stores/fs-blobs.js';
export { MemoryBlobStore } from './stores/memory-blobs.js';
export type { SqliteMetadataStoreOptions } from './stores/sqlite-metadata.js';
export { SQLITE_SCHEMA_VERSION, SqliteMetadataStore } from './stores/sqlite-metadata.js';
export type * from './stores/types.js';
export type { ColumnType, SqlValue, TableColumns, TableDefinition, TableOptions, TableRow } from './tables/schema.js';
export { type CellValue, checkCell, decodeCell, defineTableDefinition, encodeCell, encodeRow, isCompatibleExtension, validateTableName } from './tables/schema.js';
export type { Compiled, FieldRef, FieldResolver, OrderBy, Scalar, Where } from './tables/where.js';
export { compileOrderBy, compileWhere } from './tables/where.js';

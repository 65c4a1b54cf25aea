/**
 * `cacheness/model`: the definitions the SDK and the cloud API share, and nothing heavier. The entry
 * model, string-key rules, ttl parsing, table definitions, the where language, the store interfaces
 * and the error classes, with no native addon, WebAssembly file or storage engine behind them, so a
 * Lambda bundle that imports this entry point stays small and self-contained.
 * @module
 */

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
export { MAX_KEY_BYTES, MAX_KEY_LENGTH, validateStringKey } from './key/string-key.js';
export type * from './protocol.js';
export { fromWireEntry, toWireEntry } from './protocol.js';
export type * from './stores/types.js';
export type { ColumnType, SqlValue, TableColumns, TableDefinition, TableOptions, TableRow } from './tables/schema.js';
export { type CellValue, checkCell, decodeCell, defineTableDefinition, encodeCell, encodeRow, isCompatibleExtension, validateTableName } from './tables/schema.js';
export type { Compiled, Condition, FieldRef, FieldResolver, Operators, OrderBy, Scalar, Where } from './tables/where.js';
export { compileOrderBy, compileWhere } from './tables/where.js';

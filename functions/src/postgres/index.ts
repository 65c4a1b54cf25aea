export { type ApiKeyInfo, createApiKey, listApiKeys, type Principal, revokeApiKey, type Scope, validateNamespace, verifyApiKey } from './api-keys.js';
export { type ConnectOptions, connectDatabase, type Database, isDroppedConnection, reconnectIfPossible, retryOnDroppedConnection } from './connect.js';
export { PostgresMetadataStore, type PostgresMetadataStoreOptions } from './metadata-store.js';
export { MIGRATIONS, type Migration, migrate } from './migrations.js';
export { createUpload, deleteUpload, getUpload, type PendingUpload, pendingMultipartIds } from './uploads.js';

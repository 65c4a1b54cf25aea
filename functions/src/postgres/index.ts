export { PostgresMetadataStore, type PostgresMetadataStoreOptions } from './metadata-store.js';
export { MIGRATIONS, type Migration, migrate } from './migrations.js';

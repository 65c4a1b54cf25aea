/** Runs the store contract suites against every implementation. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore, MemoryBlobStore, SqliteMetadataStore } from 'cacheness/stores';
import { blobStoreContract } from './contract/blob-store.js';
import { metadataStoreContract } from './contract/metadata-store.js';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'cacheness-contract-'));
}

metadataStoreContract('SQLite file (WAL)', async () => {
  const dir = await tempDir();
  const store = new SqliteMetadataStore({ path: join(dir, 'cache.db') });
  return {
    store,
    async dispose() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

metadataStoreContract('SQLite in memory', async () => {
  const store = new SqliteMetadataStore({ path: ':memory:' });
  return { store, dispose: () => store.close() };
});

blobStoreContract('filesystem', async () => {
  const dir = await tempDir();
  const store = new FsBlobStore({ dir });
  return { store, dispose: () => rm(dir, { recursive: true, force: true }) };
});

blobStoreContract('filesystem with fsync', async () => {
  const dir = await tempDir();
  const store = new FsBlobStore({ dir, fsync: true });
  return { store, dispose: () => rm(dir, { recursive: true, force: true }) };
});

blobStoreContract('memory', async () => {
  const store = new MemoryBlobStore();
  return { store, dispose: () => store.close() };
});

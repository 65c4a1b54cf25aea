/**
 * Deleting the bytes of blobs no entry references any more: the last step of the blob protocol
 * (see {@link MetadataStore}), shared by the engine and a remote cache's local tier.
 * @module
 */
import type { BlobStore, MetadataStore } from './types.js';

/** Claims unreferenced blobs (pins taken before `staleBefore` count as abandoned), deletes their bytes and forgets them; returns how many. */
export async function collectGarbage(meta: MetadataStore, blobs: BlobStore, staleBefore: number): Promise<number> {
  let total = 0;
  for (;;) {
    const names = await meta.claimGarbage(staleBefore, 500);
    if (names.length === 0) return total;
    await blobs.delete(names);
    total += await meta.dropGarbage(names);
  }
}

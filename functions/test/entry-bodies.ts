/** Bodies of `PUT /v1/entries/:key` for raw bytes stored as they are (codec 'none'), as tests send them. */
import type { CreateEntryRequest } from 'cacheness/model';
import { xxh128Hex } from 'cacheness/stores';

/** The entry description of `bytes` (sizes and content hash), without the bytes. */
export function describeBytes(bytes: Uint8Array, over: Partial<CreateEntryRequest> = {}): CreateEntryRequest {
  return { handler: 'bytes@1', type: 'Buffer', codec: 'none', size: bytes.length, storedSize: bytes.length, contentHash: xxh128Hex(bytes), ...over };
}

/** An inline create: the description plus the bytes, base64. */
export function inlineEntry(bytes: Uint8Array, over: Partial<CreateEntryRequest> = {}): CreateEntryRequest {
  return describeBytes(bytes, { body: Buffer.from(bytes).toString('base64'), ...over });
}

/** A sized upload: the description plus the blob id (the stored bytes' XXH3-128). */
export function uploadEntry(bytes: Uint8Array, over: Partial<CreateEntryRequest> = {}): CreateEntryRequest {
  return describeBytes(bytes, { blobId: xxh128Hex(bytes), ...over });
}

/**
 * Where objects live in the bucket: chosen by the server, under the tenant's prefix, never by a client.
 * @module
 */

/** The prefix of every tenant's objects (`ns/<namespace>/…`). */
export const NAMESPACES_PREFIX = 'ns/';

/** The object key of blob `blobName` of `namespace`: `ns/<namespace>/blobs/<blobName>`. */
export function blobObjectKey(namespace: string, blobName: string): string {
  return `${NAMESPACES_PREFIX}${namespace}/blobs/${blobName}`;
}

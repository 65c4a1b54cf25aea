/** Where objects live in the bucket: chosen by the server, under the tenant's prefix, never by a client. */
export function blobObjectKey(namespace: string, blobName: string): string {
  return `ns/${namespace}/blobs/${blobName}`;
}

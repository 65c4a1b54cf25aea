/**
 * The local stack's embedded S3: an S3-protocol server on 127.0.0.1 (@20minutes/s3rver, which checks
 * SigV4 signatures, signed content lengths and URL expiry), keeping objects in a directory.
 * @module
 */
// @ts-expect-error: the package ships no type declarations
import S3rver from '@20minutes/s3rver';

/** The only credentials the embedded server accepts. */
export const EMBEDDED_S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface EmbeddedS3 {
  endpoint: string;
  stop(): Promise<void>;
}

export async function startEmbeddedS3(opts: { directory: string; bucket: string; port?: number }): Promise<EmbeddedS3> {
  const server = new S3rver({ port: opts.port ?? 0, address: '127.0.0.1', directory: opts.directory, silent: true, configureBuckets: [{ name: opts.bucket }] });
  const { port } = (await server.run()) as { port: number };
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => server.close() };
}

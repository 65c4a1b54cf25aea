/**
 * The S3 client of the cloud API. Checksums are computed only when an operation requires them:
 * with the SDK default (`WHEN_SUPPORTED`) the presigner bakes the CRC32 of an empty body into every
 * upload URL, and real S3 then rejects the upload.
 * @module
 */
import { S3Client } from '@aws-sdk/client-s3';

/** Where and how to reach S3 (or an S3-protocol server). */
export interface S3Settings {
  /** AWS region. Default `us-east-1`. */
  region?: string;
  /** A custom endpoint (local stack, tests); AWS's own endpoints when absent. */
  endpoint?: string;
  /** Static credentials (local stack, tests); the default provider chain (Lambda role) when absent. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/** Creates an S3 client for cacheness: no implicit checksums, path-style addressing for custom endpoints. */
export function createS3Client(settings: S3Settings = {}): S3Client {
  const client = new S3Client({
    region: settings.region ?? 'us-east-1',
    endpoint: settings.endpoint,
    forcePathStyle: settings.endpoint !== undefined,
    credentials: settings.credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  if (settings.endpoint !== undefined) {
    // Path-style bucket-level requests are signed as `/bucket/`; some S3-protocol servers canonicalise
    // the path to `/bucket` and reject the signature. Both mean the same bucket: sign the short form.
    client.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { path?: string };
        if (typeof request.path === 'string' && /^\/[^/]+\/$/.test(request.path)) request.path = request.path.slice(0, -1);
        return next(args);
      },
      { step: 'build', name: 'cachenessBucketPath' },
    );
  }
  return client;
}

/**
 * Presigned URLs: bytes go straight between the client and S3, never through the API. URLs live at
 * most 15 minutes (and never longer than the credentials that signed them); a long multipart upload
 * asks for more part URLs as it goes.
 * @module
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { S3_LIMITS } from './multipart-plan.js';

/** Longest lifetime of a presigned URL, in seconds. */
export const MAX_URL_SECONDS = 15 * 60;

/** An object in a bucket. */
export interface ObjectRef {
  bucket: string;
  key: string;
}

function expiry(seconds: number | undefined): number {
  if (seconds !== undefined && !Number.isFinite(seconds)) throw new RangeError(`A URL lifetime must be a finite number of seconds; got ${seconds}.`);
  return Math.max(1, Math.min(Math.floor(seconds ?? MAX_URL_SECONDS), MAX_URL_SECONDS));
}

/**
 * A URL for one PUT of exactly `size` bytes (the length is signed: S3 rejects any other body size).
 * Single PUTs carry up to 5 GiB; larger objects need a multipart upload.
 */
export async function presignPut(client: S3Client, ref: ObjectRef & { size: number; expiresIn?: number }): Promise<string> {
  if (!Number.isSafeInteger(ref.size) || ref.size < 0 || ref.size > S3_LIMITS.maxPartSize) {
    throw new RangeError(`A single PUT carries 0 to 5 GiB; ${ref.size} bytes need a multipart upload.`);
  }
  return getSignedUrl(client, new PutObjectCommand({ Bucket: ref.bucket, Key: ref.key, ContentLength: ref.size }), { expiresIn: expiry(ref.expiresIn) });
}

/** A URL to GET an object; the client may send a `Range` header (ranges are not part of the signature). */
export function presignGet(client: S3Client, ref: ObjectRef & { expiresIn?: number }): Promise<string> {
  return getSignedUrl(client, new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }), { expiresIn: expiry(ref.expiresIn) });
}

/** Starts a multipart upload; returns its id. */
export async function startMultipart(client: S3Client, ref: ObjectRef): Promise<string> {
  const out = await client.send(new CreateMultipartUploadCommand({ Bucket: ref.bucket, Key: ref.key }));
  if (!out.UploadId) throw new Error(`S3 returned no upload id for ${ref.key}.`);
  return out.UploadId;
}

/** URLs for a batch of parts (1-based part numbers, at most 10,000). */
export async function presignParts(
  client: S3Client,
  ref: ObjectRef & { uploadId: string; partNumbers: number[]; expiresIn?: number },
): Promise<{ partNumber: number; url: string }[]> {
  const expiresIn = expiry(ref.expiresIn);
  return Promise.all(
    ref.partNumbers.map(async (partNumber) => {
      if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > S3_LIMITS.maxParts) throw new RangeError(`Part numbers run from 1 to 10,000; got ${partNumber}.`);
      const url = await getSignedUrl(client, new UploadPartCommand({ Bucket: ref.bucket, Key: ref.key, UploadId: ref.uploadId, PartNumber: partNumber }), { expiresIn });
      return { partNumber, url };
    }),
  );
}

/** Completes a multipart upload from its parts' ETags (sorted by part number, as S3 requires). */
export async function completeMultipart(client: S3Client, ref: ObjectRef & { uploadId: string; parts: { partNumber: number; etag: string }[] }): Promise<void> {
  const parts = [...ref.parts].sort((a, b) => a.partNumber - b.partNumber).map((p) => ({ PartNumber: p.partNumber, ETag: p.etag }));
  await client.send(new CompleteMultipartUploadCommand({ Bucket: ref.bucket, Key: ref.key, UploadId: ref.uploadId, MultipartUpload: { Parts: parts } }));
}

/** Abandons a multipart upload (its parts stop being billed). */
export async function abortMultipart(client: S3Client, ref: ObjectRef & { uploadId: string }): Promise<void> {
  await client.send(new AbortMultipartUploadCommand({ Bucket: ref.bucket, Key: ref.key, UploadId: ref.uploadId }));
}

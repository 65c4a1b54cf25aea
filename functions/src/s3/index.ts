export { type BlobFailure, type DeleteManyResult, type PartialSweepOptions, S3BlobStore, type S3BlobStoreOptions, type TagGarbageResult } from './blob-store.js';
export { createS3Client, type S3Settings } from './client.js';
export { GARBAGE_EXPIRY_DAYS, GARBAGE_TAG_KEY, GARBAGE_TAG_VALUE, INCOMPLETE_MULTIPART_DAYS } from './garbage-tag.js';
export { type PartPlan, planParts, S3_LIMITS } from './multipart-plan.js';
export { abortMultipart, completeMultipart, MAX_URL_SECONDS, type ObjectRef, presignGet, presignParts, presignPut, startMultipart } from './presign.js';

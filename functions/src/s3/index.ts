export { S3BlobStore, type S3BlobStoreOptions } from './blob-store.js';
export { createS3Client, type S3Settings } from './client.js';
export { type PartPlan, planParts, S3_LIMITS } from './multipart-plan.js';
export { abortMultipart, completeMultipart, MAX_URL_SECONDS, type ObjectRef, presignGet, presignParts, presignPut, startMultipart } from './presign.js';

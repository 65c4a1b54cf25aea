export { type ApiDeps, blobObjectKey, createApp } from './app.js';
export { ApiError, type ErrorBody, toErrorResponse } from './errors.js';

export { blobObjectKey } from '../object-keys.js';
export { type SweepOptions, type SweepReport, sweep } from '../sweeper.js';
export { type ApiDeps, createApp } from './app.js';
export { apiLimitsFromEnv } from './env-options.js';
export { ApiError, type ErrorBody, toErrorResponse } from './errors.js';
export { openApiDocument, ROUTES, type RouteDoc } from './openapi.js';
export { DEFAULT_RATE_LIMIT, type RateDecision, RateLimiter, type RateLimitOptions } from './rate-limit.js';

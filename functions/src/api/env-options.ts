/**
 * The API's limits from environment variables, read the same way by the Lambda handler and the local
 * stack. Unset or empty variables keep the defaults of {@link ApiDeps}.
 *
 * - `RATE_LIMIT_RPS`: requests per second per API key (`0` turns rate limiting off);
 * - `RATE_LIMIT_BURST`: requests a key may send at once;
 * - `MAX_OBJECT_BYTES`: largest object an entry may store;
 * - `INLINE_MAX_BYTES`: largest payload sent inline in a create request.
 * @module
 */
import { OptionError } from 'cacheness/model';
import type { ApiDeps } from './app.js';
import { DEFAULT_RATE_LIMIT } from './rate-limit.js';

type Limits = Pick<ApiDeps, 'rateLimit' | 'maxObjectBytes' | 'inlineMaxBytes'>;

function number(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new OptionError('EOPTION', `${name} must be a non-negative number; got ${JSON.stringify(raw)}.`);
  return n;
}

/** The API limits set in `env`. */
export function apiLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): Limits {
  const rps = number(env, 'RATE_LIMIT_RPS');
  const burst = number(env, 'RATE_LIMIT_BURST');
  const limits: Limits = {};
  if (rps === 0) limits.rateLimit = false;
  else if (rps !== undefined || burst !== undefined) {
    const requestsPerSecond = rps ?? DEFAULT_RATE_LIMIT.requestsPerSecond;
    limits.rateLimit = { requestsPerSecond, burst: burst ?? (rps === undefined ? DEFAULT_RATE_LIMIT.burst : undefined) };
  }
  const maxObject = number(env, 'MAX_OBJECT_BYTES');
  if (maxObject !== undefined) limits.maxObjectBytes = maxObject;
  const inline = number(env, 'INLINE_MAX_BYTES');
  if (inline !== undefined) limits.inlineMaxBytes = inline;
  return limits;
}

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

/** A numeric setting: unset or empty means undefined; anything else must be a number at least `min` (a whole one if `integer`). */
function number(env: NodeJS.ProcessEnv, name: string, opts: { min?: number; integer?: boolean } = {}): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw);
  const min = opts.min ?? 0;
  if (!Number.isFinite(n) || n < min || (opts.integer && !Number.isInteger(n))) {
    throw new OptionError('EOPTION', `${name} must be ${opts.integer ? 'a whole number' : 'a number'} of at least ${min}; got ${JSON.stringify(raw)}.`);
  }
  return n;
}

/** The API limits set in `env`. */
export function apiLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): Limits {
  const rps = number(env, 'RATE_LIMIT_RPS');
  const burst = number(env, 'RATE_LIMIT_BURST', { min: 1 });
  const limits: Limits = {};
  if (rps === 0) limits.rateLimit = false;
  else if (rps !== undefined || burst !== undefined) {
    const requestsPerSecond = rps ?? DEFAULT_RATE_LIMIT.requestsPerSecond;
    limits.rateLimit = { requestsPerSecond, burst: burst ?? (rps === undefined ? DEFAULT_RATE_LIMIT.burst : undefined) };
  }
  const maxObject = number(env, 'MAX_OBJECT_BYTES', { integer: true });
  if (maxObject !== undefined) limits.maxObjectBytes = maxObject;
  const inline = number(env, 'INLINE_MAX_BYTES', { integer: true });
  if (inline !== undefined) limits.inlineMaxBytes = inline;
  return limits;
}

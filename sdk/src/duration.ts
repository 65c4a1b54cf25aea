import { OptionError } from './errors.js';

/** A time-to-live: seconds as a number, a string like `'90s'`, `'15m'`, `'24h'`, `'7d'`, or `null` for never. */
export type Ttl = number | string | null;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$/;

/**
 * Converts a {@link Ttl} to milliseconds (`null` for never).
 * @throws {OptionError} code `ETTL` for negative, non-finite or unparseable values.
 */
export function ttlToMs(ttl: Ttl, what = 'ttl'): number | null {
  if (ttl === null) return null;
  if (typeof ttl === 'number') {
    if (!Number.isFinite(ttl) || ttl < 0) {
      throw new OptionError('ETTL', `${what} must be a non-negative number of seconds, a string like '90s', '15m', '24h', '7d', or null for never; got ${ttl}.`);
    }
    return capped(Math.round(ttl * 1000), what);
  }
  if (typeof ttl === 'string') {
    const m = PATTERN.exec(ttl);
    if (m) return capped(Math.round(Number(m[1]) * (UNIT_MS[m[2] as string] as number)), what);
  }
  throw new OptionError('ETTL', `${what} ${JSON.stringify(ttl)} is not a duration: use seconds (3600), a string like '90s', '15m', '24h', '7d', or null for never.`, {
    details: { ttl },
  });
}

/** Longest finite ttl: 1000 years (expiry times must stay valid Dates). */
const MAX_TTL_MS = 1000 * 365.25 * 86_400_000;

function capped(ms: number, what: string): number {
  if (ms > MAX_TTL_MS) throw new OptionError('ETTL', `${what} is longer than 1000 years; use null for never.`);
  return ms;
}

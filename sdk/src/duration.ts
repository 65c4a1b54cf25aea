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
    return Math.round(ttl * 1000);
  }
  if (typeof ttl === 'string') {
    const m = PATTERN.exec(ttl);
    if (m) return Math.round(Number(m[1]) * (UNIT_MS[m[2] as string] as number));
  }
  throw new OptionError('ETTL', `${what} ${JSON.stringify(ttl)} is not a duration: use seconds (3600), a string like '90s', '15m', '24h', '7d', or null for never.`, {
    details: { ttl },
  });
}

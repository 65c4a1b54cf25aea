/**
 * Per-API-key rate limits: a token bucket per key, in this process. Each key may send `burst` requests
 * at once and `requestsPerSecond` on average; beyond that the API answers 429 with `Retry-After`.
 *
 * The buckets live in the serving process, so the limit holds per process: the local stack and any
 * long-running server enforce it exactly; on Lambda each container has its own buckets (a container
 * serves one request at a time, so there it mostly caps bursts), and the deployment-wide limit is
 * API Gateway's throttling. Keeping the count out of Postgres keeps every request free of a write
 * to one hot row per key.
 * @module
 */

/** Rate-limit settings: `false` turns limiting off. */
export interface RateLimitOptions {
  /** Average requests per second allowed per API key. */
  requestsPerSecond: number;
  /** Requests a key may send at once (the bucket's size). Default: one second's worth, at least 1. */
  burst?: number;
  /** Keys tracked at once; the least recently seen are forgotten beyond it (they start full again). Default 10,000. */
  maxKeys?: number;
  /** Milliseconds, for refilling buckets. Default `Date.now` (not the API's injectable clock, which tests freeze). */
  clock?: () => number;
}

/** The default: generous enough for batch jobs, low enough to stop a runaway loop. */
export const DEFAULT_RATE_LIMIT: RateLimitOptions = { requestsPerSecond: 200, burst: 400 };

/** Outcome of one request against its key's bucket. */
export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

/** Token buckets per key. */
export class RateLimiter {
  private readonly rate: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  private readonly clock: () => number;
  /** Insertion order is recency order: a key is re-inserted on every request. */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(opts: RateLimitOptions) {
    if (!(opts.requestsPerSecond > 0) || !Number.isFinite(opts.requestsPerSecond)) {
      throw new RangeError(`requestsPerSecond must be a positive finite number; got ${opts.requestsPerSecond}.`);
    }
    const burst = opts.burst ?? Math.max(1, opts.requestsPerSecond);
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new RangeError(`burst must be a finite number of at least 1; got ${opts.burst}.`);
    this.rate = opts.requestsPerSecond;
    this.burst = burst;
    this.maxKeys = opts.maxKeys ?? 10_000;
    this.clock = opts.clock ?? Date.now;
  }

  /**
   * Whether `key`'s bucket has a token, without spending it: checked before the key is verified, so a
   * runaway client costs no database lookups, while only verified requests spend tokens (nobody can
   * drain another key's bucket by sending its id with a wrong secret).
   */
  peek(key: string): RateDecision {
    return this.decide(this.tokens(key, this.clock()));
  }

  /** Spends one token of `key`'s bucket, or says how long to wait for one. */
  take(key: string): RateDecision {
    const now = this.clock();
    const tokens = this.tokens(key, now);
    this.buckets.delete(key);
    if (tokens < 1) {
      this.buckets.set(key, { tokens, at: now });
      return this.decide(tokens);
    }
    this.buckets.set(key, { tokens: tokens - 1, at: now });
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
    return { ok: true };
  }

  private tokens(key: string, now: number): number {
    const b = this.buckets.get(key);
    return b ? Math.min(this.burst, b.tokens + (Math.max(0, now - b.at) * this.rate) / 1000) : this.burst;
  }

  private decide(tokens: number): RateDecision {
    return tokens >= 1 ? { ok: true } : { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / this.rate)) };
  }
}

/**
 * How an upload is cut into parts. S3 allows at most 10,000 parts of 5 MiB to 5 GiB (the last may be
 * smaller) and objects up to 5 TiB; all parts but the last have one size here, chosen so the object
 * always fits: for an unknown final size (a compressed stream), the plan is sized for the worst case,
 * so part 10,001 can never be needed.
 * @module
 */

const MiB = 1024 * 1024;
/** S3's limits. */
export const S3_LIMITS = { minPartSize: 5 * MiB, maxPartSize: 5 * 1024 * MiB, maxParts: 10_000, maxObjectSize: 5 * 1024 * 1024 * MiB } as const;

/** A multipart plan. */
export interface PartPlan {
  /** Size of every part but the last. */
  partSize: number;
  /** Parts needed for `size` (or for `maxSize` when the size is unknown). */
  partCount: number;
  /** The largest object this plan can carry (`partSize × 10,000`, capped at 5 TiB). */
  capacity: number;
}

/**
 * Plans the parts of an upload of `size` bytes, or of unknown size bounded by `maxSize` (default:
 * S3's 5 TiB object limit). `preferredPartSize` (default 16 MiB) is used whenever the object fits.
 */
export function planParts(opts: { size?: number; maxSize?: number; preferredPartSize?: number }): PartPlan {
  const { size } = opts;
  const bound = size ?? opts.maxSize ?? S3_LIMITS.maxObjectSize;
  if (!Number.isSafeInteger(bound) || bound < 0 || bound > S3_LIMITS.maxObjectSize) {
    throw new RangeError(`An upload of ${bound} bytes cannot be planned: S3 objects are 0 to 5 TiB.`);
  }
  if (opts.preferredPartSize !== undefined && !Number.isFinite(opts.preferredPartSize))
    throw new RangeError(`preferredPartSize must be a finite byte count; got ${opts.preferredPartSize}.`);
  const preferred = Math.min(Math.max(opts.preferredPartSize ?? 16 * MiB, S3_LIMITS.minPartSize), S3_LIMITS.maxPartSize);
  // The smallest whole-MiB part size that carries `bound` in 10,000 parts.
  const needed = Math.ceil(bound / S3_LIMITS.maxParts / MiB) * MiB;
  const partSize = Math.max(preferred, needed);
  const partCount = Math.max(1, Math.ceil(bound / partSize));
  return { partSize, partCount, capacity: Math.min(partSize * S3_LIMITS.maxParts, S3_LIMITS.maxObjectSize) };
}

/**
 * The S3 lifecycle backstop of the sweeper, as constants shared by the sweeper (which tags) and the CDK
 * app (which creates the bucket's lifecycle rules), so both always name the same tag.
 *
 * An object the sweeper claimed as garbage but S3 would not delete is tagged
 * `cacheness-garbage=1`; a lifecycle rule filtered on that tag expires it. Only names the sweeper has
 * claimed (doomed) are ever tagged, and a doomed name is never referenced again (re-acquired content
 * gets a new generation, so a new object name); writing live bytes to any name creates a new,
 * untagged object. So the rule can never delete a live object.
 * @module
 */

/** Tag key of objects the sweeper gave up deleting. */
export const GARBAGE_TAG_KEY = 'cacheness-garbage';
/** Tag value of objects the sweeper gave up deleting. */
export const GARBAGE_TAG_VALUE = '1';
/** Days after creation (not after tagging) at which the lifecycle rule filtered on the garbage tag expires a tagged object. */
export const GARBAGE_EXPIRY_DAYS = 1;
/**
 * Days after which a bucket-wide lifecycle rule aborts incomplete multipart uploads. It stands alone
 * (no tag filter): some S3-compatible stores reject the abort action in a rule filtered on tags.
 */
export const INCOMPLETE_MULTIPART_DAYS = 1;

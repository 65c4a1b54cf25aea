/**
 * The cacheness CDK app's building blocks: the {@link Cacheness} construct (embed it in your own stack)
 * and {@link CachenessStack}.
 * @module
 */
export { Cacheness, type CachenessProps, estimatedMaxConnections, type Stage } from './cacheness.js';
export { acknowledgeNagFindings } from './nag.js';
export { CachenessStack, type CachenessStackProps, propsFromContext } from './stack.js';

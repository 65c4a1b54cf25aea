/** Lambda handler that applies database migrations (run by the deployment before the API serves). */
import { migrate } from '../postgres/migrations.js';
import { lambdaContext, withFreshConnectionOnDrop } from './config.js';

/**
 * Applies the migrations. Invoked directly, or as a CloudFormation custom resource (through the CDK
 * provider framework) on every deploy that changes them; deleting the resource changes nothing.
 */
export async function handler(event?: { RequestType?: string }): Promise<{ applied: number[] }> {
  if (event?.RequestType === 'Delete') return { applied: [] };
  const ctx = lambdaContext();
  return { applied: await withFreshConnectionOnDrop(ctx, () => migrate(ctx.sql)) };
}

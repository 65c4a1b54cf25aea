/** Lambda handler that applies database migrations (run by the deployment before the API serves). */
import { migrate } from '../postgres/migrations.js';
import { lambdaContext, withFreshConnectionOnDrop } from './config.js';

export async function handler(): Promise<{ applied: number[] }> {
  const ctx = lambdaContext();
  return { applied: await withFreshConnectionOnDrop(ctx, () => migrate(ctx.sql)) };
}

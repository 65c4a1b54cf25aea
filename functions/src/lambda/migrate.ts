/** Lambda handler that applies database migrations (run by the deployment before the API serves). */
import { migrate } from '../postgres/migrations.js';
import { lambdaContext } from './config.js';

export async function handler(): Promise<{ applied: number[] }> {
  return { applied: await migrate(lambdaContext().sql) };
}

/** Lambda handler of the scheduled sweeper: returns its counts (recorded by the invocation log). */
import { type SweepReport, sweep } from '../sweeper.js';
import { lambdaContext, withFreshConnectionOnDrop } from './config.js';

export async function handler(): Promise<SweepReport> {
  const ctx = lambdaContext();
  const report = await withFreshConnectionOnDrop(ctx, () => sweep(ctx));
  console.log(JSON.stringify({ sweep: report }));
  return report;
}

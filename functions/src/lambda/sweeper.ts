/** Lambda handler of the scheduled sweeper: returns its counts (recorded by the invocation log). */
import { type SweepReport, sweep } from '../sweeper.js';
import { lambdaContext } from './config.js';

export async function handler(): Promise<SweepReport> {
  const report = await sweep(lambdaContext());
  console.log(JSON.stringify({ sweep: report }));
  return report;
}

/**
 * `CachenessStack`: a stack holding one {@link Cacheness} construct, configured from CDK context
 * (`-c stage=prod -c corsOrigins=https://app.example.com -c maxCapacityAcu=8 ...`), with the cdk-nag
 * AwsSolutions findings each acknowledged with its reason.
 * @module
 */
import { Duration, type RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { Cacheness, type CachenessProps, type Stage } from './cacheness.js';
import { acknowledgeNagFindings } from './nag.js';

export interface CachenessStackProps extends StackProps {
  readonly cacheness?: CachenessProps;
}

export class CachenessStack extends Stack {
  readonly cacheness: Cacheness;

  constructor(scope: Construct, id: string, props: CachenessStackProps = {}) {
    super(scope, id, props);
    this.cacheness = new Cacheness(this, 'Cacheness', props.cacheness);
    acknowledgeNagFindings(this, this.cacheness, props.cacheness?.stage ?? 'dev');
  }
}

/** Log retentions CloudWatch Logs accepts, in days. */
const RETENTIONS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

function retention(days: number | undefined): RetentionDays | undefined {
  if (days === undefined) return undefined;
  if (!RETENTIONS.includes(days)) throw new Error(`Context value logRetentionDays must be one of ${RETENTIONS.join(', ')}; got ${days}.`);
  return days as RetentionDays;
}

/** Reads the construct's props from CDK context values (strings on the command line, or cdk.json). */
export function propsFromContext(get: (key: string) => unknown): CachenessProps {
  const str = (k: string) => {
    const v = get(k);
    return v === undefined || v === '' ? undefined : String(v);
  };
  const num = (k: string) => {
    const v = str(k);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`Context value ${k} must be a positive number; got ${JSON.stringify(v)}.`);
    return n;
  };
  const stage = str('stage');
  if (stage !== undefined && stage !== 'dev' && stage !== 'prod') throw new Error(`Context value stage must be dev or prod; got ${JSON.stringify(stage)}.`);
  const removal = str('removalPolicy');
  if (removal !== undefined && !['destroy', 'retain', 'snapshot'].includes(removal)) {
    throw new Error(`Context value removalPolicy must be destroy, retain or snapshot; got ${JSON.stringify(removal)}.`);
  }
  const pause = num('autoPauseMinutes');
  return {
    stage: stage as Stage | undefined,
    corsOrigins: str('corsOrigins')
      ?.split(',')
      .map((o) => o.trim())
      .filter(Boolean),
    maxCapacityAcu: num('maxCapacityAcu'),
    apiConcurrency: num('apiConcurrency'),
    sweepEvery: num('sweepMinutes') === undefined ? undefined : Duration.minutes(num('sweepMinutes') as number),
    autoPause: pause === undefined ? undefined : Duration.minutes(pause),
    logRetention: retention(num('logRetentionDays')),
    removalPolicy: removal as RemovalPolicy | undefined,
    kms: str('kms') === undefined ? undefined : str('kms') === 'true',
  };
}

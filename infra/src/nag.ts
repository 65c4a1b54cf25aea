/**
 * cdk-nag AwsSolutions findings this design accepts, each with the reason a reviewer would need.
 * Everything else AwsSolutions checks must pass: `cdk synth` fails on any unacknowledged finding.
 * @module
 */
import { Validations } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { Cacheness } from './cacheness.js';

/** Acknowledges, on the stack holding `cacheness`, the AwsSolutions rules the design deliberately does not follow. */
export function acknowledgeNagFindings(stack: Construct, cacheness: Cacheness, stage: 'dev' | 'prod'): void {
  const ack = (scope: Construct, rule: string, reason: string) => Validations.of(scope).acknowledge({ id: `AwsSolutions::AwsSolutions-${rule}`, reason });
  const policy = (name: string) => `IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/${name}]`;
  ack(stack, policy('AWSLambdaBasicExecutionRole'), 'The AWS-managed basic execution policy grants only writing to CloudWatch Logs, which every function needs.');
  ack(stack, policy('AWSLambdaVPCAccessExecutionRole'), 'The AWS-managed VPC access policy grants only managing the network interfaces a function in a VPC needs.');
  ack(stack, 'L1', 'The functions run on Node.js 22, the runtime the code is built (target node22) and tested for; newer runtimes are adopted deliberately, not by default.');
  ack(
    cacheness,
    `IAM5[Resource::<${logicalIdOf(cacheness.bucket)}.Arn>/ns/*]`,
    'Objects are named by the server per namespace and content hash at request time (ns/<namespace>/blobs/<name>), so the API may presign, and the sweeper delete, any object under the ns/ prefix, and nothing else in the bucket.',
  );
  ack(
    cacheness,
    `IAM5[Resource::<${logicalIdOf(cacheness.migrateFunction)}.Arn>:*]`,
    "The custom-resource provider framework may invoke any version of the migration function; it is that function's own ARN.",
  );
  // Only on CDK's log-retention singleton (the database's log group): a wildcard anywhere else still fails.
  for (const logRetention of stack.node.children.filter((c) => c.node.id.startsWith('LogRetention'))) {
    ack(logRetention, 'IAM5[Resource::*]', "CDK's log-retention function sets the retention of log groups by name, which IAM cannot scope before the groups exist.");
  }
  ack(
    cacheness.api,
    'APIG4',
    'Every route but /v1/health is authorized by the app itself: API keys are stored hashed, bound to a namespace with scopes, and checked on every request (docs/api.md).',
  );
  ack(cacheness, 'SQS3', 'This queue is itself the dead-letter queue of the sweeper schedule (EventBridge target), which cdk-nag only recognizes for SQS redrive policies.');
  ack(cacheness.vpc, 'EC23', 'The rule cannot evaluate the interface endpoint security group, which admits only the VPC CIDR on port 443 (an intrinsic function).');
  if (stage !== 'prod') ack(cacheness.cluster, 'RDS10', 'Deletion protection is on for stage prod; dev stages are meant to be torn down with `cdk destroy`.');
}

/** The CloudFormation logical id of a construct's default resource, as cdk-nag prints it. */
function logicalIdOf(c: Construct): string {
  const resource = c.node.defaultChild as { logicalId?: string } | undefined;
  const stack = c.node.scopes.find((s) => (s as { resolve?: unknown }).resolve !== undefined) as { resolve(x: unknown): unknown } | undefined;
  if (!resource?.logicalId || !stack) throw new Error(`No CloudFormation resource under ${c.node.path}.`);
  return stack.resolve(resource.logicalId) as string;
}

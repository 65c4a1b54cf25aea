/**
 * The CDK app, offline: the synthesized template has the properties the design promises, and
 * cdk-nag's AwsSolutions rules find nothing unacknowledged.
 */
import { App, Duration, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { CachenessStack, estimatedMaxConnections, propsFromContext } from '../src/index.js';

let template: Template;
let prodTemplate: Template;

function synth(props: ConstructorParameters<typeof CachenessStack>[2] = {}): Template {
  const app = new App();
  const stack = new CachenessStack(app, 'Test', { ...props, env: { account: '123456789012', region: 'eu-west-1' } });
  return Template.fromStack(stack);
}

beforeAll(() => {
  template = synth({ cacheness: { corsOrigins: ['https://app.example.com'] } });
  prodTemplate = synth({ cacheness: { stage: 'prod', kms: true, maxCapacityAcu: 16, autoPause: Duration.minutes(30) } });
}, 120_000);

const resourcesOf = (t: Template, type: string) => Object.values(t.findResources(type)) as { Properties: Record<string, unknown> }[];

describe('payload bucket', () => {
  it('blocks public access, encrypts, and refuses plain HTTP', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      LoggingConfiguration: Match.objectLike({ LogFilePrefix: 'payloads/' }),
    });
    const policies = resourcesOf(template, 'AWS::S3::BucketPolicy');
    expect(policies.length).toBeGreaterThanOrEqual(2);
    for (const p of policies) {
      expect(JSON.stringify(p.Properties)).toContain('"aws:SecureTransport":"false"');
    }
    prodTemplate.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' }, BucketKeyEnabled: true }] },
    });
  });

  it('expires only tagged garbage, and aborts incomplete multipart uploads after a day', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: [
          { Id: 'abort-incomplete-multipart', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' },
          { Id: 'expire-tagged-garbage', TagFilters: [{ Key: 'cacheness-garbage', Value: '1' }], ExpirationInDays: 1, Status: 'Enabled' },
        ],
      },
    });
    // No rule of the payload bucket expires objects without the garbage tag.
    const payload = resourcesOf(template, 'AWS::S3::Bucket').find((b) => JSON.stringify(b.Properties).includes('expire-tagged-garbage'));
    expect(payload).toBeDefined();
    const rules = (payload?.Properties.LifecycleConfiguration as { Rules: Record<string, unknown>[] } | undefined)?.Rules ?? [];
    expect(rules).toHaveLength(2);
    for (const r of rules) if (r.ExpirationInDays !== undefined) expect(r.TagFilters).toEqual([{ Key: 'cacheness-garbage', Value: '1' }]);
  });

  it('allows browser transfers from the configured origins only, exposing ETag and Content-Range', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      CorsConfiguration: {
        CorsRules: [
          Match.objectLike({
            AllowedOrigins: ['https://app.example.com'],
            AllowedMethods: ['PUT', 'GET', 'HEAD'],
            ExposedHeaders: Match.arrayWith(['ETag', 'Content-Range']),
          }),
        ],
      },
    });
    expect(JSON.stringify(prodTemplate.findResources('AWS::S3::Bucket'))).not.toContain('CorsConfiguration');
  });
});

describe('database', () => {
  it('is Aurora PostgreSQL Serverless v2 pausing at 0 ACU, encrypted, with rotated credentials', () => {
    template.hasResourceProperties('AWS::RDS::DBCluster', {
      Engine: 'aurora-postgresql',
      ServerlessV2ScalingConfiguration: { MinCapacity: 0, MaxCapacity: 4, SecondsUntilAutoPause: 600 },
      StorageEncrypted: true,
      DeletionProtection: false,
    });
    template.hasResourceProperties('AWS::RDS::DBInstance', { DBInstanceClass: 'db.serverless' });
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 1);
    template.resourceCountIs('AWS::RDS::DBProxy', 0); // a proxy would keep the database awake
    // Sessions idle for a minute are closed, so a frozen Lambda container cannot keep the cluster awake.
    template.hasResourceProperties('AWS::RDS::DBClusterParameterGroup', { Parameters: { idle_session_timeout: '60000' } });
    prodTemplate.hasResourceProperties('AWS::RDS::DBCluster', {
      ServerlessV2ScalingConfiguration: { MinCapacity: 0, MaxCapacity: 16, SecondsUntilAutoPause: 1800 },
      DeletionProtection: true,
      BackupRetentionPeriod: 14,
    });
    prodTemplate.hasResource('AWS::RDS::DBCluster', { DeletionPolicy: 'Snapshot' });
    template.hasResource('AWS::RDS::DBCluster', { DeletionPolicy: 'Delete' });
  });

  it('sits in isolated subnets with no NAT gateway; S3 and Secrets Manager through endpoints', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway', ServiceName: Match.objectLike({}) });
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Interface', ServiceName: Match.stringLikeRegexp('secretsmanager') });
  });
});

describe('functions', () => {
  const ours = () =>
    Object.entries(template.findResources('AWS::Lambda::Function')).filter(([, r]) =>
      String((r as { Properties: { Description?: string } }).Properties.Description ?? '').startsWith('cacheness'),
    ) as [string, { Properties: Record<string, unknown> }][];

  it('run Node.js 22 on ARM64 in the VPC, with bounded concurrency and their own log groups', () => {
    const fns = ours();
    expect(fns.map(([, f]) => f.Properties.Description).sort()).toEqual(['cacheness HTTP API', 'cacheness TTL sweeper', 'cacheness database migrations']);
    for (const [, f] of fns) {
      expect(f.Properties).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], Handler: 'index.handler' });
      expect(f.Properties.VpcConfig).toBeDefined();
      expect(f.Properties.LoggingConfig).toMatchObject({ LogGroup: expect.anything() });
      expect(f.Properties.ReservedConcurrentExecutions).toBeGreaterThan(0);
    }
    const api = fns.find(([, f]) => f.Properties.Description === 'cacheness HTTP API')?.[1];
    expect(api?.Properties).toMatchObject({ ReservedConcurrentExecutions: 40, Timeout: 29 });
    expect(api?.Properties.Environment).toMatchObject({
      Variables: {
        DATABASE_SSL: 'verify-full',
        NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem',
        DATABASE_SECRET_ARN: expect.anything(),
        BUCKET: expect.anything(),
        DATABASE_CONNECT_TIMEOUT_SECONDS: '25',
      },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  it('get least privilege: no wildcard actions, S3 access only under ns/, deletes only for the sweeper', () => {
    const statements = resourcesOf(template, 'AWS::IAM::Policy').flatMap(
      (p) => (p.Properties.PolicyDocument as { Statement: { Action: string | string[]; Resource: unknown; Effect: string }[] }).Statement,
    );
    for (const s of statements) {
      for (const a of [s.Action].flat()) expect(a, JSON.stringify(s)).not.toMatch(/(^\*$|:\*$)/);
    }
    const s3Statements = statements.filter((s) => [s.Action].flat().some((a) => a.startsWith('s3:')));
    const deletes = s3Statements.filter((s) => [s.Action].flat().includes('s3:DeleteObject'));
    expect(deletes).toHaveLength(1);
    // ListBucket (so a missing object is a 404, not a 403) only for the ns/ prefix.
    const lists = s3Statements.filter((s) => [s.Action].flat().includes('s3:ListBucket'));
    expect(lists).toHaveLength(1);
    expect(JSON.stringify(lists[0])).toContain('"s3:prefix":["ns/*"]');
    for (const s of s3Statements.filter((x) => [x.Action].flat().some((a) => a.includes('Object')))) {
      expect(JSON.stringify(s.Resource)).toContain('/ns/*');
    }
  });
});

describe('API, sweeper, migrations, alarms, outputs', () => {
  it('serves an HTTP API with throttling and JSON access logs', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'HTTP' });
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 500, ThrottlingBurstLimit: 1000 },
      AccessLogSettings: { Format: Match.stringLikeRegexp('"requestId":"\\$context.requestId"') },
    });
  });

  it('sweeps every 5 minutes with retries and a dead-letter queue', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(5 minutes)',
      Targets: [Match.objectLike({ DeadLetterConfig: Match.objectLike({}), RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 600 } })],
    });
  });

  it('migrates through a custom resource before the API stage exists and before new function code goes live', () => {
    const migrations = template.findResources('AWS::CloudFormation::CustomResource');
    const [id] = Object.keys(migrations);
    expect(id).toBeDefined();
    const stage = Object.values(template.findResources('AWS::ApiGatewayV2::Stage'))[0] as { DependsOn?: string[] };
    expect(stage.DependsOn).toContain(id);
    const functions = Object.values(template.findResources('AWS::Lambda::Function')) as { DependsOn?: string[]; Properties: { Description?: string } }[];
    for (const d of ['cacheness HTTP API', 'cacheness TTL sweeper']) expect(functions.find((f) => f.Properties.Description === d)?.DependsOn).toContain(id);
  });

  it('alarms on API 5xx, sweeper errors, undeliverable sweeps and database capacity', () => {
    const alarms = resourcesOf(template, 'AWS::CloudWatch::Alarm').map((a) => a.Properties.AlarmDescription);
    expect(alarms).toEqual(
      expect.arrayContaining([
        expect.stringContaining('5xx'),
        expect.stringContaining('sweeper invocations fail'),
        expect.stringContaining('could not be delivered'),
        expect.stringContaining('maximum capacity'),
      ]),
    );
  });

  it('outputs the API URL, the bucket, and how to create the first API key', () => {
    const outputs = Object.values(template.findOutputs('*')).map((o) => (o as { Description: string }).Description);
    expect(outputs).toEqual(expect.arrayContaining([expect.stringContaining('API endpoint'), 'payload bucket', expect.stringContaining('first API key')]));
  });
});

describe('cdk-nag', () => {
  it('AwsSolutions finds nothing unacknowledged in dev or prod', () => {
    for (const stage of ['dev', 'prod'] as const) {
      const app = new App({ outdir: undefined });
      Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
      new CachenessStack(app, `Nag${stage}`, { cacheness: { stage }, env: { account: '123456789012', region: 'eu-west-1' } });
      expect(() => app.synth()).not.toThrow();
    }
  }, 120_000);
});

describe('connection budget', () => {
  it('refuses an API concurrency the database could not hold connections for', () => {
    expect(estimatedMaxConnections(0.5)).toBeGreaterThan(48); // the defaults fit even the smallest maximum
    expect(() => synth({ cacheness: { maxCapacityAcu: 0.5, apiConcurrency: 500 } })).toThrow(/apiConcurrency 500 could open more connections than Aurora allows at 0.5 ACU/);
    expect(() => synth({ cacheness: { maxCapacityAcu: 0.1 } })).toThrow(/maxCapacityAcu must be between 0.5 and 256/);
  });
});

describe('context', () => {
  it('reads props from CDK context and refuses bad values', () => {
    const ctx: Record<string, string> = { stage: 'prod', corsOrigins: 'https://a.example, https://b.example', maxCapacityAcu: '8', autoPauseMinutes: '15', kms: 'true' };
    const props = propsFromContext((k) => ctx[k]);
    expect(props).toMatchObject({ stage: 'prod', corsOrigins: ['https://a.example', 'https://b.example'], maxCapacityAcu: 8, kms: true });
    expect(props.autoPause?.toMinutes()).toBe(15);
    expect(() => propsFromContext((k) => ({ stage: 'staging' })[k])).toThrow(/stage must be dev or prod/);
    expect(() => propsFromContext((k) => ({ maxCapacityAcu: 'lots' })[k])).toThrow(/maxCapacityAcu must be a positive number/);
  });
});

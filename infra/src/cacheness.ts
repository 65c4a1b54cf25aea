/**
 * The `Cacheness` construct: the whole cloud half of cacheness in one construct, secure by default and
 * cheap at idle. A payload bucket (presigned transfers only), Aurora PostgreSQL Serverless v2 that
 * pauses at 0 ACU, the API, sweeper and migration functions in isolated subnets, an HTTP API, the
 * sweeper's schedule, and alarms. Embed it in your own stack, or deploy `CachenessStack`.
 * @module
 */
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAMBDA_BUNDLE_OPTIONS, LAMBDA_ENTRIES } from '@cacheness/functions/build';
import { MIGRATIONS } from '@cacheness/functions/postgres';
import { GARBAGE_EXPIRY_DAYS, GARBAGE_TAG_KEY, GARBAGE_TAG_VALUE, INCOMPLETE_MULTIPART_DAYS } from '@cacheness/functions/s3';
import {
  aws_apigatewayv2 as apigw,
  aws_apigatewayv2_integrations as apigwIntegrations,
  aws_apigateway as apigwV1,
  CfnOutput,
  CustomResource,
  aws_cloudwatch as cloudwatch,
  custom_resources as cr,
  Duration,
  aws_ec2 as ec2,
  aws_events as events,
  aws_iam as iam,
  aws_kms as kms,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_lambda_nodejs as nodejs,
  RemovalPolicy,
  aws_rds as rds,
  Stack,
  aws_s3 as s3,
  aws_sqs as sqs,
  aws_events_targets as targets,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';

/** Where things live: development stages may be destroyed with their data, production never. */
export type Stage = 'dev' | 'prod';

/** Properties of {@link Cacheness}; every one has a default. */
export interface CachenessProps {
  /** `prod` keeps data on deletion and protects the database; `dev` removes everything. Default `dev`. */
  readonly stage?: Stage;
  /** Origins allowed to PUT/GET/HEAD presigned URLs from a browser. Default none (no browser access). */
  readonly corsOrigins?: string[];
  /** Largest Aurora capacity, in ACUs (each about 2 GiB of memory). Default 4. */
  readonly maxCapacityAcu?: number;
  /** Idle time before Aurora pauses (5 minutes to 1 day). Default 10 minutes. */
  readonly autoPause?: Duration;
  /** Retention of function, API access and bucket logs. Default one month. */
  readonly logRetention?: logs.RetentionDays;
  /** Overrides the stage's removal policy for the bucket, the database and the logs. */
  readonly removalPolicy?: RemovalPolicy;
  /** Encrypt the bucket with a customer-managed KMS key (with S3 bucket keys). Default SSE-S3. */
  readonly kms?: boolean;
  /** NAT gateways for the VPC. Default 0: the functions reach S3 and Secrets Manager through endpoints. */
  readonly natGateways?: number;
  /** Concurrent API invocations at most (each holds one database connection). Default 40. */
  readonly apiConcurrency?: number;
  /** Sweeper schedule. Default every 5 minutes. */
  readonly sweepEvery?: Duration;
  /** Requests per second across the whole API (API Gateway throttling). Default 500, bursts of 1,000. */
  readonly throttle?: { rateLimit: number; burstLimit: number };
}

/** Database name and its admin user, created with the cluster. */
const DATABASE = 'cacheness';
const ADMIN_USER = 'cacheness_admin';

/** The functions package, whose sources the handlers are bundled from. */
const FUNCTIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'functions');
const REPO_ROOT = join(FUNCTIONS_DIR, '..');

export class Cacheness extends Construct {
  readonly bucket: s3.Bucket;
  readonly cluster: rds.DatabaseCluster;
  readonly api: apigw.HttpApi;
  readonly apiFunction: nodejs.NodejsFunction;
  readonly sweeperFunction: nodejs.NodejsFunction;
  readonly migrateFunction: nodejs.NodejsFunction;
  readonly vpc: ec2.Vpc;
  /** The URL clients use (`https://…/`); the API is under `/v1`. */
  readonly url: string;

  constructor(scope: Construct, id: string, props: CachenessProps = {}) {
    super(scope, id);
    const stage = props.stage ?? 'dev';
    const maxAcu = props.maxCapacityAcu ?? 4;
    const apiConcurrency = props.apiConcurrency ?? 40;
    checkConnections(maxAcu, apiConcurrency);
    const requested = props.removalPolicy ?? (stage === 'prod' ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY);
    // Only the database can be snapshotted; everything else keeps its data instead.
    const removalPolicy = requested === RemovalPolicy.SNAPSHOT ? RemovalPolicy.RETAIN : requested;
    const destroy = removalPolicy === RemovalPolicy.DESTROY;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    // Network: isolated subnets only; S3 through a gateway endpoint, Secrets Manager through an interface endpoint.
    const nat = props.natGateways ?? 0;
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: nat,
      subnetConfiguration: [
        { name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
        // With NAT (a prop): the functions get subnets that route out through it; the database stays isolated.
        ...(nat > 0
          ? [
              { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
              { name: 'egress', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 24 },
            ]
          : []),
      ],
      flowLogs: {
        rejected: {
          trafficType: ec2.FlowLogTrafficType.REJECT,
          destination: ec2.FlowLogDestination.toCloudWatchLogs(new logs.LogGroup(this, 'FlowLogs', { retention: logRetention, removalPolicy })),
        },
      },
    });
    const subnets = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
    const fnSubnets = { subnetType: nat > 0 ? ec2.SubnetType.PRIVATE_WITH_EGRESS : ec2.SubnetType.PRIVATE_ISOLATED };
    this.vpc.addGatewayEndpoint('S3', { service: ec2.GatewayVpcEndpointAwsService.S3, subnets: [subnets, ...(nat > 0 ? [fnSubnets] : [])] });
    const secretsEndpoint = this.vpc.addInterfaceEndpoint('SecretsManager', { service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER, subnets: fnSubnets });

    // Payloads: private, encrypted, TLS only, access-logged; bytes move by presigned URLs alone.
    const logBucket = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
      lifecycleRules: [{ expiration: Duration.days(retentionDays(logRetention)) }],
      removalPolicy,
      autoDeleteObjects: destroy,
    });
    const key = props.kms ? new kms.Key(this, 'BucketKey', { enableKeyRotation: true, removalPolicy }) : undefined;
    this.bucket = new s3.Bucket(this, 'Payloads', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: key ? s3.BucketEncryption.KMS : s3.BucketEncryption.S3_MANAGED,
      encryptionKey: key,
      bucketKeyEnabled: key ? true : undefined,
      enforceSSL: true,
      versioned: false,
      serverAccessLogsBucket: logBucket,
      serverAccessLogsPrefix: 'payloads/',
      cors: props.corsOrigins?.length
        ? [
            {
              allowedOrigins: props.corsOrigins,
              allowedMethods: [s3.HttpMethods.PUT, s3.HttpMethods.GET, s3.HttpMethods.HEAD],
              allowedHeaders: ['*'],
              exposedHeaders: ['ETag', 'Content-Range', 'Content-Length'],
              maxAge: 3600,
            },
          ]
        : undefined,
      lifecycleRules: [
        // Standalone: some S3-compatible stores reject it combined with a tag filter (docs/ttl.md).
        { id: 'abort-incomplete-multipart', abortIncompleteMultipartUploadAfter: Duration.days(INCOMPLETE_MULTIPART_DAYS) },
        // The TTL backstop: only objects the sweeper tagged as garbage, which no live entry can reference.
        { id: 'expire-tagged-garbage', tagFilters: { [GARBAGE_TAG_KEY]: GARBAGE_TAG_VALUE }, expiration: Duration.days(GARBAGE_EXPIRY_DAYS) },
      ],
      removalPolicy,
      autoDeleteObjects: destroy,
    });

    // Metadata: Aurora PostgreSQL Serverless v2, paused at 0 ACU when idle (no RDS Proxy: it would keep it awake).
    const dbSecurityGroup = new ec2.SecurityGroup(this, 'DatabaseSecurityGroup', { vpc: this.vpc, description: 'cacheness Aurora cluster', allowAllOutbound: false });
    const engine = rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_17_7 });
    // A Lambda container frozen with an open connection would keep Aurora awake: the server closes
    // sessions idle for a minute (the functions reconnect, retrying a request's first statement).
    const parameterGroup = new rds.ParameterGroup(this, 'DatabaseParameters', {
      engine,
      description: 'cacheness: close idle sessions so the cluster can pause',
      parameters: { idle_session_timeout: '60000' },
    });
    this.cluster = new rds.DatabaseCluster(this, 'Database', {
      engine,
      parameterGroup,
      writer: rds.ClusterInstance.serverlessV2('writer', { autoMinorVersionUpgrade: true }),
      serverlessV2MinCapacity: 0,
      serverlessV2MaxCapacity: maxAcu,
      serverlessV2AutoPauseDuration: props.autoPause ?? Duration.minutes(10),
      credentials: rds.Credentials.fromGeneratedSecret(ADMIN_USER),
      defaultDatabaseName: DATABASE,
      vpc: this.vpc,
      vpcSubnets: subnets,
      securityGroups: [dbSecurityGroup],
      storageEncrypted: true,
      iamAuthentication: true,
      backup: { retention: Duration.days(stage === 'prod' ? 14 : 1) },
      deletionProtection: stage === 'prod',
      removalPolicy: requested,
      cloudwatchLogsExports: ['postgresql'],
      cloudwatchLogsRetention: logRetention,
    });
    // Not at creation: the first rotation would race the migrations of the first deploy.
    this.cluster.addRotationSingleUser({ automaticallyAfter: Duration.days(30), vpcSubnets: subnets, rotateImmediatelyOnUpdate: false });
    const secret = this.cluster.secret as NonNullable<rds.DatabaseCluster['secret']>;

    // Functions: one ESM file each, bundled by the local esbuild with the options the tests use.
    const bundling: nodejs.BundlingOptions = {
      format: nodejs.OutputFormat.ESM,
      target: LAMBDA_BUNDLE_OPTIONS.target as string,
      minify: true,
      sourceMap: false,
      mainFields: LAMBDA_BUNDLE_OPTIONS.mainFields,
      banner: LAMBDA_BUNDLE_OPTIONS.banner?.js,
      esbuildArgs: { '--conditions': 'source' },
      bundleAwsSDK: true,
      forceDockerBundling: false,
    };
    const fnSecurityGroup = new ec2.SecurityGroup(this, 'FunctionSecurityGroup', { vpc: this.vpc, description: 'cacheness functions' });
    dbSecurityGroup.addIngressRule(fnSecurityGroup, ec2.Port.tcp(5432), 'cacheness functions');
    const environment = {
      DATABASE_URL: `postgres://${ADMIN_USER}@${this.cluster.clusterEndpoint.hostname}:${this.cluster.clusterEndpoint.port}/${DATABASE}`,
      DATABASE_SECRET_ARN: secret.secretArn,
      // TLS with the server certificate checked; Lambda's Node 20+ runtimes keep Amazon's CAs (RDS's
      // included) in this file and load them only when asked.
      DATABASE_SSL: 'verify-full',
      NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem',
      BUCKET: this.bucket.bucketName,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
    const fn = (name: keyof typeof LAMBDA_ENTRIES, opts: { memoryMb: number; timeout: Duration; concurrency: number; description: string }) => {
      const logGroup = new logs.LogGroup(this, `${pascal(name)}Logs`, { retention: logRetention, removalPolicy });
      const f = new nodejs.NodejsFunction(this, `${pascal(name)}Function`, {
        entry: join(FUNCTIONS_DIR, LAMBDA_ENTRIES[name]),
        handler: 'handler',
        projectRoot: REPO_ROOT,
        depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.ARM_64,
        memorySize: opts.memoryMb,
        timeout: opts.timeout,
        reservedConcurrentExecutions: opts.concurrency,
        description: opts.description,
        logGroup,
        vpc: this.vpc,
        vpcSubnets: fnSubnets,
        securityGroups: [fnSecurityGroup],
        // Connecting gives up before the function times out: the API then answers 503 with Retry-After
        // while a paused Aurora resumes (it takes up to about 30 s), instead of API Gateway's bare 503.
        environment: { ...environment, DATABASE_CONNECT_TIMEOUT_SECONDS: String(Math.max(5, opts.timeout.toSeconds() - 4)) },
        bundling,
      });
      secret.grantRead(f);
      return f;
    };
    // Connections: API concurrency + sweeper + migration + rotation stay far below Aurora's max_connections at 0.5 ACU and above.
    this.apiFunction = fn('api', { memoryMb: 1024, timeout: Duration.seconds(29), concurrency: apiConcurrency, description: 'cacheness HTTP API' });
    this.sweeperFunction = fn('sweeper', { memoryMb: 512, timeout: Duration.minutes(5), concurrency: 1, description: 'cacheness TTL sweeper' });
    this.migrateFunction = fn('migrate', { memoryMb: 512, timeout: Duration.minutes(5), concurrency: 1, description: 'cacheness database migrations' });

    // Least privilege: the API presigns reads and writes of payload objects only; the sweeper deletes and tags.
    const objects = this.bucket.arnForObjects('ns/*');
    this.apiFunction.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'], resources: [objects] }));
    // Without ListBucket S3 answers 403 rather than 404 for a missing object, and the API tells "not
    // uploaded yet" from "forbidden" by that status.
    this.apiFunction.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.bucket.bucketArn], conditions: { StringLike: { 's3:prefix': ['ns/*'] } } }),
    );
    this.sweeperFunction.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:DeleteObject', 's3:PutObjectTagging', 's3:AbortMultipartUpload'], resources: [objects] }));
    this.sweeperFunction.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:ListBucketMultipartUploads'], resources: [this.bucket.bucketArn] }));
    if (key) key.grantEncryptDecrypt(this.apiFunction);

    // Migrations run on every deploy that changes them, before the API serves.
    const provider = new cr.Provider(this, 'MigrationProvider', {
      onEventHandler: this.migrateFunction,
      logGroup: new logs.LogGroup(this, 'MigrationProviderLogs', { retention: logRetention, removalPolicy }),
    });
    const migrations = new CustomResource(this, 'Migrations', {
      serviceToken: provider.serviceToken,
      properties: { version: createHash('sha256').update(JSON.stringify(MIGRATIONS)).digest('hex').slice(0, 16) },
    });
    migrations.node.addDependency(this.cluster, secretsEndpoint, dbSecurityGroup, fnSecurityGroup);
    // New function code goes live only after the migrations it needs (on upgrades, not just the first deploy).
    this.apiFunction.node.addDependency(migrations);
    this.sweeperFunction.node.addDependency(migrations);

    // HTTP API: API keys are checked by the app itself (hashed, per namespace, docs/api.md).
    this.api = new apigw.HttpApi(this, 'Api', {
      description: 'cacheness cloud API',
      createDefaultStage: false,
      defaultIntegration: new apigwIntegrations.HttpLambdaIntegration('ApiIntegration', this.apiFunction),
    });
    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', { retention: logRetention, removalPolicy });
    const apiStage = new apigw.HttpStage(this, 'ApiStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: props.throttle ?? { rateLimit: 500, burstLimit: 1000 },
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(accessLogs),
        format: apigwAccessLogFormat(),
      },
    });
    apiStage.node.addDependency(migrations);
    this.url = apiStage.url;

    // The sweeper every few minutes; failed invocations go to a queue, and an alarm watches errors.
    const deadLetters = new sqs.Queue(this, 'SweeperDeadLetters', { enforceSSL: true, retentionPeriod: Duration.days(14), encryption: sqs.QueueEncryption.SQS_MANAGED });
    new events.Rule(this, 'SweeperSchedule', {
      description: 'cacheness TTL sweeper',
      schedule: events.Schedule.rate(props.sweepEvery ?? Duration.minutes(5)),
      targets: [new targets.LambdaFunction(this.sweeperFunction, { deadLetterQueue: deadLetters, retryAttempts: 2, maxEventAge: Duration.minutes(10) })],
    });

    // Alarms: server errors of the API, sweeper failures, the database at its capacity ceiling.
    new cloudwatch.Alarm(this, 'Api5xxAlarm', {
      alarmDescription: 'cacheness API answers 5xx to more than 5% of requests',
      metric: new cloudwatch.MathExpression({
        // Ignore quiet periods: one 503 while a paused database resumes is not an outage.
        expression: 'IF(requests >= 20, 100 * errors / requests, 0)',
        usingMetrics: { errors: this.api.metricServerError({ period: Duration.minutes(5) }), requests: this.api.metricCount({ period: Duration.minutes(5) }) },
        period: Duration.minutes(5),
      }),
      threshold: 5,
      evaluationPeriods: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    new cloudwatch.Alarm(this, 'SweeperErrorsAlarm', {
      alarmDescription: 'cacheness sweeper invocations fail',
      metric: this.sweeperFunction.metricErrors({ period: Duration.minutes(15) }),
      threshold: 1,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    new cloudwatch.Alarm(this, 'SweeperDeadLettersAlarm', {
      alarmDescription: 'cacheness sweeper events could not be delivered',
      metric: deadLetters.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5) }),
      threshold: 1,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    new cloudwatch.Alarm(this, 'DatabaseCapacityAlarm', {
      alarmDescription: 'cacheness database runs at its maximum capacity (raise maxCapacityAcu)',
      metric: this.cluster.metricACUUtilization({ period: Duration.minutes(5) }),
      threshold: 90,
      evaluationPeriods: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const stack = Stack.of(this);
    new CfnOutput(this, 'ApiUrl', { value: this.url, description: 'cacheness API endpoint (CACHENESS_ENDPOINT)' });
    new CfnOutput(this, 'BucketName', { value: this.bucket.bucketName, description: 'payload bucket' });
    new CfnOutput(this, 'CreateFirstApiKey', {
      value: `aws lambda invoke --region ${stack.region} --function-name ${this.migrateFunction.functionName} --cli-binary-format raw-in-base64-out --payload '{"createKey":{"namespace":"default","scopes":["read","write","admin"]}}' /dev/stdout`,
      description: 'creates the first API key with AWS CLI v2 (admin scope; it creates the others through POST /v1/keys)',
    });
  }
}

/** Connections other than the API's: sweeper, migrations, secret rotation, and a few for operators. */
const OTHER_CONNECTIONS = 8;

/**
 * Each API container holds one connection, so reserved concurrency bounds the API's connections. They
 * must stay below Aurora's max_connections, which for Serverless v2 follows the maximum capacity:
 * LEAST(DBInstanceClassMemory / 9,531,392, 5,000), about 2 GiB of memory per ACU (three quarters of it
 * counted here, for what the instance keeps for itself).
 */
export function estimatedMaxConnections(maxAcu: number): number {
  return Math.min(5000, Math.floor((0.75 * maxAcu * 2 * 1024 ** 3) / 9_531_392));
}

function checkConnections(maxAcu: number, apiConcurrency: number): void {
  if (!(maxAcu >= 0.5 && maxAcu <= 256)) throw new Error(`maxCapacityAcu must be between 0.5 and 256; got ${maxAcu}.`);
  if (!Number.isInteger(apiConcurrency) || apiConcurrency < 1) throw new Error(`apiConcurrency must be a whole number of at least 1; got ${apiConcurrency}.`);
  const limit = estimatedMaxConnections(maxAcu);
  if (apiConcurrency + OTHER_CONNECTIONS > limit) {
    throw new Error(
      `apiConcurrency ${apiConcurrency} could open more connections than Aurora allows at ${maxAcu} ACU (about ${limit}): lower apiConcurrency to ${limit - OTHER_CONNECTIONS} or raise maxCapacityAcu.`,
    );
  }
}

function pascal(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** Log retention in days, for the access-log bucket's expiry. */
function retentionDays(r: logs.RetentionDays): number {
  return r === logs.RetentionDays.INFINITE ? 3650 : Number(r);
}

/** API Gateway access logs as one JSON object per request. */
function apigwAccessLogFormat() {
  return apigwV1.AccessLogFormat.custom(
    JSON.stringify({
      requestId: '$context.requestId',
      ip: '$context.identity.sourceIp',
      time: '$context.requestTime',
      method: '$context.httpMethod',
      path: '$context.path',
      status: '$context.status',
      latencyMs: '$context.responseLatency',
      integrationError: '$context.integrationErrorMessage',
      bytes: '$context.responseLength',
    }),
  );
}

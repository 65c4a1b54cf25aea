/**
 * Driving Lambda handlers as API Gateway would: v2 events, the environment a deployment gives the
 * functions (pointed at the test's PostgreSQL and S3 stand-in), and a fresh Node process that imports
 * only a bundled handler file.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { lastServerUrl, type PostgresHarness } from './postgres-server.js';
import type { S3Harness } from './s3-server.js';

/** The functions' environment, against the test harnesses. */
export function lambdaEnv(pg: PostgresHarness, s3: S3Harness): Record<string, string> {
  return {
    DATABASE_URL: lastServerUrl(),
    DB_SCHEMA: pg.schema,
    BUCKET: s3.bucket,
    S3_ENDPOINT: s3.endpoint,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
  };
}

/** An API Gateway v2 (HTTP API, payload format 2.0) event, as the integration sends it. */
export function apiGatewayEvent(method: string, path: string, opts: { key?: string; body?: unknown } = {}) {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: { host: 'api.example.test', 'content-type': 'application/json', ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}) },
    requestContext: {
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
      requestId: 'request',
      routeKey: '$default',
      stage: '$default',
      timeEpoch: 0,
    },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    isBase64Encoded: false,
  };
}

/** One request for {@link invokeInFreshProcess}: method, path and an optional JSON body. */
export type EventSpec = [method: string, path: string, body?: unknown];

/**
 * Imports the handler module at `file` in a new Node process (started in `cwd`, with only `env` and
 * PATH), sends it `requests` in order with `key`, and returns the status and parsed body of each.
 */
export async function invokeInFreshProcess(
  file: string,
  opts: { key: string; requests: EventSpec[]; env: Record<string, string>; cwd: string },
): Promise<{ status: number; body: Record<string, never> }[]> {
  const script = `
    const { handler } = await import(${JSON.stringify(file)});
    const event = ${apiGatewayEvent.toString()};
    const out = [];
    for (const [method, path, body] of ${JSON.stringify(opts.requests)}) {
      const r = await handler(event(method, path, { key: ${JSON.stringify(opts.key)}, body }), {});
      out.push({ status: r.statusCode, body: JSON.parse(r.body) });
    }
    console.log(JSON.stringify(out));
    process.exit(0);`;
  const env = { PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...opts.env };
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: opts.cwd, env });
  return JSON.parse(stdout);
}

/**
 * The deployed artifact itself: the API handler asset that synth bundles for Lambda, imported by a
 * fresh Node process from the cloud assembly (no node_modules, no sources) and driven with API Gateway
 * v2 events against real PostgreSQL and the S3 stand-in.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApiKey } from '../../functions/src/postgres/index.js';
import { invokeInFreshProcess, lambdaEnv } from '../../functions/test/lambda-harness.js';
import { type PostgresHarness, startPostgres } from '../../functions/test/postgres-server.js';
import { type S3Harness, startS3 } from '../../functions/test/s3-server.js';
import { CachenessStack } from '../src/index.js';

let pg: PostgresHarness;
let s3: S3Harness;
let outdir: string;
let apiAsset: string;

beforeAll(async () => {
  outdir = await mkdtemp(join(tmpdir(), 'cacheness-cdk-'));
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  const app = new App({ outdir, context: { 'aws:cdk:enable-asset-metadata': true } }); // as the CLI sets it
  new CachenessStack(app, 'Asset', { env: { account: '123456789012', region: 'eu-west-1' } });
  const assembly = app.synth();
  const template = assembly.getStackByName('Asset').template as {
    Resources: Record<string, { Type: string; Properties: { Description?: string }; Metadata?: Record<string, string> }>;
  };
  const api = Object.values(template.Resources).find((r) => r.Type === 'AWS::Lambda::Function' && r.Properties.Description === 'cacheness HTTP API');
  const path = api?.Metadata?.['aws:asset:path'];
  if (!path) throw new Error('The API function has no asset in the cloud assembly.');
  apiAsset = join(outdir, path, 'index.mjs');
}, 180_000);
afterAll(async () => {
  await Promise.all([pg?.stop(), s3?.stop()]);
  if (outdir) await rm(outdir, { recursive: true, force: true });
});

it('is a single ES module file with no node_modules beside it', () => {
  expect(existsSync(apiAsset)).toBe(true);
  expect(existsSync(join(apiAsset, '..', 'node_modules'))).toBe(false);
});

it('serves API Gateway v2 events from the synthesized asset: health, stats, an inline put and its read', async () => {
  const { key } = await createApiKey(pg.sql, { namespace: 'asset', scopes: ['read', 'write'] });
  const put = { handler: 'bytes@1', type: 'Buffer', codec: 'lz4', size: 3, storedSize: 3, contentHash: '0'.repeat(32), body: Buffer.from('abc').toString('base64') };
  const [health, stats, created, read] = await invokeInFreshProcess(apiAsset, {
    key,
    cwd: outdir,
    env: lambdaEnv(pg, s3),
    requests: [
      ['GET', '/v1/health'],
      ['GET', '/v1/stats'],
      ['PUT', '/v1/entries/from-asset', put],
      ['GET', '/v1/entries/from-asset'],
    ],
  });
  expect(health).toEqual({ status: 200, body: { ok: true } });
  expect(stats?.status).toBe(200);
  expect(created?.status).toBe(201);
  expect(read?.status).toBe(200);
  expect(Buffer.from(read?.body.body ?? '', 'base64').toString()).toBe('abc');
}, 60_000);

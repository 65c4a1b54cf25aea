/**
 * The Lambda artifact itself, not the sources: the API handler bundled as a deployment bundles it,
 * then imported by a fresh Node process (no node_modules, no tsx) and driven with API Gateway v2
 * events against real Postgres and the S3 stand-in.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type BundleResult, bundleHandler, LAMBDA_ENTRIES } from '../build/bundle.js';
import { createApiKey } from '../src/postgres/index.js';
import { inlineEntry } from './entry-bodies.js';
import { invokeInFreshProcess, lambdaEnv } from './lambda-harness.js';
import { type PostgresHarness, startPostgres } from './postgres-server.js';
import { type S3Harness, startS3 } from './s3-server.js';

let pg: PostgresHarness;
let s3: S3Harness;
let dir: string;
let api: BundleResult;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cacheness-bundle-'));
  [pg, s3, api] = await Promise.all([startPostgres(), startS3(), bundleHandler(join(import.meta.dirname, '..', LAMBDA_ENTRIES.api), join(dir, 'api', 'index.mjs'))]);
}, 60_000);
afterAll(async () => {
  await Promise.all([pg?.stop(), s3?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

it('is one self-contained file under 1 MB: only Node built-ins are imported', () => {
  const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
  expect(api.imports.filter((i) => !builtins.has(i))).toEqual([]);
  expect(api.bytes).toBeLessThan(1_000_000);
  // No native addon or WebAssembly file is read from beside the bundle.
  expect(Object.keys(api.metafile.inputs).filter((f) => /\.(node|wasm)$/.test(f))).toEqual([]);
});

it('serves API Gateway v2 events from a fresh process: health, an inline put verified by content hash, a read', async () => {
  const key = (await createApiKey(pg.sql, { namespace: 'bundle', scopes: ['read', 'write'] })).key;
  const body = Buffer.from('bytes through the bundled handler');
  const put = inlineEntry(body);
  // The child imports only the bundle, from a directory with no node_modules anywhere above it.
  const [health, created, rejected, read] = await invokeInFreshProcess(api.outfile, {
    key,
    cwd: dir,
    env: lambdaEnv(pg, s3),
    requests: [
      ['GET', '/v1/health'],
      ['PUT', '/v1/entries/k', put],
      ['PUT', '/v1/entries/bad', { ...put, contentHash: '0'.repeat(32) }],
      ['GET', '/v1/entries/k'],
    ],
  });
  expect(health).toEqual({ status: 200, body: { ok: true } });
  expect(created?.status).toBe(201);
  expect(rejected?.status).toBe(422);
  expect(rejected?.body).toMatchObject({ error: { code: 'EINTEGRITY' } });
  expect(read?.status).toBe(200);
  expect(Buffer.from(read?.body.body ?? '', 'base64').toString()).toBe(body.toString());
}, 60_000);

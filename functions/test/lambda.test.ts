/** The Lambda entry points, configured from the environment as a deployment configures them. */

import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApiKey } from '../src/postgres/index.js';
import { apiGatewayEvent, lambdaEnv } from './lambda-harness.js';
import { type PostgresHarness, startPostgres } from './postgres-server.js';
import { type S3Harness, startS3 } from './s3-server.js';

let pg: PostgresHarness;
let s3: S3Harness;
beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  Object.assign(process.env, lambdaEnv(pg, s3));
});
afterAll(() => Promise.all([pg.stop(), s3.stop()]));

it('migrates, serves API Gateway v2 events, and sweeps', async () => {
  const { handler: migrate } = await import('../src/lambda/migrate.js');
  expect(await migrate()).toEqual({ applied: [] }); // the harness migrated already: idempotent
  const key = (await createApiKey(pg.sql, { namespace: 'lambda', scopes: ['read'] })).key;
  const { handler: api } = await import('../src/lambda/api.js');
  const event = apiGatewayEvent('GET', '/v1/stats', { key });
  const res = (await api(event as never, {} as never)) as { statusCode: number; body: string };
  expect(res.statusCode).toBe(200);
  expect(JSON.parse(res.body)).toMatchObject({ entries: 0 });
  const { handler: sweeper } = await import('../src/lambda/sweeper.js');
  expect(await sweeper()).toMatchObject({ expired: 0 });
});

it('creates the first API key when an operator invokes the migration function, and ignores custom-resource deletes', async () => {
  const { handler: migrate } = await import('../src/lambda/migrate.js');
  expect(await migrate({ RequestType: 'Delete' })).toEqual({ applied: [] });
  const out = await migrate({ createKey: { namespace: 'first', scopes: ['read', 'write', 'admin'], name: 'bootstrap' } });
  expect(out.key).toMatch(/^ck_[a-z0-9]{12}_/);
  expect(out.info).toMatchObject({ namespace: 'first', scopes: ['read', 'write', 'admin'], name: 'bootstrap' });
  const { handler: api } = await import('../src/lambda/api.js');
  const event = apiGatewayEvent('GET', '/v1/keys', { key: out.key });
  const res = (await api(event as never, {} as never)) as { statusCode: number; body: string };
  expect(res.statusCode).toBe(200);
  expect(JSON.parse(res.body).keys).toHaveLength(1);
});

it('lets a CloudFormation rollback succeed against a database newer than the code, and refuses anything else', async () => {
  const { handler: migrate } = await import('../src/lambda/migrate.js');
  await pg.sql`INSERT INTO schema_migrations (version, name) VALUES (9999, 'from the future')`;
  try {
    expect(await migrate({ RequestType: 'Update' })).toEqual({ applied: [] });
    await expect(migrate({ RequestType: 'Create' })).rejects.toMatchObject({ code: 'ESTORE', details: { newerSchema: true } });
    await expect(migrate()).rejects.toMatchObject({ code: 'ESTORE' });
  } finally {
    await pg.sql`DELETE FROM schema_migrations WHERE version = 9999`;
  }
  expect(await migrate({ RequestType: 'Update' })).toEqual({ applied: [] }); // up to date again
});

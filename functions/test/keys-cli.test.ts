import { afterAll, beforeAll, expect, it } from 'vitest';
import { runKeysCli } from '../src/cli/keys.js';
import { verifyApiKey } from '../src/postgres/index.js';
import { lastServerUrl, type PostgresHarness, startPostgres } from './postgres-server.js';

let pg: PostgresHarness;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  pg = await startPostgres();
  env = { DATABASE_URL: lastServerUrl(), DB_SCHEMA: pg.schema };
});
afterAll(() => pg.stop());

async function run(...argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await runKeysCli(argv, env, (l) => lines.push(l));
  return { code, out: lines.join('\n') };
}

it('creates, lists and revokes keys', async () => {
  const created = await run('create', '--namespace', 'cli-team', '--scopes', 'read,write', '--name', 'ci');
  expect(created.code).toBe(0);
  const key = created.out.split('\n')[0] as string;
  const principal = await verifyApiKey(pg.sql, key);
  expect(principal).toMatchObject({ namespace: 'cli-team', scopes: ['read', 'write'] });
  expect((await run('list', '--namespace', 'cli-team')).out).toContain(`${principal?.keyId}  read,write`);
  expect(await run('revoke', '--namespace', 'cli-team', '--id', principal?.keyId as string)).toEqual({ code: 0, out: `revoked ${principal?.keyId}` });
  expect(await verifyApiKey(pg.sql, key)).toBeUndefined();
  expect((await run('revoke', '--namespace', 'cli-team', '--id', principal?.keyId as string)).code).toBe(1);
});

it('explains its usage on bad input', async () => {
  expect((await run('create', '--namespace', 'x')).code).toBe(2);
  expect((await run('explode')).out).toContain('usage:');
  expect((await run('create', '--namespace', 'x', '--scopes', 'root')).out).toMatch(/^error: Scopes/);
  const lines: string[] = [];
  expect(await runKeysCli(['list', '--namespace', 'x'], {}, (l) => lines.push(l))).toBe(2);
  expect(lines.join()).toContain('DATABASE_URL');
});

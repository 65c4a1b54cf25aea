/**
 * The database password from Secrets Manager. No AWS here: a stand-in answers the GetSecretValue call
 * of the AWS JSON protocol over real HTTP on 127.0.0.1, as Secrets Manager would.
 */
import { createServer, type Server } from 'node:http';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SECRET_CACHE_MS, secretPassword } from '../src/postgres/secret-password.js';

let server: Server;
let client: SecretsManagerClient;
const secrets: Record<string, string> = {};
let calls = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      calls++;
      const { SecretId } = JSON.parse(body) as { SecretId: string };
      const ok = req.headers['x-amz-target'] === 'secretsmanager.GetSecretValue' && SecretId in secrets;
      res.writeHead(ok ? 200 : 400, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify(ok ? { ARN: SecretId, Name: SecretId, SecretString: secrets[SecretId] } : { __type: 'ResourceNotFoundException', message: 'no such secret' }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  client = new SecretsManagerClient({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
});
afterAll(() => {
  client?.destroy();
  server?.close();
});

it('reads the password from the secret, reuses it for a minute, then reads the rotated one', async () => {
  secrets.db = JSON.stringify({ username: 'cacheness_admin', password: 'first', host: 'h', port: 5432 });
  let now = 0;
  const password = secretPassword('db', { client, clock: () => now });
  expect(await password()).toBe('first');
  secrets.db = JSON.stringify({ username: 'cacheness_admin', password: 'rotated' });
  const before = calls;
  expect(await password()).toBe('first'); // cached: no call
  expect(calls).toBe(before);
  now += SECRET_CACHE_MS;
  expect(await password()).toBe('rotated');
  secrets.db = JSON.stringify({ password: 'rotated again' });
  password.invalidate(); // the database refused the cached one
  expect(await password()).toBe('rotated again');
});

it('says what is wrong with a secret that holds no password, or does not exist', async () => {
  secrets.bad = 'not json';
  await expect(secretPassword('bad', { client })()).rejects.toMatchObject({ code: 'ESTORE', message: expect.stringContaining('DATABASE_SECRET_ARN') });
  await expect(secretPassword('missing', { client })()).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
});

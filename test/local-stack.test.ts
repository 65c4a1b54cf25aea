/** `npm start`'s local stack as a user runs it: a child process, real HTTP, Ctrl-C, restart. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { inlineEntry } from '../functions/test/entry-bodies.js';

const MAIN = fileURLToPath(new URL('../local/src/main.ts', import.meta.url));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cacheness-local-stack-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Starts the stack; resolves with its API URL and key once it prints them. */
let lastStderr = '';

function start(): Promise<{ child: ChildProcess; api: string; key: string }> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', MAIN], {
    env: { ...process.env, PORT: '0', CACHENESS_LOCAL_DIR: dir, DATABASE_URL: '', S3_ENDPOINT: '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d;
    lastStderr += d;
  });
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (d) => {
      out += d;
      const api = /API\s+(http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(out)?.[1];
      const key = /API key\s+(ck_\S+)/.exec(out)?.[1];
      if (api && key && out.includes('Ctrl-C')) resolve({ child, api, key });
    });
    child.once('exit', (code) => reject(new Error(`the local stack exited (${code}) before it was ready: ${err}`)));
  });
}

function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill('SIGINT');
  });
}

it('serves the API on embedded Postgres and S3, stops on Ctrl-C, and keeps its data', async () => {
  const first = await start();
  const bytes = Buffer.from('kept across restarts');
  const put = await fetch(`${first.api}/v1/entries/greeting`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${first.key}`, 'content-type': 'application/json' },
    body: JSON.stringify(inlineEntry(bytes)),
  });
  expect(put.status, `${await put.clone().text()} ${lastStderr}`).toBe(201);
  expect(await stop(first.child)).toBe(0);

  const second = await start();
  try {
    expect(second.key).toBe(first.key); // the development key is reused
    const got = (await (await fetch(`${second.api}/v1/entries/greeting`, { headers: { authorization: `Bearer ${second.key}` } })).json()) as { body: string };
    expect(Buffer.from(got.body, 'base64').equals(bytes)).toBe(true);
    expect((await fetch(`${second.api}/v1/stats`)).status).toBe(401);
  } finally {
    expect(await stop(second.child)).toBe(0);
  }
});

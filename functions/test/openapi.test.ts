import { readFileSync } from 'node:fs';
import { S3Client } from '@aws-sdk/client-s3';
import postgres from 'postgres';
import { expect, it } from 'vitest';
import { createApp, openApiDocument, ROUTES } from '../src/api/index.js';

// No database is touched: the app is only asked for its routes and its document.
const app = createApp({ sql: postgres('postgres://unused@127.0.0.1:1/none'), s3: new S3Client({ region: 'us-east-1' }), bucket: 'unused' });

it('documents exactly the routes the app serves', () => {
  const served = new Set(app.routes.filter((r) => r.method !== 'ALL' && r.path.startsWith('/v1/')).map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, '{$1}')}`));
  // hono answers HEAD with the GET route; the document lists HEAD on its own.
  const documented = new Set(ROUTES.map((r) => `${r.method === 'head' ? 'get' : r.method} ${r.path}`));
  expect([...documented].sort()).toEqual([...served].sort());
});

it('serves an OpenAPI 3.1 document with request schemas', async () => {
  const res = await app.request('/v1/openapi.json');
  expect(res.status).toBe(200);
  const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties?: object } }> } }>> };
  expect(doc).toEqual(openApiDocument());
  expect(doc.openapi).toBe('3.1.0');
  expect(Object.keys(doc.paths['/v1/entries/{key}']?.put?.requestBody?.content['application/json']?.schema.properties ?? {})).toContain('contentHash');
});

it('keeps docs/api.md in step with the document', () => {
  const md = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
  for (const r of ROUTES) expect(md, `${r.method} ${r.path}`).toContain(`\`${r.method.toUpperCase()} ${r.path}\``);
});

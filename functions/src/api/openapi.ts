/**
 * The OpenAPI 3.1 document of the API (`GET /v1/openapi.json`), built from the same zod schemas the
 * routes validate with. A test checks that it lists exactly the routes the app serves, and that
 * docs/api.md documents each of them.
 * @module
 */
import * as z from 'zod';
import { Access, CompleteParts, Count, CreateEntry, DefineTable, DeletePrefix, List, NewKey, PartNumbers, Query, Touch } from './schemas.js';

export interface RouteDoc {
  method: 'get' | 'head' | 'put' | 'post' | 'delete';
  /** OpenAPI form: `/v1/entries/{key}`. */
  path: string;
  scope: 'none' | 'read' | 'write' | 'admin';
  summary: string;
  body?: z.ZodType;
  /** Optional query parameters: name to description. */
  query?: Record<string, string>;
  success: number;
}

export const ROUTES: readonly RouteDoc[] = [
  { method: 'get', path: '/v1/health', scope: 'none', summary: 'Liveness: `{ ok: true }`.', success: 200 },
  { method: 'get', path: '/v1/openapi.json', scope: 'none', summary: 'This document.', success: 200 },
  { method: 'get', path: '/v1/whoami', scope: 'none', summary: 'The caller\u2019s key: `{ keyId, namespace, scopes }` (any valid key).', success: 200 },
  { method: 'get', path: '/v1/stats', scope: 'read', summary: "The namespace's counters: entries, bytes, hits, misses, hitRate, evictions, expirations.", success: 200 },
  {
    method: 'get',
    path: '/v1/entries/{key}',
    scope: 'read',
    summary:
      'An entry: `{ entry, body }` (inline, base64) or `{ entry, url }` (presigned GET, Range allowed). Counts a hit or a miss, unless `count=0`; `payload=0` answers `{ entry }` alone, uncounted.',
    query: {
      count: '`0`: do not count this read as a hit or a miss (the client reports its reads with `POST /v1/access`).',
      payload: '`0`: answer `{ entry }` without bytes or URL; never counted.',
    },
    success: 200,
  },
  { method: 'head', path: '/v1/entries/{key}', scope: 'read', summary: 'Existence, size and content hash in headers; not counted as a read.', success: 200 },
  {
    method: 'put',
    path: '/v1/entries/{key}',
    scope: 'write',
    summary: 'Create an entry: inline (201), deduplicated (201), or a pending upload (202: one presigned PUT, a multipart plan, or a streamed multipart upload of unknown size).',
    body: CreateEntry,
    success: 201,
  },
  {
    method: 'delete',
    path: '/v1/entries/{key}',
    scope: 'write',
    summary: 'Delete an entry: `{ deleted }`; with `writtenAt`, only if it was written at or before then.',
    query: { writtenAt: 'ISO 8601: delete only the stored version written at or before this time (a later write survives).' },
    success: 200,
  },
  {
    method: 'post',
    path: '/v1/entries/{key}/touch',
    scope: 'write',
    summary: 'New expiry: `ttl` from now, or an absolute `expiresAt`; with `writtenAt`, 409 `ECONFLICT` if the entry was written later.',
    body: Touch,
    success: 200,
  },
  {
    method: 'get',
    path: '/v1/entries/{key}/rows',
    scope: 'read',
    summary: "The entry's rows in every custom table: `{ tables }` (`{}` when none).",
    success: 200,
  },
  { method: 'post', path: '/v1/entries/list', scope: 'read', summary: 'A page of entries: `{ entries, cursor? }`.', body: List, success: 200 },
  { method: 'post', path: '/v1/entries/count', scope: 'read', summary: 'How many entries match a list filter: `{ count }`.', body: Count, success: 200 },
  {
    method: 'post',
    path: '/v1/entries/delete',
    scope: 'write',
    summary: "Delete every entry whose key starts with `prefix` (`''`: all): `{ deleted }`; with `writtenAt`, only entries written at or before it.",
    body: DeletePrefix,
    success: 200,
  },
  {
    method: 'post',
    path: '/v1/access',
    scope: 'read',
    summary: 'Report reads the client counted itself (up to 10,000 keys): hit counts, access times, hits and misses.',
    body: Access,
    success: 200,
  },
  { method: 'post', path: '/v1/uploads/{id}/parts', scope: 'write', summary: 'More presigned part URLs for a multipart upload.', body: PartNumbers, success: 200 },
  {
    method: 'post',
    path: '/v1/uploads/{id}/complete',
    scope: 'write',
    summary: 'Check the uploaded object and commit the entry (a streamed upload sends its sizes and hashes here).',
    body: CompleteParts,
    success: 201,
  },
  { method: 'delete', path: '/v1/uploads/{id}', scope: 'write', summary: 'Abandon a pending upload.', success: 200 },
  { method: 'get', path: '/v1/tables', scope: 'read', summary: "Every custom table's definition: `{ tables }`.", success: 200 },
  { method: 'put', path: '/v1/tables/{name}', scope: 'write', summary: 'Define or extend a custom table.', body: DefineTable, success: 200 },
  { method: 'post', path: '/v1/tables/{name}/query', scope: 'read', summary: 'Rows of a custom table: `{ rows }`.', body: Query, success: 200 },
  { method: 'post', path: '/v1/keys', scope: 'admin', summary: 'Create an API key in the caller\u2019s namespace (returned once).', body: NewKey, success: 201 },
  { method: 'get', path: '/v1/keys', scope: 'admin', summary: 'The namespace\u2019s keys, without secrets.', success: 200 },
  { method: 'delete', path: '/v1/keys/{id}', scope: 'admin', summary: 'Revoke a key of the namespace.', success: 200 },
];

const ErrorSchema = z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()).optional() }) });

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const params = [
      ...[...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } })),
      ...Object.entries(r.query ?? {}).map(([name, description]) => ({ name, in: 'query', required: false, description, schema: { type: 'string' } })),
    ];
    (paths[r.path] ??= {})[r.method] = {
      summary: r.summary,
      'x-cacheness-scope': r.scope,
      security: r.scope === 'none' ? [] : [{ apiKey: [] }],
      ...(params.length ? { parameters: params } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(r.body, { unrepresentable: 'any' }) } } } } : {}),
      responses: {
        [r.success]: { description: 'Success' },
        default: { description: 'Error', content: { 'application/json': { schema: z.toJSONSchema(ErrorSchema) } } },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'cacheness cloud API', version: '1' },
    components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key: `ck_<id>_<secret>`.' } } },
    paths,
  };
}

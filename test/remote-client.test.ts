/**
 * The SDK's HTTP client of the cloud API: against the real API over real HTTP (Postgres, the
 * S3-protocol server), and against real sockets that refuse, reset, stall or answer 503 for the
 * faults the API cannot be made to produce on demand.
 */

import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer, type Server } from 'node:net';
import type { CreateEntryResponse, GetEntryResponse, StatsResponse } from 'cacheness/model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inlineEntry } from '../functions/test/entry-bodies.js';
import { ApiClient, classifyFailure } from '../sdk/src/remote/client.js';
import { type ApiServer, startApi } from './fixtures/api-server.js';

let server: ApiServer;
let base: string;
let key: string;
let readOnlyKey: string;

beforeAll(async () => {
  server = await startApi();
  base = server.base;
  key = await server.key('client', ['read', 'write']);
  readOnlyKey = await server.key('client', ['read']);
});
afterAll(() => server?.stop());

/** A TCP server on 127.0.0.1 doing `onConnection` to each socket; counts connections. */
async function tcp(onConnection: (s: import('node:net').Socket) => void): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  let n = 0;
  const server: Server = createServer((s) => {
    n++;
    onConnection(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => n,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describe('ApiClient against the API', () => {
  it('writes and reads an entry with the typed wire bodies, under /v1 whether the endpoint names it or not', async () => {
    for (const endpoint of [base, `${base}/v1`, `${base}/v1/`]) {
      const api = new ApiClient({ endpoint, apiKey: key });
      try {
        const made = await api.request<CreateEntryResponse>('PUT', 'entries/greeting%2Fen', { body: inlineEntry(Buffer.from('hello')) });
        expect('entry' in made && made.entry).toMatchObject({ key: 'greeting/en', size: 5 });
        const got = await api.request<GetEntryResponse>('GET', 'entries/greeting%2Fen');
        expect('body' in got && Buffer.from(got.body, 'base64').toString()).toBe('hello');
        expect((await api.request<StatsResponse>('GET', 'stats')).entries).toBe(1);
      } finally {
        api.close();
      }
    }
  });

  it("throws the server's library errors as their own class and code, a refused key as EAUTH, the rest as EREMOTE", async () => {
    const api = new ApiClient({ endpoint: base, apiKey: key });
    const reader = new ApiClient({ endpoint: base, apiKey: readOnlyKey });
    const stranger = new ApiClient({ endpoint: base, apiKey: `ck_${'0'.repeat(12)}_${'A'.repeat(43)}` });
    try {
      await expect(api.request('PUT', 'entries/x', { body: inlineEntry(Buffer.from('x'), { ttl: 'soon' as never }) })).rejects.toMatchObject({ name: 'OptionError', code: 'ETTL' });
      await expect(stranger.request('GET', 'stats')).rejects.toMatchObject({ name: 'RemoteError', code: 'EAUTH', details: { status: 401, code: 'EUNAUTHORIZED' } });
      await expect(reader.request('PUT', 'entries/y', { body: inlineEntry(Buffer.from('y')) })).rejects.toMatchObject({ code: 'EAUTH', details: { status: 403 } });
      const missing = await api.request('GET', 'entries/nothing-here').catch((e: unknown) => e);
      expect(missing).toMatchObject({ name: 'RemoteError', code: 'EREMOTE', details: { status: 404, code: 'ENOTFOUND', request: 'GET /v1/entries/nothing-here' } });
      expect(classifyFailure(missing)).toBe('rejected');
    } finally {
      for (const c of [api, reader, stranger]) c.close();
    }
  });
});

describe('ApiClient when the API is not there', () => {
  it('reports a refused connection as EUNREACHABLE, classified unreachable', async () => {
    const gone = await tcp(() => {});
    await gone.close(); // nothing listens on its port now
    const api = new ApiClient({ endpoint: gone.url, apiKey: key, retries: 1 });
    const err = await api.request('GET', 'stats').catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'RemoteError', code: 'EUNREACHABLE', details: { reason: 'ECONNREFUSED' } });
    expect(classifyFailure(err)).toBe('unreachable');
    api.close();
  });

  it('retries a reset connection for idempotent calls, and not for a POST that may have arrived', async () => {
    const reset = await tcp((s) => s.once('data', () => s.resetAndDestroy()));
    const api = new ApiClient({ endpoint: reset.url, apiKey: key, retries: 2 });
    try {
      await expect(api.request('GET', 'stats')).rejects.toMatchObject({ code: 'EUNREACHABLE', details: { reason: 'ECONNRESET' } });
      expect(reset.connections()).toBe(3);
      await expect(api.request('POST', 'entries/list', { body: {} })).rejects.toMatchObject({ code: 'EUNREACHABLE' });
      expect(reset.connections()).toBe(4);
    } finally {
      api.close();
      await reset.close();
    }
  });

  it('gives up on a server that accepts but never answers, as EUNREACHABLE (ETIMEDOUT)', async () => {
    const sockets: import('node:net').Socket[] = [];
    const silent = await tcp((s) => sockets.push(s));
    const api = new ApiClient({ endpoint: silent.url, apiKey: key, responseTimeoutMs: 200, retries: 0 });
    try {
      await expect(api.request('GET', 'stats')).rejects.toMatchObject({ code: 'EUNREACHABLE', details: { reason: 'ETIMEDOUT' } });
    } finally {
      api.close();
      for (const s of sockets) s.destroy();
      await silent.close();
    }
  });

  it('retries a 503 for any call as Retry-After allows, gives up when the wait would pass the deadline, and repeats a 500 only for idempotent calls', async () => {
    let calls = 0;
    const answers: [number, string, string?][] = [];
    const flaky = createHttpServer((req, res) => {
      calls++;
      req.resume();
      const [status, code, retryAfter] = answers.shift() ?? [200, ''];
      res.writeHead(status, { 'content-type': 'application/json', ...(retryAfter ? { 'retry-after': retryAfter } : {}) });
      res.end(JSON.stringify(status === 200 ? { ok: true } : { error: { code, message: 'not now' } }));
    });
    await new Promise<void>((r) => flaky.listen(0, '127.0.0.1', r));
    const api = new ApiClient({ endpoint: `http://127.0.0.1:${(flaky.address() as AddressInfo).port}`, apiKey: key, deadlineMs: 10_000 });
    try {
      answers.push([503, 'EUNAVAILABLE', '0']);
      expect(await api.request('POST', 'entries/list', { body: {} })).toEqual({ ok: true }); // refused before any work: safe to repeat
      expect(calls).toBe(2);
      // Asked to wait 2 minutes with a 10 s deadline: no retry after a short backoff, but a failure now.
      answers.push([503, 'EUNAVAILABLE', '120']);
      const later = await api.request('GET', 'stats').catch((e: unknown) => e);
      expect(later).toMatchObject({ code: 'EREMOTE', details: { status: 503, code: 'EUNAVAILABLE' } });
      expect(classifyFailure(later)).toBe('unavailable');
      expect(calls).toBe(3);
      answers.push([500, 'EINTERNAL']);
      const err = await api.request('POST', 'entries/list', { body: {} }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'EREMOTE', details: { status: 500, code: 'EINTERNAL' } });
      expect(calls).toBe(4); // not repeated: the server may have done it
      answers.push([500, 'EINTERNAL']);
      expect(await api.request('GET', 'health')).toEqual({ ok: true }); // repeated
      expect(calls).toBe(6);
    } finally {
      api.close();
      await new Promise((r) => flaky.close(r));
    }
  });

  it('reports an answer that is not JSON as EREMOTE (an endpoint that is not the API)', async () => {
    const page = createHttpServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>Welcome</html>');
    });
    await new Promise<void>((r) => page.listen(0, '127.0.0.1', r));
    const api = new ApiClient({ endpoint: `http://127.0.0.1:${(page.address() as AddressInfo).port}`, apiKey: key });
    try {
      await expect(api.request('GET', 'stats')).rejects.toMatchObject({ name: 'RemoteError', code: 'EREMOTE', details: { status: 200 } });
    } finally {
      api.close();
      await new Promise((r) => page.close(r));
    }
  });

  it('refuses bad options with EOPTION', () => {
    expect(() => new ApiClient({ endpoint: 'not a url', apiKey: key })).toThrow(expect.objectContaining({ code: 'EOPTION' }));
    expect(() => new ApiClient({ endpoint: 'ftp://x', apiKey: key })).toThrow(expect.objectContaining({ code: 'EOPTION' }));
    expect(() => new ApiClient({ endpoint: base, apiKey: '' })).toThrow(expect.objectContaining({ code: 'EOPTION' }));
    expect(() => new ApiClient({ endpoint: base, apiKey: key, deadlineMs: -1 })).toThrow(expect.objectContaining({ code: 'EOPTION' }));
  });
});

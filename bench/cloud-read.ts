/**
 * Figure 2 of the cloud benchmark: read-entry requests (`GET /v1/entries/:key`: API key check,
 * metadata read, hit recorded, presigned URL) per second and their latency, on the app served by
 * @hono/node-server over loopback with real PostgreSQL, against two ceilings measured in the same
 * run with the same concurrency: a bare hono route returning a constant (the framework), and a bare
 * primary-key select through the same connection pool (the database).
 *
 * The HTTP load comes from a worker thread (its own event loop, so the server's loop does only
 * server work); the database series and the diagnostics run their loops on the main thread.
 * @module
 */

import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { S3Client } from '@aws-sdk/client-s3';
import { createApp } from '@cacheness/functions/api';
import { createApiKey, PostgresMetadataStore, verifyApiKey } from '@cacheness/functions/postgres';
import { presignGet } from '@cacheness/functions/s3';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import postgres, { type Sql } from 'postgres';
import { type LatencySummary, median, summarize } from './stats.js';

export interface ReadOptions {
  sql: Sql;
  /** The server and schema `sql` reaches, for the query-counting pool. */
  url: string;
  schema: string;
  s3: S3Client;
  bucket: string;
  /** Requests per series per round. */
  requests: number;
  /** Concurrent request loops. */
  concurrency: number;
  rounds: number;
  /** Distinct entries read (in a fixed random order). */
  keys: number;
}

export interface LoadResult {
  /** Requests per second of each round. */
  rps: number[];
  /** Event-loop utilization of this process's main thread (where the API and the Postgres client run), each round. */
  elu: number[];
  /** Busy share of the whole machine's CPU time (all cores, /proc/stat), each round. */
  cpuBusy: number[];
  /** Mean number of Postgres backends waiting on a lock (pg_stat_activity, sampled every few ms), each round. */
  lockWaits: number[];
  /** Latencies of every timed request of every round. */
  latency: LatencySummary;
}

export interface ReadResults {
  framework: LoadResult;
  api: LoadResult;
  database: LoadResult;
  /** Diagnostics, one round each: the app without HTTP (`app.request`); the route's database calls alone; without the hit
   * recording; the hit recording alone, concurrently and from one loop. */
  apiInProcess: LoadResult;
  dbCalls: LoadResult;
  dbReads: LoadResult;
  recordAccess: LoadResult;
  recordAccessSerial: LoadResult;
  /** Microseconds per presignGet call (sequential). */
  presignUs: number;
  /** Statements sent to Postgres per read-entry request (BEGIN and COMMIT included). */
  queriesPerRead: number;
  concurrency: number;
  requests: number;
  keys: number;
}

const NAMESPACE = 'bench-read';
/** A made-up blob every read entry references (the object itself is never fetched: reads only presign). */
const BLOB_ID = '0123456789abcdef0123456789abcdef';

// The HTTP load generator: plain JavaScript run in a worker thread (`eval`), with node:http and a
// keep-alive agent, one connection per concurrent loop. (Node's fetch costs about three times as much
// CPU per request here, and the client shares the machine's two cores with the server.)
const LOAD_WORKER = `
const { parentPort } = require('node:worker_threads');
const http = require('node:http');
let agent;
const get = (url, headers) => new Promise((resolve, reject) => {
  http.get(url, { agent, headers }, (res) => {
    res.resume();
    res.on('end', () => resolve(res.statusCode));
    res.on('error', reject);
  }).on('error', reject);
});
parentPort.on('message', async ({ base, paths, headers, concurrency, expect }) => {
  agent ??= new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const lat = new Float64Array(paths.length);
  const statuses = {};
  let next = 0;
  const loop = async () => {
    for (;;) {
      const i = next++;
      if (i >= paths.length) return;
      const t0 = performance.now();
      const status = await get(base + paths[i], headers);
      lat[i] = (performance.now() - t0) * 1000;
      if (status !== expect) statuses[status] = (statuses[status] || 0) + 1;
    }
  };
  try {
    const t0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, loop));
    const ms = performance.now() - t0;
    parentPort.postMessage({ ms, lat, statuses }, [lat.buffer]);
  } catch (err) {
    parentPort.postMessage({ error: String((err && err.stack) || err) });
  }
});
`;

interface WorkerReply {
  ms: number;
  lat: Float64Array;
  statuses: Record<string, number>;
  error?: string;
}

function startLoadWorker() {
  const worker = new Worker(LOAD_WORKER, { eval: true });
  const run = (msg: { base: string; paths: string[]; headers: Record<string, string>; concurrency: number; expect: number }) =>
    new Promise<WorkerReply>((resolve, reject) => {
      worker.once('message', (reply: WorkerReply) => (reply.error ? reject(new Error(`load worker: ${reply.error}`)) : resolve(reply)));
      worker.once('error', reject);
      worker.postMessage(msg);
    });
  return { run, stop: () => worker.terminate() };
}

/** Runs `n` calls of `fn(i)` from `concurrency` loops on this thread; returns elapsed ms and per-call µs. */
async function localLoad(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<{ ms: number; lat: Float64Array }> {
  const lat = new Float64Array(n);
  let next = 0;
  const loop = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const t0 = process.hrtime.bigint();
      await fn(i);
      lat[i] = Number(process.hrtime.bigint() - t0) / 1000;
    }
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, loop));
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, lat };
}

/** A fixed pseudo-random sequence of key indexes (same for every series). */
function keyOrder(n: number, keys: number): Uint32Array {
  const out = new Uint32Array(n);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) % keys;
  }
  return out;
}

/** Busy and total jiffies of all cores (Linux /proc/stat); zeros elsewhere. */
function cpuTimes(): { busy: number; total: number } {
  try {
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] as string).trim().split(/\s+/).slice(1, 9).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

const keyName = (i: number) => `read/${String(i).padStart(7, '0')}`;

async function listen(fetchFn: (req: Request) => Response | Promise<Response>): Promise<{ base: string; close: () => Promise<void> }> {
  const server = serve({ fetch: fetchFn, hostname: '127.0.0.1', port: 0 });
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    close: () =>
      new Promise<void>((resolve) => {
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

export async function runRead(o: ReadOptions): Promise<ReadResults> {
  const { sql } = o;
  // Entries with a blob: a read answers with a presigned URL (the path of every large payload).
  await sql`INSERT INTO blobs (namespace, id, gen, size, refs, ready) VALUES (${NAMESPACE}, ${BLOB_ID}, 'cafe0001', 1048576, 0, true)`;
  await sql`
    INSERT INTO entries (namespace, key, handler, type, codec, size, stored_size, content_hash, blob_id, created_at)
    SELECT ${NAMESPACE}, 'read/' || lpad(i::text, 7, '0'), 'bytes@1', 'Buffer', 'none', 1048576, 1048576, ${BLOB_ID}, ${BLOB_ID}, now()
    FROM generate_series(0, ${o.keys - 1}) AS i`;
  await sql`VACUUM ANALYZE entries`.catch(() => {});
  const { key: apiKey } = await createApiKey(sql, { namespace: NAMESPACE, scopes: ['read'] });
  const headers = { authorization: `Bearer ${apiKey}` };

  const app = createApp({ sql, s3: o.s3, bucket: o.bucket, rateLimit: false }); // the benchmark is one key at full speed
  const bare = new Hono();
  bare.get('/v1/constant', (c) => c.json({ ok: true }));
  const [apiServer, bareServer] = await Promise.all([listen(app.fetch), listen(bare.fetch)]);
  const load = startLoadWorker();

  // One answer checked by hand before timing anything.
  {
    const res = await fetch(`${apiServer.base}/v1/entries/${encodeURIComponent(keyName(0))}`, { headers });
    const body = (await res.json()) as { url?: string; entry?: { key: string } };
    if (res.status !== 200 || !body.url || body.entry?.key !== keyName(0)) throw new Error(`read-entry answered ${res.status}: ${JSON.stringify(body).slice(0, 300)}`);
  }

  const order = keyOrder(o.requests, o.keys);
  const apiPaths = Array.from(order, (k) => `/v1/entries/${encodeURIComponent(keyName(k))}`);
  const barePaths = Array.from({ length: o.requests }, () => '/v1/constant');
  const store = new PostgresMetadataStore({ sql, namespace: NAMESPACE });

  const httpSeries = async (base: string, paths: string[], h: Record<string, string>) => {
    const r = await load.run({ base, paths, headers: h, concurrency: o.concurrency, expect: 200 });
    const bad = Object.entries(r.statuses);
    if (bad.length) throw new Error(`${base}: unexpected statuses ${JSON.stringify(r.statuses)}`);
    return { ms: r.ms, lat: r.lat };
  };
  const pointSelect = async (i: number) => {
    const [row] = await sql`SELECT * FROM entries WHERE namespace = ${NAMESPACE} AND key = ${keyName(order[i] as number)}`;
    if (!row) throw new Error('point select found nothing');
  };
  const series = {
    framework: () => httpSeries(bareServer.base, barePaths, {}),
    api: () => httpSeries(apiServer.base, apiPaths, headers),
    database: () => localLoad(o.requests, o.concurrency, pointSelect),
  };
  // Where the read-entry time goes: run once each, after the timed rounds.
  const diagnostics = {
    apiInProcess: () =>
      localLoad(o.requests, o.concurrency, async (i) => {
        const res = await app.request(apiPaths[i] as string, { headers });
        if (res.status !== 200) throw new Error(`app.request: ${res.status}`);
        await res.arrayBuffer();
      }),
    dbCalls: () =>
      localLoad(o.requests, o.concurrency, async (i) => {
        const key = keyName(order[i] as number);
        if (!(await verifyApiKey(sql, apiKey))) throw new Error('key not verified');
        if (!(await store.get(key))) throw new Error('entry not found');
        await store.recordAccess([{ key, hits: 1, accessedAt: Date.now() }], { hits: 1 });
      }),
    dbReads: () =>
      localLoad(o.requests, o.concurrency, async (i) => {
        if (!(await verifyApiKey(sql, apiKey))) throw new Error('key not verified');
        if (!(await store.get(keyName(order[i] as number)))) throw new Error('entry not found');
      }),
    recordAccess: () =>
      localLoad(o.requests, o.concurrency, async (i) => {
        await store.recordAccess([{ key: keyName(order[i] as number), hits: 1, accessedAt: Date.now() }], { hits: 1 });
      }),
    recordAccessSerial: () =>
      localLoad(Math.min(o.requests, 2000), 1, async (i) => {
        await store.recordAccess([{ key: keyName(order[i] as number), hits: 1, accessedAt: Date.now() }], { hits: 1 });
      }),
  };
  type Name = keyof typeof series | keyof typeof diagnostics;
  const raw = {} as Record<Name, { rps: number[]; lat: Float64Array[]; elu: number[]; cpuBusy: number[]; lockWaits: number[] }>;
  // Lock waits are sampled on a connection of its own.
  const monitor = postgres(o.url, { max: 1, onnotice: () => {} });
  const sampleLocks = () => {
    let stop = false;
    let sum = 0;
    let n = 0;
    const done = (async () => {
      while (!stop) {
        const [r] = await monitor`
          SELECT count(*) FILTER (WHERE wait_event_type = 'Lock')::int AS waiting FROM pg_stat_activity
          WHERE backend_type = 'client backend' AND datname = current_database() AND pid <> pg_backend_pid()`;
        sum += Number(r?.waiting ?? 0);
        n++;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    return async () => {
      stop = true;
      await done;
      return n ? sum / n : 0;
    };
  };
  /** Runs one series, with the main thread's event-loop utilization and the machine's CPU use over it. */
  const measure = async (n: Name, run: () => Promise<{ ms: number; lat: Float64Array }>) => {
    const stopSampling = sampleLocks();
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = cpuTimes();
    const { ms, lat } = await run();
    const cpu1 = cpuTimes();
    const elu = performance.eventLoopUtilization(elu0).utilization;
    const lockWaits = await stopSampling();
    raw[n] ??= { rps: [], lat: [], elu: [], cpuBusy: [], lockWaits: [] };
    raw[n].lockWaits.push(lockWaits);
    raw[n].rps.push((lat.length / ms) * 1000);
    raw[n].lat.push(lat);
    raw[n].elu.push(elu);
    raw[n].cpuBusy.push(cpu1.total > cpu0.total ? (cpu1.busy - cpu0.busy) / (cpu1.total - cpu0.total) : 0);
  };

  try {
    // Warm-up: a tenth of the requests of each series, untimed.
    const warm = Math.max(500, Math.floor(o.requests / 10));
    await load.run({ base: bareServer.base, paths: barePaths.slice(0, warm), headers: {}, concurrency: o.concurrency, expect: 200 });
    await load.run({ base: apiServer.base, paths: apiPaths.slice(0, warm), headers, concurrency: o.concurrency, expect: 200 });
    await localLoad(Math.min(warm, o.requests), o.concurrency, pointSelect);
    const names = Object.keys(series) as (keyof typeof series)[];
    for (let r = 0; r < o.rounds; r++) {
      // Rotate the order each round, so no series always runs first.
      for (const n of [...names.slice(r % names.length), ...names.slice(0, r % names.length)]) await measure(n, series[n]);
    }
    for (const n of Object.keys(diagnostics) as (keyof typeof diagnostics)[]) await measure(n, diagnostics[n]);

    // Diagnostics: presign cost alone, and the statements one read-entry request sends.
    const presignN = 2000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < presignN; i++) await presignGet(o.s3, { bucket: o.bucket, key: `ns/${NAMESPACE}/blobs/${BLOB_ID}.cafe0001` });
    const presignUs = Number(process.hrtime.bigint() - t0) / 1000 / presignN;

    let statements = 0;
    const counting = postgres(o.url, { max: 1, onnotice: () => {}, connection: { search_path: o.schema }, debug: () => statements++ });
    const counted = createApp({ sql: counting, s3: o.s3, bucket: o.bucket, rateLimit: false });
    await counted.request(apiPaths[0] as string, { headers }); // connects
    statements = 0;
    const probes = 50;
    for (let i = 0; i < probes; i++) {
      const res = await counted.request(apiPaths[i] as string, { headers });
      if (res.status !== 200) throw new Error(`counted read: ${res.status}`);
    }
    const queriesPerRead = statements / probes;
    await counting.end();

    const result = (n: Name): LoadResult => {
      const all = new Float64Array(raw[n].lat.reduce((sum, a) => sum + a.length, 0));
      let at = 0;
      for (const a of raw[n].lat) {
        all.set(a, at);
        at += a.length;
      }
      return { rps: raw[n].rps, elu: raw[n].elu, cpuBusy: raw[n].cpuBusy, lockWaits: raw[n].lockWaits, latency: summarize(all) };
    };
    return {
      framework: result('framework'),
      api: result('api'),
      database: result('database'),
      apiInProcess: result('apiInProcess'),
      dbCalls: result('dbCalls'),
      dbReads: result('dbReads'),
      recordAccess: result('recordAccess'),
      recordAccessSerial: result('recordAccessSerial'),
      presignUs,
      queriesPerRead,
      concurrency: o.concurrency,
      requests: o.requests,
      keys: o.keys,
    };
  } finally {
    await monitor.end();
    await load.stop();
    await Promise.all([apiServer.close(), bareServer.close()]);
  }
}

export const medianRps = (r: LoadResult) => median(r.rps);

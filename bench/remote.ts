/**
 * cacheness benchmark: remote mode (`createCache({ mode: 'remote' | 'auto', remote })`) against the
 * cloud API and the S3 stand-in, everything on 127.0.0.1. Every figure is printed beside a baseline
 * measured in the same run, with the ratio and the target. A report: the exit code is 0 whatever the
 * targets say, and non-zero only when something throws or bytes read back differ from those written.
 *
 *   npm run bench:remote                                   # 1 GiB file, 3 rounds, 300 small ops per series
 *   npm run bench:remote -- --size-mb 64                   # quick run (~40 s)
 *
 * The servers: test/fixtures/api-server.ts `startApi()` (PostgreSQL, the s3rver stand-in, the API over
 * HTTP) runs in a child process of its own, so the client being measured (the SDK, or the AWS SDK
 * baseline) has this process's event loop to itself, as bench/cloud.ts does with the S3 stand-in.
 *
 * Figures: 1. `putFile` of a 1 GiB file of random bytes in mode remote against `@aws-sdk/lib-storage`
 * `Upload` of the same file; 2. `getFile` of it from a second remote cache with an empty local tier
 * against `GetObject` streamed to a file, and from the first cache (bytes in its local tier) against
 * local mode; 3. latency of 1 KiB values: put and get in mode remote, get in mode auto from the local
 * tier, against local mode. See docs/benchmarks.md, "Remote mode".
 * @module
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createS3Client } from '@cacheness/functions/s3';
import { S3_CREDENTIALS } from '../functions/test/s3-server.js';
import { type Cache, type CacheOptions, createCache } from '../sdk/src/index.js';
import { xxh128Hex, xxh128Stream } from '../sdk/src/stores.js';
import { fmtMBs, fmtMiB, fmtRatio, fmtUs, median, parseIntFlags, table } from './stats.js';

/** Targets from the issue: transfers at least 0.9× the AWS SDK direct to the same S3 server. */
const TARGET = { transferVsDirect: 0.9 } as const;
const MiB = 1024 ** 2;
/** lib-storage's part size and queue size in the baseline (the API's preferred part size, and the SDK's default concurrency). */
const DIRECT_PART_BYTES = 16 * MiB;
const DIRECT_QUEUE = 4;

type Args = { sizeMb: number; rounds: number; ops: number; warmup: number; concurrency: number; sync: number; diagnose: number };
const DEFAULTS: Args = { sizeMb: 1024, rounds: 3, ops: 300, warmup: 50, concurrency: 4, sync: 1, diagnose: 0 };

const USAGE = `Usage: npm run bench:remote -- [flags]     (or: npx tsx --conditions=source bench/remote.ts [flags])
  --size-mb N      size of the large file in MiB (default ${DEFAULTS.sizeMb}, i.e. 1 GiB; 0 skips figures 1 and 2)
  --rounds N       timed rounds of figures 1 and 2, after an untimed warm-up on a small file (default ${DEFAULTS.rounds})
  --ops N          timed operations per small-value series per pass, 2 passes (default ${DEFAULTS.ops}; 0 skips figure 3)
  --warmup N       untimed operations before each small-value series (default ${DEFAULTS.warmup})
  --concurrency N  remote.concurrency of the SDK caches (default ${DEFAULTS.concurrency}; the baseline's queueSize stays ${DIRECT_QUEUE})
  --sync 0|1       run sync(1) (untimed) before each timed large step, so no step pays for the previous one's dirty pages (default ${DEFAULTS.sync})
  --diagnose 0|1   also upload the SDK's finished local blob with lib-storage (the upload phase by the baseline's code; +1 upload per round; default ${DEFAULTS.diagnose})
Postgres: DATABASE_URL when set, otherwise a private cluster started from /usr/lib/postgresql/*/bin (fsync off).`;

function parseArgs(argv: string[]): Args {
  const flags: Record<string, keyof Args> = {
    '--size-mb': 'sizeMb',
    '--rounds': 'rounds',
    '--ops': 'ops',
    '--warmup': 'warmup',
    '--concurrency': 'concurrency',
    '--sync': 'sync',
    '--diagnose': 'diagnose',
  };
  return parseIntFlags(argv, DEFAULTS, flags, ['rounds', 'concurrency'], USAGE);
}

// ---- the servers, in a child process ----

interface Servers {
  base: string;
  s3Endpoint: string;
  bucket: string;
  /** API keys (read + write) by namespace. */
  keys: Record<string, string>;
  stop(): Promise<void>;
}

/** The child's side: `startApi()`, one key per namespace named on the command line, then serve until stdin closes. */
async function serveChild(namespaces: string[]): Promise<void> {
  const { startApi } = await import('../test/fixtures/api-server.js');
  const api = await startApi({ rateLimit: false });
  const keys: Record<string, string> = {};
  for (const ns of namespaces) keys[ns] = await api.key(ns, ['read', 'write']);
  process.stdout.write(`${JSON.stringify({ base: api.base, s3Endpoint: api.s3.endpoint, bucket: api.s3.bucket, keys })}\n`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await api.stop().catch((err: unknown) => console.error(err));
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.stdin.on('end', () => void stop());
  process.stdin.resume();
}

async function startServers(namespaces: string[]): Promise<Servers> {
  const file = fileURLToPath(import.meta.url);
  const child: ChildProcess = spawn(process.execPath, [...process.execArgv, file, '--serve', ...namespaces], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const first = await Promise.race([
    once(lines, 'line').then(([line]) => line as string),
    once(child, 'exit').then(([code]) => {
      throw new Error(`The API server process exited (code ${code}) before listening.`);
    }),
  ]);
  const info = JSON.parse(first) as Omit<Servers, 'stop'>;
  for (const url of [info.base, info.s3Endpoint]) if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(url)) throw new Error(`Not on loopback: ${url}`);
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = once(child, 'exit');
    child.stdin?.end();
    const timer = setTimeout(() => child.kill('SIGTERM'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return { ...info, stop };
}

// ---- helpers ----

const since = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

/** Whether {@link timed} flushes dirty pages first (--sync). */
let syncFirst = true;

/**
 * Seconds `fn` takes. With --sync, dirty pages are written back first (untimed): each large step
 * writes a GiB or more (this process's files, or the S3 stand-in's), and Linux throttles whichever
 * writer comes next once dirty pages pass a share of RAM, which made single steps 5× slower at random.
 */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  if (syncFirst) execFileSync('sync');
  const t0 = process.hrtime.bigint();
  await fn();
  return since(t0);
}

/** Writes `bytes` random bytes to `path`, 64 MiB at a time. */
async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    const buf = Buffer.allocUnsafe(Math.min(64 * MiB, bytes));
    for (let off = 0; off < bytes; off += buf.length) {
      const n = Math.min(buf.length, bytes - off);
      randomFillSync(buf, 0, n);
      await fh.write(buf, 0, n, off);
    }
  } finally {
    await fh.close();
  }
}

/** XXH3-128 of a file, and its size. */
async function hashFile(path: string): Promise<{ hash: string; size: number }> {
  const h = xxh128Stream();
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 8 * MiB }) as AsyncIterable<Buffer>) {
    h.update(chunk);
    size += chunk.length;
  }
  return { hash: h.digestHex(), size };
}

async function checkSame(path: string, want: { hash: string; size: number }, what: string): Promise<void> {
  const got = await hashFile(path);
  if (got.size !== want.size || got.hash !== want.hash)
    throw new Error(`${what}: ${path} differs from the source (${got.size} bytes, ${got.hash}; want ${want.size}, ${want.hash}).`);
}

/** The largest regular file under `dir` (a cache's blob of a large value). */
function largestFile(dir: string): string {
  let best = { path: '', size: -1 };
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const size = statSync(p).size;
        if (size > best.size) best = { path: p, size };
      }
    }
  };
  walk(dir);
  return best.path;
}

/** Deletes every object under `prefix` (a round's objects, so the S3 stand-in's files do not pile up). */
async function deleteObjects(s3: S3Client, bucket: string, prefix: string): Promise<void> {
  for (;;) {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const keys = (r.Contents ?? []).map((o) => o.Key as string);
    if (keys.length === 0) return;
    for (const Key of keys) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
  }
}

async function countObjects(s3: S3Client, bucket: string): Promise<number> {
  let n = 0;
  let token: string | undefined;
  do {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    n += r.KeyCount ?? 0;
    token = r.NextContinuationToken;
  } while (token);
  return n;
}

async function directUpload(s3: S3Client, bucket: string, key: string, path: string): Promise<void> {
  await new Upload({ client: s3, params: { Bucket: bucket, Key: key, Body: createReadStream(path) }, queueSize: DIRECT_QUEUE, partSize: DIRECT_PART_BYTES }).done();
}

async function directDownload(s3: S3Client, bucket: string, key: string, dest: string): Promise<void> {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  await pipeline(r.Body as Readable, createWriteStream(dest));
}

// ---- figures 1 and 2: a large file ----

interface LargeRound {
  /** Seconds of each step. */
  remotePut: number;
  directPut: number;
  localPut: number;
  remoteGetCold: number;
  directGet: number;
  remoteGetLocal: number;
  localGet: number;
  /** lib-storage Upload of the remote cache's finished local blob (diagnostic). */
  blobUpload?: number;
}

interface LargeResults {
  bytes: number;
  storedBytes: number;
  codec: string;
  rounds: LargeRound[];
}

interface LargeContext {
  servers: Servers;
  s3: S3Client;
  work: string;
  concurrency: number;
  diagnose: boolean;
}

const remoteOptions = (c: LargeContext, ns: string, dir: string, mode: 'remote' | 'auto' = 'remote'): CacheOptions => ({
  mode,
  dir,
  maxSize: null,
  remote: { endpoint: c.servers.base, apiKey: c.servers.keys[ns] as string, concurrency: c.concurrency },
});

/** One round of every large step, in a namespace of its own (the API deduplicates bytes a namespace holds). */
async function largeRound(
  c: LargeContext,
  ns: string,
  file: string,
  source: { hash: string; size: number },
  directFirst: boolean,
): Promise<{ round: LargeRound; stored: number; codec: string }> {
  const { s3, work } = c;
  const { bucket } = c.servers;
  const fresh = (name: string) => mkdtempSync(join(work, `${name}-`));
  const dirs: string[] = [];
  const caches: Cache[] = [];
  const cacheIn = (name: string, options: (dir: string) => CacheOptions) => {
    const dir = fresh(name);
    dirs.push(dir);
    const cache = createCache(options(dir));
    caches.push(cache);
    return { cache, dir };
  };
  const out = (name: string) => join(work, `${name}.out`);
  const key = 'big';
  const directKey = `direct/${ns}`;
  try {
    const first = cacheIn('remote-a', (dir) => remoteOptions(c, ns, dir));
    const local = cacheIn('local', (dir) => ({ dir, maxSize: null }));
    const r: Partial<LargeRound> = {};

    // Uploads, alternating which goes first.
    const objectsBefore = await countObjects(s3, bucket);
    const sdkPut = async () => {
      r.remotePut = await timed(() => first.cache.putFile(file, key));
    };
    const awsPut = async () => {
      r.directPut = await timed(() => directUpload(s3, bucket, directKey, file));
    };
    for (const step of directFirst ? [awsPut, sdkPut] : [sdkPut, awsPut]) await step();
    // Both uploads must have landed as objects of their own (no deduplication across rounds).
    if ((await countObjects(s3, bucket)) !== objectsBefore + 2) throw new Error(`Round ${ns}: expected 2 new S3 objects after the uploads.`);
    const info = await first.cache.getEntry(key);
    if (!info) throw new Error(`Round ${ns}: the remote entry is missing after putFile.`);
    r.localPut = await timed(() => local.cache.putFile(file, key));

    if (c.diagnose) {
      // The upload phase alone, by the baseline's code: the finished local blob (the bytes the SDK uploads).
      const blob = largestFile(first.dir);
      r.blobUpload = await timed(() => directUpload(s3, bucket, `${directKey}/blob`, blob));
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${directKey}/blob` }));
    }

    // Downloads: a second remote cache with an empty local tier (getFile streams to the destination), against GetObject streamed to a file.
    const second = cacheIn('remote-b', (dir) => remoteOptions(c, ns, dir));
    const sdkGet = async () => {
      r.remoteGetCold = await timed(async () => {
        if (!(await second.cache.getFile(key, out('remote-cold')))) throw new Error('getFile missed');
      });
      await checkSame(out('remote-cold'), source, 'getFile, empty local tier');
      await rm(out('remote-cold'));
    };
    const awsGet = async () => {
      r.directGet = await timed(() => directDownload(s3, bucket, directKey, out('direct')));
      await checkSame(out('direct'), source, 'GetObject');
      await rm(out('direct'));
    };
    for (const step of directFirst ? [awsGet, sdkGet] : [sdkGet, awsGet]) await step();

    // Reads of bytes already in a local tier: the first remote cache, and local mode. Each twice, in
    // the order ABBA, keeping the faster: the first 1 GiB written after the steps above often lands in
    // memory the VM must first get back from its host (docs/benchmarks.md), whichever read that is.
    /** A timed getFile of `c`, checked; the faster of two kept in `r[field]`. */
    const bestGet = (c: Cache, name: string, label: string, field: 'remoteGetLocal' | 'localGet') => async () => {
      const s = await timed(async () => {
        if (!(await c.getFile(key, out(name)))) throw new Error('getFile missed');
      });
      r[field] = Math.min(s, r[field] ?? s);
      await checkSame(out(name), source, label);
      await rm(out(name));
    };
    const tierGet = bestGet(first.cache, 'remote-local', 'getFile, local tier', 'remoteGetLocal');
    const localGet = bestGet(local.cache, 'local', 'getFile, local mode', 'localGet');
    for (const step of directFirst ? [localGet, tierGet, tierGet, localGet] : [tierGet, localGet, localGet, tierGet]) await step();

    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: directKey }));
    await deleteObjects(s3, bucket, `ns/${ns}/`); // the SDK's object, behind the API's back: the round is over
    return { round: r as LargeRound, stored: info.storedSize, codec: info.codec };
  } finally {
    for (const cache of caches) await cache.close().catch(() => {});
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  }
}

async function runLarge(c: LargeContext, bytes: number, rounds: number): Promise<LargeResults> {
  const file = join(c.work, 'payload.bin');
  const warm = join(c.work, 'warmup.bin');
  process.stdout.write(`Writing ${fmtMiB(bytes)} of random bytes to ${file} ... `);
  await writeRandomFile(file, bytes);
  await writeRandomFile(warm, Math.min(bytes, 3 * DIRECT_PART_BYTES));
  const source = await hashFile(file);
  const warmSource = await hashFile(warm);
  console.log('done.');
  process.stdout.write('Warm-up round (small file, untimed) ... ');
  await largeRound(c, 'large-warmup', warm, warmSource, false);
  console.log('done.');
  const out: LargeRound[] = [];
  let stored = 0;
  let codec = '';
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint();
    const r = await largeRound(c, `large-${i}`, file, source, i % 2 === 1);
    out.push(r.round);
    stored = r.stored;
    codec = r.codec;
    const mb = bytes / 1e6;
    console.log(
      `round ${i + 1}/${rounds} (${since(t0).toFixed(0)} s): put remote ${(mb / r.round.remotePut).toFixed(0)} / direct ${(mb / r.round.directPut).toFixed(0)} MB/s, ` +
        `get remote ${(mb / r.round.remoteGetCold).toFixed(0)} / direct ${(mb / r.round.directGet).toFixed(0)} MB/s`,
    );
  }
  await rm(file, { force: true });
  await rm(warm, { force: true });
  return { bytes, storedBytes: stored, codec, rounds: out };
}

// ---- figure 3: small values ----

/** A ~1 KiB JSON-like object (its JSON is 1,024 bytes). */
function smallValue(i: number): Record<string, unknown> {
  const v = {
    id: i,
    name: `item-${i}`,
    createdAt: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
    tags: ['alpha', 'beta', 'gamma'],
    scores: Array.from({ length: 40 }, (_, j) => ((i * 31 + j * 7) % 997) / 8),
    note: '',
  };
  v.note = 'x'.repeat(Math.max(0, 1024 - JSON.stringify(v).length));
  return v;
}

interface SmallSeries {
  put: number[];
  get: number[];
}

type SmallMode = 'local' | 'remote' | 'auto' | 'http';

/** One request to the API over a keep-alive agent, as bare as it gets (node:http, JSON in and out). */
function bareRequest(agent: Agent, base: string, apiKey: string, method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { authorization: `Bearer ${apiKey}` };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const req = httpRequest(new URL(`/v1/${path}`, base), { method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The HTTP floor of figure 3: the requests a remote put and get make (an inline `PUT /v1/entries/:key`
 * with the value's JSON as its bytes, codec none, undated like a live write; `GET /v1/entries/:key?count=0`),
 * sent by bare node:http with keep-alive, no cache engine, no local tier.
 */
async function bareSeries(base: string, apiKey: string, prefix: string, ops: number, warmup: number, into: SmallSeries): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const n = warmup + ops;
  const path = (i: number) => `entries/${encodeURIComponent(`${prefix}/${i}`)}`;
  try {
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      const bytes = Buffer.from(JSON.stringify(smallValue(i)));
      const body = JSON.stringify({
        handler: 'json',
        type: 'object',
        codec: 'none',
        size: bytes.length,
        storedSize: bytes.length,
        contentHash: xxh128Hex(bytes),
        expiresAt: null,
        metadata: null,
        description: null,
        body: bytes.toString('base64'),
      });
      const r = await bareRequest(agent, base, apiKey, 'PUT', path(i), body);
      if (i >= warmup) into.put.push(since(t0) * 1e6);
      if (r.status !== 201) throw new Error(`bare PUT ${path(i)}: ${r.status} ${r.text.slice(0, 200)}`);
    }
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      const r = await bareRequest(agent, base, apiKey, 'GET', `${path(i)}?count=0`);
      const v = r.status === 200 ? (JSON.parse(Buffer.from((JSON.parse(r.text) as { body: string }).body, 'base64').toString('utf8')) as { id: number }) : undefined;
      if (i >= warmup) into.get.push(since(t0) * 1e6);
      if (v?.id !== i) throw new Error(`bare GET ${path(i)}: ${r.status} ${r.text.slice(0, 200)}`);
    }
  } finally {
    agent.destroy();
  }
}

/** Puts `warmup + ops` values one after another, then gets them in the same order; per-op µs of the timed ones. */
async function smallSeries(cache: Cache, prefix: string, ops: number, warmup: number, into: SmallSeries): Promise<void> {
  const n = warmup + ops;
  const values = Array.from({ length: n }, (_, i) => smallValue(i));
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await cache.put(values[i], `${prefix}/${i}`);
    if (i >= warmup) into.put.push(since(t0) * 1e6);
  }
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const v = (await cache.get(`${prefix}/${i}`)) as { id: number } | undefined;
    const us = since(t0) * 1e6;
    if (v?.id !== i) throw new Error(`${prefix}/${i} read back ${JSON.stringify(v)?.slice(0, 80)}`);
    if (i >= warmup) into.get.push(us);
  }
}

async function runSmall(c: LargeContext, ops: number, warmup: number): Promise<Record<SmallMode, SmallSeries>> {
  const res: Record<SmallMode, SmallSeries> = { local: { put: [], get: [] }, remote: { put: [], get: [] }, auto: { put: [], get: [] }, http: { put: [], get: [] } };
  const orders: SmallMode[][] = [
    ['local', 'http', 'remote', 'auto'],
    ['auto', 'remote', 'http', 'local'],
  ];
  for (const [pass, order] of orders.entries()) {
    for (const mode of order) {
      if (mode === 'http') {
        await bareSeries(c.servers.base, c.servers.keys['small-http'] as string, `pass${pass}`, ops, warmup, res.http);
        continue;
      }
      const dir = mkdtempSync(join(c.work, `small-${mode}-`));
      const ns = `small-${mode}`;
      const cache = createCache(mode === 'local' ? { dir } : remoteOptions(c, ns, dir, mode));
      try {
        await smallSeries(cache, `pass${pass}`, ops, warmup, res[mode]);
        // Mode auto must have stayed online, its puts pushed rather than queued.
        const st = cache.status();
        if (mode !== 'local' && (st.state !== 'online' || st.queued !== 0)) throw new Error(`The ${mode} cache went ${st.state} with ${st.queued} write(s) queued.`);
      } finally {
        await cache.close();
        await rm(dir, { recursive: true, force: true });
      }
    }
  }
  return res;
}

/** Nearest-rank percentile (`q` in 0..1). */
function pct(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number;
}

// ---- report ----

function revision(): string {
  try {
    const git = (...args: string[]) =>
      execFileSync('git', args, { cwd: join(dirname(fileURLToPath(import.meta.url)), '..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = git('status', '--porcelain', '--', 'sdk', 'functions', 'bench', 'test').split('\n').filter(Boolean).length;
    return `commit ${git('rev-parse', '--short', 'HEAD')}${dirty ? ` + ${dirty} uncommitted file(s) under sdk/, functions/, bench/, test/` : ''}`;
  } catch {
    return 'commit unknown (no git)';
  }
}

const status = (pass: boolean) => (pass ? 'PASS' : 'MISS');

function printLarge(l: LargeResults, a: Args): string[][] {
  const mb = l.bytes / 1e6;
  const rate = (pick: (r: LargeRound) => number | undefined) =>
    l.rounds
      .map(pick)
      .filter((x): x is number => x !== undefined)
      .map((s) => mb / s);
  const med = (pick: (r: LargeRound) => number | undefined) => median(rate(pick));
  const perRound = (pick: (r: LargeRound) => number | undefined) =>
    rate(pick)
      .map((x) => x.toFixed(0))
      .join(', ');
  const series: [string, (r: LargeRound) => number | undefined][] = [
    [`putFile, mode remote (concurrency ${a.concurrency})`, (r) => r.remotePut],
    [`direct: lib-storage Upload (16 MiB parts, queueSize ${DIRECT_QUEUE})`, (r) => r.directPut],
    ['putFile, mode local (the local phase alone)', (r) => r.localPut],
    ...(a.diagnose ? ([['diagnostic: lib-storage Upload of the finished local blob', (r: LargeRound) => r.blobUpload]] as [string, (r: LargeRound) => number | undefined][]) : []),
    ['getFile, mode remote, empty local tier (download)', (r) => r.remoteGetCold],
    ['direct: GetObject piped to a file', (r) => r.directGet],
    ['getFile, mode remote, bytes in the local tier (best of 2)', (r) => r.remoteGetLocal],
    ['getFile, mode local (best of 2)', (r) => r.localGet],
  ];
  console.log(
    `\nFigures 1-2: ${fmtMiB(l.bytes)} file of random bytes (stored ${fmtMiB(l.storedBytes)}, codec ${l.codec}); ${l.rounds.length} round(s) after a warm-up; MB/s = 10^6 bytes/s, median round.`,
  );
  console.log(
    table(
      ['transfer', 'median', 'MB/s per round'],
      series.map(([label, pick]) => [label, fmtMBs(med(pick)), perRound(pick)]),
    ),
  );

  // Breakdown of the remote putFile: its local put, then the upload (run one after the other).
  const remote = median(l.rounds.map((r) => r.remotePut));
  const local = median(l.rounds.map((r) => r.localPut));
  const upload = median(l.rounds.map((r) => r.remotePut - r.localPut));
  const direct = median(l.rounds.map((r) => r.directPut));
  console.log(
    `putFile, mode remote: ${remote.toFixed(2)} s (median) ≈ local phase ${local.toFixed(2)} s (local-mode putFile, measured apart) + upload phase ${upload.toFixed(2)} s ` +
      `(the difference, median of rounds: ${fmtMBs(mb / upload)}); lib-storage Upload of the file: ${direct.toFixed(2)} s` +
      (a.diagnose ? `, of the finished local blob: ${median(l.rounds.map((r) => r.blobUpload as number)).toFixed(2)} s.` : '.'),
  );
  // A cold getFile of incompressible bytes streams its ranged GETs straight into the destination (nothing is kept in the local tier).
  const cold = median(l.rounds.map((r) => r.remoteGetCold));
  console.log(
    `getFile, mode remote, empty local tier: ${cold.toFixed(2)} s (median; parallel ranged GETs written to their place in the destination, each chunk hashed on the way); ` +
      `GetObject to a file: ${median(l.rounds.map((r) => r.directGet)).toFixed(2)} s.`,
  );
  const mib = `${fmtMiB(l.bytes)}`;
  const target = `≥ ${TARGET.transferVsDirect}× direct`;
  const putRatio = med((r) => r.remotePut) / med((r) => r.directPut);
  const getRatio = med((r) => r.remoteGetCold) / med((r) => r.directGet);
  const tierRatio = med((r) => r.remoteGetLocal) / med((r) => r.localGet);
  const uploadOnly = mb / upload / med((r) => r.directPut);
  return [
    [
      `${mib} putFile, remote vs lib-storage Upload`,
      fmtMBs(med((r) => r.remotePut)),
      fmtMBs(med((r) => r.directPut)),
      fmtRatio(putRatio),
      target,
      status(putRatio >= TARGET.transferVsDirect),
    ],
    [`${mib} upload phase (remote − local putFile) vs Upload`, fmtMBs(mb / upload), fmtMBs(med((r) => r.directPut)), fmtRatio(uploadOnly), 'report', '-'],
    [
      `${mib} getFile, empty tier vs GetObject to file`,
      fmtMBs(med((r) => r.remoteGetCold)),
      fmtMBs(med((r) => r.directGet)),
      fmtRatio(getRatio),
      target,
      status(getRatio >= TARGET.transferVsDirect),
    ],
    [`${mib} getFile, bytes in tier vs local mode`, fmtMBs(med((r) => r.remoteGetLocal)), fmtMBs(med((r) => r.localGet)), fmtRatio(tierRatio), 'report', '-'],
  ];
}

function printSmall(s: Record<SmallMode, SmallSeries>, a: Args): string[][] {
  const row = (label: string, xs: number[]) => [label, String(xs.length), fmtUs(pct(xs, 0.5)), fmtUs(pct(xs, 0.95)), fmtUs(pct(xs, 0.99)), fmtUs(Math.max(...xs))];
  console.log(
    `\nFigure 3: 1 KiB JSON-like objects (stored inline), one op at a time; ${a.warmup} untimed ops then ${a.ops} timed per series, 2 passes (order local, bare HTTP, remote, auto; then reversed), fresh dir and keys each pass.`,
  );
  console.log(
    table(
      ['series', 'ops', 'p50', 'p95', 'p99', 'max'],
      [
        row('put, mode local (baseline)', s.local.put),
        row('get, mode local (baseline)', s.local.get),
        row('bare HTTP: PUT /v1/entries/:key, inline (floor)', s.http.put),
        row('bare HTTP: GET /v1/entries/:key (floor)', s.http.get),
        row('put, mode remote (local tier + PUT to the API)', s.remote.put),
        row('get, mode remote (GET from the API)', s.remote.get),
        row('put, mode auto (online: as remote)', s.auto.put),
        row('get, mode auto, local-tier hit', s.auto.get),
      ],
    ),
  );
  const vs = (label: string, mine: number[], base: number[]) => {
    const m = pct(mine, 0.5);
    const b = pct(base, 0.5);
    return [`${label} p50 (p95)`, `${fmtUs(m)} (${fmtUs(pct(mine, 0.95))})`, `${fmtUs(b)} (${fmtUs(pct(base, 0.95))})`, fmtRatio(m / b), 'report', '-'];
  };
  return [
    vs('1 KiB put, remote vs local', s.remote.put, s.local.put),
    vs('1 KiB get, remote vs local', s.remote.get, s.local.get),
    vs('1 KiB put, remote vs bare HTTP PUT', s.remote.put, s.http.put),
    vs('1 KiB get, remote vs bare HTTP GET', s.remote.get, s.http.get),
    vs('1 KiB get, auto local hit vs local', s.auto.get, s.local.get),
  ];
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const cpu = cpus();
  console.log(`cacheness remote-mode benchmark, ${new Date().toISOString()}`);
  console.log(revision());
  console.log(`node ${process.version}, ${process.platform}/${process.arch}, ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${fmtMiB(totalmem())} RAM`);

  const namespaces = ['large-warmup', ...Array.from({ length: a.rounds }, (_, i) => `large-${i}`), 'small-http', 'small-remote', 'small-auto'];
  const work = mkdtempSync(join(tmpdir(), 'cacheness-bench-remote-'));
  const cleanup: (() => Promise<void> | void)[] = [() => rm(work, { recursive: true, force: true })];
  const rows: string[][] = [];
  try {
    const t0 = process.hrtime.bigint();
    const servers = await startServers(namespaces);
    cleanup.push(() => servers.stop());
    const s3 = createS3Client({ endpoint: servers.s3Endpoint, credentials: S3_CREDENTIALS });
    cleanup.push(() => s3.destroy());
    console.log(
      `API ${servers.base} and S3 stand-in (s3rver) ${servers.s3Endpoint}, bucket ${servers.bucket}: test/fixtures/api-server.ts startApi() in a child process ` +
        `(started in ${since(t0).toFixed(1)} s; Postgres: ${process.env.DATABASE_URL ? 'DATABASE_URL' : 'private cluster'}). Work dir ${work}.`,
    );
    syncFirst = a.sync > 0;
    const c: LargeContext = { servers, s3, work, concurrency: a.concurrency, diagnose: a.diagnose > 0 };
    if (a.sizeMb > 0) rows.push(...printLarge(await runLarge(c, a.sizeMb * MiB, a.rounds), a));
    if (a.ops > 0) rows.push(...printSmall(await runSmall(c, a.ops, a.warmup), a));
    if (rows.length) {
      console.log('\nSummary (throughput ratio = cacheness ÷ baseline, higher is better; latency ratio = cacheness ÷ baseline, lower is better)');
      console.log(table(['figure', 'cacheness', 'baseline', 'ratio', 'target', 'status'], rows));
    }
    console.log(`Peak RSS of this process: ${fmtMiB(process.resourceUsage().maxRSS * 1024)}`);
  } finally {
    for (const f of cleanup.reverse()) await f();
  }
}

if (process.argv[2] === '--serve') {
  serveChild(process.argv.slice(3)).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}

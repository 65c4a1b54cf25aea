/**
 * cacheness benchmark: the cloud API, everything on this machine over loopback (real PostgreSQL,
 * the S3 stand-in in a process of its own). Prints every figure beside a baseline measured in the
 * same run, the ratio and the target. A report: the exit code is 0 whatever the targets say, and
 * non-zero only when something throws or bytes read back differ from those written.
 *
 *   npm run bench:cloud                                                     # full run (defaults below)
 *   npm run bench:cloud -- --mib 64 --requests 2000 --entries 10000         # quick run
 *
 * Figures (issue 3): 1. a large payload up and down through the API against the SDK direct to S3;
 * 2. read-entry requests per second and latency against a bare hono route and a bare Postgres point
 * select; 3. the sweeper expiring many entries against one bare DELETE; 4. the Lambda bundle's size
 * and import time. See docs/benchmarks-cloud.md for the method and the numbers.
 * @module
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { S3Client } from '@aws-sdk/client-s3';
import { createApp } from '@cacheness/functions/api';
import { createApiKey } from '@cacheness/functions/postgres';
import { createS3Client } from '@cacheness/functions/s3';
import { serve } from '@hono/node-server';
import { lastServerUrl, type PostgresHarness, startPostgres } from '../functions/test/postgres-server.js';
import { S3_CREDENTIALS } from '../functions/test/s3-server.js';
import { type LambdaResults, runLambda, type VariantResult } from './cloud-lambda.js';
import { type LoadResult, medianRps, type ReadResults, runRead } from './cloud-read.js';
import { runSweep, type SweepResults } from './cloud-sweep.js';
import { mbps, runTransfer, type TransferResults } from './cloud-transfer.js';
import { randomBytesOf } from './large.js';
import { fmtMBs, fmtMiB, fmtRatio, fmtUs, median, parseIntFlags, table } from './stats.js';

/** Targets from the issue. */
const TARGET = { transferVsDirect: 0.9, bundleBytes: 1_000_000, importMs: 150 } as const;

type Args = {
  mib: number;
  partMib: number;
  rounds: number;
  requests: number;
  concurrency: number;
  keys: number;
  entries: number;
  blobs: number;
  imports: number;
};

const DEFAULTS: Args = { mib: 1024, partMib: 16, rounds: 3, requests: 20_000, concurrency: 16, keys: 10_000, entries: 100_000, blobs: 1000, imports: 5 };

const USAGE = `Usage: npm run bench:cloud -- [flags]     (or: npx tsx --conditions=source bench/cloud.ts [flags])
  --mib N          payload of figure 1, in MiB (default ${DEFAULTS.mib}; 0 skips figure 1)
  --part-mib N     multipart part size and ranged-GET size, in MiB (default ${DEFAULTS.partMib}; at least 5)
  --rounds N       timed rounds of figures 1 and 2, after an untimed warm-up (default ${DEFAULTS.rounds})
  --requests N     requests per series per round in figure 2 (default ${DEFAULTS.requests}; 0 skips figure 2)
  --concurrency N  concurrent request loops in figure 2 (default ${DEFAULTS.concurrency})
  --keys N         distinct entries read in figure 2 (default ${DEFAULTS.keys})
  --entries N      expired entries the sweeper reclaims in figure 3 (default ${DEFAULTS.entries}; 0 skips figure 3)
  --blobs N        blobs (S3 objects) behind the entries of figure 3's second case (default ${DEFAULTS.blobs}; 0 skips it)
  --imports N      fresh processes per import measurement in figure 4 (default ${DEFAULTS.imports}; 0 skips figure 4)
Postgres: DATABASE_URL when set, otherwise a private cluster started from /usr/lib/postgresql/*/bin (fsync off).`;

function parseArgs(argv: string[]): Args {
  const flags: Record<string, keyof Args> = {
    '--mib': 'mib',
    '--part-mib': 'partMib',
    '--rounds': 'rounds',
    '--requests': 'requests',
    '--concurrency': 'concurrency',
    '--keys': 'keys',
    '--entries': 'entries',
    '--blobs': 'blobs',
    '--imports': 'imports',
  };
  const args = parseIntFlags(argv, DEFAULTS, flags, ['partMib', 'rounds', 'concurrency', 'keys'], USAGE);
  if (args.partMib < 5) throw new Error(`--part-mib must be at least 5 (S3's smallest part).\n${USAGE}`);
  if (args.mib > 0 && args.mib <= args.partMib) throw new Error(`--mib must exceed --part-mib, so the upload goes multipart.\n${USAGE}`);
  return args;
}

/** The S3 stand-in in a child process; resolves once it listens. */
async function startS3Process(): Promise<{ endpoint: string; bucket: string; child: ChildProcess; stop: () => Promise<void> }> {
  const file = join(dirname(fileURLToPath(import.meta.url)), 'cloud-s3-server.ts');
  const child = spawn(process.execPath, [...process.execArgv, file, 'cacheness-bench'], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const first = await Promise.race([
    once(lines, 'line').then(([line]) => line as string),
    once(child, 'exit').then(([code]) => {
      throw new Error(`The S3 stand-in exited (code ${code}) before listening.`);
    }),
  ]);
  const { endpoint, bucket } = JSON.parse(first) as { endpoint: string; bucket: string };
  if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(endpoint)) throw new Error(`The S3 stand-in is not on loopback: ${endpoint}`);
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = once(child, 'exit');
    child.stdin?.end();
    const timer = setTimeout(() => child.kill('SIGTERM'), 5000);
    await exited;
    clearTimeout(timer);
  };
  return { endpoint, bucket, child, stop };
}

/** The commit measured, and how many files under sdk/, functions/ or bench/ differ from it. */
function revision(): string {
  try {
    const git = (...args: string[]) =>
      execFileSync('git', args, { cwd: join(dirname(fileURLToPath(import.meta.url)), '..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = git('status', '--porcelain', '--', 'sdk', 'functions', 'bench').split('\n').filter(Boolean).length;
    return `commit ${git('rev-parse', '--short', 'HEAD')}${dirty ? ` + ${dirty} uncommitted file(s) under sdk/, functions/, bench/` : ''}`;
  } catch {
    return 'commit unknown (no git)';
  }
}

const status = (pass: boolean) => (pass ? 'PASS' : 'MISS');
const fmtRps = (r: number) => `${r.toFixed(0)} req/s`;
const fmtMs = (ms: number) => `${ms < 10 ? ms.toFixed(2) : ms.toFixed(1)} ms`;
const fmtRate = (perS: number) => `${perS.toFixed(0)} /s`;
const fmtBytes = (b: number) => (b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : `${(b / 1e3).toFixed(1)} kB`);
const list = (xs: number[], f: (x: number) => string) => xs.map(f).join(', ');

function printTransfer(t: TransferResults, a: Args): string[][] {
  const mb = t.bytes / 1e6;
  const rows = (label: string, s: { seconds: number[] }) => [label, fmtMBs(mbps(t.bytes, s)), list(s.seconds, (x) => (mb / x).toFixed(0))];
  console.log(
    `Figure 1: ${fmtMiB(t.bytes)} of random bytes, ${t.partCount} parts of ${a.partMib} MiB, 4 in flight on both paths; ${a.rounds} rounds after a warm-up; MB/s = 10^6 bytes/s.`,
  );
  console.log(
    table(
      ['transfer', 'median', 'MB/s per round'],
      [
        rows('upload via API: plan, presigned part PUTs, complete', t.apiUpload),
        rows('upload via API, part PUTs by node:http (not fetch)', t.apiUploadHttp),
        rows('upload direct: lib-storage Upload', t.sdkUpload),
        rows(`download via API: presigned URL, ${a.partMib} MiB ranged GETs ×4`, t.apiRangedGet),
        rows('download via API: presigned URL, one GET', t.apiSingleGet),
        rows('download direct: GetObject + transformToByteArray', t.sdkGet),
        rows('download direct: GetObject, body streamed into a buffer', t.sdkGetStreamed),
      ],
    ),
  );
  const ph = t.apiUploadPhases;
  console.log(
    `API upload phases (median): create ${fmtMs(median(ph.create) * 1000)}, part PUTs ${fmtMs(median(ph.parts) * 1000)} (${fmtMBs(mb / median(ph.parts))}), ` +
      `complete ${fmtMs(median(ph.complete) * 1000)}. Client-side XXH3-128 of the payload (the blobId): ${fmtMs(t.hashSeconds * 1000)}, untimed.\n` +
      'Every API download includes its GET /v1/entries/:key (metadata and presigning). Summary baselines: lib-storage Upload; GetObject + transformToByteArray ' +
      '(as the issue specifies) and GetObject streamed into a buffer (the same reading as the API path).\n',
  );
  const up = mbps(t.bytes, t.apiUpload) / mbps(t.bytes, t.sdkUpload);
  const upHttp = mbps(t.bytes, t.apiUploadHttp) / mbps(t.bytes, t.sdkUpload);
  const ranged = mbps(t.bytes, t.apiRangedGet) / mbps(t.bytes, t.sdkGet);
  const single = mbps(t.bytes, t.apiSingleGet) / mbps(t.bytes, t.sdkGet);
  const singleStreamed = mbps(t.bytes, t.apiSingleGet) / mbps(t.bytes, t.sdkGetStreamed);
  const rangedStreamed = mbps(t.bytes, t.apiRangedGet) / mbps(t.bytes, t.sdkGetStreamed);
  const target = `≥ ${TARGET.transferVsDirect}× direct`;
  const mib = `${a.mib} MiB`;
  return [
    // The target compares like with like: part PUTs over node:http, the HTTP stack lib-storage itself uses.
    [
      `${mib} upload via API, parts by node:http`,
      fmtMBs(mbps(t.bytes, t.apiUploadHttp)),
      fmtMBs(mbps(t.bytes, t.sdkUpload)),
      fmtRatio(upHttp),
      target,
      status(upHttp >= TARGET.transferVsDirect),
    ],
    [`${mib} upload via API, parts by fetch`, fmtMBs(mbps(t.bytes, t.apiUpload)), fmtMBs(mbps(t.bytes, t.sdkUpload)), fmtRatio(up), 'report', '-'],
    [
      `${mib} download via API, ranged ×4`,
      fmtMBs(mbps(t.bytes, t.apiRangedGet)),
      fmtMBs(mbps(t.bytes, t.sdkGet)),
      fmtRatio(ranged),
      target,
      status(ranged >= TARGET.transferVsDirect),
    ],
    [`${mib} download via API, one GET`, fmtMBs(mbps(t.bytes, t.apiSingleGet)), fmtMBs(mbps(t.bytes, t.sdkGet)), fmtRatio(single), 'report', '-'],
    [
      `${mib} download via API, ranged ×4, vs streamed GetObject`,
      fmtMBs(mbps(t.bytes, t.apiRangedGet)),
      fmtMBs(mbps(t.bytes, t.sdkGetStreamed)),
      fmtRatio(rangedStreamed),
      'report',
      '-',
    ],
    [
      `${mib} download via API, one GET, vs streamed GetObject`,
      fmtMBs(mbps(t.bytes, t.apiSingleGet)),
      fmtMBs(mbps(t.bytes, t.sdkGetStreamed)),
      fmtRatio(singleStreamed),
      'report',
      '-',
    ],
  ];
}

function printRead(r: ReadResults, a: Args): string[][] {
  const row = (label: string, l: LoadResult) => [
    label,
    fmtRps(medianRps(l)),
    fmtUs(l.latency.median),
    fmtUs(l.latency.p90),
    fmtUs(l.latency.p99),
    fmtUs(l.latency.max),
    `${(100 * median(l.elu)).toFixed(0)}%`,
    `${(100 * median(l.cpuBusy)).toFixed(0)}%`,
    median(l.lockWaits).toFixed(1),
    list(l.rps, (x) => x.toFixed(0)),
  ];
  console.log(
    `Figure 2: ${r.requests} requests per series per round, ${r.concurrency} concurrent loops, ${a.rounds} rounds (order rotated) after a warm-up; ` +
      `${r.keys} entries read in a fixed random order. Latency percentiles over all rounds. ` +
      'main ELU: event-loop utilization of the thread serving the API and running the Postgres client; CPU busy: share of both cores in use; ' +
      'lock waits: mean Postgres backends waiting on a row lock (sampled every 5 ms; the pool has 10 connections).',
  );
  console.log(
    table(
      ['series', 'median rate', 'p50', 'p90', 'p99', 'max', 'main ELU', 'CPU busy', 'lock waits', 'req/s per round'],
      [
        row('read-entry GET /v1/entries/:key over HTTP', r.api),
        row('ceiling: bare hono route, constant JSON, over HTTP', r.framework),
        row('ceiling: Postgres point select (same pool)', r.database),
        row('diagnostic: read-entry via app.request (no HTTP)', r.apiInProcess),
        row("diagnostic: the route's DB calls (key, entry, hit)", r.dbCalls),
        row('diagnostic: key check + entry read, no hit recorded', r.dbReads),
        row('diagnostic: recordAccess (hit + counter) alone', r.recordAccess),
        row('diagnostic: recordAccess alone, 1 loop', r.recordAccessSerial),
      ],
    ),
  );
  console.log(`Per read-entry request: ${r.queriesPerRead.toFixed(1)} statements to Postgres (BEGIN/COMMIT included); presignGet alone ${fmtUs(r.presignUs)} per call.\n`);
  const api = medianRps(r.api);
  return [
    ['read-entry rate vs bare hono', fmtRps(api), fmtRps(medianRps(r.framework)), fmtRatio(api / medianRps(r.framework)), 'report', '-'],
    ['read-entry rate vs Postgres point select', fmtRps(api), fmtRps(medianRps(r.database)), fmtRatio(api / medianRps(r.database)), 'report', '-'],
    [
      'read-entry p50 / p99 vs bare hono',
      `${fmtUs(r.api.latency.median)} / ${fmtUs(r.api.latency.p99)}`,
      `${fmtUs(r.framework.latency.median)} / ${fmtUs(r.framework.latency.p99)}`,
      fmtRatio(r.api.latency.median / r.framework.latency.median),
      'report',
      '-',
    ],
    [
      'read-entry p50 / p99 vs point select',
      `${fmtUs(r.api.latency.median)} / ${fmtUs(r.api.latency.p99)}`,
      `${fmtUs(r.database.latency.median)} / ${fmtUs(r.database.latency.p99)}`,
      fmtRatio(r.api.latency.median / r.database.latency.median),
      'report',
      '-',
    ],
  ];
}

function printSweep(r: SweepResults): string[][] {
  console.log(
    'Figure 3: expired entries of one namespace (rows inserted 1,000 a statement, vacuumed before each step); entries/s = entries ÷ seconds.\n' +
      'Baseline: bare DELETEs of the same rows, 1,000 a statement by key range (same per-row triggers), plus the blob rows and a direct DeleteObjects in the blob case.',
  );
  console.log(
    table(
      ['case', 'entries', 'insert', 'sweep()', 'bare DELETEs', 'one DELETE, triggers off', 'sweep report'],
      r.cases.map((c) => [
        c.label,
        String(c.entries),
        `${c.insertSeconds.toFixed(2)} s`,
        `${c.sweepSeconds.toFixed(2)} s`,
        `${c.baselineSeconds.toFixed(2)} s`,
        `${c.noTriggerSeconds.toFixed(2)} s`,
        `expired ${c.report.expired}, objects ${c.report.objectsDeleted}`,
      ]),
    ),
  );
  if (r.scaling.length) {
    console.log('Diagnostic: one statement for all rows (triggers on); time per row should stay flat if a statement scales linearly.');
    console.log(
      table(
        ['rows in one statement', 'INSERT ... SELECT', 'µs per row', 'DELETE', 'µs per row'],
        r.scaling.map((x) => [
          String(x.rows),
          `${x.insertSeconds.toFixed(2)} s`,
          ((x.insertSeconds * 1e6) / x.rows).toFixed(0),
          `${x.deleteSeconds.toFixed(2)} s`,
          ((x.deleteSeconds * 1e6) / x.rows).toFixed(0),
        ]),
      ),
    );
  }
  console.log();
  return r.cases.map((c) => [
    `sweeper, ${c.entries} ${c.label}`,
    fmtRate(c.entries / c.sweepSeconds),
    fmtRate(c.entries / c.baselineSeconds),
    fmtRatio(c.baselineSeconds / c.sweepSeconds),
    'report',
    '-',
  ]);
}

function printLambda(l: LambdaResults): string[][] {
  const [spec] = l.variants as [VariantResult];
  console.log(
    `Figure 4: functions/src/lambda/api.ts bundled by esbuild with functions/build/bundle.ts's options (ESM, minified, node22, self-contained); the build took ${l.buildSeconds.toFixed(2)} s.`,
  );
  const shown = spec.top.slice(0, 12);
  const rest = spec.top.slice(12).reduce((s, x) => s + x.bytes, 0);
  console.log(
    table(
      ['shipped bundle, by input', 'bytes in bundle', 'share'],
      [
        ...shown.map((x) => [x.name, fmtBytes(x.bytes), `${((100 * x.bytes) / spec.bytes).toFixed(1)}%`]),
        ['(everything else)', fmtBytes(rest), `${((100 * rest) / spec.bytes).toFixed(1)}%`],
      ],
    ),
  );
  const empty = median(l.emptyImportMs);
  console.log(
    table(
      ['variant', 'bundle', 'beside it', 'import (median)', 'import + 1st request', 'import runs, ms'],
      [
        ...l.variants.map((v) => [
          v.label,
          fmtBytes(v.bytes),
          v.assetBytes ? `${fmtBytes(v.assetBytes)} .node` : '-',
          v.importError ? 'FAILS' : fmtMs(median(v.importMs)),
          v.importError ? '-' : fmtMs(median(v.firstRequestMs)),
          v.importError ? '-' : list(v.importMs, (x) => x.toFixed(0)),
        ]),
        ['baseline: an empty ES module', '-', '-', fmtMs(empty), '-', list(l.emptyImportMs, (x) => x.toFixed(1))],
      ],
    ),
  );
  for (const v of l.variants) if (v.importError) console.log(`Import of "${v.label}" fails: ${v.importError}`);
  for (const v of l.variants.slice(1)) console.log(`${v.label}: imports from node_modules ${v.externalUsed.join(', ') || 'nothing'}.`);
  if (spec.bytes > TARGET.bundleBytes) {
    const top = spec.top.slice(0, 3).map((x) => `${x.name} ${fmtBytes(x.bytes)}`);
    console.log(`The bundle exceeds ${fmtBytes(TARGET.bundleBytes)}; largest inputs: ${top.join(', ')}.`);
  }
  console.log();
  const rows = [
    [
      'Lambda bundle size, as shipped',
      fmtBytes(spec.bytes),
      fmtBytes(TARGET.bundleBytes),
      fmtRatio(spec.bytes / TARGET.bundleBytes),
      `< ${fmtBytes(TARGET.bundleBytes)}`,
      status(spec.bytes < TARGET.bundleBytes),
    ],
  ];
  const importRow = (label: string, v: VariantResult) =>
    v.importError
      ? [label, 'FAILS', `${fmtMs(empty)} (empty)`, '-', `< ${TARGET.importMs} ms`, 'MISS']
      : [
          label,
          fmtMs(median(v.importMs)),
          `${fmtMs(empty)} (empty)`,
          fmtRatio(median(v.importMs) / empty),
          `< ${TARGET.importMs} ms`,
          status(median(v.importMs) < TARGET.importMs),
        ];
  rows.push(importRow('Lambda import, as shipped', spec));
  return rows;
}

async function serveApp(app: ReturnType<typeof createApp>): Promise<{ base: string; close: () => void }> {
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
  await new Promise((r) => server.once('listening', r));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const cpu = cpus();
  console.log(`cacheness cloud API benchmark, ${new Date().toISOString()}`);
  console.log(revision());
  console.log(`node ${process.version}, ${process.platform}/${process.arch}, ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${fmtMiB(totalmem())} RAM`);

  const cleanup: (() => Promise<void> | void)[] = [];
  const rows: string[][] = [];
  try {
    const s3proc = await startS3Process();
    cleanup.push(() => s3proc.stop());
    const s3: S3Client = createS3Client({ endpoint: s3proc.endpoint, credentials: S3_CREDENTIALS });
    cleanup.push(() => s3.destroy());
    const pg: PostgresHarness = await startPostgres();
    cleanup.push(() => pg.stop());
    const url = lastServerUrl();
    const [info] = await pg.sql`SELECT version() AS version, current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sync`;
    const where = process.env.DATABASE_URL ? 'DATABASE_URL' : 'private cluster';
    console.log(`S3 stand-in: @20minutes/s3rver at ${s3proc.endpoint} (own process, files in the OS temp dir)`);
    console.log(
      `Postgres: ${String(info?.version).split(' on ')[0]} at ${new URL(url).host} (${where}), fsync ${info?.fsync}, synchronous_commit ${info?.sync}; pool of 10; schema ${pg.schema}\n`,
    );

    if (a.mib > 0) {
      const partBytes = a.partMib * 1024 ** 2;
      const app = createApp({ sql: pg.sql, s3, bucket: s3proc.bucket, singlePutMaxBytes: partBytes, preferredPartBytes: partBytes, rateLimit: false });
      const server = await serveApp(app);
      try {
        const { key } = await createApiKey(pg.sql, { namespace: 'bench-transfer', scopes: ['read', 'write'] });
        const payload = randomBytesOf(a.mib * 1024 ** 2);
        const t = await runTransfer({ base: server.base, apiKey: key, s3, bucket: s3proc.bucket, payload, rounds: a.rounds, partBytes, concurrency: 4 });
        rows.push(...printTransfer(t, a));
      } finally {
        server.close();
      }
    }

    if (a.requests > 0) {
      const r = await runRead({ sql: pg.sql, url, schema: pg.schema, s3, bucket: s3proc.bucket, requests: a.requests, concurrency: a.concurrency, rounds: a.rounds, keys: a.keys });
      rows.push(...printRead(r, a));
    }

    if (a.entries > 0) {
      rows.push(...printSweep(await runSweep({ sql: pg.sql, s3, bucket: s3proc.bucket, entries: a.entries, blobs: a.blobs })));
    }

    if (a.imports > 0) {
      // The handler is configured from its environment; only GET /v1/health is invoked (no database or S3 traffic).
      const l = await runLambda({ imports: a.imports, env: { DATABASE_URL: url, BUCKET: s3proc.bucket, S3_ENDPOINT: s3proc.endpoint, AWS_REGION: 'us-east-1' } });
      rows.push(...printLambda(l));
    }

    if (rows.length) {
      console.log(
        'Summary (throughput ratio = API ÷ baseline, higher is better; latency and time ratios = API ÷ baseline, lower is better; sweeper ratio = sweep rate ÷ bare DELETE rate)',
      );
      console.log(table(['figure', 'cacheness', 'baseline', 'ratio', 'target', 'status'], rows));
    }
    console.log(`Peak RSS of this process: ${fmtMiB(process.resourceUsage().maxRSS * 1024)}`);
  } finally {
    for (const f of cleanup.reverse()) await f();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});

/**
 * cacheness benchmark: local mode, one process. Prints every figure beside a baseline measured in
 * the same run (bare better-sqlite3 for small values, raw fs for large ones), the ratio, the target
 * and PASS/MISS, plus peak RSS. A report: the exit code is 0 whatever PASS/MISS says, non-zero only
 * when something throws or a value reads back different.
 *
 *   npm run bench                                   # 20 000 small values, 256 MiB large values, 1 GiB arrays
 *   npx tsx bench/run.ts --small 2000 --large-mib 32 --array-mib 32  # quick smoke run
 *   npx tsx bench/run.ts --small 0 --large-mib 0    # typed arrays only
 *
 * See docs/benchmarks.md for the method and the numbers.
 * @module
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { type ArrayResults, runArrays } from './arrays.js';
import { type LargeCase, type LargeResults, runLarge } from './large.js';
import { type PutGetSeries, runSmall, type SmallResults } from './small.js';
import { fmtMBs, fmtMiB, fmtRatio, fmtUs, type LatencySummary, table } from './stats.js';

/** Targets from the issue: 2× diskcache 5.4 on this machine for small values, 0.8× raw fs for large ones. */
const TARGET = { getUs: 6, putUs: 35, largeVsFs: 0.8 } as const;
/** diskcache 5.4 (Python) on the same 2-core machine, as quoted in the issue: a reference, not measured here. */
const DISKCACHE = { setUs: 74, getUs: 12.4, putMBs: 640, getMBs: 363 } as const;

interface Args {
  small: number;
  largeMib: number;
  rounds: number;
  arrayMib: number;
  arrayRounds: number;
}

const USAGE = `Usage: tsx bench/run.ts [--small N] [--large-mib N] [--rounds N] [--array-mib N] [--array-rounds N]
  --small N         small values to put and get (default 20000; 0 skips)
  --large-mib N     size of each large value in MiB (default 256; 0 skips)
  --rounds N        timed rounds of each large case, after one warm-up round (default 5)
  --array-mib N     size of each Float32Array in MiB (default 1024; 0 skips)
  --array-rounds N  timed rounds of the codec-none array case, after one warm-up round (default 3)`;

function parseArgs(argv: string[]): Args {
  const args: Args = { small: 20_000, largeMib: 256, rounds: 5, arrayMib: 1024, arrayRounds: 3 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string;
    if (flag === '--help' || flag === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    const [name, inline] = flag.split('=', 2) as [string, string | undefined];
    const raw = inline ?? argv[++i];
    const n = Number(raw);
    const bad = (what: string) => new Error(`${name} needs ${what}; got ${JSON.stringify(raw)}.\n${USAGE}`);
    switch (name) {
      case '--small':
        if (!Number.isInteger(n) || n < 0) throw bad('a non-negative integer');
        args.small = n;
        break;
      case '--large-mib':
        if (!Number.isFinite(n) || n < 0 || (n > 0 && n * 1024 ** 2 < 4096)) throw bad('0 or a number of MiB of at least 4 KiB');
        args.largeMib = n;
        break;
      case '--rounds':
        if (!Number.isInteger(n) || n < 1) throw bad('a positive integer');
        args.rounds = n;
        break;
      case '--array-mib':
        if (!Number.isFinite(n) || n < 0 || (n > 0 && n * 1024 ** 2 < 1024 ** 2)) throw bad('0 or a number of MiB of at least 1');
        args.arrayMib = n;
        break;
      case '--array-rounds':
        if (!Number.isInteger(n) || n < 1) throw bad('a positive integer');
        args.arrayRounds = n;
        break;
      default:
        throw new Error(`Unknown argument ${JSON.stringify(flag)}.\n${USAGE}`);
    }
  }
  return args;
}

const peakRss = () => process.resourceUsage().maxRSS * 1024;
const status = (pass: boolean) => (pass ? 'PASS' : 'MISS');

function latencyRows(s: SmallResults): string[][] {
  const row = (label: string, l: LatencySummary) => [label, fmtUs(l.median), fmtUs(l.p90), fmtUs(l.p99), fmtUs(l.mean), fmtUs(l.max)];
  const both = (p: PutGetSeries, put: string, get: string) => [
    row(`${p.label}: ${put}`, p.put),
    row(`${p.label}: ${get}`, p.get),
    ...(p.coldGet ? [row(`${p.label}: get, other connection`, p.coldGet)] : []),
  ];
  return [...both(s.baseline, 'insert', 'select'), ...both(s.params, 'put', 'get'), ...both(s.strings, 'put', 'get')];
}

function smallSummaryRows(s: SmallResults): string[][] {
  const rows: string[][] = [];
  for (const [op, target] of [
    ['get', TARGET.getUs],
    ['put', TARGET.putUs],
  ] as const) {
    for (const series of [s.params, s.strings]) {
      const mine = series[op].median;
      const base = op === 'get' ? s.baseline.get.median : s.baseline.put.median;
      const keyKind = series === s.params ? 'key params' : 'string key';
      rows.push([`small ${op} median, ${keyKind}`, fmtUs(mine), fmtUs(base), fmtRatio(mine / base), `≤ ${target} µs`, status(mine <= target)]);
    }
  }
  for (const series of [s.params, s.strings]) {
    if (!series.coldGet) continue;
    const keyKind = series === s.params ? 'key params' : 'string key';
    rows.push([
      `small get median, ${keyKind}, cold`,
      fmtUs(series.coldGet.median),
      fmtUs(s.baseline.get.median),
      fmtRatio(series.coldGet.median / s.baseline.get.median),
      'report',
      '-',
    ]);
  }
  return rows;
}

function largeSummaryRows(c: LargeCase, mib: string, checked: boolean): string[][] {
  const rows: string[][] = [];
  for (const [op, mine, base] of [
    ['put', c.put, c.fsWrite],
    ['get', c.get, c.fsRead],
  ] as const) {
    for (const which of ['median', 'best'] as const) {
      const ratio = mine[which] / base[which];
      rows.push([
        `${mib} ${c.label} ${op}, ${which}`,
        fmtMBs(mine[which]),
        fmtMBs(base[which]),
        fmtRatio(ratio),
        checked ? `≥ ${TARGET.largeVsFs}× fs` : 'report',
        checked ? status(ratio >= TARGET.largeVsFs) : '-',
      ]);
    }
  }
  return rows;
}

function largeDetailRows(l: LargeResults): string[][] {
  const rows: string[][] = [];
  for (const c of [l.random, l.signal]) {
    const r = (label: string, t: { rounds: number[] }) => [`${c.label}: ${label}`, t.rounds.map((x) => x.toFixed(0)).join(', ')];
    rows.push(r('cacheness put', c.put), r('fs.writeFile', c.fsWrite), r('cacheness get', c.get), r('fs.readFile', c.fsRead));
  }
  return rows;
}

const pct = (part: number, whole: number) => `${((100 * part) / whole).toFixed(1)}%`;

function arraySummaryRows(a: ArrayResults, mib: string): string[][] {
  const rows: string[][] = [];
  for (const [op, mine, base] of [
    ['put', a.none.put, a.none.fsWrite],
    ['get', a.none.get, a.none.fsRead],
  ] as const) {
    for (const which of ['median', 'best'] as const) {
      const ratio = mine[which] / base[which];
      rows.push([
        `${mib} Float32Array ${op}, codec none, ${which}`,
        fmtMBs(mine[which]),
        fmtMBs(base[which]),
        fmtRatio(ratio),
        `≥ ${TARGET.largeVsFs}× fs`,
        status(ratio >= TARGET.largeVsFs),
      ]);
    }
  }
  return rows;
}

function printArrays(a: ArrayResults): void {
  const n = a.none;
  const r = (label: string, t: { rounds: number[] }) => [label, t.rounds.map((x) => x.toFixed(0)).join(', ')];
  console.log(`Typed arrays: ${fmtMiB(a.bytes)} Float32Array, MB/s (1 MB = 10^6 bytes).`);
  console.log(`Codec none, smooth signal, ${a.rounds} rounds (+1 warm-up), interleaved with raw fs of the same element bytes:`);
  console.log(table(['round throughput', 'MB/s per round'], [r('cacheness put', n.put), r('fs.writeFile', n.fsWrite), r('cacheness get', n.get), r('fs.readFile', n.fsRead)]));
  console.log();
  console.log('Byte shuffle alone (4-byte elements, preallocated buffers), against a plain copy of the same bytes:');
  console.log(
    table(
      ['dataset', 'shuffle', 'unshuffle', 'copy (baseline)', 'shuffle ÷ copy', 'unshuffle ÷ copy'],
      a.datasets.map((d) => [
        `${d.label} (${fmtMiB(d.bytes)})`,
        fmtMBs(d.shuffle.shuffle),
        fmtMBs(d.shuffle.unshuffle),
        fmtMBs(d.shuffle.copy),
        fmtRatio(d.shuffle.shuffle / d.shuffle.copy),
        fmtRatio(d.shuffle.unshuffle / d.shuffle.copy),
      ]),
    ),
  );
  console.log();
  console.log('SDK codecs (maybeCompress / decompress) on the raw element bytes and on the shuffled bytes; stored size as % of the raw size:');
  const codecRows: string[][] = [];
  for (const d of a.datasets) {
    for (const codec of ['lz4', 'zstd'] as const) {
      const raw = d.codecs.find((c) => c.codec === codec && c.layout === 'raw');
      const sh = d.codecs.find((c) => c.codec === codec && c.layout === 'shuffled');
      if (!raw || !sh) continue;
      codecRows.push([
        `${d.label}, ${codec}`,
        pct(raw.storedBytes, d.bytes),
        pct(sh.storedBytes, d.bytes),
        fmtRatio(sh.storedBytes / raw.storedBytes),
        fmtMBs(raw.compress),
        fmtMBs(sh.compress),
        fmtMBs(raw.decompress),
        fmtMBs(sh.decompress),
      ]);
    }
  }
  console.log(table(['dataset, codec', 'size raw', 'size shuffled', 'shuffled ÷ raw', 'compress raw', 'compress shuffled', 'decompress raw', 'decompress shuffled'], codecRows));
  console.log();
  console.log(
    'Cache put/get with the codec and default settings: the array (ndarray handler, shuffled) and a Buffer of its bytes (bytes handler, not shuffled); ' +
      'ratios against the median fs.writeFile / readFile of the codec-none rounds:',
  );
  const cacheRows: string[][] = [];
  for (const d of a.datasets) {
    for (const c of d.cache) {
      cacheRows.push([
        `${d.label}, ${c.codec}${c.workers ? ` (${c.workers} workers)` : ''}, ${c.handler === 'ndarray' ? `${d.valueKind} (shuffled)` : 'Buffer (not shuffled)'}`,
        `${pct(c.storedBytes, d.bytes)} (${c.storedCodec})`,
        fmtMBs(c.put),
        fmtMBs(c.get),
        fmtRatio(c.put / n.fsWrite.median),
        fmtRatio(c.get / n.fsRead.median),
      ]);
    }
  }
  console.log(table(['dataset, codec, value', 'stored (codec)', 'put', 'get', 'put ÷ fs write', 'get ÷ fs read'], cacheRows));
  console.log(`Peak RSS: ${a.rss.map((x) => `${x.label} ${fmtMiB(x.bytes)}`).join(', ')}.`);
  console.log();
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const root = mkdtempSync(join(tmpdir(), 'cacheness-bench-'));
  const cpu = cpus();
  console.log(`cacheness benchmark, ${new Date().toISOString()}`);
  console.log(`node ${process.version}, ${process.platform}/${process.arch}, ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${fmtMiB(totalmem())} RAM`);
  console.log(
    `temp dir ${root}; small values: ${args.small}; large values: ${args.largeMib} MiB × ${args.rounds} rounds (+1 warm-up round); ` +
      `typed arrays: ${args.arrayMib} MiB, codec none × ${args.arrayRounds} rounds (+1 warm-up round)\n`,
  );
  try {
    let small: SmallResults | undefined;
    let rssAfterSmall = 0;
    if (args.small > 0) {
      small = await runSmall(root, args.small);
      rssAfterSmall = peakRss();
      console.log(
        `Small values: ${small.n} puts (new keys) then ${small.n} gets (hits, shuffled order), after ${small.warmup} warm-up puts and gets; ` +
          `value ~${small.jsonBytes.toFixed(0)} B as JSON, ${small.storedBytes.toFixed(0)} B serialized; timer overhead ${fmtUs(small.timerOverheadUs)} per sample.`,
      );
      console.log(table(['per-op latency', 'median', 'p90', 'p99', 'mean', 'max'], latencyRows(small)));
      console.log();
    }

    let large: LargeResults | undefined;
    if (args.largeMib > 0) {
      large = await runLarge(root, args.largeMib, args.rounds);
      console.log(`Large values: ${fmtMiB(large.bytes)}, MB/s per round (1 MB = 10^6 bytes), interleaved with raw fs in the same directory.`);
      console.log(table(['round throughput', 'MB/s per round'], largeDetailRows(large)));
      const s = large.signal;
      console.log(
        `Compressible signal: stored ${fmtMiB(s.storedSize)} of ${fmtMiB(s.bytes)} (${((100 * s.storedSize) / s.bytes).toFixed(1)}%, codec ${s.codec}); random bytes stored with codec ${large.random.codec}.`,
      );
      console.log();
    }

    let arrays: ArrayResults | undefined;
    if (args.arrayMib > 0) {
      arrays = await runArrays(root, args.arrayMib, args.arrayRounds, (line) => console.error(`  [${new Date().toISOString().slice(11, 19)}] ${line}`));
      printArrays(arrays);
    }

    const mib = `${args.largeMib} MiB`;
    const rows = [
      ...(small ? smallSummaryRows(small) : []),
      ...(large ? [...largeSummaryRows(large.random, mib, true), ...largeSummaryRows(large.signal, mib, false)] : []),
      ...(arrays ? arraySummaryRows(arrays, `${args.arrayMib} MiB`) : []),
    ];
    if (rows.length) {
      console.log('Summary (latency ratio = cacheness ÷ baseline time, lower is better; throughput ratio = cacheness ÷ baseline speed, higher is better)');
      console.log(table(['figure', 'cacheness', 'baseline', 'ratio', 'target', 'status'], rows));
      console.log(
        `Baselines: better-sqlite3 bare insert/select (small), fs.promises.writeFile/readFile (large, typed arrays). ` +
          `Reference (issue, not measured here): diskcache 5.4 set ${DISKCACHE.setUs} µs, get ${DISKCACHE.getUs} µs, 256 MiB put ${DISKCACHE.putMBs} MB/s, get ${DISKCACHE.getMBs} MB/s.`,
      );
    }
    console.log(`Peak RSS: ${fmtMiB(peakRss())}${small ? ` (after small values: ${fmtMiB(rssAfterSmall)})` : ''}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});

/**
 * Directory hashing for `dir()` / `file()` content keys (issue 5): `hashDir` of N files of M MiB,
 * sequential (main thread: async reads, two files in flight) and parallel (worker pool), against an
 * `xxhsum`-style baseline measured in the same run: one thread that lists the same files and, for
 * each, reads it whole (`readFileSync`) and hashes it with XXH3-128 (`xxhash-addon` directly, no
 * cacheness code).
 * Then the warm memo (nothing changed: the walk and one stat per file, no reads), and one big file.
 *
 * "Cold-ish": each cold round starts with an empty memo, but the files stay in the page cache (they
 * were just written, and dropping the cache needs root), so these are hashing + syscall figures,
 * not disk figures. Every round checks that the baseline's per-file digests give the same
 * directory digest as cacheness. A report: the exit code is 0 whatever the ratios are.
 *
 *   npm run bench:dirhash                       # 1,000 files of 1 MiB, a 1 GiB file, 5 rounds
 *   npx tsx bench/dirhash.ts --files 200 --big-mib 64 --rounds 2   # quick smoke run
 *
 * Results: docs/benchmarks.md, "Directory hashing (issue 5)".
 * @module
 */
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import xxhashAddon from 'xxhash-addon';
import { clearFileHashMemo, fileHashStats, hashDir, hashFile } from '../sdk/src/index.js';
import { fmtMBs, fmtMiB, fmtRatio, median, parseIntFlags, table } from './stats.js';

const { XXHash128 } = xxhashAddon;

type Args = {
  files: number;
  fileKib: number;
  bigMib: number;
  rounds: number;
};
const DEFAULTS: Args = { files: 1000, fileKib: 1024, bigMib: 1024, rounds: 5 };

const USAGE = `Usage: npm run bench:dirhash -- [flags]     (or: npx tsx bench/dirhash.ts [flags])
  --files N     files in the directory (default ${DEFAULTS.files}; 0 skips the directory figures)
  --file-kib N  size of each file in KiB (default ${DEFAULTS.fileKib})
  --big-mib N   size of the single big file in MiB (default ${DEFAULTS.bigMib}; 0 skips it)
  --rounds N    timed rounds, after one untimed warm-up round (default ${DEFAULTS.rounds})`;

function parseArgs(argv: string[]): Args {
  const flags = { '--files': 'files', '--file-kib': 'fileKib', '--big-mib': 'bigMib', '--rounds': 'rounds' } as const;
  return parseIntFlags(argv, DEFAULTS, flags, ['rounds', 'fileKib'], USAGE);
}

/** One measured run: seconds, and the longest event-loop stall seen meanwhile (ms). */
interface Sample {
  seconds: number;
  stallMs: number;
}

async function measure<T>(fn: () => Promise<T> | T): Promise<{ value: T; sample: Sample }> {
  // A 1 ms interval notes the longest gap between its ticks: how long the event loop could not run anything.
  let last = performance.now();
  let longest = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  const t0 = process.hrtime.bigint();
  const value = await fn();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await new Promise((r) => setTimeout(r, 5)); // lets the interval see a stall that ended with fn
  clearInterval(tick);
  return { value, sample: { seconds, stallMs: Math.max(0, longest - 1) } };
}

/** The xxhsum-style baseline: list the files, read each whole, XXH3-128 it; one thread, synchronous. */
function baselineDigests(root: string): { rel: string; size: number; digest: Buffer }[] {
  const out: { rel: string; size: number; digest: Buffer }[] = [];
  const visit = (abs: string, rel: string) => {
    for (const e of readdirSync(abs, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) visit(join(abs, e.name), r);
      else if (e.isFile()) {
        const bytes = readFileSync(join(abs, e.name));
        out.push({ rel: r, size: bytes.length, digest: XXHash128.hash(bytes) });
      }
    }
  };
  visit(root, '');
  return out;
}

/** The directory digest (docs/key-format.md, format 2) rebuilt from the baseline's per-file digests. */
function manifestDigest(files: { rel: string; size: number; digest: Buffer }[]): string {
  const sorted = [...files].sort((a, b) => Buffer.compare(Buffer.from(a.rel), Buffer.from(b.rel)));
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  parts.push(u32(sorted.length));
  for (const f of sorted) {
    const rel = Buffer.from(f.rel);
    const size = Buffer.alloc(8);
    size.writeDoubleBE(f.size);
    parts.push(u32(rel.length), rel, size, f.digest);
  }
  return XXHash128.hash(Buffer.concat(parts)).toString('hex');
}

/** Streaming xxhsum of one file: 8 MiB reads into one buffer, one thread, synchronous. */
function baselineBigFile(path: string): string {
  const h = new XXHash128(Buffer.alloc(8));
  const buf = Buffer.allocUnsafe(8 * 1024 * 1024);
  const fd = openSync(path, 'r');
  try {
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) h.update(n === buf.length ? buf : buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest().toString('hex');
}

function randomFile(path: string, bytes: number, mtime: Date): void {
  const buf = Buffer.allocUnsafe(bytes);
  for (let off = 0; off < bytes; off += 1 << 30) randomFillSync(buf, off, Math.min(1 << 30, bytes - off));
  writeFileSync(path, buf);
  utimesSync(path, mtime, mtime); // older than the memo's 2-second "racily clean" window
}

/** One figure: `run` returns the digest it computed; `before` and `after` run untimed around it. */
interface Step {
  label: string;
  run: () => Promise<string> | string;
  before?: () => void;
  after?: () => void;
}

/**
 * Runs the steps in turn, one untimed warm-up round and then `rounds` timed ones. Every step's digest
 * must equal the first step's (the baseline). Returns the table rows: time, throughput over `bytes`,
 * ratio to the baseline's median, and the longest event-loop stall.
 */
async function compare(rounds: number, bytes: number, steps: Step[]): Promise<string[][]> {
  const samples = steps.map(() => [] as Sample[]);
  for (let round = 0; round <= rounds; round++) {
    let expected: string | undefined;
    for (const [i, step] of steps.entries()) {
      step.before?.();
      const { value, sample } = await measure(step.run);
      step.after?.();
      expected ??= value;
      if (value !== expected) throw new Error(`${step.label}: digest ${value} differs from the baseline's ${expected}`);
      if (round > 0) samples[i]?.push(sample);
    }
  }
  const mbs = (s: Sample[]) => s.map((x) => bytes / 1e6 / x.seconds);
  const baseline = median(mbs(samples[0] as Sample[]));
  return steps.map((step, i) => {
    const s = samples[i] as Sample[];
    const ms = median(s.map((x) => x.seconds * 1000));
    const med = median(mbs(s));
    return [
      step.label,
      `${ms.toFixed(ms < 10 ? 2 : 0)} ms`,
      fmtMBs(med),
      fmtMBs(Math.max(...mbs(s))),
      fmtRatio(med / baseline),
      `${Math.max(...s.map((x) => x.stallMs)).toFixed(1)} ms`,
    ];
  });
}

/** Throws unless file hashing read `bytes` in total since the memo was last cleared, on workers or not. */
function expectRead(bytes: number, onWorkers?: boolean): () => void {
  return () => {
    const st = fileHashStats();
    if (st.bytesHashed !== bytes) throw new Error(`expected ${bytes} bytes read in total, got ${st.bytesHashed}`);
    if (onWorkers !== undefined && st.workerTasks > 0 !== onWorkers) throw new Error(`expected the files to be hashed ${onWorkers ? 'on' : 'off'} the worker threads`);
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const root = mkdtempSync(join(tmpdir(), 'cacheness-dirhash-'));
  const cpu = cpus();
  console.log(`cacheness directory-hashing benchmark, ${new Date().toISOString()}`);
  console.log(
    `node ${process.version}, ${process.platform}/${process.arch}, ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${fmtMiB(totalmem())} RAM; ` +
      `worker pool of ${availableParallelism()} threads; temp dir ${root}`,
  );
  const old = new Date(Date.now() - 3_600_000);
  try {
    const header = ['figure', 'median time', 'median', 'best', 'ratio (median ÷ baseline)', 'longest event-loop stall'];
    if (args.files > 0) {
      const dir = join(root, 'tree');
      const fileBytes = args.fileKib * 1024;
      const total = args.files * fileBytes;
      const subdirs = Math.max(1, Math.ceil(args.files / 100));
      for (let d = 0; d < subdirs; d++) mkdirSync(join(dir, `d${String(d).padStart(2, '0')}`), { recursive: true });
      for (let i = 0; i < args.files; i++) randomFile(join(dir, `d${String(i % subdirs).padStart(2, '0')}`, `f${String(i).padStart(5, '0')}.bin`), fileBytes, old);
      console.log(
        `\nDirectory: ${args.files} files of ${fmtMiB(fileBytes)} in ${subdirs} subdirectories, ${fmtMiB(total)}; ${args.rounds} rounds after one warm-up round (which also starts the workers).`,
      );

      const rows = await compare(args.rounds, total, [
        { label: 'xxhsum-style baseline: readFileSync + XXH3-128, one thread', run: () => manifestDigest(baselineDigests(dir)) },
        {
          label: 'hashDir, sequential (main thread, async reads), empty memo',
          before: clearFileHashMemo,
          run: async () => (await hashDir(dir, { parallel: false })).xxh128,
          after: expectRead(total, false),
        },
        {
          label: `hashDir, parallel (${availableParallelism()} worker threads), empty memo`,
          before: clearFileHashMemo,
          run: async () => (await hashDir(dir, { parallel: true })).xxh128,
          after: expectRead(total, true),
        },
        { label: 'hashDir, warm memo (walk + stat, no reads)', run: async () => (await hashDir(dir)).xxh128, after: expectRead(total) },
      ]);
      console.log(table(header, rows));
      console.log('Throughput = directory bytes ÷ time (MB = 10^6 bytes); for the warm memo that is the rate at which unchanged bytes are skipped.');
    }

    if (args.bigMib > 0) {
      const big = join(root, 'big.bin');
      const bytes = args.bigMib * 1024 * 1024;
      randomFile(big, bytes, old);
      console.log(`\nOne file of ${fmtMiB(bytes)}: hashFile with an empty memo and with a warm one, against a streaming xxhsum-style loop (8 MiB readSync + XXH3-128 update).`);
      const rows = await compare(args.rounds, bytes, [
        { label: 'xxhsum-style baseline: 8 MiB readSync + streaming XXH3-128', run: () => baselineBigFile(big) },
        { label: 'hashFile, empty memo', before: clearFileHashMemo, run: async () => (await hashFile(big)).xxh128, after: expectRead(bytes) },
        { label: 'hashFile, warm memo (one stat)', run: async () => (await hashFile(big)).xxh128, after: expectRead(bytes) },
      ]);
      console.log(table(header, rows));
    }
    console.log(`Peak RSS: ${fmtMiB(process.resourceUsage().maxRSS * 1024)}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});

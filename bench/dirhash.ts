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
import { fmtMBs, fmtMiB, fmtRatio, median, table } from './stats.js';

const { XXHash128 } = xxhashAddon;

interface Args {
  files: number;
  fileKib: number;
  bigMib: number;
  rounds: number;
}
const DEFAULTS: Args = { files: 1000, fileKib: 1024, bigMib: 1024, rounds: 5 };

const USAGE = `Usage: npm run bench:dirhash -- [flags]     (or: npx tsx bench/dirhash.ts [flags])
  --files N     files in the directory (default ${DEFAULTS.files}; 0 skips the directory figures)
  --file-kib N  size of each file in KiB (default ${DEFAULTS.fileKib})
  --big-mib N   size of the single big file in MiB (default ${DEFAULTS.bigMib}; 0 skips it)
  --rounds N    timed rounds, after one untimed warm-up round (default ${DEFAULTS.rounds})`;

function parseArgs(argv: string[]): Args {
  const args = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string;
    if (flag === '--help' || flag === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    const [name, inline] = flag.split('=', 2) as [string, string | undefined];
    const raw = inline ?? argv[++i];
    const n = Number(raw);
    const field = ({ '--files': 'files', '--file-kib': 'fileKib', '--big-mib': 'bigMib', '--rounds': 'rounds' } as Record<string, keyof Args>)[name];
    if (!field) throw new Error(`Unknown argument ${JSON.stringify(flag)}.\n${USAGE}`);
    const positive = field === 'rounds' || field === 'fileKib';
    if (!Number.isInteger(n) || n < (positive ? 1 : 0)) throw new Error(`${name} needs a ${positive ? 'positive' : 'non-negative'} integer; got ${JSON.stringify(raw)}.\n${USAGE}`);
    args[field] = n;
  }
  return args;
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

interface Series {
  label: string;
  samples: Sample[];
}

function summarize(s: Series, bytes: number, base: Series | undefined): string[] {
  const mbs = s.samples.map((x) => bytes / 1e6 / x.seconds);
  const med = median(mbs);
  const ms = s.samples.map((x) => x.seconds * 1000);
  const ratio = base ? fmtRatio(med / median(base.samples.map((x) => bytes / 1e6 / x.seconds))) : '-';
  return [
    s.label,
    `${median(ms).toFixed(median(ms) < 10 ? 2 : 0)} ms`,
    fmtMBs(med),
    fmtMBs(Math.max(...mbs)),
    ratio,
    `${Math.max(...s.samples.map((x) => x.stallMs)).toFixed(1)} ms`,
  ];
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

      const series = {
        base: { label: 'xxhsum-style baseline: readFileSync + XXH3-128, one thread', samples: [] as Sample[] },
        seq: { label: 'hashDir, sequential (main thread, async reads), empty memo', samples: [] as Sample[] },
        par: { label: `hashDir, parallel (${availableParallelism()} worker threads), empty memo`, samples: [] as Sample[] },
        warm: { label: 'hashDir, warm memo (walk + stat, no reads)', samples: [] as Sample[] },
      };
      for (let round = 0; round <= args.rounds; round++) {
        const timed = round > 0;
        const base = await measure(() => manifestDigest(baselineDigests(dir)));
        clearFileHashMemo();
        const seq = await measure(() => hashDir(dir, { parallel: false }));
        if (fileHashStats().bytesHashed !== total || fileHashStats().workerTasks !== 0) throw new Error('sequential run did not read every byte on the main thread');
        clearFileHashMemo();
        const par = await measure(() => hashDir(dir, { parallel: true }));
        if (fileHashStats().bytesHashed !== total || fileHashStats().workerTasks === 0) throw new Error('parallel run did not read every byte on workers');
        const warm = await measure(() => hashDir(dir));
        if (fileHashStats().bytesHashed !== total) throw new Error('the warm run read files again');
        for (const [label, got] of [
          ['sequential', seq.value.xxh128],
          ['parallel', par.value.xxh128],
          ['warm', warm.value.xxh128],
        ]) {
          if (got !== base.value) throw new Error(`${label} digest ${got} differs from the baseline's ${base.value}`);
        }
        if (timed) {
          series.base.samples.push(base.sample);
          series.seq.samples.push(seq.sample);
          series.par.samples.push(par.sample);
          series.warm.samples.push(warm.sample);
        }
      }
      console.log(
        table(
          header,
          [series.base, series.seq, series.par, series.warm].map((s) => summarize(s, total, series.base)),
        ),
      );
      console.log('Throughput = directory bytes ÷ time (MB = 10^6 bytes); for the warm memo that is the rate at which unchanged bytes are skipped.');
    }

    if (args.bigMib > 0) {
      const big = join(root, 'big.bin');
      const bytes = args.bigMib * 1024 * 1024;
      randomFile(big, bytes, old);
      console.log(`\nOne file of ${fmtMiB(bytes)}: hashFile with an empty memo and with a warm one, against a streaming xxhsum-style loop (8 MiB readSync + XXH3-128 update).`);
      const series = {
        base: { label: 'xxhsum-style baseline: 8 MiB readSync + streaming XXH3-128', samples: [] as Sample[] },
        cold: { label: 'hashFile, empty memo', samples: [] as Sample[] },
        warm: { label: 'hashFile, warm memo (one stat)', samples: [] as Sample[] },
      };
      for (let round = 0; round <= args.rounds; round++) {
        const base = await measure(() => baselineBigFile(big));
        clearFileHashMemo();
        const cold = await measure(() => hashFile(big));
        const warm = await measure(() => hashFile(big));
        if (cold.value.xxh128 !== base.value || warm.value.xxh128 !== base.value) throw new Error('hashFile digest differs from the baseline');
        if (fileHashStats().bytesHashed !== bytes) throw new Error('the warm hashFile read the file again');
        if (round > 0) {
          series.base.samples.push(base.sample);
          series.cold.samples.push(cold.sample);
          series.warm.samples.push(warm.sample);
        }
      }
      console.log(
        table(
          header,
          [series.base, series.cold, series.warm].map((s) => summarize(s, bytes, series.base)),
        ),
      );
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

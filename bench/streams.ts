/**
 * Stream benchmark: a generated stream (default 5 GiB, lz4-compressible to about 39%) through
 * `put` → `getStream` → `getFile`, each run in a fresh process, against plain fs streams writing and
 * reading the same bytes in the same run. Reports throughput ratios and peak RSS (total and above the
 * process's baseline after warm-up). A report: the exit code is non-zero only when something throws
 * or a value reads back different.
 *
 *   npm run bench:streams                 # 5 GiB
 *   npx tsx bench/streams.ts --mib 512    # quick run
 * @module
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { DEFAULT_CHUNK_SIZE } from '../sdk/src/chunked/format.js';
import { fmtRatio, parseIntFlags, table } from './stats.js';

/**
 * The child runs as plain JavaScript under plain node, so the RSS measured is the library's and
 * Node's, not a TypeScript loader's (tsx adds 15-35 MiB): the script is bundled with the SDK's
 * sources; packages with native or wasm parts stay external and load from node_modules.
 */
const OUT_DIR = fileURLToPath(new URL('./.build/', import.meta.url));
mkdirSync(OUT_DIR, { recursive: true });
const SCRIPT = join(OUT_DIR, 'stream-memory.mjs');
await build({
  entryPoints: [fileURLToPath(new URL('./stream-memory.ts', import.meta.url))],
  bundle: true,
  platform: 'node',
  format: 'esm',
  conditions: ['source'],
  external: ['better-sqlite3', 'xxhash-addon', '@node-rs/xxhash', 'lz4-wasm-nodejs', 'msgpackr', 'tar-stream', 'apache-arrow', 'nodejs-polars', 'zstd-napi', 'ndarray'],
  outfile: SCRIPT,
  logLevel: 'warning',
});
const USAGE = 'Usage: tsx bench/streams.ts [--mib N]   (stream size, default 5120)';
const { mib } = parseIntFlags(process.argv.slice(2), { mib: 5120 }, { '--mib': 'mib' }, ['mib'], USAGE);
/** Target from the issue: peak RSS of the whole process under 150 MiB for a 5 GiB stream. */
const RSS_TARGET_MIB = 150;

function run(args: string[]): Record<string, number | boolean | string> {
  const dir = mkdtempSync(join(tmpdir(), 'cacheness-bench-streams-'));
  try {
    const r = spawnSync(process.execPath, [SCRIPT, dir, String(mib), ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (r.status !== 0) throw new Error(`stream run ${args.join(' ')} failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').at(-1) as string);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const mbs = (ms: number) => (mib * 1.048576) / (ms / 1000);
console.log(`Streams: ${mib} MiB generated in 1 MiB pieces (5 patterns cycled), chunks of ${DEFAULT_CHUNK_SIZE / 1024 / 1024} MiB, lz4.`);
const fs = run(['--fs']);
const rows: string[][] = [];
for (const workers of [0, 2]) {
  const c = run(['--workers', String(workers)]);
  if (c.streamMatches !== true || c.fileMatches !== true) throw new Error(`workers ${workers}: read back different bytes`);
  rows.push([
    `cacheness, workers ${workers}`,
    `${((100 * (c.storedMiB as number)) / mib).toFixed(1)}%`,
    `${mbs(c.putMs as number).toFixed(0)} MB/s (${fmtRatio(mbs(c.putMs as number) / mbs(fs.fsWriteMs as number))})`,
    `${mbs(c.getStreamMs as number).toFixed(0)} MB/s (${fmtRatio(mbs(c.getStreamMs as number) / mbs(fs.fsReadMs as number))})`,
    `${mbs(c.getFileMs as number).toFixed(0)} MB/s`,
    `${(c.peakMiB as number).toFixed(0)} MiB (${(c.peakMiB as number) < RSS_TARGET_MIB ? 'PASS' : 'MISS'} < ${RSS_TARGET_MIB})`,
    `${(c.aboveBaselineMiB as number).toFixed(0)} MiB (put ${(c.putAboveMiB as number).toFixed(0)}, getStream ${(c.getStreamAboveMiB as number).toFixed(0)}, getFile ${(c.getFileAboveMiB as number).toFixed(0)})`,
  ]);
}
rows.push([
  'fs streams (baseline)',
  '100%',
  `${mbs(fs.fsWriteMs as number).toFixed(0)} MB/s`,
  `${mbs(fs.fsReadMs as number).toFixed(0)} MB/s`,
  '',
  `${(fs.peakMiB as number).toFixed(0)} MiB`,
  '',
]);
console.log(table(['run', 'stored', 'put (÷ fs write)', 'getStream (÷ fs read)', 'getFile', 'peak RSS', 'above baseline'], rows));

/**
 * Latency statistics, table formatting and flag parsing for the benchmarks.
 * @module
 */

/** Summary of per-operation latencies, in microseconds. */
export interface LatencySummary {
  n: number;
  median: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
}

/** Nearest-rank percentile of sorted samples (`q` in 0..1). */
function percentile(sorted: Float64Array, q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

/** Median, p90, p99, mean and max of per-op latencies (µs). */
export function summarize(samplesUs: Float64Array): LatencySummary {
  if (samplesUs.length === 0) throw new Error('summarize: no samples');
  const sorted = Float64Array.from(samplesUs).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    n: sorted.length,
    median: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    mean: sum / sorted.length,
    max: sorted[sorted.length - 1] as number,
  };
}

/** Median of a few numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Microseconds elapsed since `t0` (a `process.hrtime.bigint()` reading). */
export function usSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1000;
}

export function fmtUs(us: number): string {
  return `${us < 10 ? us.toFixed(2) : us < 100 ? us.toFixed(1) : us.toFixed(0)} µs`;
}

export function fmtMBs(mbPerS: number): string {
  return `${mbPerS.toFixed(0)} MB/s`;
}

export function fmtRatio(r: number): string {
  return `${r.toFixed(2)}×`;
}

export function fmtMiB(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

/** Renders rows as a plain-text table with a header rule (first column left-aligned, the rest right-aligned). */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (c === 0 ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/**
 * Parses `--name N` / `--name=N` integer flags into a copy of `defaults`, by the flag names of
 * `flags` (flag → field); `--help` prints `usage` and exits. Fields listed in `positive` must be ≥ 1,
 * the others ≥ 0.
 */
export function parseIntFlags<T extends Record<string, number>>(argv: string[], defaults: T, flags: Record<string, keyof T>, positive: (keyof T)[], usage: string): T {
  const args = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string;
    if (flag === '--help' || flag === '-h') {
      console.log(usage);
      process.exit(0);
    }
    const [name, inline] = flag.split('=', 2) as [string, string | undefined];
    const raw = inline ?? argv[++i];
    const n = Number(raw);
    const field = flags[name];
    if (!field) throw new Error(`Unknown argument ${JSON.stringify(flag)}.\n${usage}`);
    const min = positive.includes(field) ? 1 : 0;
    if (!Number.isInteger(n) || n < min) throw new Error(`${name} needs ${min ? 'a positive' : 'a non-negative'} integer; got ${JSON.stringify(raw)}.\n${usage}`);
    args[field] = n as T[keyof T];
  }
  return args;
}

/**
 * Compression codecs. lz4 (via lz4-wasm-nodejs) is the default; zstd needs the optional peer
 * dependency `zstd-napi`. The codec is recorded per entry, so changing settings never breaks
 * reading old entries.
 * @module
 */
import { createRequire } from 'node:module';
import * as lz4 from 'lz4-wasm-nodejs';
import { CodecError } from './errors.js';

/** Codec names as recorded in entries. */
export type CodecName = 'none' | 'lz4' | 'zstd';

/** Compression settings (`createCache({ compression })`). */
export interface CompressionOptions {
  /** Codec for new entries. Default `'lz4'`. */
  codec?: CodecName;
  /** Codec level (zstd: 1-22, default 3; ignored by lz4). */
  level?: number;
  /** Payloads smaller than this many bytes are stored raw. Default 4096. */
  threshold?: number;
  /** Keep compressed bytes only when they are at most this fraction of the original. Default 0.9. */
  minRatio?: number;
}

interface Codec {
  compress(data: Uint8Array, level: number | undefined): Uint8Array;
  decompress(data: Uint8Array, size: number): Uint8Array;
}

const require = createRequire(import.meta.url);
let zstdLib: { compress(b: Uint8Array, o?: { compressionLevel?: number }): Buffer; decompress(b: Uint8Array): Buffer } | undefined;
function zstd() {
  if (!zstdLib) {
    try {
      zstdLib = require('zstd-napi');
    } catch (cause) {
      throw new CodecError('ECODEC', "The zstd codec needs the optional package 'zstd-napi': run `npm install zstd-napi`, or use compression: { codec: 'lz4' }.", { cause });
    }
  }
  return zstdLib as NonNullable<typeof zstdLib>;
}

const codecs: Record<CodecName, Codec> = {
  none: { compress: (d) => d, decompress: (d) => d },
  lz4: {
    compress: (d) => lz4.compress(d),
    decompress: (d) => lz4.decompress(d),
  },
  zstd: {
    compress: (d, level) => zstd().compress(d, { compressionLevel: level ?? 3 }),
    decompress: (d) => zstd().decompress(d),
  },
};

/** Validates compression options and fills defaults. */
export function resolveCompression(opts: CompressionOptions | undefined): Required<Omit<CompressionOptions, 'level'>> & { level: number | undefined } {
  const codec = opts?.codec ?? 'lz4';
  if (!(codec in codecs)) throw new CodecError('ECODEC', `Unknown compression codec ${JSON.stringify(codec)}: use 'lz4', 'zstd' or 'none'.`);
  if (codec === 'zstd') zstd(); // fail at createCache, not at the first large put
  return { codec, level: opts?.level, threshold: opts?.threshold ?? 4096, minRatio: opts?.minRatio ?? 0.9 };
}

const SAMPLE = 64 * 1024;
/** Slices the probe takes, spread evenly over the payload. */
const PROBE_SLICES = 8;

/**
 * Compresses `data` when that pays: payloads under the threshold, and payloads whose sample does not
 * shrink below `minRatio`, are returned raw with codec `'none'`.
 */
export function maybeCompress(data: Uint8Array, opts: ReturnType<typeof resolveCompression>): { codec: CodecName; bytes: Uint8Array } {
  if (opts.codec === 'none' || data.length < opts.threshold) return { codec: 'none', bytes: data };
  const codec = codecs[opts.codec];
  if (data.length > 4 * SAMPLE) {
    // Probe before compressing everything: incompressible data (already compressed files, random
    // bytes) is stored raw at full disk speed. The probe takes 8 slices spread evenly over the payload
    // (128 KiB in all), so that data whose halves differ, such as byte-shuffled arrays whose
    // compressible exponent bytes all sit in the last quarter, is judged on all of its parts.
    const slice = (2 * SAMPLE) / PROBE_SLICES;
    const step = Math.floor((data.length - slice) / (PROBE_SLICES - 1));
    const probe = Buffer.concat(Array.from({ length: PROBE_SLICES }, (_, i) => data.subarray(i * step, i * step + slice)));
    if (codec.compress(probe, opts.level).length > probe.length * opts.minRatio) return { codec: 'none', bytes: data };
  }
  const out = codec.compress(data, opts.level);
  if (out.length > data.length * opts.minRatio) return { codec: 'none', bytes: data };
  return { codec: opts.codec, bytes: out };
}

/** Reverses {@link maybeCompress}. */
export function decompress(codec: string, data: Uint8Array, size: number): Uint8Array {
  const c = codecs[codec as CodecName];
  if (!c) throw new CodecError('ECODEC', `This entry uses codec '${codec}', which this version of cacheness does not know. Upgrade cacheness.`);
  return c.decompress(data, size);
}

/**
 * Compression codecs. lz4 (via lz4-wasm-nodejs) is the default; zstd needs the optional peer
 * dependency `zstd-napi`. The codec is recorded per entry, so changing settings never breaks
 * reading old entries.
 * @module
 */
import { createRequire } from 'node:module';
import { CodecError } from './errors.js';
import { lz4Compress, lz4Decompress } from './lz4.js';

/** Codec names of compression: what chunks and whole payloads are compressed with. */
export type CodecName = 'none' | 'lz4' | 'zstd';
/**
 * What an entry records as its codec: a compression codec, or `'chunked'` for payloads stored as a
 * chunked container (independently compressed chunks, each with its codec and hash, plus an index;
 * see docs/storage.md).
 */
export type StoredCodec = CodecName | 'chunked';

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

/**
 * A codec. With `into`, the result is written into that memory and a view of it returned when it fits
 * (it may still come back in new memory: callers must not assume either); without, in new memory.
 */
interface Codec {
  compress(data: Uint8Array, level: number | undefined, into?: Uint8Array): Uint8Array;
  decompress(data: Uint8Array, size: number, into?: Uint8Array): Uint8Array;
}

const require = createRequire(import.meta.url);
interface ZstdLib {
  compress(b: Uint8Array, o?: { compressionLevel?: number }): Buffer;
  decompress(b: Uint8Array): Buffer;
  /** The package's binding: contexts that compress into caller memory. */
  binding: {
    CCtx: new () => { compress(dst: Uint8Array, src: Uint8Array, level: number): number };
    DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number };
    compressBound(n: number): number;
  };
}
/** One compression and one decompression context, reused (creating one per call costs MiBs of native memory). */
let zstdContexts: { c: InstanceType<ZstdLib['binding']['CCtx']>; d: InstanceType<ZstdLib['binding']['DCtx']> } | undefined;
function zstdContext() {
  const b = zstd().binding;
  zstdContexts ??= { c: new b.CCtx(), d: new b.DCtx() };
  return zstdContexts;
}
let zstdLib: ZstdLib | undefined;
function zstd(): ZstdLib {
  if (!zstdLib) {
    try {
      zstdLib = { ...require('zstd-napi'), binding: require('zstd-napi/binding') } as ZstdLib;
    } catch (cause) {
      throw new CodecError('ECODEC', "The zstd codec needs the optional package 'zstd-napi': run `npm install zstd-napi`, or use compression: { codec: 'lz4' }.", { cause });
    }
  }
  return zstdLib;
}

/** zstd's level when none is set. */
export const ZSTD_DEFAULT_LEVEL = 3;

const codecs: Record<CodecName, Codec> = {
  none: { compress: (d) => d, decompress: (d) => d },
  lz4: { compress: (d, _level, into) => lz4Compress(d, into), decompress: (d, size, into) => lz4Decompress(d, size, into) },
  zstd: {
    compress: (d, level, into) => {
      const z = zstd();
      if (!into || into.length < z.binding.compressBound(d.length)) return z.compress(d, { compressionLevel: level ?? ZSTD_DEFAULT_LEVEL });
      return into.subarray(0, zstdContext().c.compress(into, d, level ?? ZSTD_DEFAULT_LEVEL));
    },
    decompress: (d, size, into) => {
      const z = zstd();
      // A frame that holds more than `size` bytes fails here ("destination buffer too small"): it is damaged.
      return into && into.length >= size ? into.subarray(0, zstdContext().d.decompress(into.subarray(0, size), d)) : z.decompress(d);
    },
  },
};

/** Validates compression options and fills defaults. */
export function resolveCompression(opts: CompressionOptions | undefined): Required<Omit<CompressionOptions, 'level'>> & { level: number | undefined } {
  const codec = opts?.codec ?? 'lz4';
  if (!(codec in codecs)) throw new CodecError('ECODEC', `Unknown compression codec ${JSON.stringify(codec)}: use 'lz4', 'zstd' or 'none'.`);
  if (codec === 'zstd') zstd(); // fail at createCache, not at the first large put
  return { codec, level: opts?.level, threshold: opts?.threshold ?? 4096, minRatio: opts?.minRatio ?? 0.9 };
}

/**
 * Compresses `data` with `compress` when that pays, else returns null (store it raw). Payloads under
 * `threshold` are not tried. Those over 256 KiB are probed first: 8 slices spread evenly over the
 * payload, 1/32 of it in all (16-128 KiB), are compressed together, and if they do not shrink below `minRatio` the payload is judged
 * incompressible (already compressed files, random bytes) and kept at full disk speed. Spreading the
 * slices matters for data whose parts differ, such as byte-shuffled arrays whose compressible exponent
 * bytes all sit in the last quarter. With `probeOnly`, returns the probe's verdict (`data` itself, or
 * null) without compressing everything.
 *
 * Self-contained on purpose: compression workers run it from its source text (see
 * chunked/compress-pool.ts), so it must not refer to anything outside its own body.
 */
export function compressIfWorthIt(data: Uint8Array, compress: (d: Uint8Array) => Uint8Array, threshold: number, minRatio: number, probeOnly = false): Uint8Array | null {
  if (data.length < threshold) return null;
  if (data.length > 256 * 1024) {
    // 1/32 of the payload, from 16 to 128 KiB: on incompressible data (random, already compressed) the
    // probe is all the codec work, so it must stay a small part of the write.
    const probeSize = Math.min(128 * 1024, Math.max(16 * 1024, Math.floor(data.length / 32)));
    const slices = 8;
    const slice = Math.floor(probeSize / slices);
    const step = Math.floor((data.length - slice) / (slices - 1));
    const probe = new Uint8Array(slice * slices);
    for (let i = 0; i < slices; i++) probe.set(data.subarray(i * step, i * step + slice), i * slice);
    if (compress(probe).length > probe.length * minRatio) return null;
    if (probeOnly) return data;
  }
  const out = compress(data);
  if (out.length > data.length * minRatio) return null;
  return probeOnly ? data : out;
}

/** Resolved compression settings. */
export type ResolvedCompression = ReturnType<typeof resolveCompression>;

/**
 * The compress function of a codec at a level. With `into`, results are written into that memory when
 * they fit (each call overwrites the last one's), so a caller compressing one chunk at a time allocates
 * nothing per chunk.
 */
export function compressorOf(codec: CodecName, level: number | undefined, into?: Uint8Array): (d: Uint8Array) => Uint8Array {
  const c = codecs[codec];
  return (d) => c.compress(d, level, into);
}

/**
 * Compresses `data` when that pays (see {@link compressIfWorthIt}); otherwise returns it raw with
 * codec `'none'`.
 */
export function maybeCompress(data: Uint8Array, opts: ResolvedCompression): { codec: CodecName; bytes: Uint8Array } {
  if (opts.codec === 'none') return { codec: 'none', bytes: data };
  const out = compressIfWorthIt(data, compressorOf(opts.codec, opts.level), opts.threshold, opts.minRatio);
  return out ? { codec: opts.codec, bytes: out } : { codec: 'none', bytes: data };
}

/** True when {@link maybeCompress} would find `data` worth compressing, judged by its probe alone. */
export function looksCompressible(data: Uint8Array, opts: ResolvedCompression): boolean {
  if (opts.codec === 'none') return false;
  return compressIfWorthIt(data, compressorOf(opts.codec, opts.level), opts.threshold, opts.minRatio, true) !== null;
}

/**
 * Reverses {@link maybeCompress}. With `into` (at least `size` bytes), the payload is written there and
 * a view of it returned, where the codec can (codec 'none' returns `data` itself).
 */
export function decompress(codec: string, data: Uint8Array, size: number, into?: Uint8Array): Uint8Array {
  const c = codecs[codec as CodecName];
  if (!c) throw new CodecError('ECODEC', `This entry uses codec '${codec}', which this version of cacheness does not know. Upgrade cacheness.`);
  return c.decompress(data, size, into);
}

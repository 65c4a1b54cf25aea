/**
 * Chunk compression on worker threads (the shared {@link WorkerPool}), so a large payload can use
 * every core. The workers run {@link compressIfWorthIt} from its source text with the same codec
 * libraries as the main thread, so a chunk compresses to the same bytes wherever it is done.
 * @module
 */
import { createRequire } from 'node:module';
import { type CodecName, compressIfWorthIt, ZSTD_DEFAULT_LEVEL } from '../compression.js';
import { WorkerPool } from '../workers/pool.js';

const require = createRequire(import.meta.url);

/** A chunk to compress. */
export interface CompressTask {
  codec: Exclude<CodecName, 'none'>;
  level: number | undefined;
  threshold: number;
  minRatio: number;
  data: Uint8Array;
}
/**
 * What a compression returns: the stored form (`codec` 'none' when compression did not pay, with
 * `data` the input itself), and the input's memory handed back (`input`) for the caller to reuse.
 */
export interface ChunkResult {
  codec: CodecName;
  data: Uint8Array;
  input: Uint8Array;
}

/**
 * The worker side. Every buffer goes back to the main thread (the input for reuse, the output to be
 * written), so nothing large is left in a worker as garbage: a worker's collector runs rarely, and
 * buffers would pile up between its runs. (`__name` covers tools that wrap functions with a naming
 * helper, as esbuild's keepNames does under tsx, when compressIfWorthIt's source is taken.)
 */
const COMPRESS_TASK = `((compressIfWorthIt) => (task, env) => {
  const lz4 = env.modules.lz4;
  const compress = task.codec === 'lz4' ? (d) => lz4.compress(d) : (d) => env.modules.zstd.compress(d, { compressionLevel: task.level });
  const out = compressIfWorthIt(task.data, compress, task.threshold, task.minRatio);
  env.transfer(task.data.buffer);
  // lz4's output owns its memory and moves; zstd's (a native Buffer) is copied.
  if (out && task.codec === 'lz4' && out.byteOffset === 0 && out.byteLength === out.buffer.byteLength) env.transfer(out.buffer);
  return { codec: out ? task.codec : 'none', data: out || task.data, input: task.data };
})(((__name) => (${compressIfWorthIt.toString()}))((f) => f))`;

function modules(): Record<string, string> {
  const m: Record<string, string> = { lz4: require.resolve('lz4-wasm-nodejs') };
  try {
    m.zstd = require.resolve('zstd-napi');
  } catch {}
  return m;
}

/** Compression workers. */
export class CompressPool {
  private readonly pool: WorkerPool;
  constructor(readonly size: number) {
    this.pool = new WorkerPool({ tasks: { compress: COMPRESS_TASK }, modules: modules(), size });
  }

  /**
   * Compresses a chunk on a worker. `transfer` hands `task.data`'s memory to the worker and back (the
   * caller gets it as `input`); otherwise it is copied first, so the caller's memory is never detached.
   */
  run(task: CompressTask, transfer: boolean): Promise<ChunkResult> {
    const whole = task.data.byteOffset === 0 && task.data.byteLength === task.data.buffer.byteLength;
    // postMessage of a view copies its whole buffer, and moving memory that is not ours would detach it: send our own copy.
    const data = transfer && whole ? task.data : new Uint8Array(task.data);
    // The level is resolved here, so workers and this thread compress alike.
    const level = task.codec === 'zstd' ? (task.level ?? ZSTD_DEFAULT_LEVEL) : task.level;
    return this.pool.run<ChunkResult>('compress', { ...task, level, data }, [data.buffer as ArrayBuffer]);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

let shared: CompressPool | undefined;

/** The process-wide compression pool, with at least `workers` threads (replaced by a larger one when a cache asks for more). */
export function compressPool(workers: number): CompressPool {
  // The old pool is left to finish its tasks; its idle threads exit on their own.
  if (!shared || shared.size < workers) shared = new CompressPool(workers);
  return shared;
}

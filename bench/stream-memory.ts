/**
 * Streams a generated payload of `MiB` through put → getStream → getFile (unless --no-file) in a fresh
 * process and prints, as JSON, times and peak RSS above the process's baseline (after warm-up). With
 * --fs, instead writes and reads the same stream with plain fs streams (the benchmark's baseline).
 * Used by the memory-bound test (test/streams-memory.test.ts) and the benchmark (bench/streams.ts).
 *
 *   node --conditions=source --import tsx bench/stream-memory.ts <dir> <MiB> [--workers N] [--chunk-kib N] [--fs] [--no-file]
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createCache } from 'cacheness';
import { xxh128Stream } from 'cacheness/stores';

const [dir, mibArg, ...flags] = process.argv.slice(2);
const workersAt = flags.indexOf('--workers');
const workersArg = workersAt >= 0 ? flags[workersAt + 1] : undefined;
const chunkAt = flags.indexOf('--chunk-kib');
const chunkKiB = chunkAt >= 0 ? Number(flags[chunkAt + 1]) : undefined;
const fsOnly = flags.includes('--fs');
const withFile = !flags.includes('--no-file');
const MiB = 1024 * 1024;
const total = Number(mibArg) * MiB;
const piece = MiB;

/**
 * Compressible but not trivial: 5 distinct 1 MiB pieces (a counter pattern with noise) made once and
 * cycled, copied into a fresh buffer each time, so generating costs little next to storing.
 */
const patterns = Array.from({ length: 5 }, (_, p) => {
  const b = Buffer.allocUnsafe(piece);
  let seed = p + 1;
  for (let i = 0; i < b.length; i += 4) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    b.writeUInt32LE(((p * piece + i) >>> 4) ^ (seed & 0xff), i);
  }
  return b;
});
function* generate(): Generator<Buffer> {
  for (let off = 0, p = 0; off < total; off += piece, p++) yield Buffer.from((patterns[p % patterns.length] as Buffer).subarray(0, Math.min(piece, total - off)));
}

const rssMiB = () => process.memoryUsage().rss / MiB;
/** The true peak: maxRSS cannot miss a spike as sampling can (it may include the warm-up, which only overstates). */
const peakMiB = () => Math.max(rssMiB(), process.resourceUsage().maxRSS / 1024);

/** Plain fs: the same stream written to a file and read back, hashed both ways like the cache run. */
async function fsBaseline(): Promise<void> {
  const path = join(dir as string, 'baseline.bin');
  const baseline = rssMiB();
  const h = xxh128Stream();
  const t0 = performance.now();
  const source = function* () {
    for (const b of generate()) {
      h.update(b);
      yield b;
    }
  };
  await pipeline(Readable.from(source()), createWriteStream(path));
  const writeMs = performance.now() - t0;
  const r = xxh128Stream();
  const t1 = performance.now();
  for await (const p of createReadStream(path, { highWaterMark: MiB })) r.update(p as Buffer);
  const readMs = performance.now() - t1;
  if (r.digestHex() !== h.digestHex()) throw new Error('fs baseline read back different bytes');
  await rm(path);
  console.log(JSON.stringify({ mib: Number(mibArg), fsWriteMs: writeMs, fsReadMs: readMs, baselineMiB: baseline, peakMiB: peakMiB() }));
}

async function cacheRun(): Promise<void> {
  const cache = createCache({
    dir: dir as string,
    maxSize: null,
    ...(workersArg === undefined ? {} : { workers: Number(workersArg) }),
    ...(chunkKiB === undefined ? {} : { chunkSize: chunkKiB * 1024 }),
  });
  // Warm up: load the codec, start the workers and the stores, so the baseline includes them.
  await cache.put(Buffer.alloc(9 * MiB, 1), 'warm');
  await cache.get('warm');
  await cache.delete('warm');
  const baseline = rssMiB();
  // Peak RSS per phase, sampled every 5 ms; the first phase also takes the kernel's maxRSS, which
  // cannot miss a spike (later phases cannot: it is the whole process's).
  let phasePeak = baseline;
  const timer = setInterval(() => {
    phasePeak = Math.max(phasePeak, rssMiB());
  }, 5);
  const endPhase = (first = false): number => {
    const p = Math.max(phasePeak, rssMiB(), first ? peakMiB() : 0);
    phasePeak = rssMiB();
    return p;
  };
  const want = xxh128Stream();
  const source = (async function* () {
    for (const b of generate()) {
      want.update(b);
      yield b;
    }
  })();
  const t0 = performance.now();
  const info = await cache.put(source, 'big');
  const putMs = performance.now() - t0;
  const putPeak = endPhase(true);
  const got = xxh128Stream();
  const t1 = performance.now();
  for await (const p of (await cache.getStream('big')) as AsyncIterable<Buffer>) got.update(p);
  const getStreamMs = performance.now() - t1;
  const getPeak = endPhase();
  let getFileMs: number | undefined;
  let filePeak: number | undefined;
  let fileMatches: boolean | undefined;
  if (withFile) {
    const t2 = performance.now();
    await cache.getFile('big', join(dir as string, 'out.bin'));
    getFileMs = performance.now() - t2;
    filePeak = endPhase();
    const fileHash = xxh128Stream();
    for await (const p of createReadStream(join(dir as string, 'out.bin'))) fileHash.update(p as Buffer);
    fileMatches = fileHash.digestHex() === want.digestHex();
  }
  clearInterval(timer);
  const peak = Math.max(putPeak, getPeak, filePeak ?? 0, peakMiB());
  await cache.close();
  console.log(
    JSON.stringify({
      mib: Number(mibArg),
      workers: workersArg === undefined ? 0 : Number(workersArg),
      storedMiB: info.storedSize / MiB,
      codec: info.codec,
      baselineMiB: baseline,
      peakMiB: peak,
      aboveBaselineMiB: peak - baseline,
      putAboveMiB: putPeak - baseline,
      getStreamAboveMiB: getPeak - baseline,
      getFileAboveMiB: filePeak === undefined ? undefined : filePeak - baseline,
      putMs,
      getStreamMs,
      getFileMs,
      streamMatches: got.digestHex() === want.digestHex(),
      fileMatches,
    }),
  );
}

await (fsOnly ? fsBaseline() : cacheRun());

/**
 * Figure 4 of the cloud benchmark: Lambda readiness of the API handler. Bundles
 * functions/src/lambda/api.ts with esbuild the way a Lambda deploy would (one ESM file, minified,
 * node22), then reports its size, what dominates it, and the time a fresh Node process takes to
 * import it (and to answer a first request), against importing an empty module the same way.
 *
 * Variants: the bundle as shipped (functions/build/bundle.ts: one self-contained file, nothing
 * external but Node's built-ins), and a what-if with the AWS SDK taken from Lambda's runtime.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { LAMBDA_BUNDLE_OPTIONS } from '../functions/build/bundle.js';

export interface LambdaOptions {
  /** Fresh processes per measurement. */
  imports: number;
  /** Environment of the handler (DATABASE_URL, BUCKET, S3_ENDPOINT: loopback only; GET /v1/health touches neither). */
  env: Record<string, string>;
}

export interface VariantResult {
  id: string;
  label: string;
  /** Bytes of the JavaScript bundle. */
  bytes: number;
  /** Other files esbuild wrote beside it (native addons), bytes. */
  assetBytes: number;
  external: string[];
  /** The external packages the bundle actually imports. */
  externalUsed: string[];
  /** Inputs by package (or workspace folder), largest first: bytes in the bundle. */
  top: { name: string; bytes: number }[];
  /** ms of `await import(bundle)` in fresh processes; empty when the import fails. */
  importMs: number[];
  /** ms of the import plus one GET /v1/health through the handler. */
  firstRequestMs: number[];
  /** Why the import failed (first line of the error). */
  importError?: string;
}

export interface LambdaResults {
  variants: VariantResult[];
  /** ms of `await import(emptyModule)` in fresh processes: Node's own floor. */
  emptyImportMs: number[];
  buildSeconds: number;
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
interface Variant {
  id: string;
  label: string;
  external: string[];
}

const VARIANTS: Variant[] = [
  { id: 'shipped', label: 'as shipped: one self-contained file', external: [] },
  { id: 'aws-external', label: "what-if: @aws-sdk/*, @smithy/* from Lambda's runtime", external: ['@aws-sdk/*', '@smithy/*'] },
];

/** Groups a metafile's inputs by npm package or workspace folder. */
function topInputs(meta: Metafile): { name: string; bytes: number }[] {
  const out = Object.values(meta.outputs).find((o) => o.entryPoint);
  if (!out) return [];
  const groups = new Map<string, number>();
  for (const [input, { bytesInOutput }] of Object.entries(out.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
    const name = m ? (m[1] as string) : (/(sdk|functions)\/src\//.exec(input)?.[0] ?? input);
    groups.set(name, (groups.get(name) ?? 0) + bytesInOutput);
  }
  return [...groups].map(([name, bytes]) => ({ name, bytes })).sort((a, b) => b.bytes - a.bytes);
}

/** A v2 API Gateway event for GET /v1/health (no database, no S3). */
const HEALTH_EVENT = {
  version: '2.0',
  routeKey: '$default',
  rawPath: '/v1/health',
  rawQueryString: '',
  headers: { host: 'api.example.test' },
  requestContext: {
    accountId: '123456789012',
    apiId: 'api',
    domainName: 'api.example.test',
    domainPrefix: 'api',
    http: { method: 'GET', path: '/v1/health', protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'bench' },
    requestId: 'bench',
    routeKey: '$default',
    stage: '$default',
    time: '21/Nov/2026:07:00:00 +0000',
    timeEpoch: 0,
  },
  isBase64Encoded: false,
};

/** Runs a fresh `node` importing `file` (and invoking its handler once if `invoke`); returns the child's own timings. */
function timeImport(file: string, invoke: boolean, env: Record<string, string>): { importMs: number; firstMs: number } {
  const script = `
    const t0 = process.hrtime.bigint();
    const m = await import(${JSON.stringify(pathToFileURL(file).href)});
    const t1 = process.hrtime.bigint();
    let t2 = t1;
    if (${invoke}) {
      const res = await m.handler(${JSON.stringify(HEALTH_EVENT)}, {});
      if (res.statusCode !== 200) throw new Error('health answered ' + res.statusCode + ': ' + res.body);
      t2 = process.hrtime.bigint();
    }
    console.log(JSON.stringify({ importMs: Number(t1 - t0) / 1e6, firstMs: Number(t2 - t0) / 1e6 }));
    process.exit(0);`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return JSON.parse(out.trim().split('\n').at(-1) as string) as { importMs: number; firstMs: number };
}

function firstErrorLine(err: unknown): string {
  const stderr = String((err as { stderr?: string }).stderr ?? err);
  return stderr.split('\n').find((l) => /^\w*Error\b|Error:/.test(l.trim())) ?? stderr.split('\n')[0] ?? 'unknown error';
}

export async function runLambda(o: LambdaOptions): Promise<LambdaResults> {
  const dir = mkdtempSync(join(tmpdir(), 'cacheness-lambda-'));
  try {
    // External packages resolve from the repository's node_modules, as they would from the ones shipped with the function.
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const empty = join(dir, 'empty.mjs');
    writeFileSync(empty, 'export {};\n');
    const variants: VariantResult[] = [];
    let buildSeconds = 0;
    for (const v of VARIANTS) {
      const outdir = join(dir, v.id);
      mkdirSync(outdir);
      const t0 = process.hrtime.bigint();
      const result = await build({
        ...LAMBDA_BUNDLE_OPTIONS,
        entryPoints: [join(ROOT, 'functions/src/lambda/api.ts')],
        outdir,
        entryNames: 'api',
        outExtension: { '.js': '.mjs' },
        external: v.external,
        metafile: true,
      });
      if (v.id === 'shipped') buildSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const file = join(outdir, 'api.mjs');
      const bytes = statSync(file).size;
      const assetBytes = Object.entries(result.metafile.outputs)
        .filter(([path]) => !path.endsWith('api.mjs'))
        .reduce((s, [, out]) => s + out.bytes, 0);
      const used = new Set<string>();
      for (const out of Object.values(result.metafile.outputs)) {
        for (const imp of out.imports)
          if (imp.external && !imp.path.startsWith('node:') && !builtinModules.includes(imp.path.split('/')[0] as string))
            used.add(/^(@[^/]+\/)?[^/]+/.exec(imp.path)?.[0] ?? imp.path);
      }
      const r: VariantResult = {
        id: v.id,
        label: v.label,
        bytes,
        assetBytes,
        external: v.external,
        externalUsed: [...used].sort(),
        top: topInputs(result.metafile),
        importMs: [],
        firstRequestMs: [],
      };
      try {
        timeImport(file, false, o.env); // untimed: the OS file cache
        for (let i = 0; i < o.imports; i++) {
          r.importMs.push(timeImport(file, false, o.env).importMs);
          r.firstRequestMs.push(timeImport(file, true, o.env).firstMs);
        }
      } catch (err) {
        r.importError = firstErrorLine(err);
        r.importMs = [];
        r.firstRequestMs = [];
      }
      variants.push(r);
    }
    timeImport(empty, false, o.env);
    const emptyImportMs = Array.from({ length: o.imports }, () => timeImport(empty, false, o.env).importMs);
    return { variants, emptyImportMs, buildSeconds };
  } finally {
    // The link first, so nothing can walk into the repository's node_modules.
    try {
      unlinkSync(join(dir, 'node_modules'));
    } catch {}
    rmSync(dir, { recursive: true, force: true });
  }
}

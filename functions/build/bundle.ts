/**
 * How the Lambda handlers are bundled: one definition, used by the bundle test, the benchmark and
 * (next) the CDK app's `NodejsFunction`s. Everything is inlined into one minified ES module, so a
 * function ships as a single file with no `node_modules` and no native addon.
 * @module
 */
import { type BuildOptions, build, type Metafile } from 'esbuild';

/** The handlers, by name, relative to the functions package. */
export const LAMBDA_ENTRIES = {
  api: 'src/lambda/api.ts',
  sweeper: 'src/lambda/sweeper.ts',
  migrate: 'src/lambda/migrate.ts',
} as const;

/** esbuild options for a handler bundle (Node 22, ESM, minified, self-contained). */
export const LAMBDA_BUNDLE_OPTIONS: BuildOptions = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  minify: true,
  sourcemap: false,
  // Workspace packages resolve to their TypeScript sources; published ones prefer their ES module builds.
  conditions: ['source'],
  mainFields: ['module', 'main'],
  // Some CommonJS dependencies call require() for Node built-ins; ESM output needs it defined.
  banner: { js: "import { createRequire as __cjsRequire } from 'node:module'; const require = __cjsRequire(import.meta.url);" },
  logLevel: 'silent',
};

export interface BundleResult {
  outfile: string;
  bytes: number;
  /** Imports left in the bundle (only Node built-ins are allowed). */
  imports: string[];
  metafile: Metafile;
}

/** Bundles one handler to `outfile` with {@link LAMBDA_BUNDLE_OPTIONS}. */
export async function bundleHandler(entry: string, outfile: string): Promise<BundleResult> {
  const result = await build({ ...LAMBDA_BUNDLE_OPTIONS, entryPoints: [entry], outfile, metafile: true });
  const output = Object.values(result.metafile.outputs)[0];
  if (!output) throw new Error(`esbuild produced no output for ${entry}`);
  return { outfile, bytes: output.bytes, imports: output.imports.map((i) => i.path), metafile: result.metafile };
}

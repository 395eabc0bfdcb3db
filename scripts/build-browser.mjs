// Browser ESM build of the library: src/index.ts and its dependencies (wgsl_reflect, js-tiktoken)
// bundled by esbuild into dist/browser/dq-whisper.js, shaders inlined (src/shaders.gen.ts).
// Fails when anything reachable from src/index.ts imports a Node built-in or Dawn's `webgpu`
// package, naming the import chain, so the core stays one codebase for Node and browsers.
// Types: the browser build exports exactly src/index.ts, so dist/index.d.ts (tsc) describes it.
// Usage: node scripts/build-browser.mjs [--no-minify] [--entry FILE --outfile FILE]
// (--entry/--outfile build another entry point with the same rules; the tests use it.)
import { builtinModules } from 'node:module';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { 'no-minify': { type: 'boolean', default: false }, entry: { type: 'string' }, outfile: { type: 'string' } } });
const entry = resolve(args.entry ?? join(root, 'src', 'index.ts'));
const outfile = resolve(args.outfile ?? join(root, 'dist', 'browser', 'dq-whisper.js'));
const minify = !args['no-minify'];

const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
/** Modules that only exist under Node: its built-ins, and Dawn's bindings (device.ts loads those lazily under Node). */
function nodeOnly(specifier) {
  return specifier.startsWith('node:') || builtins.has(specifier) || builtins.has(specifier.split('/')[0]) || specifier === 'webgpu' || specifier.startsWith('webgpu/');
}

/** Records who first imported each module, so a forbidden import can be reported with its chain from src/index.ts. */
const guardNodeImports = {
  name: 'no-node-builtins',
  setup(build) {
    const importedBy = new Map();
    const chain = (file) => {
      const names = [];
      for (let f = file; f; f = importedBy.get(f)) names.unshift(relative(root, f));
      return names.join(' -> ');
    };
    build.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData?.guarded) return undefined;
      if (nodeOnly(args.path)) {
        return { errors: [{ text: `Node-only module "${args.path}" is reachable from the browser entry: ${chain(args.importer)} -> ${args.path}. Keep file-system and Node code out of src/index.ts's imports (see docs/browser.md).` }] };
      }
      const resolved = await build.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: { guarded: true } });
      if (resolved.path && !importedBy.has(resolved.path) && resolved.path !== entry) importedBy.set(resolved.path, args.importer);
      return resolved;
    });
  },
};

mkdirSync(dirname(outfile), { recursive: true });
const started = performance.now();
const result = await esbuild.build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  // Chrome/Edge 113 shipped WebGPU; everything that has navigator.gpu runs ES2022.
  target: 'es2022',
  minify,
  sourcemap: true,
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
  plugins: [guardNodeImports],
  // ogg-opus-decoder imports its 4 MB neural speech enhancer only when asked for it
  // (speechQualityEnhancement 'lace'/'nolace'); src/audio never asks, so it stays out.
  external: ['@wasm-audio-decoders/opus-ml'],
}).catch(() => null); // esbuild has already printed the errors with their locations
if (!result) {
  console.error('build-browser: failed (see the errors above)');
  process.exit(1);
}

const bytes = readFileSync(outfile);
const gzip = gzipSync(bytes, { level: 9 }).byteLength;
const inputs = Object.values(result.metafile.outputs).find((o) => o.entryPoint)?.inputs ?? {};
const byOrigin = new Map();
for (const [path, info] of Object.entries(inputs)) {
  const origin = path.includes('node_modules/') ? path.split('node_modules/')[1].split('/').slice(0, path.includes('node_modules/@') ? 2 : 1).join('/') : path.endsWith('shaders.gen.ts') ? 'shaders (inlined WGSL)' : 'src (TypeScript)';
  byOrigin.set(origin, (byOrigin.get(origin) ?? 0) + info.bytesInOutput);
}
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`build-browser: ${relative(process.cwd(), outfile)} ${kib(bytes.byteLength)} (${kib(gzip)} gzip)${minify ? ', minified' : ''}, ${Object.keys(inputs).length} modules, ${Math.round(performance.now() - started)} ms`);
for (const [origin, n] of [...byOrigin.entries()].sort((a, b) => b[1] - a[1])) console.log(`  ${origin.padEnd(24)} ${kib(n).padStart(10)}`);

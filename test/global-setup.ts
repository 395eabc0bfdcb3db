import { execFileSync } from 'node:child_process';

// Bundle shaders/*.wgsl before any test imports src/shaders.gen.ts, so a test run never sees
// shaders older than the .wgsl files.
export default function setup(): void {
  execFileSync(process.execPath, [new URL('../scripts/bundle-shaders.mjs', import.meta.url).pathname], { stdio: 'inherit' });
}

// scripts/build-browser.mjs refuses Node-only imports reachable from the entry point and names
// the chain of imports that reaches them.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const script = new URL('../../scripts/build-browser.mjs', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'dqw-build-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function build(files: Record<string, string>): { status: number | null; output: string } {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const r = spawnSync(process.execPath, [script, '--entry', join(dir, 'entry.ts'), '--outfile', join(dir, 'out.js')], { encoding: 'utf8' });
  return { status: r.status, output: r.stdout + r.stderr };
}

describe('browser build guard', () => {
  it('fails on a Node built-in two imports away, naming the chain', () => {
    const r = build({ 'entry.ts': "export { size } from './reader.ts';\n", 'reader.ts': "import { statSync } from 'node:fs';\nexport const size = (p: string) => statSync(p).size;\n" });
    expect(r.status).toBe(1);
    expect(r.output).toMatch(/Node-only module "node:fs" is reachable from the browser entry: .*entry\.ts -> .*reader\.ts -> node:fs/);
  });

  it('fails on Dawn\'s "webgpu" package imported statically', () => {
    const r = build({ 'entry.ts': "import { create } from 'webgpu';\nexport const gpu = () => create([]);\n" });
    expect(r.status).toBe(1);
    expect(r.output).toMatch(/Node-only module "webgpu"/);
  });

  it('builds browser-safe code and reports the size', () => {
    const r = build({ 'entry.ts': "export const twice = (x: number) => 2 * x;\n" });
    expect(r.status).toBe(0);
    expect(r.output).toMatch(/build-browser: .*out\.js \d+\.\d KiB \(\d+\.\d KiB gzip\), minified, 1 modules/);
  });
});

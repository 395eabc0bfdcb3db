// The browser build (scripts/build-browser.mjs -> dist/browser/dq-whisper.js) loaded as a plain
// ES module into Chromium, no bundler in between: same exports as src/index.ts, and it computes.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as library from '../../src/index.js';
import type { Recorder } from '../../src/index.js';
import { launchChromium, serveDir } from '../browser/chromium.js';
import { matmulRef } from '../ref/matmul.js';

const script = new URL('../../scripts/build-browser.mjs', import.meta.url).pathname;
let dir = '';
let server: Awaited<ReturnType<typeof serveDir>>;
let browser: Browser;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dqw-bundle-'));
  execFileSync(process.execPath, [script, '--outfile', join(dir, 'dq-whisper.js')], { stdio: 'pipe' });
  // A page that loads the bundle as a plain module script, served from 127.0.0.1 (a secure context,
  // so WebGPU is exposed).
  writeFileSync(join(dir, 'index.html'), '<!doctype html><script type="module">import * as m from "./dq-whisper.js"; window.dqw = m;</script>');
  server = await serveDir(dir);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('browser bundle in Chromium', () => {
  it('exports what src/index.ts exports and runs a matmul on navigator.gpu', async () => {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => 'dqw' in window);
    const a = [1, -2, 3, 0.5, 4, -1];
    const b = [2, 1, 0, -1, 1, 3];
    const result = await page.evaluate(
      async ({ a, b }) => {
        const m = (window as unknown as { dqw: typeof import('../../src/index.js') }).dqw;
        const gpu = await m.Gpu.create();
        try {
          const ta = gpu.upload(a, [2, 3]);
          const tb = gpu.upload(b, [3, 2]);
          const tc = gpu.empty([2, 2]);
          await gpu.run((rec: Recorder) => m.matmul(rec, ta, tb, tc));
          return { exports: Object.keys(m).sort(), runtime: gpu.adapter.runtime, c: Array.from(await gpu.readF32(tc)) };
        } finally {
          gpu.destroy();
        }
      },
      { a, b },
    );
    await page.close();
    expect(result.exports).toEqual(Object.keys(library).sort());
    expect(result.runtime).toBe('browser');
    const ref = matmulRef(a, b, { batch: 1, M: 2, N: 2, K: 3, batchA: false, batchB: false });
    expect(result.c).toEqual(Array.from(ref)); // small integers and halves: exact in f32
  });
});

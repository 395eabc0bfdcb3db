// What the Transcribe tab tests share: the demo page built into a temporary folder and served on
// 127.0.0.1 with Chromium started, and the page opened on its Transcribe tab.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { build } from 'vite';
import { launchChromium, serveDir } from '../browser/chromium.js';

const webRoot = new URL('../../web/', import.meta.url).pathname;
/** Where the page tests put their screenshots. */
export const screenshots = join(webRoot, 'test-output');

export interface Site {
  /** A temporary folder for the test's files; the built page is served from `served` inside it. */
  dir: string;
  served: string;
  url: string;
  browser: Browser;
  close(): Promise<void>;
}

/** Build the page (vite) into a fresh temporary folder, serve it and start Chromium; `beforeServe` may add files to serve. */
export async function openSite(beforeServe?: (served: string) => Promise<void>): Promise<Site> {
  const dir = mkdtempSync(join(tmpdir(), 'dqw-web-transcribe-'));
  const served = join(dir, 'site');
  await build({ configFile: join(webRoot, 'vite.config.ts'), logLevel: 'warn', build: { outDir: served } });
  await beforeServe?.(served);
  const server = await serveDir(served);
  const browser = await launchChromium();
  return {
    dir,
    served,
    url: server.url,
    browser,
    async close() {
      await browser.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The page on its Transcribe tab with WebGPU ready; with `randomSeed`, the random model of that seed loaded. */
export async function openTranscribeTab(browser: Browser, url: string, randomSeed?: number): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  await page.goto(url);
  await page.waitForSelector('#status[data-state=ready]', { timeout: 30_000 });
  await page.click('#tab-transcribe');
  if (randomSeed !== undefined) {
    await page.fill('#random-seed', String(randomSeed));
    await page.click('#random-model');
    await page.waitForSelector('#model-status[data-state=loaded]', { timeout: 30_000 });
  }
  return page;
}

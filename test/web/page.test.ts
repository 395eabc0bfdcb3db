// The demo page (web/, built with Vite) in Chromium, driven from Node by playwright-core: it
// shows the adapter, profiles benchmark cases, runs the embedding example, and reports missing
// WebGPU in the page. A screenshot of the Profile tab goes to web/test-output/.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cases as normCases } from '../../bench/cases/norm.js';
import { cases as elementwiseCases } from '../../bench/cases/elementwise.js';
import { cases as int8Cases } from '../../bench/cases/int8.js';
import { exampleInputs } from '../../examples/embedding-kernels.js';
import { launchChromium, serveDir } from '../browser/chromium.js';
import { expectMatchesReferences, type OutputsLike } from '../examples/embedding-check.js';

const webRoot = new URL('../../web/', import.meta.url).pathname;
const screenshots = join(webRoot, 'test-output');
let outDir = '';
let server: Awaited<ReturnType<typeof serveDir>>;
let browser: Browser;

beforeAll(async () => {
  outDir = mkdtempSync(join(tmpdir(), 'dqw-web-'));
  await build({ configFile: join(webRoot, 'vite.config.ts'), logLevel: 'warn', build: { outDir } });
  server = await serveDir(outDir);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

/** A fresh page, with console errors collected for failure messages. */
async function openPage(init?: () => void): Promise<{ page: Page; console: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const messages: string[] = [];
  page.on('console', (m) => m.type() === 'error' && messages.push(m.text()));
  page.on('pageerror', (e) => messages.push(String(e)));
  if (init) await page.addInitScript(init);
  await page.goto(server.url);
  return { page, console: messages };
}

describe('demo page', () => {
  it('shows the adapter, the engine features and the limits as WebGPU reports them', async () => {
    const { page, console } = await openPage();
    await page.waitForSelector('#status[data-state=ready]', { timeout: 30_000 }).catch(() => {
      throw new Error(`page did not get WebGPU: ${console.join('; ')}`);
    });
    // What the adapter itself says, asked independently of the engine in the same page.
    const truth = await page.evaluate(async () => {
      const adapter = (await navigator.gpu.requestAdapter())!;
      return {
        vendor: adapter.info.vendor,
        architecture: adapter.info.architecture,
        subgroups: adapter.features.has('subgroups'),
        shaderF16: adapter.features.has('shader-f16'),
        maxStorageBuffersPerShaderStage: adapter.limits.maxStorageBuffersPerShaderStage,
        maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
      };
    });
    const adapterText = await page.textContent('#adapter-name');
    expect(adapterText).toContain(truth.vendor);
    expect(adapterText).toContain(truth.architecture);
    expect(adapterText).toContain('(browser)');
    const cell = (table: string, row: string) => page.locator(`${table} tr`, { has: page.locator(`td:text-is("${row}")`) }).locator('td').nth(1).textContent();
    expect(await cell('#features', 'subgroups')).toBe(truth.subgroups ? 'yes' : 'no');
    expect(await cell('#features', 'shaderF16')).toBe(truth.shaderF16 ? 'yes' : 'no');
    expect(await cell('#limits', 'maxStorageBuffersPerShaderStage')).toBe(String(truth.maxStorageBuffersPerShaderStage));
    expect(await cell('#limits', 'maxComputeInvocationsPerWorkgroup')).toBe(String(truth.maxComputeInvocationsPerWorkgroup));
    await page.close();
  });

  it('profiles benchmark cases: per-case and per-kernel tables, a timeline and a Chrome trace that agree', async () => {
    const { page } = await openPage();
    await page.waitForSelector('#status[data-state=ready]', { timeout: 30_000 });
    await page.click('#tab-profile');
    // Three cheap cases (a few ms each on SwiftShader), one per kernel family.
    const chosen = [
      normCases.find((c) => c.name === 'layernorm forward [1500,384]')!,
      elementwiseCases.find((c) => c.name === 'gelu [1500,1536]')!,
      int8Cases.find((c) => c.name.startsWith('enc activations quantize+pack'))!,
    ];
    expect(chosen.every(Boolean)).toBe(true);
    await page.click('#select-none');
    for (const c of chosen) await page.check(`input[data-case="${c.family}: ${c.name}"]`);
    await page.fill('#repeat', '2');
    await page.click('#run-profile');
    await page.waitForSelector('#profile-progress[data-done]', { timeout: 90_000 });
    expect(await page.getAttribute('#profile-progress', 'data-done')).toBe(String(chosen.length));
    await expect(page.locator('.errors .error').count()).resolves.toBe(0);

    // Per case: GFLOP/s and GB/s as the page shows them must be the case's counts over its time.
    const caseRows = await page.$$eval('#case-table tbody tr', (rows) => rows.map((r) => Array.from(r.querySelectorAll('td'), (td) => td.textContent ?? '')));
    expect(caseRows.map((r) => r[0]).sort()).toEqual(chosen.map((c) => `${c.family}: ${c.name}`).sort());
    for (const c of chosen) {
      const [, ms, median, gflops, gbps, clock] = caseRows.find((r) => r[0] === `${c.family}: ${c.name}`)!;
      expect(Number(ms)).toBeGreaterThan(0);
      expect(Number(median)).toBeGreaterThanOrEqual(Number(ms));
      expect(clock).toMatch(/^(gpu|cpu)$/);
      // The page rounds ms to 3 decimals and rates to 2; compare within that rounding.
      expect(Number(gflops)).toBeCloseTo(c.flops / Number(ms) / 1e6, 0);
      expect(Number(gbps)).toBeCloseTo(c.bytes / Number(ms) / 1e6, 0);
    }

    // Per kernel: calls add up to the dispatches on the timeline and in the trace.
    const kernelRows = await page.$$eval('#kernel-table tbody tr', (rows) => rows.map((r) => Array.from(r.querySelectorAll('td'), (td) => td.textContent ?? '')));
    const calls = kernelRows.reduce((s, r) => s + Number(r[1]), 0);
    expect(kernelRows.length).toBeGreaterThanOrEqual(chosen.length);
    expect(calls).toBeGreaterThanOrEqual(chosen.length);
    expect(await page.locator('#timeline rect.bar').count()).toBe(calls);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-trace')]);
    const trace = JSON.parse(readFileSync((await download.path())!, 'utf8')) as { traceEvents: { ph: string; cat?: string; dur?: number }[] };
    const spans = trace.traceEvents.filter((e) => e.ph === 'X');
    expect(spans).toHaveLength(calls);
    expect(new Set(spans.map((e) => e.cat))).toEqual(new Set(kernelRows.map((r) => r[0])));
    const totalMs = kernelRows.reduce((s, r) => s + Number(r[2]), 0);
    expect(spans.reduce((s, e) => s + e.dur!, 0) / 1000).toBeCloseTo(totalMs, 1);

    mkdirSync(screenshots, { recursive: true });
    await page.screenshot({ path: join(screenshots, 'profile.png'), fullPage: true });
    await page.click('#tab-device');
    await page.screenshot({ path: join(screenshots, 'device.png'), fullPage: true });
    await page.close();
  });

  it('runs the embedding example (an app-owned device and buffers) and matches float64 references', async () => {
    const { page } = await openPage();
    await page.waitForSelector('#status[data-state=ready]', { timeout: 30_000 });
    await page.click('#tab-embedding');
    await page.click('#run-embedding');
    await page.waitForFunction(() => document.querySelector('#embedding-status')?.textContent !== 'running…', undefined, { timeout: 90_000 });
    const status = await page.textContent('#embedding-status');
    expect(status, await page.locator('.errors').textContent() ?? '').toMatch(/^done/);
    const outputs = JSON.parse((await page.textContent('#embedding-result'))!) as OutputsLike;
    expectMatchesReferences(exampleInputs(), outputs);
    await page.close();
  });

  it('without WebGPU, says so in the page with what to do', async () => {
    // A browser without WebGPU, simulated by hiding navigator.gpu before the page's scripts run.
    const { page } = await openPage(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }));
    await page.waitForSelector('#status[data-state=failed]', { timeout: 30_000 });
    const title = await page.textContent('.errors .error h2');
    const detail = await page.textContent('.errors .error .detail');
    expect(title).toBe('WebGPU is not available');
    expect(detail).toContain('navigator.gpu is undefined');
    expect(detail).toContain('--enable-unsafe-webgpu');
    expect(await page.locator('#tabs button').count()).toBe(0);
    await page.screenshot({ path: join(screenshots, 'no-webgpu.png') });
    await page.close();
  });

  it('with WebGPU but no adapter (blocklisted GPU), names the cause in the page', async () => {
    // Chromium on Linux without --enable-unsafe-webgpu behaves so: navigator.gpu, but no adapter.
    const { page } = await openPage(() => {
      GPU.prototype.requestAdapter = async () => null;
    });
    await page.waitForSelector('#status[data-state=failed]', { timeout: 30_000 });
    expect(await page.textContent('.errors .error h2')).toBe('WebGPU is not available');
    expect(await page.textContent('.errors .error .detail')).toContain('requestAdapter() found no adapter');
    await page.close();
  });
});

// The Transcribe tab's other inputs in Chromium: the random model saved in each format the page
// reads (Hugging Face float F32 and F16, dq-whisper-int8, whisper.cpp ggml), loaded through the
// file picker and by URL, and a recording from Chromium's fake microphone.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMelFilters } from '../../src/audio/mel-filters.js';
import { ggmlVocabFromTiktoken } from '../../src/io/ggml.js';
import { saveGgmlCheckpoint, saveHfCheckpoint, saveHfInt8Checkpoint } from '../../src/io/node-files.js';
import { quantizeCheckpoint } from '../../src/quant/hf-int8.js';
import { fullQuantizationPlan } from '../../src/quant/weights.js';
import { randomModel } from '../../web/src/random-model.js';
import { chromiumArgs, requireChromium } from '../browser/chromium.js';
import { openSite, openTranscribeTab, type Site } from './transcribe-site.js';

const assets = new URL('../../assets/', import.meta.url).pathname;
const SEED = 0;
const model = randomModel(SEED);
let site: Site;

beforeAll(async () => {
  // The random model in each format, the F32 folder outside the served files (for the file
  // picker), the others served beside the page (for loading by URL).
  site = await openSite(async (served) => {
    await saveHfCheckpoint(join(served, '..', 'random-model'), model);
    await saveHfCheckpoint(join(served, 'models', 'hf-f16'), model, { dtype: 'F16' });
    await saveHfInt8Checkpoint(join(served, 'models', 'int8'), quantizeCheckpoint(model, fullQuantizationPlan(model.config, 8)));
    const mel80 = readMelFilters(readFileSync(join(assets, 'mel_filters.npz'))).get(80)!;
    await saveGgmlCheckpoint(join(served, 'models', 'model-f16.bin'), model, {
      fileType: 'f16',
      melFilters: { n_mel: 80, n_fft: 201, data: mel80.data },
      vocab: ggmlVocabFromTiktoken(readFileSync(join(assets, 'multilingual.tiktoken'), 'utf8')),
    });
  });
}, 60_000);

afterAll(() => site?.close());

describe('demo page: Transcribe tab inputs', () => {
  it('loads the model from chosen files, from a folder URL (float and int8) and from a ggml URL; a wrong URL is a readable error', async () => {
    const page = await openTranscribeTab(site.browser, site.url);
    const summary = 'd_model 32, 2+2 layers, vocabulary 51865, 3 s windows, 1.74 M parameters.';
    /** Load through `action`, then the model status once loading has finished. */
    const load = async (action: () => Promise<void>) => {
      await page.evaluate(() => document.querySelector('#model-status')!.removeAttribute('data-state'));
      await action();
      await page.waitForSelector('#model-status[data-state=loaded], #model-status[data-state=failed]', { timeout: 30_000 });
      return page.textContent('#model-status');
    };
    const folder = join(site.dir, 'random-model');
    expect(await load(() => page.setInputFiles('#model-files', [join(folder, 'config.json'), join(folder, 'model.safetensors')]))).toBe(
      `Hugging Face F32 from config.json, model.safetensors: ${summary}`,
    );
    const byUrl = (url: string) => load(async () => {
      await page.fill('#model-url', url);
      await page.click('#load-url');
    });
    expect(await byUrl(`${site.url}models/hf-f16/`)).toBe(`Hugging Face F16 from ${site.url}models/hf-f16/: ${summary}`);
    const modules = fullQuantizationPlan(model.config).modules.length;
    expect(await byUrl(`${site.url}models/int8/config.json`)).toBe(`dq-whisper-int8 (8-bit, ${modules} modules, dequantized) from ${site.url}models/int8/: ${summary}`);
    // A relative URL resolves against the page; tensors in file order: conv1.weight (f16) before its bias (f32).
    const ggml = `whisper.cpp ggml (f16/f32) ${site.url}models/model-f16.bin`;
    expect(await byUrl('models/model-f16.bin')).toBe(`${ggml}: ${summary}`);
    expect(await page.locator('.errors .error').count()).toBe(0);

    expect(await byUrl(`${site.url}models/nowhere/`)).toBe(`Kept ${ggml}; loading ${site.url}models/nowhere/ failed.`);
    expect(await page.textContent('.errors .error h2')).toBe(`Could not load the model while loading ${site.url}models/nowhere/`);
    expect(await page.textContent('.errors .error .detail')).toContain('config.json: not found (a Hugging Face checkpoint needs its config.json)');
    await page.close();
  });

  it('records from a microphone (Chromium\'s fake capture device) into 16 kHz audio of the recorded length', async () => {
    // A second browser whose getUserMedia gets Chromium's synthetic beeping microphone, permission granted.
    const withMic = await chromium.launch({
      executablePath: requireChromium(),
      headless: true,
      args: [...chromiumArgs, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
    });
    try {
      const page = await openTranscribeTab(withMic, site.url);
      const before = Date.now();
      await page.click('#record');
      await page.waitForFunction(() => document.querySelector('#record')?.textContent === 'Stop recording', undefined, { timeout: 10_000 });
      await page.waitForTimeout(1500);
      await page.click('#record');
      await page.waitForSelector('#audio-status[data-state]', { timeout: 15_000 });
      const elapsed = (Date.now() - before) / 1000;
      expect(await page.locator('.errors .error').count(), (await page.textContent('.errors')) ?? '').toBe(0);
      const status = (await page.textContent('#audio-status'))!;
      const match = /^microphone recording: ([\d.]+) s at 16 kHz\.$/.exec(status);
      expect(match, status).not.toBeNull();
      // At least the 1.5 s waited while recording, less the encoder's start-up (under 0.5 s); at
      // most the whole time from the first click to the decoded result (a sample-rate mistake,
      // 48 kHz taken for 16 kHz, would triple it).
      const seconds = Number(match![1]);
      expect(seconds, `${status} within ${elapsed} s`).toBeGreaterThan(1.0);
      expect(seconds, `${status} within ${elapsed} s`).toBeLessThanOrEqual(elapsed);
      await page.close();
    } finally {
      await withMic.close();
    }
  });
});

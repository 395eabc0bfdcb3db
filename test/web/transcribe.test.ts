// The demo page's Transcribe tab in Chromium (WebGPU on SwiftShader), driven from Node by
// playwright-core: build the small random model, feed a real clip through the file input,
// transcribe, and compare with the same model transcribing the same clip under Node (Dawn on
// lavapipe), the model read back from a Hugging Face folder and the clip and assets from disk:
// two GPU runtimes, two ways of reading model, audio and assets, one transcript. Bad files must
// come back as readable errors in the page. Screenshot: web/test-output/transcribe.png.
// Decoding is greedy without temperature fallback on both sides: SwiftShader takes 0.1-0.3 s
// per decoder step here, and a random model would fall back through all six temperatures.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogMelSpectrogram } from '../../src/audio/logmel.js';
import { readMelFilters } from '../../src/audio/mel-filters.js';
import { formatTimestamp, formatTranscript } from '../../src/decode/format.js';
import { GpuDecoderBackend } from '../../src/decode/gpu-backend.js';
import { transcribe } from '../../src/decode/transcribe.js';
import { Gpu } from '../../src/gpu/gpu.js';
import { readAudioFile16k } from '../../src/io/audio-file.js';
import { loadHfCheckpoint, saveHfCheckpoint } from '../../src/io/node-files.js';
import { loadWhisperTokenizer } from '../../src/io/text-assets.js';
import { WhisperInference } from '../../src/model/inference.js';
import { WhisperWeights } from '../../src/model/whisper.js';
import { randomModel } from '../../web/src/random-model.js';
import { openSite, openTranscribeTab, screenshots, type Site } from './transcribe-site.js';

const assets = new URL('../../assets/', import.meta.url).pathname;
// A real 4.5 s English clip (16 kHz WAV): two of the random model's 3 s windows of audio.
const clip = new URL('../../../shared/data/speech-samples/cheetah/test_en.wav', import.meta.url).pathname;
const SEED = 0;

/** A transcript as JSON (OpenAI's keys), as formatTranscript writes it and the page downloads it. */
interface JsonTranscript {
  text: string;
  language: string;
  segments: { id: number; start: number; end: number; text: string; tokens: number[]; avg_logprob: number }[];
}

/** The Node side: the page's random model saved and read back as a Hugging Face folder, on Dawn, the mel padded with 30 s of silence as OpenAI does. */
async function transcribeUnderNode(dir: string): Promise<JsonTranscript> {
  const folder = join(dir, 'random-model');
  await saveHfCheckpoint(folder, randomModel(SEED));
  const { config, weights } = await loadHfCheckpoint(folder);
  const tokenizer = await loadWhisperTokenizer(join(assets, 'multilingual.tiktoken'), { vocabSize: config.vocab_size });
  const gpu = await Gpu.create();
  const uploaded = WhisperWeights.upload(gpu, config, weights);
  const backend = new GpuDecoderBackend(new WhisperInference(uploaded));
  const logMel = new LogMelSpectrogram(gpu, readMelFilters(readFileSync(join(assets, 'mel_filters.npz'))).get(80)!);
  try {
    const { contentFrames, ...mel } = await logMel.computeForTranscription(await readAudioFile16k(clip));
    const transcript = await transcribe(backend, tokenizer, mel, { language: 'en', temperature: 0, contentFrames });
    return JSON.parse(formatTranscript(transcript, 'json')) as JsonTranscript;
  } finally {
    logMel.destroy();
    backend.destroy();
    uploaded.destroy();
    gpu.destroy();
  }
}

let site: Site;
let node: JsonTranscript;

beforeAll(async () => {
  site = await openSite();
  node = await transcribeUnderNode(site.dir);
}, 90_000);

afterAll(() => site?.close());

const transcribeTab = () => openTranscribeTab(site.browser, site.url, SEED);

/** Seconds of a page timestamp, [hh:]mm:ss.mmm. */
const secondsOf = (stamp: string) => stamp.split(':').reduce((s, part) => 60 * s + Number(part), 0);

describe('demo page: Transcribe tab', () => {
  it('transcribes a real clip with the random model: segments with ordered timestamps, the same transcript as under Node', async () => {
    // Guard on the reference itself: the comparison below means something only if Node produced segments.
    expect(node.segments.length).toBeGreaterThan(0);
    const page = await transcribeTab();
    expect(await page.textContent('#model-status')).toContain('random model (seed 0): d_model 32, 2+2 layers, vocabulary 51865, 3 s windows');
    await page.setInputFiles('#audio-file', clip);
    await page.waitForSelector('#audio-status[data-state=ready]', { timeout: 30_000 });
    expect(await page.textContent('#audio-status')).toBe('test_en.wav: 4.46 s at 16 kHz.'); // 71424 samples
    await page.selectOption('#language', 'en');
    await page.uncheck('#fallback');
    await page.click('#run-transcribe');
    await page.waitForSelector('#segments[data-done]', { timeout: 60_000 }).catch(async () => {
      throw new Error(`no transcript: ${await page.textContent('.errors')} / ${await page.textContent('#transcribe-status')}`);
    });
    expect(await page.locator('.errors .error').count()).toBe(0);

    const rows = await page.$$eval('#segment-table tbody tr', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent ?? '')));
    expect(rows.map(([id, start, end, text]) => ({ id: Number(id), start, end, text }))).toEqual(
      node.segments.map((s) => ({ id: s.id, start: formatTimestamp(s.start), end: formatTimestamp(s.end), text: s.text })),
    );
    // Timestamps in order: each segment ends no earlier than it starts, and starts no earlier than the one before.
    const times = rows.map(([, start, end]) => [secondsOf(start!), secondsOf(end!)] as const);
    times.forEach(([start, end], i) => {
      expect(end).toBeGreaterThanOrEqual(start);
      if (i > 0) expect(start).toBeGreaterThanOrEqual(times[i - 1]![0]);
    });
    expect(await page.textContent('#transcript-text')).toBe(node.text);

    // Summary: RTF is the time over the audio length (the page rounds time to 0.01 s, RTF to 0.001).
    const [name, length, time, rtf, language, adapter] = await page.$$eval('#transcript-summary tbody td', (tds) => tds.map((td) => td.textContent ?? ''));
    expect([name, length, language]).toEqual(['test_en.wav', '4.46', 'en']);
    expect(Number(rtf)).toBeCloseTo(Number(time) / 4.464, 2);
    expect(adapter).toMatch(/\(browser\)$/);

    // The downloaded JSON: the same tokens (timestamps included) and log probabilities within
    // 1e-3 (SwiftShader and lavapipe round the f32 sums differently).
    await page.selectOption('#transcript-format', 'json');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-transcript')]);
    expect(download.suggestedFilename()).toBe('test_en.json');
    const browserJson = JSON.parse(readFileSync((await download.path())!, 'utf8')) as JsonTranscript;
    expect(browserJson.segments.map((s) => s.tokens)).toEqual(node.segments.map((s) => s.tokens));
    browserJson.segments.forEach((s, i) => expect(Math.abs(s.avg_logprob - node.segments[i]!.avg_logprob)).toBeLessThan(1e-3));

    mkdirSync(screenshots, { recursive: true });
    await page.screenshot({ path: join(screenshots, 'transcribe.png'), fullPage: true });
    await page.close();
  });

  it('a file that is not audio, or not a model, is named in a readable error and changes nothing', async () => {
    const page = await transcribeTab();
    await page.setInputFiles('#audio-file', { name: 'notes.wav', mimeType: 'audio/wav', buffer: Buffer.from('these are notes, not audio') });
    await page.waitForSelector('#audio-status[data-state=failed]', { timeout: 30_000 });
    expect(await page.textContent('#audio-status')).toBe('notes.wav could not be read.');
    const audioError = page.locator('.errors .error').last();
    expect(await audioError.locator('h2').textContent()).toBe('Could not read the audio while decoding notes.wav');
    expect(await audioError.locator('.detail').textContent()).toContain('notes.wav: not a recognised audio format');
    expect(await audioError.locator('.hint').textContent()).toContain('WAV, AIFF, FLAC, MP3 and Ogg');
    expect(await page.isDisabled('#run-transcribe')).toBe(true);

    await page.setInputFiles('#model-files', { name: 'model.bin', mimeType: 'application/octet-stream', buffer: Buffer.from('this is not a model. '.repeat(4)) });
    await page.waitForFunction(() => document.querySelectorAll('.errors .error').length === 2, undefined, { timeout: 30_000 });
    const modelError = page.locator('.errors .error').last();
    expect(await modelError.locator('h2').textContent()).toBe('Could not load the model while loading model.bin');
    expect(await modelError.locator('.detail').textContent()).toContain("model.bin: magic 0x73696874 is not whisper.cpp's ggml magic 0x67676d6c");
    // The random model loaded before is kept.
    expect(await page.getAttribute('#model-status', 'data-state')).toBe('loaded');
    expect(await page.textContent('#model-status')).toBe('Kept random model (seed 0); loading model.bin failed.');
    await page.close();
  });

});

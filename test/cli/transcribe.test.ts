import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transcribeCommand } from '../../src/cli/transcribe.js';
import type { Transcript } from '../../src/decode/transcribe.js';
import { formatTimestamp } from '../../src/decode/format.js';
import { readMelFilters } from '../../src/audio/mel-filters.js';
import { ggmlVocabFromTiktoken } from '../../src/io/ggml.js';
import { saveGgmlCheckpoint, saveHfCheckpoint } from '../../src/io/node-files.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { narrowWhisperConfig } from '../model/narrow-whisper.js';

const run = promisify(execFile);
const SAMPLES = new URL('../../../shared/data/speech-samples/', import.meta.url).pathname;
// Real clips in two containers and sample rates: FLAC at 22.05 kHz and big-endian AIFF at 44.1 kHz.
const flac = `${SAMPLES}coqui_tts/LJ001-0002.flac`;
const aiff = `${SAMPLES}speech_recognition/french.aiff`;

// A random model in Hugging Face format with Whisper's real vocabulary and 80 mel bins, narrow
// (width 32, 2+2 layers, MLPs 4x wide as whisper.cpp requires) and with a 3 s audio context (150 positions, 300 mel frames) so the
// long-form loop sees a window per 3 s; 32 text positions keep each decoding short.
const config = narrowWhisperConfig;

const ASSETS = new URL('../../assets/', import.meta.url).pathname;

let dir = '';
let model = '';
let ggmlModel = '';
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dqw-transcribe-'));
  model = join(dir, 'model');
  ggmlModel = join(dir, 'model-f32.bin');
  const checkpoint = { config, weights: initWhisperWeights(config, 3, { std: 0.2, randomizeAll: true }) };
  await saveHfCheckpoint(model, checkpoint);
  // The same weights as a whisper.cpp file, all f32.
  const mel80 = readMelFilters(readFileSync(`${ASSETS}mel_filters.npz`)).get(80)!;
  const vocab = ggmlVocabFromTiktoken(readFileSync(`${ASSETS}multilingual.tiktoken`, 'utf8'));
  await saveGgmlCheckpoint(ggmlModel, checkpoint, { fileType: 'f32', melFilters: { n_mel: 80, n_fft: 201, data: mel80.data }, vocab });
  writeFileSync(join(dir, 'broken.wav'), 'not audio at all');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

describe('dqw transcribe', () => {
  it('transcribes real clips to JSON with progress; broken and missing files are reported and do not stop the batch', async () => {
    const out = join(dir, 'json');
    const stdout = capture();
    const stderr = capture();
    const broken = join(dir, 'broken.wav');
    const missing = join(dir, 'missing.wav');
    await expect(
      transcribeCommand([flac, broken, missing, aiff, '--model', model, '--language', 'en', '--format', 'json', '--output', out], { stdout: stdout.stream, stderr: stderr.stream }),
    ).rejects.toThrow(`2 of 4 files failed: ${broken}, ${missing}`);
    expect(stdout.text()).toBe(`${flac} -> ${join(out, 'LJ001-0002.json')}\n${aiff} -> ${join(out, 'french.json')}\n`);
    const err = stderr.text();
    expect(err).toContain(`dqw transcribe: ${broken}: ${broken}: not a recognised audio format`);
    expect(err).toMatch(new RegExp(`dqw transcribe: ${missing}: ENOENT`));
    // Non-terminal output: a line per bar update, the last of each file at 100%.
    expect(err).toMatch(/loading model \|█+\| 100%/);
    expect(err).toMatch(/\[1\/4\] LJ001-0002.flac \|█+\| 100% \| 1.9\/1.9 s/);
    expect(err).toMatch(/\[4\/4\] french.aiff \|█+\| 100% \| 2.5\/2.5 s/);
    for (const name of ['LJ001-0002', 'french']) {
      const t = JSON.parse(readFileSync(join(out, `${name}.json`), 'utf8')) as Transcript;
      expect(t.language).toBe('en');
      expect(t.segments.length).toBeGreaterThan(0);
      // OpenAI's transcript text is its segments' texts joined.
      expect(t.text).toBe(t.segments.map((s) => s.text).join(''));
      for (const s of t.segments) expect(s.end).toBeGreaterThanOrEqual(s.start);
    }
    expect(existsSync(join(out, 'broken.json'))).toBe(false);
  });

  it('a whisper.cpp ggml file of the same weights gives the same transcript', async () => {
    const out = join(dir, 'ggml');
    const stdout = capture();
    await transcribeCommand([flac, '--model', ggmlModel, '--language', 'en', '--format', 'json', '--output', out], { stdout: stdout.stream, stderr: capture().stream });
    expect(readFileSync(join(out, 'LJ001-0002.json'), 'utf8')).toBe(readFileSync(join(dir, 'json', 'LJ001-0002.json'), 'utf8'));
  });

  it('as a command: writes WebVTT cues of the same transcript and exits 0; bad arguments exit 1 with the reason', async () => {
    const out = join(dir, 'vtt');
    const { stdout } = await run('npx', ['tsx', 'src/cli/main.ts', 'transcribe', flac, '--model', model, '--language', 'en', '--format', 'vtt', '--output', out]);
    expect(stdout).toContain(`-> ${join(out, 'LJ001-0002.vtt')}`);
    const vtt = readFileSync(join(out, 'LJ001-0002.vtt'), 'utf8');
    // The same clip, model and options as the JSON run above: the same segments as cues.
    const t = JSON.parse(readFileSync(join(dir, 'json', 'LJ001-0002.json'), 'utf8')) as Transcript;
    const cues = t.segments.map((s) => `${formatTimestamp(s.start)} --> ${formatTimestamp(s.end)}\n${s.text.trim().replaceAll('-->', '->')}\n`);
    expect(vtt).toBe(`WEBVTT\n\n${cues.join('\n')}\n`);

    const failure = await run('npx', ['tsx', 'src/cli/main.ts', 'transcribe', flac, '--format', 'docx']).catch((e: { code: number; stderr: string }) => e);
    expect(failure).toMatchObject({ code: 1 });
    expect((failure as { stderr: string }).stderr).toContain('dqw transcribe: --model is required');
    const badModel = await run('npx', ['tsx', 'src/cli/main.ts', 'transcribe', flac, '--model', join(dir, 'nowhere')]).catch((e: { code: number; stderr: string }) => e);
    expect(badModel).toMatchObject({ code: 1 });
    expect((badModel as { stderr: string }).stderr).toContain(`--model ${join(dir, 'nowhere')}: no such file or folder`);
  });
});

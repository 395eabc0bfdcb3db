// dqw profile on a small random Whisper (real vocabulary and mel bins, 3 s window) and a real
// clip: the per-kernel table accounts for every profiled dispatch, the decoder's steps included,
// and the Chrome trace holds the same dispatches.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { profileCommand } from '../../src/cli/profile.js';
import { saveHfCheckpoint } from '../../src/io/node-files.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { narrowWhisperConfig } from '../model/narrow-whisper.js';

const SAMPLES = new URL('../../../shared/data/speech-samples/', import.meta.url).pathname;
const flac = `${SAMPLES}coqui_tts/LJ001-0002.flac`;
const config = narrowWhisperConfig;

let dir = '';
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dqw-profile-'));
  await saveHfCheckpoint(join(dir, 'model'), { config, weights: initWhisperWeights(config, 3, { std: 0.2, randomizeAll: true }) });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function profile(argv: string[]): Promise<{ stdout: string; stderr: string }> {
  const [out, err] = [new PassThrough(), new PassThrough()];
  const chunks: [Buffer[], Buffer[]] = [[], []];
  out.on('data', (c: Buffer) => chunks[0].push(c));
  err.on('data', (c: Buffer) => chunks[1].push(c));
  await profileCommand(argv, { stdout: out, stderr: err });
  return { stdout: Buffer.concat(chunks[0]).toString('utf8'), stderr: Buffer.concat(chunks[1]).toString('utf8') };
}

/** The data rows (after the dashes) of the table under `title`. */
function rowsOf(text: string, title: string): string[][] {
  const lines = text.split('\n');
  const start = lines.indexOf(title) + 3;
  const end = lines.findIndex((l, i) => i >= start && l.trim() === '');
  return lines.slice(start, end < 0 ? undefined : end).map((l) => l.trim().split(/\s{2,}/));
}

describe('dqw profile', () => {
  it('times every dispatch of a transcription, the decoder steps too: per kernel, per label, and as a Chrome trace', async () => {
    const trace = join(dir, 'trace.json');
    const { stdout, stderr } = await profile(['--model', join(dir, 'model'), '--audio', flac, '--language', 'en', '--max-tokens', '4', '--top', '1000', '--trace', trace]);
    expect(stderr).toContain(`dqw profile: ${join(dir, 'model')}: f32 (2+2 layers, d_model 32)`);
    const head = /: (\d+\.\d) s of audio, (\d+) dispatches, (\d+\.\d) ms of kernel time/.exec(stdout);
    expect(head, stdout).not.toBeNull();
    const dispatches = Number(head![2]);
    const kernels = rowsOf(stdout, 'per kernel');
    // Every dispatch is in the kernel table once, and the shares add up to the whole.
    expect(kernels.reduce((n, r) => n + Number(r[1]), 0)).toBe(dispatches);
    expect(kernels.reduce((s, r) => s + Number(r[3]!.replace('%', '')), 0)).toBeCloseTo(100, 0);
    for (const family of ['conv1d.conv1d', 'attention', 'matmul', 'layernorm', 'melspec']) {
      expect(kernels.some((r) => r[0]!.startsWith(family) || r[0]!.includes(`${family}.`)), `${family} in\n${stdout}`).toBe(true);
    }
    const labels = rowsOf(stdout, 'per dispatch label').map((r) => r[0]);
    // The encoder (conv frontend) and the decoder's logits, which run as compiled programs.
    expect(labels).toContain('conv1');
    expect(labels).toContain('logits');
    const events = (JSON.parse(readFileSync(trace, 'utf8')) as { traceEvents: { ph: string; name: string; cat: string; dur: number; ts: number }[] }).traceEvents.filter((e) => e.ph === 'X');
    expect(events.length).toBe(dispatches);
    expect(events.every((e) => e.dur >= 0 && e.ts >= 0 && e.name.length > 0)).toBe(true);
    const traceKernels = new Set(events.map((e) => e.cat));
    expect([...traceKernels].sort()).toEqual(kernels.map((r) => r[0]).sort());
    expect(stdout).toContain(`trace: ${trace} (${dispatches} events`);
  });

  it('says what is wrong with its arguments and prints its usage on --help', async () => {
    await expect(profile([])).rejects.toThrow(/dqw profile: --model is required/);
    await expect(profile(['--model', 'tiny', '--max-tokens', '0'])).rejects.toThrow(/--max-tokens must be an integer >= 1, got "0"/);
    await expect(profile(['--model', join(dir, 'missing')])).rejects.toThrow(/missing/);
    expect((await profile(['--help'])).stdout).toMatch(/^usage: dqw profile --model <dir\|file\|preset>/);
  });
});

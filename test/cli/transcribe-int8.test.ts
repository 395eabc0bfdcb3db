import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transcribeCommand } from '../../src/cli/transcribe.js';
import type { Transcript } from '../../src/decode/transcribe.js';
import { saveHfCheckpoint, saveHfInt8Checkpoint } from '../../src/io/node-files.js';
import { dot4SlowerThanFallback } from '../../src/kernels/int8.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { quantizeCheckpoint } from '../../src/quant/hf-int8.js';
import { fullQuantizationPlan, quantizableModules } from '../../src/quant/weights.js';
import { useGpu } from '../helpers.js';
import { narrowWhisperConfig } from '../model/narrow-whisper.js';

const gpu = useGpu();
const SAMPLES = new URL('../../../shared/data/speech-samples/', import.meta.url).pathname;
const flac = `${SAMPLES}coqui_tts/LJ001-0002.flac`;

const config = narrowWhisperConfig;
const checkpoint = { config, weights: initWhisperWeights(config, 3, { std: 0.2, randomizeAll: true }) };

let dir = '';
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dqw-transcribe-int8-'));
  await saveHfCheckpoint(join(dir, 'float'), checkpoint);
  // What `dqw export --format hf --quant int8` and `--quant int4` write.
  await saveHfInt8Checkpoint(join(dir, 'int8'), quantizeCheckpoint(checkpoint, fullQuantizationPlan(config, 8)));
  await saveHfInt8Checkpoint(join(dir, 'int4'), quantizeCheckpoint(checkpoint, fullQuantizationPlan(config, 4)));
  // What `dqw export --quant-plan` writes for a mixed plan: one layer float, two int4, the rest int8.
  const [float, ...quantized] = quantizableModules(config).map((m) => m.module);
  expect(quantized).toContain('model.decoder.embed_tokens');
  const int4 = ['model.decoder.embed_tokens', 'model.encoder.layers.1.fc1'];
  expect(float).not.toBe(int4[1]);
  await saveHfInt8Checkpoint(join(dir, 'mixed'), quantizeCheckpoint(checkpoint, { modules: quantized, bits: 8, moduleBits: new Map(int4.map((m) => [m, 4])) }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function transcribeWith(model: string): Promise<{ stderr: string; transcript: Transcript }> {
  const chunks: Buffer[] = [];
  const stderr = new PassThrough();
  stderr.on('data', (c: Buffer) => chunks.push(c));
  const out = join(dir, `out-${model}`);
  await transcribeCommand([flac, '--model', join(dir, model), '--language', 'en', '--format', 'json', '--output', out], { stdout: new PassThrough(), stderr });
  return { stderr: Buffer.concat(chunks).toString('utf8'), transcript: JSON.parse(readFileSync(join(out, 'LJ001-0002.json'), 'utf8')) as Transcript };
}

describe('dqw transcribe on dq-whisper-int8 exports', () => {
  const modules = quantizableModules(config).length;
  const dot = () => {
    if (!gpu().features.dot4I8Packed) return 'core-WGSL fallback, no dot4I8Packed';
    return dot4SlowerThanFallback(gpu()) ? 'core-WGSL fallback, faster than dot4I8Packed on this adapter' : 'dot4I8Packed';
  };

  it('runs an int8 and an int4 export on the int8 kernels and says so, with the dot product, in its header line', async () => {
    for (const bits of [8, 4]) {
      const model = `int${bits}`;
      const { stderr, transcript } = await transcribeWith(model);
      expect(stderr).toContain(`dqw transcribe: ${join(dir, model)}: int8 (${bits}-bit weights in ${modules} modules, 8-bit activations per token; ${dot()}) (2+2 layers, d_model 32)\n`);
      expect(transcript.language).toBe('en');
      expect(transcript.segments.length).toBeGreaterThan(0);
      expect(transcript.text).toBe(transcript.segments.map((s) => s.text).join(''));
    }
  });

  it('a mixed int8/int4 export says how many modules have each width', async () => {
    const { stderr } = await transcribeWith('mixed');
    expect(stderr).toContain(`dqw transcribe: ${join(dir, 'mixed')}: int8 (8-bit weights in ${modules - 3} modules and 4-bit in 2 modules, 8-bit activations per token; ${dot()}) (2+2 layers, d_model 32)\n`);
  });

  it('the float checkpoint of the same weights says f32', async () => {
    const { stderr } = await transcribeWith('float');
    expect(stderr).toContain(`dqw transcribe: ${join(dir, 'float')}: f32 (2+2 layers, d_model 32)\n`);
    expect(stderr).not.toContain('int8 (');
  });
});

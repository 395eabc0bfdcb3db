// dqw distill --learnable-scales --freeze-scales-after n on real clips with small random models:
// the scales appear at the fake-quant switch in the checkpoints' training.safetensors, train until
// step n and stay fixed afterwards while the weights go on training; a run stopped while the
// scales train and resumed reaches exactly the losses of an uninterrupted one; dqw export of a
// checkpoint quantizes with the learned scales, and refuses other bits than they were learned for.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distillCommand } from '../../src/cli/distill.js';
import { exportCommand } from '../../src/cli/export.js';
import { listTrainingCheckpoints, loadTrainingCheckpoint } from '../../src/io/training-checkpoint.js';
import { loadHfInt8Checkpoint, saveHfCheckpoint } from '../../src/io/node-files.js';
import { presetConfig, type WhisperConfig } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { maxAbsDiff } from '../helpers.js';
import { SPEECH_SAMPLES } from '../audio/clips.js';

// As test/cli/distill.test.ts: a 3 s window and narrow layers keep a step near a second on lavapipe.
const teacherConfig: WhisperConfig = {
  ...presetConfig('tiny'),
  d_model: 32, encoder_layers: 2, decoder_layers: 2, encoder_attention_heads: 2, decoder_attention_heads: 2,
  encoder_ffn_dim: 64, decoder_ffn_dim: 64, max_source_positions: 150, max_target_positions: 32,
};
const studentConfig: WhisperConfig = { ...teacherConfig, d_model: 16, encoder_layers: 1, decoder_layers: 1, encoder_ffn_dim: 32, decoder_ffn_dim: 32 };

let dir = '';
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dqw-distill-lsq-'));
  await saveHfCheckpoint(join(dir, 'teacher'), { config: teacherConfig, weights: initWhisperWeights(teacherConfig, 1, { std: 0.1 }) });
  writeFileSync(join(dir, 'student.json'), JSON.stringify({ ...studentConfig, model_type: 'whisper' }));
  const clips = ['leopard/test.wav', 'leopard/test_de.wav'];
  const texts = ['Mr. Quilter is the apostle', 'Der hinter diesem Portal'];
  writeFileSync(join(dir, 'train.jsonl'), clips.map((c, i) => JSON.stringify({ audio: join(SPEECH_SAMPLES, c), text: texts[i], language: ['en', 'de'][i] })).join('\n'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const quiet = () => ({ stdout: new PassThrough().resume(), stderr: Object.assign(new PassThrough().resume(), { isTTY: false }) });
const losses = (run: string) =>
  readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; loss: unknown }).filter((r) => r.type === 'train').map((r) => r.loss);

describe('dqw distill --learnable-scales', () => {
  // Step 1 float, steps 2-3 fake-quant with trained scales, steps 4-5 with the scales frozen.
  const args = (out: string) => [
    '--teacher', join(dir, 'teacher'), '--student', join(dir, 'student.json'), '--data', join(dir, 'train.jsonl'), '--out', out,
    '--steps', '5', '--batch', '2', '--lr', '2e-3', '--warmup', '0', '--max-tokens', '8', '--checkpoint-every', '1', '--keep', '10', '--seed', '3',
    '--quant', 'int8', '--quant-warmup', '1', '--learnable-scales', '--freeze-scales-after', '3',
  ];

  it('scales train from the fake-quant switch until --freeze-scales-after, then stay fixed while the weights train; stop and resume is exact', async () => {
    const whole = join(dir, 'whole');
    await distillCommand(args(whole), quiet());
    const checkpoints = await Promise.all((await listTrainingCheckpoints(whole)).map((c) => loadTrainingCheckpoint(c.path)));
    expect(checkpoints.map((c) => c.step)).toEqual([1, 2, 3, 4, 5]);
    const scale = 'model.decoder.layers.0.fc1.weight_scale';
    const weight = 'model.decoder.layers.0.fc1.weight';
    expect(checkpoints[0]!.tensors.has(scale)).toBe(false);
    const scales = checkpoints.slice(1).map((c) => c.tensors.get(scale)!);
    expect(scales[0]!.length).toBe(studentConfig.decoder_ffn_dim);
    // Trained at step 3 (lr 2e-3 moves a row by about that much), fixed at 4 and 5.
    expect(maxAbsDiff(scales[1]!, scales[0]!)).toBeGreaterThan(1e-4);
    expect(scales[2]).toEqual(scales[1]);
    expect(scales[3]).toEqual(scales[1]);
    // Step 4 (lr > 0; the linear decay reaches 0 at step 5) trains the weights, not the scales.
    const w = checkpoints.slice(2, 4).map((c) => c.model.weights.get(weight)!);
    expect(maxAbsDiff(w[1]!, w[0]!)).toBeGreaterThan(1e-4);
    // The scales' AdamW moments are checkpointed while they train.
    expect(checkpoints[2]!.tensors.has(`${scale}.exp_avg`)).toBe(true);

    // dqw export of step 3 at the trained bits writes the learned scales; int4 is refused.
    const exported = join(dir, 'int8');
    await exportCommand(['--model', checkpoints[2]!.path, '--format', 'hf', '--quant', 'int8', '--output', exported], quiet());
    const int8 = await loadHfInt8Checkpoint(exported);
    expect(int8.quantized.get('model.decoder.layers.0.fc1')!.scales).toEqual(scales[1]);
    // ... which are not the max scaling an export without them would use.
    const w3 = checkpoints[2]!.model.weights.get(weight)!;
    const cols = studentConfig.d_model;
    const maxScaled = Float32Array.from(scales[1]!, (_, r) => Math.max(...Array.from(w3.subarray(r * cols, (r + 1) * cols), Math.abs)) / 127);
    expect(maxAbsDiff(scales[1]!, maxScaled)).toBeGreaterThan(1e-5);
    await expect(exportCommand(['--model', checkpoints[2]!.path, '--format', 'hf', '--quant', 'int4', '--output', join(dir, 'int4')], quiet())).rejects.toThrow(
      /weight_scale" were learned for 8-bit weights, but the export quantizes "model\.[a-z0-9._]+" to 4 bits; export with --quant int8/,
    );

    const split = join(dir, 'split');
    await distillCommand([...args(split), '--stop-at', '2'], quiet());
    await distillCommand([...args(split), '--resume'], quiet());
    expect(losses(split)).toEqual(losses(whole));
  });

  it('refuses --freeze-scales-after without --learnable-scales, and --learnable-scales without fake-quant', async () => {
    const base = args(join(dir, 'bad'));
    await expect(distillCommand(base.filter((a) => a !== '--learnable-scales'), quiet())).rejects.toThrow(/--freeze-scales-after needs --learnable-scales/);
    const noQuant = base.slice(0, base.indexOf('--quant'));
    await expect(distillCommand([...noQuant, '--learnable-scales'], quiet())).rejects.toThrow(/--learnable-scales needs --quant or --quant-plan/);
  });
});

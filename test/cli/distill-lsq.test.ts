// dqw distill --learnable-scales --freeze-scales-after n on real clips with small random models:
// the scales appear at the fake-quant switch in the checkpoints' training.safetensors, train until
// step n and stay fixed afterwards while the weights go on training; a run stopped while the
// scales train and resumed reaches exactly the losses of an uninterrupted one; dqw export of a
// checkpoint quantizes with the learned scales, and refuses other bits than they were learned for.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distillCommand } from '../../src/cli/distill.js';
import { exportCommand } from '../../src/cli/export.js';
import { listTrainingCheckpoints, loadTrainingCheckpoint } from '../../src/io/training-checkpoint.js';
import { loadHfInt8Checkpoint } from '../../src/io/node-files.js';
import type { WhisperConfig } from '../../src/model/config.js';
import { maxAbsDiff } from '../helpers.js';
import { quiet, trainRecords, writeDistillFixture } from './distill-fixture.js';

let dir = '';
let studentConfig: WhisperConfig;
beforeAll(async () => {
  ({ dir, studentConfig } = await writeDistillFixture('dqw-distill-lsq-', { teacherLayers: 2, studentLayers: 1, clips: 2 }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const losses = (run: string) => trainRecords(run).map((r) => r.loss);

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

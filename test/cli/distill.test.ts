// dqw distill / dqw train end to end on real clips with small random models: a run stopped and
// resumed reaches exactly the losses of an uninterrupted run (weights, AdamW moments, projections,
// data position and layer maps restored, across the float→fake-quant switch); cross-entropy
// training overfits two clips; a checkpoint is a Hugging Face folder; bad arguments are refused.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distillCommand, trainCommand } from '../../src/cli/distill.js';
import { DqwError } from '../../src/errors.js';
import { loadHfCheckpoint } from '../../src/io/node-files.js';
import { listTrainingCheckpoints } from '../../src/io/training-checkpoint.js';
import { fixtureClips, quiet, trainRecords, writeDistillFixture } from './distill-fixture.js';

let dir = '';
beforeAll(async () => {
  dir = (await writeDistillFixture('dqw-distill-', { teacherLayers: 3, studentLayers: 2, clips: 3 })).dir;
  writeFileSync(join(dir, 'bad.jsonl'), `${JSON.stringify(fixtureClips[0])}\n{"audio": "missing.wav", "text": "x", "language": "en"}\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dqw distill', () => {
  const args = (out: string) => [
    '--teacher', join(dir, 'teacher'), '--student', join(dir, 'student.json'), '--data', join(dir, 'train.jsonl'), '--out', out,
    '--steps', '4', '--batch', '2', '--lr', '2e-3', '--warmup', '1', '--max-tokens', '10', '--checkpoint-every', '2', '--seed', '3',
    '--quant', 'int8', '--quant-warmup', '2',
  ];

  it('a run stopped at step 2 and resumed gives exactly the losses of an uninterrupted run', async () => {
    const whole = join(dir, 'whole');
    const split = join(dir, 'split');
    await distillCommand(args(whole), quiet());
    await distillCommand([...args(split), '--stop-at', '2'], quiet());
    expect(trainRecords(split).map((r) => r.step)).toEqual([1, 2]);
    await distillCommand([...args(split), '--resume'], quiet());
    const a = trainRecords(whole);
    const b = trainRecords(split);
    expect(a.map((r) => r.step)).toEqual([1, 2, 3, 4]);
    expect(b.map((r) => r.step)).toEqual([1, 2, 3, 4]);
    // Steps 3-4 run with fake-quant (the switch happens after the resume in the split run).
    expect(a.map((r) => r.quantized)).toEqual([false, false, true, true]);
    // The GPU computes the same sums in the same order: bit-identical losses.
    expect(b.map((r) => r.loss)).toEqual(a.map((r) => r.loss));
    for (const r of a) expect(r.loss.kl).toBeGreaterThan(0);
    // Checkpoints are Hugging Face folders; the final student is the same in both runs.
    const [lastA, lastB] = await Promise.all([whole, split].map(async (run) => (await listTrainingCheckpoints(run)).at(-1)!));
    expect(lastA!.step).toBe(4);
    const [wa, wb] = await Promise.all([lastA!, lastB!].map((c) => loadHfCheckpoint(c.path)));
    expect(wa!.config.d_model).toBe(16);
    expect(wb!.weights.get('model.decoder.layers.1.fc1.weight')).toEqual(wa!.weights.get('model.decoder.layers.1.fc1.weight'));
  });

  it('refuses bad arguments before loading anything, naming the option', async () => {
    await expect(distillCommand(['--student', 'tiny', '--data', 'x', '--out', join(dir, 'x')], quiet())).rejects.toThrow(/--teacher is required/);
    await expect(distillCommand([...args(join(dir, 'y')), '--matching', 'best'], quiet())).rejects.toThrow(/--matching must be one of/);
    await expect(distillCommand([...args(join(dir, 'y')), '--steps', '0'], quiet())).rejects.toThrow(/--steps must be an integer >= 1/);
    await expect(trainCommand(['--model', 'tiny', '--data', 'x', '--out', join(dir, 'z'), '--tau', '2'], quiet())).rejects.toThrow(DqwError);
    await expect(distillCommand([...args(join(dir, 'r')), '--resume'], quiet())).rejects.toThrow(/no checkpoint/);
  });
});

describe('dqw train', () => {
  it('overfits a clip (batch 1, 2 micro-batches per update): cross-entropy falls below a third of its start in 30 steps; a row with a missing clip is skipped and reported by line', async () => {
    const out = join(dir, 'train');
    const stderr = Object.assign(new PassThrough(), { isTTY: false });
    const chunks: Buffer[] = [];
    stderr.on('data', (c: Buffer) => chunks.push(c));
    await trainCommand(['--model', join(dir, 'student.json'), '--data', join(dir, 'bad.jsonl'), '--out', out, '--steps', '30', '--batch', '1', '--accumulate', '2', '--lr', '1e-2', '--warmup', '3', '--decay', 'constant', '--checkpoint-every', '30'], { stdout: new PassThrough().resume(), stderr });
    const records = trainRecords(out);
    const first = records[0]!.loss.ce;
    const last = records.at(-1)!.loss.ce;
    expect(first).toBeGreaterThan(9); // ~ln(51865) = 10.86 at random initialisation
    expect(last).toBeLessThan(first / 3);
    for (const r of records) expect(r.loss.kl).toBe(0);
    expect(Buffer.concat(chunks).toString()).toMatch(/bad\.jsonl: 1 rows skipped\n.*bad\.jsonl:2: audio file not found: .*missing\.wav/);
  });
});

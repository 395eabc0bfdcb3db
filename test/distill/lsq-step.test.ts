// The distillation step with learnable weight scales (method.md "Quantization-aware
// distillation: learnable scales (LSQ gradient), frozen after a number of steps"): the scales'
// LSQ gradients and the masked weight gradients against TF.js autodiff of the same loss, and
// frozen scales that are applied but never move.
import { describe, expect, it } from 'vitest';
import { compileDistillationStep, projectionName, scaleName, type DistillationStepOptions } from '../../src/distill/step.js';
import { whisperParameters, type WhisperConfig } from '../../src/model/config.js';
import { tinyPair, tinyVocabConfig } from './tiny-pair.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { FROZEN_ENCODER_POSITIONS, WhisperWeights } from '../../src/model/whisper.js';
import { maxAbsDiff, useGpu } from '../helpers.js';
import { distillLossGradTf } from '../ref/distill.js';
import { B, expectScaled, labels, lengths, paddedBatchMel, T, tokens } from '../model/padded-batch.js';

const gpu = useGpu();

// The tiny teacher (2+2 layers, width 32) and student (1+1 layers, width 16) on a vocabulary of 120.
const { teacher: teacherCfg, student: studentCfg } = tinyPair(2, 1, 48);
const teacherWeights = initWhisperWeights(teacherCfg, 41, { std: 0.2, randomizeAll: true });
const studentWeights = initWhisperWeights(studentCfg, 42, { std: 0.2, randomizeAll: true });
const { mel, melOf } = paddedBatchMel(tinyVocabConfig, 43);
const examples = [0, 1].map((b) => ({ mel: melOf(b), tokens: tokens.slice(b * T, (b + 1) * T), labels: labels.slice(b * T, (b + 1) * T) }));
const batch = { mel, tokens: Int32Array.from(tokens), labels: Int32Array.from(labels), tokenLengths: Uint32Array.from(lengths) };

// fc1 at 4 bits, the other Linears at 8; the tied embedding at 4 bits keeps max scaling.
const quantBits = (name: string) => (/(fc1|embed_tokens)\.weight$/.test(name) ? 4 : /(proj|fc2)\.weight$/.test(name) ? 8 : null);
const linearWeights = whisperParameters(studentCfg).filter((p) => quantBits(p.name) && !p.name.includes('embed_tokens'));
/** Scales max|W_c| / qmax on even rows and 0.6 of it on odd rows, so that those rows' largest weights clip. */
const initialScales = new Map(
  linearWeights.map(({ name, shape }) => {
    const [rows, cols] = shape as [number, number];
    const w = studentWeights.get(name)!;
    const qmax = 2 ** (quantBits(name)! - 1) - 1;
    return [name, Float32Array.from({ length: rows }, (_, r) => (Math.max(...Array.from(w.subarray(r * cols, (r + 1) * cols), Math.abs)) / qmax) * (r % 2 ? 0.6 : 1))];
  }),
);

const stepOptions = (teacher: WhisperWeights, student: WhisperWeights, frozen: boolean): DistillationStepOptions => ({
  teacher, student, shape: { batch: B, tokens: T, padded: true }, lr: 1e-3,
  alpha: 0.8, beta: 1, gamma: 1, tau: 2, quantize: (n) => (quantBits(n) ? { bits: quantBits(n)! } : null), seed: 5,
  learnableScales: { initial: new Map([...initialScales].map(([n, s]) => [scaleName(n), s])), frozen },
});

describe('distillation step with learnable weight scales (LSQ)', () => {
  it('scale and weight gradients match TF.js autodiff with an LSQ fake-quant; AdamW moves the scales', async () => {
    const g = gpu();
    const teacher = WhisperWeights.upload(g, teacherCfg, teacherWeights, 'teacher');
    const student = WhisperWeights.upload(g, studentCfg, studentWeights, 'student');
    const step = await compileDistillationStep(g, stepOptions(teacher, student, false));
    expect([...step.scales.keys()].sort()).toEqual(linearWeights.map((p) => `${p.name}_scale`).sort());
    const projections = { encoder: [] as Float32Array[], decoder: [] as Float32Array[] };
    for (const side of ['encoder', 'decoder'] as const) projections[side].push(await g.readF32(step.projections.get(projectionName(side, 1))!));
    step.write(batch);
    await step.run(1, 1e-3);
    const maps = await step.layerMaps();
    const ref = await distillLossGradTf(teacherCfg, teacherWeights, studentCfg, studentWeights, examples, {
      alpha: 0.8, beta: 1, gamma: 1, tau: 2, encoderMap: maps.encoder, decoderMap: maps.decoder, projections, quantize: quantBits, scales: initialScales,
    });
    const gradOf = async (label: string) => step.compiled.read(step.grads.get([...step.grads.keys()].find((p) => p.label === label)!)!);
    let worstScale = 0;
    for (const { name, shape } of linearWeights) {
      // The GPU's scale gradient carries LSQ's g = 1 / sqrt(in * qmax).
      const lsqFactor = 1 / Math.sqrt(shape[1]! * (2 ** (quantBits(name)! - 1) - 1));
      const expected = ref.scaleGrads.get(name)!.map((v) => v * lsqFactor);
      // float32 both sides through 2+2 / 1+1 blocks; 1e-4 of the largest entry catches a lost term or a wrong mask.
      worstScale = Math.max(worstScale, expectScaled(await gradOf(scaleName(name)), expected, 1e-4, `d ${scaleName(name)}`));
    }
    let worstWeight = 0;
    for (const { name } of whisperParameters(studentCfg)) {
      if (name === FROZEN_ENCODER_POSITIONS) continue;
      worstWeight = Math.max(worstWeight, expectScaled(await gradOf(name), ref.grads.get(name)!, 1e-4, `d ${name}`));
    }
    // Measured on lavapipe: scales within 1.5e-6, weights within 1.3e-6 of their largest entries.
    expect(Math.min(worstScale, worstWeight)).toBeGreaterThan(0);
    // The first AdamW step moves every scale row whose gradient is not 0 by about lr.
    const name = scaleName('model.decoder.layers.0.fc1.weight');
    const moved = maxAbsDiff(await g.readF32(step.scales.get(name)!), initialScales.get('model.decoder.layers.0.fc1.weight')!);
    expect(moved).toBeGreaterThan(5e-4);
    // Checkpoints carry the scales and their moments.
    const saved = await step.trainingTensors();
    expect(saved.get(name)).toEqual(await g.readF32(step.scales.get(name)!));
    expect(saved.has(`${name}.exp_avg`)).toBe(true);
    step.destroy();
    student.destroy();
    teacher.destroy();
  });

  it('scaleLrFactor: the scales take steps of that factor times the learning rate, the weights the same steps as without it', async () => {
    const g = gpu();
    const teacher = WhisperWeights.upload(g, teacherCfg, teacherWeights, 'teacher');
    const scaleName0 = scaleName('model.decoder.layers.0.fc1.weight');
    const moves: number[] = [];
    const weights: Float32Array[] = [];
    for (const scaleLrFactor of [1, 0.1]) {
      const student = WhisperWeights.upload(g, studentCfg, studentWeights, 'student');
      const step = await compileDistillationStep(g, { ...stepOptions(teacher, student, false), scaleLrFactor });
      step.write(batch);
      await step.run(1, 1e-3);
      // AdamW's first step moves an element by lr * g / (|g| + eps): lr (times the factor) wherever g is not 0.
      moves.push(maxAbsDiff(await g.readF32(step.scales.get(scaleName0)!), initialScales.get('model.decoder.layers.0.fc1.weight')!));
      weights.push(await g.readF32(student.get('model.decoder.layers.0.fc1.weight')));
      step.destroy();
      student.destroy();
    }
    expect(moves[0]).toBeCloseTo(1e-3, 5);
    expect(moves[1]).toBeCloseTo(1e-4, 6);
    expect(weights[1]).toEqual(weights[0]);
    teacher.destroy();
  });

  it('frozen scales are applied (the same losses) but get no gradient and never move, while the weights train', async () => {
    const g = gpu();
    const teacher = WhisperWeights.upload(g, teacherCfg, teacherWeights, 'teacher');
    const losses = [];
    for (const frozen of [false, true]) {
      const student = WhisperWeights.upload(g, studentCfg, studentWeights, 'student');
      const step = await compileDistillationStep(g, stepOptions(teacher, student, frozen));
      step.write(batch);
      losses.push(await step.run(1, 1e-3));
      if (frozen) {
        expect([...step.grads.keys()].some((p) => p.label.endsWith('_scale'))).toBe(false);
        for (const [weight, initial] of initialScales) expect(await g.readF32(step.scales.get(scaleName(weight))!)).toEqual(initial);
        const fc1 = 'model.decoder.layers.0.fc1.weight';
        expect(maxAbsDiff(await g.readF32(student.get(fc1)), studentWeights.get(fc1)!)).toBeGreaterThan(1e-4);
      }
      step.destroy();
      student.destroy();
    }
    // The forward does not depend on whether the scales train.
    expect(losses[1]!.total).toBe(losses[0]!.total);
    teacher.destroy();
  });
});

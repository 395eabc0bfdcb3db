import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { matchLayers } from '../../src/distill/matching.js';
import { initStudentFromTeacher } from '../../src/distill/student-init.js';
import { compileDistillationStep, projectionName, type DistillationStepOptions } from '../../src/distill/step.js';
import { whisperParameters, type WhisperConfig } from '../../src/model/config.js';
import { tinyPair, tinyVocabConfig } from './tiny-pair.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { FROZEN_ENCODER_POSITIONS, WhisperWeights } from '../../src/model/whisper.js';
import { expectClose, maxAbsDiff, useGpu } from '../helpers.js';
import { distillLossGradTf, type DistillRefOptions } from '../ref/distill.js';
import { B, expectScaled, labels, lengths, paddedBatchMel, T, tokens } from '../model/padded-batch.js';

const gpu = useGpu();

// A 3+3-layer teacher of width 32 and a 2+2-layer student of width 16: every path of the step
// (projections, a non-trivial monotonic map, fake-quant at 8 and 4 bits, the tied token
// embedding fake-quantized in both its lookup and the logits) on a tiny vocabulary.
const { teacher: teacherCfg, student: studentCfg } = tinyPair(3, 2);
const teacherWeights = initWhisperWeights(teacherCfg, 31, { std: 0.2, randomizeAll: true });
const studentWeights = initWhisperWeights(studentCfg, 32, { std: 0.2, randomizeAll: true });

const { mel, melOf } = paddedBatchMel(tinyVocabConfig, 33);
const examples = [0, 1].map((b) => ({
  mel: melOf(b),
  tokens: tokens.slice(b * T, (b + 1) * T),
  labels: labels.slice(b * T, (b + 1) * T),
}));
const batch = { mel, tokens: Int32Array.from(tokens), labels: Int32Array.from(labels), tokenLengths: Uint32Array.from(lengths) };

/** Mean squared distance of student layer i and teacher layer j over the valid rows (float64). */
function distancesRef(student: Float32Array[][], teacher: Float32Array[][], d: number, rowValid: (b: number, r: number) => boolean): number[][] {
  return student[0]!.map((_, i) =>
    teacher[0]!.map((_, j) => {
      let sum = 0;
      let n = 0;
      student.forEach((layers, b) => {
        const s = layers[i]!;
        const t = teacher[b]![j]!;
        for (let k = 0; k < s.length; k++) {
          if (!rowValid(b, Math.floor(k / d))) continue;
          sum += (s[k]! - t[k]!) ** 2;
          n++;
        }
      });
      return sum / n;
    }),
  );
}

describe('distillation step (student fake-quant, CE + KL + hidden states with dynamic matching, backward, AdamW)', () => {
  it('losses, distance matrices, GPU layer maps and every student and projection gradient match TF.js autodiff (weights at 4 and 8 bits, some inputs per token)', async () => {
    const g = gpu();
    const teacher = WhisperWeights.upload(g, teacherCfg, teacherWeights, 'teacher');
    const student = WhisperWeights.upload(g, studentCfg, studentWeights, 'student');
    // The embedding at 4 bits, so a lookup that missed the quantization would show in every gradient.
    const quantBits = (name: string) => (/(fc1|embed_tokens)\.weight$/.test(name) ? 4 : /(proj|fc2)\.weight$/.test(name) ? 8 : null);
    // The inputs of fc2 and the attention output projections are fake-quantized per token too.
    const quantInputs = (name: string) => /(fc2|out_proj)\.weight$/.test(name);
    const opts: DistillationStepOptions = {
      teacher, student, shape: { batch: B, tokens: T, padded: true }, lr: 1e-3,
      alpha: 0.8, beta: 1, gamma: 1, tau: 2, quantize: (n) => (quantBits(n) ? { bits: quantBits(n)!, activations: quantInputs(n) } : null), seed: 5,
    };
    const step = await compileDistillationStep(g, opts);
    const projections = { encoder: [] as Float32Array[], decoder: [] as Float32Array[] };
    for (const side of ['encoder', 'decoder'] as const) {
      for (let i = 1; i <= 2; i++) projections[side].push(await g.readF32(step.projections.get(projectionName(side, i))!));
    }
    step.write(batch);
    const losses = await step.run(1, 1e-3);
    const maps = await step.layerMaps();
    expect(maps.kept).toBe(false);

    const refOpts: DistillRefOptions = { alpha: 0.8, beta: 1, gamma: 1, tau: 2, encoderMap: maps.encoder, decoderMap: maps.decoder, projections, quantize: quantBits, quantizeInputs: quantInputs };
    const ref = await distillLossGradTf(teacherCfg, teacherWeights, studentCfg, studentWeights, examples, refOpts);
    // float32 on both sides through 3+3 / 2+2 blocks: relative 2e-5 is ~10x the measured gaps.
    expectClose([losses.ce, losses.kl, losses.hsEncoder, losses.hsDecoder, losses.total], [ref.ce, ref.kl, ref.hsEncoder, ref.hsDecoder, ref.total], { atol: 0, rtol: 2e-5 }, 'losses (ce, kl, hs enc, hs dec, total)');

    // The maps are the float64 matcher's choice on distances from the reference hidden states.
    const dist = await step.distances();
    const dEnc = distancesRef(ref.hidden.map((h) => h.studentEncoder), ref.hidden.map((h) => h.teacherEncoder), 32, () => true);
    const dDec = distancesRef(ref.hidden.map((h) => h.studentDecoder), ref.hidden.map((h) => h.teacherDecoder), 32, (b, r) => r < lengths[b]!);
    expectClose(dist.encoder!, dEnc.flat(), { atol: 0, rtol: 2e-5 }, 'encoder distances');
    expectClose(dist.decoder!, dDec.flat(), { atol: 0, rtol: 2e-5 }, 'decoder distances');
    expect(maps.encoder).toEqual(matchLayers(dEnc, { strategy: 'dynamic' }).teacherLayers);
    expect(maps.decoder).toEqual(matchLayers(dDec, { strategy: 'dynamic' }).teacherLayers);

    let worst = 0;
    for (const { name } of whisperParameters(studentCfg)) {
      const param = step.student.params.get(name)!;
      if (name === FROZEN_ENCODER_POSITIONS) {
        expect(step.grads.has(param)).toBe(false);
        continue;
      }
      // Measured <= 1.6e-6 of each gradient's scale on lavapipe; 1e-4 still catches a lost or doubled term.
      worst = Math.max(worst, expectScaled(await step.compiled.read(step.grads.get(param)!), ref.grads.get(name)!, 1e-4, `d ${name}`));
    }
    for (const side of ['encoder', 'decoder'] as const) {
      for (let i = 1; i <= 2; i++) {
        const param = [...step.grads.keys()].find((p) => p.label === projectionName(side, i))!;
        worst = Math.max(worst, expectScaled(await step.compiled.read(step.grads.get(param)!), ref.projectionGrads[side][i - 1]!, 1e-4, `d ${projectionName(side, i)}`));
      }
    }
    expect(worst).toBeGreaterThan(0);
    // AdamW moved every trained weight.
    const after = await student.download();
    expect(maxAbsDiff(after.get('model.decoder.layers.1.fc1.weight')!, studentWeights.get('model.decoder.layers.1.fc1.weight')!)).toBeGreaterThan(1e-4);
    expect(after.get(FROZEN_ENCODER_POSITIONS)).toEqual(studentWeights.get(FROZEN_ENCODER_POSITIONS));
    step.destroy();
    student.destroy();
    teacher.destroy();
  });

  it('frozen encoder: a student seeded from teacher layers cross-attends to the teacher encoder; greedy decoder map; gradients match TF.js', async () => {
    const g = gpu();
    const sameWidth: WhisperConfig = { ...teacherCfg, decoder_layers: 2 };
    const seeded = initStudentFromTeacher(teacherCfg, teacherWeights, sameWidth).weights;
    // Perturb the copied decoder so the student differs from the teacher layers it came from.
    for (const [name, w] of seeded) if (name.startsWith('model.decoder.layers.')) w.set(w.map((v, i) => v + 0.05 * Math.sin(i + name.length)));
    const teacher = WhisperWeights.upload(g, teacherCfg, teacherWeights, 'teacher');
    const student = WhisperWeights.upload(g, sameWidth, seeded, 'student');
    const step = await compileDistillationStep(g, {
      teacher, student, shape: { batch: B, tokens: T, padded: true }, lr: 1e-3, frozenEncoder: true, matching: { strategy: 'greedy' },
    });
    expect(step.projections.size).toBe(0);
    step.write(batch);
    const losses = await step.run(1, 1e-3);
    const maps = await step.layerMaps();
    expect(maps.encoder).toBeNull();
    const ref = await distillLossGradTf(teacherCfg, teacherWeights, sameWidth, seeded, examples, {
      alpha: 0.8, beta: 1, gamma: 1, tau: 2, encoderMap: null, decoderMap: maps.decoder, frozenEncoder: true,
    });
    expectClose([losses.ce, losses.kl, losses.hsDecoder, losses.total], [ref.ce, ref.kl, ref.hsDecoder, ref.total], { atol: 0, rtol: 2e-5 }, 'losses');
    const dDec = distancesRef(ref.hidden.map((h) => h.studentDecoder), ref.hidden.map((h) => h.teacherDecoder), 32, (b, r) => r < lengths[b]!);
    expect(maps.decoder).toEqual(matchLayers(dDec, { strategy: 'greedy' }).teacherLayers);
    for (const { name } of whisperParameters(sameWidth)) {
      const param = step.student.params.get(name)!;
      if (name.startsWith('model.encoder.')) {
        expect(step.grads.has(param), name).toBe(false);
        continue;
      }
      expectScaled(await step.compiled.read(step.grads.get(param)!), ref.grads.get(name)!, 1e-4, `d ${name}`);
    }
    // The student's encoder weights are untouched.
    const after = await student.download();
    expect(after.get('model.encoder.layers.0.fc1.weight')).toEqual(seeded.get('model.encoder.layers.0.fc1.weight'));
    step.destroy();
    student.destroy();
    teacher.destroy();
  });

  it('rejects options it cannot train with, naming the field', async () => {
    const g = gpu();
    const teacher = WhisperWeights.upload(g, teacherCfg, teacherWeights, 'teacher');
    const student = WhisperWeights.upload(g, studentCfg, studentWeights, 'student');
    const shape = { batch: 1, tokens: 4 };
    await expect(compileDistillationStep(g, { teacher, student, shape, lr: 1, frozenEncoder: true })).rejects.toThrow(/frozenEncoder.*d_model 16 vs 32/);
    await expect(compileDistillationStep(g, { teacher, student, shape, lr: 1, tau: 0 })).rejects.toThrow(ConfigError);
    await expect(compileDistillationStep(g, { teacher, student, shape, lr: 1, alpha: 0, beta: 0, gamma: 0 })).rejects.toThrow(/every loss weight is 0/);
    student.destroy();
    teacher.destroy();
  });
});

// Gradient accumulation in the distillation step: two micro-batches of one sequence each give
// the update that one batch of both gives (equal label counts, so the mean of the two means is
// the batch mean), fake-quant and the fused losses included; parameters stay put until applied.
import { describe, expect, it } from 'vitest';
import { compileDistillationStep } from '../../src/distill/step.js';
import { tinyPair, tinyVocabConfig } from './tiny-pair.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { WhisperWeights } from '../../src/model/whisper.js';
import { expectClose, maxAbsDiff, randomArray, useGpu } from '../helpers.js';

const gpu = useGpu();
const { teacher: teacherCfg, student: studentCfg } = tinyPair(3, 2);
const teacherWeights = initWhisperWeights(teacherCfg, 41, { std: 0.2, randomizeAll: true });
const studentWeights = initWhisperWeights(studentCfg, 42, { std: 0.2, randomizeAll: true });
const T = 6;
const melSize = tinyVocabConfig.num_mel_bins * 2 * tinyVocabConfig.max_source_positions;
const mel = randomArray(2 * melSize, 43);
const tokens = [119, 4, 42, 7, 88, 3, 119, 11, 23, 99, 5, 60];
const labels = [4, 42, 7, 88, 3, 60, 11, 23, 99, 5, 60, 117];
const quantize = (name: string) => (/(proj|fc1|fc2)\.weight$/.test(name) ? { bits: 8 } : null);

describe('gradient accumulation', () => {
  it('two micro-batches of one accumulate the gradient of one batch of two; the update waits for apply', async () => {
    const g = gpu();
    const teacher = WhisperWeights.upload(g, teacherCfg, teacherWeights);
    const whole = WhisperWeights.upload(g, studentCfg, studentWeights);
    const split = WhisperWeights.upload(g, studentCfg, studentWeights);
    const common = { teacher, lr: 1e-2, maxGradNorm: 1, quantize, seed: 7 };
    const one = await compileDistillationStep(g, { ...common, student: whole, shape: { batch: 2, tokens: T } });
    const micro = await compileDistillationStep(g, { ...common, student: split, shape: { batch: 1, tokens: T }, microBatches: 2 });
    // The same projections on both sides.
    for (const [name, t] of micro.projections) g.write(t, await g.readF32(one.projections.get(name)!));

    one.write({ mel, tokens: Int32Array.from(tokens), labels: Int32Array.from(labels) });
    const lossWhole = await one.run(1, 1e-2);
    await micro.zeroGradients();
    const parts = [];
    for (const b of [0, 1]) {
      micro.write({ mel: mel.subarray(b * melSize, (b + 1) * melSize), tokens: Int32Array.from(tokens.slice(b * T, (b + 1) * T)), labels: Int32Array.from(labels.slice(b * T, (b + 1) * T)) });
      if (b === 0) {
        const before = await split.download();
        parts.push(await micro.run(1, 1e-2, { apply: false }));
        // Not applied: the weights have not moved.
        expect((await split.download()).get('model.decoder.layers.0.fc1.weight')).toEqual(before.get('model.decoder.layers.0.fc1.weight'));
      } else {
        parts.push(await micro.run(1, 1e-2));
      }
    }
    // The mean of the micro-batch losses is the batch loss (equal label counts).
    expectClose([(parts[0]!.ce + parts[1]!.ce) / 2, (parts[0]!.kl + parts[1]!.kl) / 2], [lossWhole.ce, lossWhole.kl], { atol: 0, rtol: 1e-5 }, 'losses');
    // The clipped global norm is the norm of the mean gradient.
    expect(parts[1]!.gradNorm / 2).toBeCloseTo(lossWhole.gradNorm, 4);
    // Accumulated gradients are the sum over micro-batches: half of it is the batch's mean gradient.
    let worst = 0;
    for (const [param, grad] of one.grads) {
      const other = [...micro.grads].find(([p]) => p.label === param.label)![1];
      const want = await one.compiled.read(grad);
      const got = (await micro.compiled.read(other)).map((v) => v / 2);
      const scale = Math.max(...Array.from(want, Math.abs));
      expectClose(got, want, { atol: 2e-5 * scale, rtol: 0 }, `d ${param.label}`);
      worst = Math.max(worst, maxAbsDiff(got, want) / scale);
    }
    expect(worst).toBeGreaterThan(0);
    // Applied: the weights moved.
    expect(maxAbsDiff((await split.download()).get('model.decoder.layers.0.fc1.weight')!, studentWeights.get('model.decoder.layers.0.fc1.weight')!)).toBeGreaterThan(1e-3);
    for (const s of [one, micro]) s.destroy();
    for (const w of [teacher, whole, split]) w.destroy();
  });
});

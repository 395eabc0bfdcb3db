import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.js';
import { backward } from '../../src/graph/autodiff.js';
import { compileGraph } from '../../src/graph/compile.js';
import { Graph } from '../../src/graph/graph.js';
import { crossEntropyLoss } from '../../src/graph/losses.js';
import { presetConfig, whisperParameters, type WhisperConfig } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { buildWhisper, compileWhisperTrainingStep, FROZEN_ENCODER_POSITIONS, WhisperWeights } from '../../src/model/whisper.js';
import { countDeviceObjects } from '../graph/counting.js';
import { expectClose, maxAbsDiff, useGpu } from '../helpers.js';
import { whisperForwardRef, whisperLossGradTf } from '../ref/whisper.js';
import { B, expectScaled, labels, lengths, paddedBatchMel, T, tokens } from './padded-batch.js';

const gpu = useGpu();

// 2+2 layers, 2 heads of 16, a 10-position audio context (20 mel frames) and 120 tokens: small
// enough for the float64 and TF.js references, every op of the model on its path.
const cfg: WhisperConfig = {
  ...presetConfig('tiny'),
  vocab_size: 120, num_mel_bins: 10, d_model: 32, encoder_layers: 2, encoder_attention_heads: 2, encoder_ffn_dim: 64,
  decoder_layers: 2, decoder_attention_heads: 2, decoder_ffn_dim: 48, max_source_positions: 10, max_target_positions: 12,
  decoder_start_token_id: 119, eos_token_id: 117, pad_token_id: 117, bos_token_id: 117,
};
// std 0.2 so every path moves the logits by O(1); randomizeAll so no bias or LayerNorm parameter
// sits at 0 or 1 where a mistake could hide.
const weights = initWhisperWeights(cfg, 7, { std: 0.2, randomizeAll: true });
const { mel, melOf } = paddedBatchMel(cfg, 3);
const rowsOf = <T extends ArrayLike<number>>(x: T, b: number, rows: number, width: number, keep: number) =>
  Array.from({ length: keep * width }, (_, i) => x[(b * rows + Math.floor(i / width)) * width + (i % width)]!);

describe('Whisper on the graph', () => {
  it('uploads and downloads weights by Hugging Face name and rejects a wrong set naming the tensor', async () => {
    const g = gpu();
    const w = WhisperWeights.upload(g, cfg, weights);
    const back = await w.download();
    expect([...back.keys()]).toEqual(whisperParameters(cfg).map((p) => p.name));
    for (const [name, v] of back) expect(v).toEqual(weights.get(name));
    w.destroy();
    const broken = new Map(weights);
    broken.set('model.decoder.layers.1.fc1.weight', new Float32Array(5));
    expect(() => WhisperWeights.upload(g, cfg, broken, 'broken.safetensors')).toThrow(/broken.safetensors.*"model.decoder.layers.1.fc1.weight" has 5 elements/s);
    expect(() => w.get('proj_out.weight')).toThrow(/tied/);
  });

  it('forward (batch 2, right-padded tokens) matches the float64 reference: hidden states, encoder output, logits', async () => {
    const g = gpu();
    const w = WhisperWeights.upload(g, cfg, weights);
    const graph = new Graph();
    const m = buildWhisper(graph, w, { batch: B, tokens: T, padded: true }, { keep: { encoderHidden: 'all', decoderHidden: 'all', logits: true } });
    const step = await compileGraph(g, graph);
    step.write(m.inputs.mel, mel);
    step.write(m.inputs.tokens, Int32Array.from(tokens));
    step.write(m.inputs.tokenLengths!, Uint32Array.from(lengths));
    await step.run();
    const d = cfg.d_model;
    const ctx = cfg.max_source_positions;
    // float32 kernels vs float64 over 2+2 blocks: measured <= 3.5e-7 of each tensor's scale on
    // lavapipe; 2e-5 leaves room for other GPUs' exp/erf yet is far below any real slip (~1e-2).
    const tol = 2e-5;
    const encHidden = await Promise.all(m.encoderHidden.map((h) => step.read(h)));
    const decHidden = await Promise.all(m.decoderHidden.map((h) => step.read(h)));
    const logits = await step.read(m.logits);
    let worst = 0;
    for (let b = 0; b < B; b++) {
      const ref = whisperForwardRef(cfg, weights, melOf(b), tokens.slice(b * T, b * T + lengths[b]!));
      expect(encHidden).toHaveLength(ref.encoderHidden.length);
      ref.encoderHidden.forEach((h, i) => (worst = Math.max(worst, expectScaled(rowsOf(encHidden[i]!, b, ctx, d, ctx), h, tol, `batch ${b} encoder hidden ${i}`))));
      ref.decoderHidden.forEach((h, i) => (worst = Math.max(worst, expectScaled(rowsOf(decHidden[i]!, b, T, d, lengths[b]!), h, tol, `batch ${b} decoder hidden ${i}`))));
      worst = Math.max(worst, expectScaled(rowsOf(logits, b, T, cfg.vocab_size, lengths[b]!), ref.logits, tol, `batch ${b} logits`));
    }
    expect(worst).toBeGreaterThan(0);
    step.destroy();
    w.destroy();
  });

  it('cross-entropy gradients of every parameter match TF.js autodiff (batch 2, padded, mean over valid labels)', async () => {
    const g = gpu();
    const w = WhisperWeights.upload(g, cfg, weights);
    const graph = new Graph();
    const m = buildWhisper(graph, w, { batch: B, tokens: T, padded: true }, { trainable: true });
    const labelInput = graph.input([B, T], 'i32', 'labels');
    const loss = crossEntropyLoss(graph, m.logits, labelInput);
    const grads = backward(graph, [loss]);
    const step = await compileGraph(g, graph);
    step.write(m.inputs.mel, mel);
    step.write(m.inputs.tokens, Int32Array.from(tokens));
    step.write(m.inputs.tokenLengths!, Uint32Array.from(lengths));
    step.write(labelInput, Int32Array.from(labels));
    await step.run();
    // The batch loss is the mean over all valid labels: per-example TF.js gradients weighted by
    // their label counts. Padded positions see only earlier tokens (causal), so the TF.js run on
    // the padded sequence with those labels ignored is the same example.
    const counts = [0, 1].map((b) => labels.slice(b * T, (b + 1) * T).filter((l) => l !== -100).length);
    const total = counts[0]! + counts[1]!;
    const refs = await Promise.all([0, 1].map((b) => whisperLossGradTf(cfg, weights, melOf(b), tokens.slice(b * T, (b + 1) * T), labels.slice(b * T, (b + 1) * T))));
    const refLoss = (refs[0]!.loss * counts[0]! + refs[1]!.loss * counts[1]!) / total;
    expectClose(await step.readScalars([loss]), [refLoss], { atol: 0, rtol: 2e-6 }, 'loss');
    expect(grads.has(m.params.get(FROZEN_ENCODER_POSITIONS)!)).toBe(false);
    let worst = 0;
    for (const { name } of whisperParameters(cfg)) {
      if (name === FROZEN_ENCODER_POSITIONS) continue;
      const ours = await step.read(grads.get(m.params.get(name)!)!);
      const expected = refs[0]!.grads.get(name)!.map((v, i) => (v * counts[0]! + refs[1]!.grads.get(name)![i]! * counts[1]!) / total);
      // Both float32 with different summation orders, through 2+2 blocks: measured <= 4.9e-6 of
      // each gradient's scale (lavapipe); 5e-5 still catches a lost or doubled contribution.
      worst = Math.max(worst, expectScaled(ours, expected, 5e-5, `d ${name}`));
    }
    expect(worst).toBeGreaterThan(0);
    step.destroy();
    w.destroy();
  });

  it('batch of one: gradients match TF.js (the position table [T, d] meets activations [1, T, d] of the same size)', async () => {
    const g = gpu();
    const w = WhisperWeights.upload(g, cfg, weights);
    const graph = new Graph();
    const m = buildWhisper(graph, w, { batch: 1, tokens: T }, { trainable: true });
    const labelInput = graph.input([1, T], 'i32', 'labels');
    const loss = crossEntropyLoss(graph, m.logits, labelInput);
    const grads = backward(graph, [loss]);
    const step = await compileGraph(g, graph);
    step.write(m.inputs.mel, melOf(0));
    step.write(m.inputs.tokens, Int32Array.from(tokens.slice(0, T)));
    step.write(labelInput, Int32Array.from(labels.slice(0, T)));
    await step.run();
    const ref = await whisperLossGradTf(cfg, weights, melOf(0), tokens.slice(0, T), labels.slice(0, T));
    for (const name of ['model.decoder.embed_positions.weight', 'model.decoder.layers.0.fc1.weight', 'model.encoder.conv1.weight']) {
      expectScaled(await step.read(grads.get(m.params.get(name)!)!), ref.grads.get(name)!, 5e-5, `d ${name}`);
    }
    step.destroy();
    w.destroy();
  });

  it('trains: one submit per step, loss falls, replays allocate nothing, teacher-mode replays are bit-identical', async () => {
    const g = gpu();
    const w = WhisperWeights.upload(g, cfg, weights);
    const train = await compileWhisperTrainingStep(g, w, { batch: B, tokens: T, padded: true }, { lr: 3e-3, maxGradNorm: 1 });
    const { step, model } = train;
    step.write(model.inputs.mel, mel);
    step.write(model.inputs.tokens, Int32Array.from(tokens));
    step.write(model.inputs.tokenLengths!, Uint32Array.from(lengths));
    step.write(train.labels, Int32Array.from(labels));
    const losses: number[] = [];
    for (let s = 1; s <= 6; s++) {
      const counts = countDeviceObjects(g.device);
      try {
        await step.run({ step: s });
      } finally {
        counts.restore();
      }
      expect({ buffers: counts.buffers, bindGroups: counts.bindGroups, encoders: counts.encoders }).toEqual({ buffers: 0, bindGroups: 0, encoders: 1 });
      losses.push((await step.readScalars([train.loss]))[0]!);
    }
    // Over-fitting one batch with AdamW: the loss falls step after step.
    for (let s = 1; s < losses.length; s++) expect(losses[s]!).toBeLessThan(losses[s - 1]!);
    const norm = (await step.readScalars([train.gradNormSquared!]))[0]!;
    expect(norm).toBeGreaterThan(0);
    // The update changed the trainable weights and left the frozen encoder positions alone.
    const after = await w.download();
    expect(after.get(FROZEN_ENCODER_POSITIONS)).toEqual(weights.get(FROZEN_ENCODER_POSITIONS));
    expect(maxAbsDiff(after.get('model.encoder.layers.0.fc1.weight')!, weights.get('model.encoder.layers.0.fc1.weight')!)).toBeGreaterThan(1e-3);
    step.destroy();

    // Teacher mode: forward only, hidden states and logits kept; replays reproduce the first run
    // bit for bit, and so does a plan without any storage reuse.
    const runTeacher = async (reuse: boolean, times: number) => {
      const graph = new Graph();
      const m = buildWhisper(graph, w, { batch: B, tokens: T, padded: true }, { keep: { encoderHidden: [1], decoderHidden: 'all', logits: true } });
      const teacher = await compileGraph(g, graph, { reuse });
      teacher.write(m.inputs.mel, mel);
      teacher.write(m.inputs.tokens, Int32Array.from(tokens));
      teacher.write(m.inputs.tokenLengths!, Uint32Array.from(lengths));
      const outs: Float32Array[][] = [];
      for (let i = 0; i < times; i++) {
        await teacher.run();
        outs.push(await Promise.all([m.encoderHidden[1]!, ...m.decoderHidden, m.logits].map((t) => teacher.read(t))));
      }
      const plan = teacher.plan.memory;
      teacher.destroy();
      return { outs, plan };
    };
    const planned = await runTeacher(true, 2);
    const unplanned = await runTeacher(false, 1);
    expect(planned.outs[1]).toEqual(planned.outs[0]);
    expect(unplanned.outs[0]).toEqual(planned.outs[0]);
    // Forward only: activations die after their last consumer, so the arenas hold a fraction of them.
    expect(planned.plan.peakBytes).toBeLessThan(0.5 * planned.plan.totalBytes);
    expect(unplanned.plan.peakBytes).toBeGreaterThanOrEqual(unplanned.plan.totalBytes);
    w.destroy();
  });

  it('fake-quantizing the tied token embedding computes its scales once, for the lookup, the logits and their gradients', () => {
    const g = new Graph();
    const name = 'model.decoder.embed_tokens.weight';
    const model = buildWhisper(g, cfg, { batch: 1, tokens: 4 }, { trainable: true, quantize: (n) => (n === name || n.endsWith('fc1.weight') ? { bits: 4 } : null) });
    backward(g, [crossEntropyLoss(g, model.logits, g.input([1, 4], 'i32', 'labels'))]);
    const table = model.params.get(name)!;
    const scaleNodes = g.nodes.filter((n) => n.name === 'fakeQuantScales' && n.reads.includes(table));
    expect(scaleNodes).toHaveLength(1);
    const scales = scaleNodes[0]!.writes[0]!;
    const readers = g.nodes.filter((n) => n.reads.includes(scales)).map((n) => `${n.name} (${n.label})`);
    // Forward: the lookup and the logits; backward: the logits' dx and STE mask, the lookup's masked scatter.
    expect(readers.sort()).toEqual(['embedding (token embedding)', 'embedding.grad (token embedding)', 'linear (logits)', 'linear.dx (logits)', 'linear.ste (logits)']);
    // One scales tensor per quantized weight: 4 fc1 layers and the embedding.
    expect(g.nodes.filter((n) => n.name === 'fakeQuantScales')).toHaveLength(cfg.encoder_layers + cfg.decoder_layers + 1);
  });

  it('rejects shapes the config cannot take, naming the limit', () => {
    const g = gpu();
    const w = WhisperWeights.upload(g, cfg, weights);
    expect(() => buildWhisper(new Graph(), w, { batch: 1, tokens: 13 })).toThrow(ShapeError);
    expect(() => buildWhisper(new Graph(), w, { batch: 1, tokens: 13 })).toThrow(/max_target_positions/);
    expect(() => buildWhisper(new Graph(), w, { batch: 1, tokens: 4 }, { keep: { decoderHidden: [3] } })).toThrow(/keep.decoderHidden index 3/);
    w.destroy();
  });
});

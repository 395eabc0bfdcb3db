// Memory plan of a whole distillation training step, planned only (no GPU run): a Whisper-small
// teacher (d 768, 12+12 layers, forward only) and a base-width student (d 512, 6+6 layers) on
// one batch of 4 x 30 s of audio (1500 encoder positions) with 448 decoder tokens; student
// forward, cross-entropy + KL (tau 2) on the logits + hidden-state MSE through learned
// projections (student layer i <- teacher layer 2i), backward, AdamW. And the wall time of a
// replayed training step of a small Whisper on this device.
import { backward } from '../../src/graph/autodiff.js';
import { deviceLimits } from '../../src/graph/compile.js';
import { Graph, type GraphTensor } from '../../src/graph/graph.js';
import { crossEntropyLoss, klDivergenceLoss, mseLossOp } from '../../src/graph/losses.js';
import { linear } from '../../src/graph/ops.js';
import { adamw } from '../../src/graph/optim.js';
import { planGraph, type GraphPlan, type PlanLimits } from '../../src/graph/plan.js';
import { presetConfig, type WhisperConfig } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { buildWhisper, compileWhisperTrainingStep, WhisperWeights } from '../../src/model/whisper.js';
import type { BenchReport } from '../types.js';

const MiB = 1024 * 1024;
const fmt = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

/** Teacher and student on one batch, with every loss of the method; returns the planned graph. */
function distillationStep(teacherConfig: WhisperConfig, studentConfig: WhisperConfig, batch: number, tokens: number): Graph {
  const g = new Graph();
  const teacher = buildWhisper(g, teacherConfig, { batch, tokens, padded: true }, { label: 'teacher' });
  const student = buildWhisper(g, studentConfig, { batch, tokens, padded: true }, { trainable: true, inputs: teacher.inputs, label: 'student' });
  const labels = g.input([batch, tokens], 'i32', 'labels');
  const roots: GraphTensor[] = [
    crossEntropyLoss(g, student.logits, labels, { weight: 0.8 }),
    klDivergenceLoss(g, student.logits, teacher.logits, { tau: 2, mask: labels }),
  ];
  // Hidden-state matching: student state i (1..L_S) against teacher state i * L_T / L_S, through
  // a learned d_S -> d_T projection (shape-only parameters, as the models' own).
  const pairs = (s: GraphTensor[], t: GraphTensor[], side: string, mask?: GraphTensor) =>
    s.slice(1).map((h, i) => {
      const proj = g.external({ shape: [teacherConfig.d_model, studentConfig.d_model], dtype: 'f32', label: `${side} projection ${i + 1}` }, { trainable: true });
      const target = t[Math.round(((i + 1) * (t.length - 1)) / (s.length - 1))]!;
      return mseLossOp(g, linear(g, h, proj, null, { label: `${side} projection ${i + 1}` }), target, { mask, weight: 1 / (2 * (s.length - 1)), label: `${side} hidden ${i + 1}` });
    });
  roots.push(...pairs(student.encoderHidden, teacher.encoderHidden, 'encoder'), ...pairs(student.decoderHidden, teacher.decoderHidden, 'decoder', labels));
  const grads = backward(g, roots);
  adamw(g, grads, { lr: 1e-4, maxGradNorm: 1 });
  return g;
}

function describePlan(plan: GraphPlan): string[] {
  const m = plan.memory;
  return [
    `intermediate tensors, summed: ${fmt(m.totalBytes)}`,
    `planned arenas (peak):        ${fmt(m.peakBytes)} in ${m.arenaBytes.length} arenas [${m.arenaBytes.map(fmt).join(', ')}]  = ${(m.peakBytes / m.totalBytes).toFixed(3)}x the sum`,
    `live-bytes lower bound:       ${fmt(m.liveBytesBound)} (peak is ${(m.peakBytes / m.liveBytesBound).toFixed(3)}x it)`,
    `in-place ops taken:           ${plan.inPlace.size}`,
    `persistent: parameters ${fmt(plan.externalBytes)}, graph-owned (inputs, gradients, moments, losses) ${fmt(plan.ownedPersistentBytes)}`,
  ];
}

const distillationPlan: BenchReport = {
  name: 'memory plan: distillation step, teacher small (d 768, 12+12) -> student base width (d 512, 6+6), batch 4 x 30 s, 448 tokens',
  async run(gpu) {
    const teacher = presetConfig('small');
    const student = presetConfig('base');
    const t0 = performance.now();
    const g = distillationStep(teacher, student, 4, 448);
    // A desktop GPU's limits under Dawn (2 GiB bindings and buffers), with this device's alignment.
    const limits: PlanLimits = { alignment: deviceLimits(gpu).alignment, maxBindingBytes: 2 ** 31 - 4, maxArenaBytes: 2 ** 31 };
    const plan = planGraph(g, limits);
    const ms = performance.now() - t0;
    const lines = [`${g.nodes.length} nodes, ${g.tensors.length} tensors; built and planned in ${ms.toFixed(0)} ms`, ...describePlan(plan)];
    return {
      lines,
      values: { nodes: g.nodes.length, totalBytes: plan.memory.totalBytes, peakBytes: plan.memory.peakBytes, ratio: plan.memory.peakBytes / plan.memory.totalBytes, liveBytesBound: plan.memory.liveBytesBound, arenas: plan.memory.arenaBytes.length },
    };
  },
};

// A small Whisper (d 128, 2+2 layers, 2 heads, 100 positions, vocab 1000) on batch 2 x 32 tokens:
// big enough that a step is dozens of dispatches per layer, small enough for a software GPU.
const smallConfig: WhisperConfig = {
  ...presetConfig('tiny'),
  vocab_size: 1000, num_mel_bins: 80, d_model: 128, encoder_layers: 2, encoder_attention_heads: 2, encoder_ffn_dim: 512,
  decoder_layers: 2, decoder_attention_heads: 2, decoder_ffn_dim: 512, max_source_positions: 100, max_target_positions: 64,
  decoder_start_token_id: 999, eos_token_id: 998, pad_token_id: 998, bos_token_id: 998,
};

const stepTime: BenchReport = {
  name: 'training step replay: Whisper d 128, 2+2 layers, 100 positions, vocab 1000, batch 2 x 32 tokens (CE + backward + AdamW)',
  async run(gpu) {
    const weights = WhisperWeights.upload(gpu, smallConfig, initWhisperWeights(smallConfig, 1));
    const shape = { batch: 2, tokens: 32 };
    const t0 = performance.now();
    const train = await compileWhisperTrainingStep(gpu, weights, shape, { lr: 1e-3, maxGradNorm: 1 });
    const compileMs = performance.now() - t0;
    const { step, model } = train;
    step.write(model.inputs.mel, new Float32Array(2 * 80 * 200).map((_, i) => Math.sin(i)));
    step.write(model.inputs.tokens, Int32Array.from({ length: 64 }, (_, i) => (i * 37) % 1000));
    step.write(train.labels, Int32Array.from({ length: 64 }, (_, i) => (i * 37 + 1) % 1000));
    await step.run({ step: 1 });
    const wall: number[] = [];
    const encode: number[] = [];
    for (let s = 2; s <= 6; s++) {
      const a = performance.now();
      step.submit({ step: s });
      encode.push(performance.now() - a);
      await gpu.device.queue.onSubmittedWorkDone();
      wall.push(performance.now() - a);
    }
    const loss = (await step.readScalars([train.loss]))[0]!;
    const median = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)]!;
    const m = step.plan.memory;
    step.destroy();
    weights.destroy();
    return {
      lines: [
        `${step.program.dispatchCount} dispatches in one submit; compiled (planned + recorded) in ${compileMs.toFixed(0)} ms`,
        `replayed step: ${median(wall).toFixed(1)} ms wall (median of 5), of which ${median(encode).toFixed(2)} ms encoding and submitting on the CPU`,
        `arenas ${fmt(m.peakBytes)} vs ${fmt(m.totalBytes)} of intermediates (${(m.peakBytes / m.totalBytes).toFixed(3)}x); loss after 6 steps ${loss.toFixed(4)}`,
      ],
      values: { dispatches: step.program.dispatchCount, stepMs: median(wall), encodeMs: median(encode), compileMs, peakBytes: m.peakBytes, totalBytes: m.totalBytes },
    };
  },
};

export const reports: BenchReport[] = [distillationPlan, stepTime];

// Throughput and GPU memory of one whole DQ-Whisper training step (compileDistillationStep) at
// full encoder length: a Whisper-small-width teacher (d 768, 12+12 layers, forward only) and a
// base-width student (d 512, 6+6) with int8 fake-quant on every Linear, CE + KL + hidden-state
// MSE with dynamic layer matching through learned 512 -> 768 projections, backward, AdamW;
// random weights, batch x 30 s of audio (3000 mel frames), 64 decoder tokens. One warm-up step
// compiles the pipelines; then steps are timed (wall clock, read-back of the losses included).
import type { DistillationStep } from '../../src/distill/step.js';
import { compileDistillationStep } from '../../src/distill/step.js';
import { DqwError } from '../../src/errors.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import type { GraphTensor } from '../../src/graph/graph.js';
import { presetConfig, type WhisperConfig } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { WhisperWeights } from '../../src/model/whisper.js';
import type { BenchOptions, BenchReport, BenchReportResult } from '../types.js';

const TOKENS = 64;
/** Steps are timed until this much wall time has passed (at least one step, at most --repeat). */
const TIMING_BUDGET_MS = 20_000;
const LR = 1e-4;
const QUANTIZED = /(_proj|fc1|fc2)\.weight$/;

const MiB = 1024 * 1024;
const fmt = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
const sum = (xs: Iterable<number>) => [...xs].reduce((a, b) => a + b, 0);

/**
 * The largest vocabulary whose tied token embedding [vocab, d] f32 fits one storage binding of
 * this device (the engine binds it whole for the lookup and the logits), or the model's own.
 */
function fittingVocab(gpu: Gpu, configs: readonly WhisperConfig[]): number {
  const vocab = configs[0]!.vocab_size;
  const widest = Math.max(...configs.map((c) => c.d_model));
  return Math.min(vocab, Math.floor(gpu.limits.maxStorageBufferBindingSize / (4 * widest)));
}

/** The config with a smaller vocabulary; the special tokens move to its top so that they stay valid. */
function withVocab(c: WhisperConfig, vocab: number): WhisperConfig {
  if (vocab === c.vocab_size) return c;
  return { ...c, vocab_size: vocab, decoder_start_token_id: vocab - 1, eos_token_id: vocab - 2, pad_token_id: vocab - 2, bos_token_id: vocab - 2 };
}

/** Bytes of the persistent tensors the step binds, by what they hold (the arenas aside). */
function persistentBreakdown(step: DistillationStep): Record<'teacherWeights' | 'studentWeights' | 'projections' | 'gradients' | 'optimizerState' | 'otherPersistent', number> {
  const g = step.compiled.graph;
  const used = new Set<GraphTensor>(g.nodes.flatMap((n) => [...n.reads, ...n.writes].map((t) => t.base)));
  const teacher = new Set(step.teacher?.params.values() ?? []);
  const student = new Set(step.student.params.values());
  const moments = new Set(step.optimizerState().values());
  const out = { teacherWeights: 0, studentWeights: 0, projections: 0, gradients: 0, optimizerState: 0, otherPersistent: 0 };
  for (const t of used) {
    if (!t.persistent) continue;
    if (teacher.has(t)) out.teacherWeights += t.bytes;
    else if (student.has(t)) out.studentWeights += t.bytes;
    else if (t.role === 'external') out.projections += t.bytes;
    else if (moments.has(t)) out.optimizerState += t.bytes;
    else if (t.role === 'state' && t.label.endsWith('.grad')) out.gradients += t.bytes;
    else out.otherPersistent += t.bytes;
  }
  return out;
}

async function measure(gpu: Gpu, batch: number, repeat: number): Promise<BenchReportResult> {
  const lines: string[] = [];
  const values: Record<string, number | string> = { batch, tokens: TOKENS };
  const full = [presetConfig('small'), presetConfig('base')] as const;
  const vocab = fittingVocab(gpu, full);
  values.vocab = vocab;
  if (vocab < full[0].vocab_size) {
    const need = 4 * full[0].vocab_size * full[0].d_model;
    lines.push(
      `does not fit as specified: the teacher's token embedding [${full[0].vocab_size}, ${full[0].d_model}] f32 is ${need} bytes, over this device's storage binding limit (${gpu.limits.maxStorageBufferBindingSize} bytes)`,
      `run instead with the vocabulary cut to ${vocab} tokens, the most whose embedding fits one binding`,
    );
  }
  const [teacherConfig, studentConfig] = full.map((c) => withVocab(c, vocab)) as [WhisperConfig, WhisperConfig];

  let t = performance.now();
  const lap = () => {
    const now = performance.now();
    const ms = now - t;
    t = now;
    return ms;
  };
  const teacher = WhisperWeights.upload(gpu, teacherConfig, initWhisperWeights(teacherConfig, 1), 'teacher');
  const student = WhisperWeights.upload(gpu, studentConfig, initWhisperWeights(studentConfig, 2), 'student');
  const uploadMs = lap();
  let step: DistillationStep | null = null;
  try {
    step = await compileDistillationStep(gpu, {
      teacher,
      student,
      shape: { batch, tokens: TOKENS, padded: true },
      lr: LR,
      maxGradNorm: 1,
      quantize: (name) => (QUANTIZED.test(name) ? { bits: 8 } : null),
    });
    const compileMs = lap();
    const frames = 2 * studentConfig.max_source_positions;
    step.write({
      mel: Float32Array.from({ length: batch * studentConfig.num_mel_bins * frames }, (_, i) => Math.sin(i)),
      tokens: Int32Array.from({ length: batch * TOKENS }, (_, i) => (i * 37) % vocab),
      labels: Int32Array.from({ length: batch * TOKENS }, (_, i) => (i * 37 + 1) % vocab),
      tokenLengths: new Uint32Array(batch).fill(TOKENS),
    });
    await step.run(1, LR);
    const warmupMs = lap();
    const times: number[] = [];
    let loss = NaN;
    while (times.length < Math.max(1, repeat) && (times.length === 0 || sum(times) < TIMING_BUDGET_MS)) {
      loss = (await step.run(times.length + 2, LR)).total;
      times.push(lap());
    }
    const stepMs = sum(times) / times.length;
    const parts = persistentBreakdown(step);
    const arenas = step.compiled.plan.memory.arenaBytes;
    const peak = sum(arenas) + sum(Object.values(parts));
    const weights = parts.teacherWeights + parts.studentWeights + parts.projections;
    lines.push(
      `batch ${batch} x 30 s of audio, ${TOKENS} label tokens each; ${step.compiled.program.dispatchCount} dispatches; weights generated and uploaded in ${(uploadMs / 1000).toFixed(1)} s, step compiled in ${(compileMs / 1000).toFixed(1)} s, warm-up step (pipeline compiles) ${(warmupMs / 1000).toFixed(1)} s`,
      `${(stepMs / 1000).toFixed(2)} s/step (mean of ${times.length} timed), ${((1000 * batch) / stepMs).toFixed(4)} samples/s, ${((1000 * batch * TOKENS) / stepMs).toFixed(2)} label tokens/s; loss after ${times.length + 1} steps ${loss.toFixed(4)}`,
      `peak GPU bytes ${fmt(peak)} = weights ${fmt(weights)} (teacher ${fmt(parts.teacherWeights)}, student ${fmt(parts.studentWeights)}, projections ${fmt(parts.projections)})`,
      `  + gradients ${fmt(parts.gradients)} + AdamW moments ${fmt(parts.optimizerState)} + inputs, scalars and kept outputs ${fmt(parts.otherPersistent)}`,
      `  + ${arenas.length} arenas ${fmt(sum(arenas))} [${arenas.map(fmt).join(', ')}]`,
    );
    Object.assign(values, { dispatches: step.compiled.program.dispatchCount, uploadMs, compileMs, warmupMs, stepMs, timedSteps: times.length, samplesPerS: (1000 * batch) / stepMs, tokensPerS: (1000 * batch * TOKENS) / stepMs, peakBytes: peak, arenaBytes: sum(arenas), arenas: arenas.length, ...parts });
  } catch (e) {
    // A step that cannot be built or run on this device is a finding, not a crash of the bench.
    if (!(e instanceof DqwError)) throw e;
    lines.push(`fails: ${e.constructor.name}: ${e.message}`);
    values.error = `${e.constructor.name}: ${e.message}`;
  } finally {
    step?.destroy();
    student.destroy();
    teacher.destroy();
  }
  return { lines, values };
}

const distillationStep: BenchReport = {
  name: 'distillation training step: teacher small width (d 768, 12+12) -> student base width (d 512, 6+6), int8 fake-quant, 30 s audio, 64 tokens',
  run: (gpu, opts: BenchOptions) => measure(gpu, opts.batch, opts.repeat),
};

export const reports: BenchReport[] = [distillationStep];

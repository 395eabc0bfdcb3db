// The frozen teacher's forward alone, compiled for one batch shape: the outputs a teacher cache
// stores (docs/teacher-cache.md) — the top-k logits of every decoder position and the hidden
// states 1..L of both stacks, in the layouts DistillationStep takes with `cachedTeacher`.
import type { Gpu } from '../gpu/gpu.js';
import { compileGraph, type CompiledGraph } from '../graph/compile.js';
import { Graph, type GraphTensor } from '../graph/graph.js';
import { stack } from '../graph/ops.js';
import { buildWhisper, writeWhisperInputs, type WhisperGraph, type WhisperShape, type WhisperWeights } from '../model/whisper.js';
import type { CachedTeacherOutputs, DistillationBatch } from './step.js';
import { logSumExp } from '../decode/logit-filters.js';
import { topKRows } from '../util/top-k.js';

export class TeacherForward {
  private constructor(
    private readonly compiled: CompiledGraph,
    private readonly teacher: WhisperGraph,
    private readonly encoderStates: GraphTensor,
    private readonly decoderStates: GraphTensor,
    readonly shape: WhisperShape,
    readonly vocabSize: number,
  ) {}

  /** Compile the teacher's forward for `shape` (padded shapes take tokenLengths as the step does). */
  static async compile(gpu: Gpu, teacher: WhisperWeights, shape: WhisperShape): Promise<TeacherForward> {
    const g = new Graph();
    const w = buildWhisper(g, teacher, shape, { label: 'teacher', keep: { logits: true } });
    const encoderStates = g.keep(stack(g, w.encoderHidden.slice(1), { label: 'teacher encoder states' }));
    const decoderStates = g.keep(stack(g, w.decoderHidden.slice(1), { label: 'teacher decoder states' }));
    const compiled = await compileGraph(gpu, g);
    return new TeacherForward(compiled, w, encoderStates, decoderStates, shape, teacher.config.vocab_size);
  }

  /**
   * Run the teacher on a batch (its mel, tokens and token lengths; labels are not read) and
   * return its top-k logits per position, its logsumexp of logits / tau over the vocabulary
   * (float64, stored f32) and its hidden states 1..L: topkValues/topkIds [batch, tokens, k],
   * teacherLogsumexp [batch, tokens], encoderStates [encoder_layers, batch, positions, d],
   * decoderStates [decoder_layers, batch, tokens, d].
   */
  async run(batch: DistillationBatch, topK: number, tau: number): Promise<CachedTeacherOutputs> {
    const c = this.compiled;
    writeWhisperInputs(c, this.teacher.inputs, batch, 'teacher forward');
    await c.run();
    const { batch: B, tokens: T } = this.shape;
    const V = this.vocabSize;
    const logits = await c.read(this.teacher.logits);
    const top = topKRows(logits, B * T, V, topK, 'teacher logits');
    const teacherLogsumexp = Float32Array.from({ length: B * T }, (_, r) => logSumExp(logits, r * V, (r + 1) * V, tau));
    return { topkValues: top.values, topkIds: top.ids, teacherLogsumexp, encoderStates: await c.read(this.encoderStates), decoderStates: await c.read(this.decoderStates) };
  }

  destroy(): void {
    this.compiled.destroy();
  }
}

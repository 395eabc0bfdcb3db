// One DQ-Whisper training step as one compiled graph (docs/method.md): the frozen float teacher's
// forward, the student's forward with fake-quantized linear weights, the three losses (α·CE on
// the labels, β·KL(τ) to the teacher's token distributions, γ·hidden-state MSE to the teacher
// layers chosen by layer matching, through learned projections when the widths differ), the
// backward, and AdamW — one submit, no read-back in between: the distance matrix, the map and
// the gather of matched teacher states all run on the GPU (graph/matching.ts).
import { ConfigError, ShapeError } from '../errors.js';
import type { Gpu } from '../gpu/gpu.js';
import type { Tensor } from '../gpu/tensor.js';
import { backward } from '../graph/autodiff.js';
import { compileGraph, type CompiledGraph, type CompileOptions } from '../graph/compile.js';
import { Graph, type GraphTensor } from '../graph/graph.js';
import { crossEntropyLoss, klDivergenceLoss, mseLossOp, topkKlDivergenceLoss } from '../graph/losses.js';
import { gatherLayersOp, layerDistances, matchLayersOp } from '../graph/matching.js';
import { layerNorm, linear, stack } from '../graph/ops.js';
import { rowScales } from '../kernels/matmul.js';
import { adamw, type AdamWOpOptions } from '../graph/optim.js';
import type { WhisperConfig } from '../model/config.js';
import { FROZEN_ENCODER_POSITIONS, buildWhisper, writeWhisperInputs, type WhisperGraph, type WhisperShape, type WhisperWeights } from '../model/whisper.js';
import { Rng } from '../util/random.js';
import type { LayerMatchingOptions } from './matching.js';

/** Which hidden states are matched to the teacher's. */
export type HiddenStateMatching = 'encoder+decoder' | 'encoder' | 'decoder' | 'none';

/** The loss of a distillation step (docs/method.md "Losses"); every field has the method's default. */
export interface DistillationLossOptions {
  /** Weight of the cross-entropy on the labels (default 0.8). */
  alpha?: number;
  /** Weight of the KL divergence to the teacher (default 1). */
  beta?: number;
  /** Weight of the hidden-state matching (default 1), split evenly between encoder and decoder. */
  gamma?: number;
  /** Temperature of the KL (default 2); the KL is τ²-scaled. */
  tau?: number;
  /** Default 'encoder+decoder'. */
  hiddenStates?: HiddenStateMatching;
  /** LayerNorm (no affine) both sides before the hidden-state MSE and distances (default false). */
  hiddenLayerNorm?: boolean;
  /** How student layers pick teacher layers (default dynamic, recomputed every step, last pinned). */
  matching?: LayerMatchingOptions & { every?: number };
  /** Label id left out of every loss (default -100). */
  ignoreIndex?: number;
}

/** The method's defaults (distil-whisper's α = 0.8 with the KL at τ = 2). */
export const defaultDistillationLoss = {
  alpha: 0.8,
  beta: 1,
  gamma: 1,
  tau: 2,
  hiddenStates: 'encoder+decoder',
  hiddenLayerNorm: false,
  matching: { strategy: 'dynamic', every: 1, pinLast: true },
  ignoreIndex: -100,
} as const satisfies Required<DistillationLossOptions>;

/** Options of {@link compileDistillationStep}. */
export interface DistillationStepOptions extends DistillationLossOptions, Omit<AdamWOpOptions, 'noDecay' | 'lrScale'> {
  /**
   * Learning-rate factor of the learnable scales (LSQ) against the weights' (default 1): scales
   * move on another scale than weights, and LSQ's authors tune their step separately.
   */
  scaleLrFactor?: number;
  /**
   * The frozen float teacher; null trains on cross-entropy alone (`dqw train`; alpha is then 1),
   * or distils from `cachedTeacher`.
   */
  teacher: WhisperWeights | null;
  /**
   * Distil from a teacher cache (docs/teacher-cache.md) instead of a teacher forward (`teacher`
   * must be null): each batch carries the teacher's top-k logits per position and its hidden
   * states (DistillationBatch.teacher); the KL is taken over the top-k support (the teacher's
   * softmax at tau renormalised over the k cached logits, or with `klForm` 'tail' the k at their
   * true probabilities plus the rest of the teacher's mass as one bucket, which needs the
   * teacher's logsumexp at this tau in the batch), the rest is unchanged.
   */
  cachedTeacher?: CachedTeacher;
  student: WhisperWeights;
  shape: WhisperShape;
  /** Student parameters to train (default all but the encoder positions). */
  trainable?: (name: string) => boolean;
  /**
   * Fake-quantize these student weights (per output channel, STE); receives the weight's name.
   * `activations` also fake-quantizes the layer's input per token to 8 bits, as int8 inference does.
   */
  quantize?: (weightName: string) => { bits?: number; activations?: boolean } | null;
  /**
   * Learnable per-output-channel scales (method.md: LSQ, frozen after a number of steps) for
   * the Linear weights `quantize` selects, but the tied token embedding, which keeps max
   * scaling; named {@link scaleName} (`<module>.weight_scale`, as the int8 export's) and trained
   * by AdamW without weight decay. `initial`: values (a resumed run) or GPU tensors to share
   * (an evaluation step reads the training step's); the others start at max|W_c| / qmax of the
   * student's weights as they are at compile time. `frozen`: applied, never updated.
   */
  learnableScales?: { initial?: ReadonlyMap<string, Float32Array | Tensor>; frozen?: boolean };
  /**
   * The student keeps the teacher's encoder: it cross-attends to the teacher's encoder output, and
   * no student encoder is run or trained (its config must equal the teacher's encoder).
   */
  frozenEncoder?: boolean;
  /**
   * Hidden-state projections by name: initial values (a resumed run), or GPU tensors to share
   * with another step (an evaluation step reads the training step's); others are drawn from `seed`.
   */
  projections?: ReadonlyMap<string, Float32Array | Tensor>;
  /** Seed of the projections' initialisation (default 0). */
  seed?: number;
  /** false: forward and losses only (no backward, no update), e.g. a dev-set loss. Default true. */
  train?: boolean;
  /**
   * Gradient accumulation over this many micro-batches per update (default 1): gradients add up
   * over runs, `run(..., { apply: true })` on the last one updates with their mean, and
   * `zeroGradients()` starts the next cycle.
   */
  microBatches?: number;
  compile?: CompileOptions;
}

/** The host data of one batch. */
export interface DistillationBatch {
  /** f32 [batch, num_mel_bins, 2 * max_source_positions]. */
  mel: Float32Array;
  /** i32 [batch, tokens] decoder inputs. */
  tokens: Int32Array;
  /** i32 [batch, tokens] targets, ignoreIndex where no loss is wanted (padding). */
  labels: Int32Array;
  /** u32 [batch] valid tokens per sequence (when the shape is padded). */
  tokenLengths?: Uint32Array;
  /** The cached teacher outputs of these examples (a step compiled with `cachedTeacher`). */
  teacher?: CachedTeacherOutputs;
}

/**
 * How the KL reads a top-k teacher: renormalised over the k cached logits, or the k at their
 * probabilities plus one tail bucket (kernels/losses topkKlDivergence).
 */
export type CachedKlForm = 'renormalised' | 'tail';

/** What a step compiled for a teacher cache needs to know of it. */
export interface CachedTeacher {
  /** The cached teacher's config. */
  config: WhisperConfig;
  /** Logits kept per decoder position. */
  topK: number;
  /** How the KL reads them (default renormalised). */
  klForm?: CachedKlForm;
}

/** A batch's teacher outputs from a teacher cache, the layouts the step's inputs take. */
export interface CachedTeacherOutputs {
  /** f32 [batch, tokens, k] raw teacher logits per decoder position, largest first. */
  topkValues: Float32Array;
  /** i32 [batch, tokens, k] their token ids, distinct per position. */
  topkIds: Int32Array;
  /** f32 [batch, tokens]: the teacher's logsumexp of logits / tau over the vocabulary (the 'tail' KL form). */
  teacherLogsumexp?: Float32Array;
  /** f32 [encoder_layers, batch, max_source_positions, d_model]: teacher encoder states 1..L (with encoder matching). */
  encoderStates?: Float32Array;
  /** f32 [decoder_layers, batch, tokens, d_model]: teacher decoder states 1..L (with decoder matching). */
  decoderStates?: Float32Array;
}

/** The step inputs a cached teacher's outputs are written to. */
interface CachedTeacherInputs {
  topkValues: GraphTensor;
  topkIds: GraphTensor;
  teacherLogsumexp: GraphTensor | null;
  encoderStates: GraphTensor | null;
  decoderStates: GraphTensor | null;
}

/** The loss values of a step (unweighted parts; total = α·ce + β·kl + γ·hs). */
export interface DistillationLosses {
  total: number;
  ce: number;
  kl: number;
  /** Mean of the enabled hidden-state parts (encoder, decoder). */
  hs: number;
  hsEncoder: number;
  hsDecoder: number;
  /** Global gradient norm before clipping (NaN without maxGradNorm). */
  gradNorm: number;
}

/** The layer maps in use after a step, 1-based teacher layers per student layer (method.md's numbering). */
export interface LayerMaps {
  encoder: number[] | null;
  decoder: number[] | null;
  /** Whether a map could not be recomputed this step (D not finite) and the previous one was kept. */
  kept: boolean;
}

/** Name of the learnable fake-quant scales of weight `<module>.weight`: `<module>.weight_scale`. */
export function scaleName(weightName: string): string {
  return `${weightName}_scale`;
}

/** Names of the hidden-state projections, one per student layer (1-based, as the layer map). */
export function projectionName(side: 'encoder' | 'decoder', studentLayer: number): string {
  return `distill.${side}_proj.${studentLayer}.weight`;
}

interface MatchedSide {
  side: 'encoder' | 'decoder';
  dist: GraphTensor;
  map: GraphTensor;
  loss: GraphTensor;
}

/**
 * A compiled distillation (or, without a teacher, cross-entropy) training step. `write` a batch,
 * then `run(step, lr)`; the student's weights (the WhisperWeights given) and the projections are
 * updated in place on the GPU.
 */
export class DistillationStep {
  /** @internal Use {@link compileDistillationStep}. */
  constructor(
    readonly compiled: CompiledGraph,
    readonly student: WhisperGraph,
    readonly teacher: WhisperGraph | null,
    readonly labels: GraphTensor,
    private readonly losses: { ce: GraphTensor; kl: GraphTensor | null; matched: MatchedSide[] },
    private readonly weights: { alpha: number; beta: number; gamma: number },
    private readonly gradNormSquared: GraphTensor | null,
    /** Parameter -> gradient (after a run: this step's gradients). */
    readonly grads: ReadonlyMap<GraphTensor, GraphTensor>,
    /** The learned projections, by {@link projectionName}. */
    readonly projections: ReadonlyMap<string, Tensor>,
    /** The learnable fake-quant scales, by {@link scaleName} (empty without `learnableScales`). */
    readonly scales: ReadonlyMap<string, Tensor>,
    /** The projections and scales this step uploaded (freed by destroy; shared ones are not). */
    private readonly owned: readonly Tensor[],
    private readonly gpu: Gpu,
    /** Where a cached teacher's outputs go (null with a live teacher or none). */
    private readonly cached: CachedTeacherInputs | null = null,
  ) {}

  /** Write a batch into the step's inputs. */
  write(batch: DistillationBatch): void {
    const c = this.compiled;
    writeWhisperInputs(c, this.student.inputs, batch, 'distillation step');
    c.write(this.labels, batch.labels);
    const cached = this.cached;
    if (cached) {
      const t = batch.teacher;
      if (!t) throw new ShapeError('distillation step: compiled for a teacher cache, so the batch needs its cached teacher outputs (batch.teacher)');
      c.write(cached.topkValues, t.topkValues);
      c.write(cached.topkIds, t.topkIds);
      if (cached.teacherLogsumexp) {
        if (!t.teacherLogsumexp) throw new ShapeError("distillation step: the cached teacher outputs lack teacherLogsumexp, which the 'tail' KL reads");
        c.write(cached.teacherLogsumexp, t.teacherLogsumexp);
      }
      for (const [input, states, what] of [
        [cached.encoderStates, t.encoderStates, 'encoderStates'],
        [cached.decoderStates, t.decoderStates, 'decoderStates'],
      ] as const) {
        if (!input) continue;
        if (!states) throw new ShapeError(`distillation step: the cached teacher outputs lack ${what}, which hidden-state matching reads`);
        c.write(input, states);
      }
    }
  }

  /**
   * Run step `step` (1-based: AdamW's bias correction and the map's recompute schedule) at
   * learning rate `lr`. With gradient accumulation, `apply: false` only adds this micro-batch's
   * gradients (default true: update).
   */
  async run(step: number, lr: number, opts: { apply?: boolean } = {}): Promise<DistillationLosses> {
    const scalars = this.compiled.graph.scalars;
    const values = { step, lr, apply: (opts.apply ?? true) ? 1 : 0 };
    await this.compiled.run(Object.fromEntries(Object.entries(values).filter(([k]) => scalars.has(k))));
    const { ce, kl, matched } = this.losses;
    const order = [ce, ...(kl ? [kl] : []), ...matched.map((m) => m.loss), ...(this.gradNormSquared ? [this.gradNormSquared] : [])];
    const v = await this.compiled.readScalars(order);
    let k = 0;
    const ceV = v[k++]!;
    const klV = kl ? v[k++]! : 0;
    const parts = new Map(matched.map((m) => [m.side, v[k++]!]));
    const gradNorm = this.gradNormSquared ? Math.sqrt(v[k++]!) : NaN;
    const hs = parts.size ? [...parts.values()].reduce((a, b) => a + b, 0) / parts.size : 0;
    const { alpha, beta, gamma } = this.weights;
    return { total: alpha * ceV + beta * klV + gamma * hs, ce: ceV, kl: klV, hs, hsEncoder: parts.get('encoder') ?? 0, hsDecoder: parts.get('decoder') ?? 0, gradNorm };
  }

  /** Zero the parameter gradients: the start of a gradient-accumulation cycle. */
  async zeroGradients(): Promise<void> {
    const grads = [...this.grads.values()].map((t) => this.compiled.tensor(t));
    await this.gpu.run((rec) => grads.forEach((t) => rec.zero(t)));
  }

  /** The maps in use (after a run). */
  async layerMaps(): Promise<LayerMaps> {
    const out: LayerMaps = { encoder: null, decoder: null, kept: false };
    for (const m of this.losses.matched) {
      const v = await this.compiled.read(m.map);
      out[m.side] = Array.from(v.subarray(0, v.length - 1), (x) => x + 1);
      if (v[v.length - 1] !== 0) out.kept = true;
    }
    return out;
  }

  /** The last run's distance matrices [student layers x teacher layers], row-major. */
  async distances(): Promise<{ encoder: Float32Array | null; decoder: Float32Array | null }> {
    const out: { encoder: Float32Array | null; decoder: Float32Array | null } = { encoder: null, decoder: null };
    for (const m of this.losses.matched) out[m.side] = await this.compiled.read(m.dist);
    return out;
  }

  /** AdamW's moments by PyTorch-style name (`<param>.exp_avg`, `<param>.exp_avg_sq`). */
  optimizerState(): Map<string, GraphTensor> {
    const out = new Map<string, GraphTensor>();
    for (const t of this.compiled.graph.tensors) if (t.role === 'state' && /\.exp_avg(_sq)?$/.test(t.label) && !t.viewOf) out.set(t.label, t);
    return out;
  }

  /** Optimizer moments, projections and learnable scales, for a checkpoint. */
  async trainingTensors(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [name, t] of this.optimizerState()) out.set(name, await this.compiled.read(t));
    for (const [name, t] of [...this.projections, ...this.scales]) out.set(name, await this.gpu.readF32(t));
    return out;
  }

  /**
   * Restore what {@link trainingTensors} read (a resumed run); every moment and projection must
   * be present. Scales that are absent keep their values (a checkpoint from before fake-quant).
   */
  restoreTrainingTensors(tensors: ReadonlyMap<string, Float32Array>, source = 'checkpoint'): void {
    // Scales new to this step (the fake-quant switch) start with zero moments.
    const newScales = [...this.scales.keys()].filter((name) => !tensors.has(name));
    for (const [name, t] of this.optimizerState()) {
      const v = tensors.get(name);
      if (!v && newScales.some((s) => name.startsWith(`${s}.exp_avg`))) continue;
      if (!v) throw new ShapeError(`${source}: optimizer state "${name}" is missing`);
      if (v.length !== t.numel) throw new ShapeError(`${source}: optimizer state "${name}" has ${v.length} values, expected ${t.numel}`);
      this.compiled.write(t, v);
    }
    for (const [name, t] of this.projections) {
      const v = tensors.get(name);
      if (!v) throw new ShapeError(`${source}: projection "${name}" is missing`);
      if (v.length !== t.shape[0]! * t.shape[1]!) throw new ShapeError(`${source}: projection "${name}" has ${v.length} values, expected ${t.shape.join('x')}`);
      this.gpu.write(t, v);
    }
    for (const [name, t] of this.scales) {
      const v = tensors.get(name);
      if (!v) continue;
      if (v.length !== t.shape[0]) throw new ShapeError(`${source}: scales "${name}" have ${v.length} values, expected ${t.shape[0]}`);
      this.gpu.write(t, v);
    }
  }

  destroy(): void {
    this.compiled.destroy();
    this.gpu.free(...this.owned);
  }
}

function checkWeight(name: string, v: number): void {
  if (!Number.isFinite(v) || v < 0) throw new ConfigError(`distillation: ${name} must be a finite number >= 0, got ${v}`);
}

const encoderFields = ['d_model', 'encoder_layers', 'encoder_attention_heads', 'encoder_ffn_dim', 'num_mel_bins', 'max_source_positions'] as const;

/**
 * Build and compile one distillation step (see the file comment). Hidden states are compared at
 * layers 1..L (method.md's numbering: transformers' hidden_states[1..L], the last one after the
 * final LayerNorm); the embeddings are never matched.
 */
export async function compileDistillationStep(gpu: Gpu, opts: DistillationStepOptions): Promise<DistillationStep> {
  const d = defaultDistillationLoss;
  const teacherWeights = opts.teacher;
  const cachedTeacher = opts.cachedTeacher ?? null;
  if (cachedTeacher && teacherWeights) throw new ConfigError('distillation: give a teacher or a teacher cache, not both');
  if (cachedTeacher && !(Number.isInteger(cachedTeacher.topK) && cachedTeacher.topK >= 1 && cachedTeacher.topK <= cachedTeacher.config.vocab_size)) {
    throw new ConfigError(`distillation: the teacher cache's top-k must be 1..${cachedTeacher.config.vocab_size} (vocab_size), got ${cachedTeacher.topK}`);
  }
  const distilling = !!teacherWeights || !!cachedTeacher;
  const alpha = distilling ? (opts.alpha ?? d.alpha) : 1;
  const beta = opts.beta ?? d.beta;
  const gamma = opts.gamma ?? d.gamma;
  const tau = opts.tau ?? d.tau;
  for (const [k, v] of Object.entries({ alpha, beta, gamma })) checkWeight(k, v);
  if (!(tau > 0)) throw new ConfigError(`distillation: tau must be > 0, got ${tau}`);
  const matching = { ...d.matching, ...opts.matching };
  const ignoreIndex = opts.ignoreIndex ?? d.ignoreIndex;
  const sc = opts.student.config;
  const tc = teacherWeights?.config ?? cachedTeacher?.config;
  if (tc) {
    for (const f of ['vocab_size', 'num_mel_bins', 'max_source_positions'] as const) {
      if (sc[f] !== tc[f]) throw new ConfigError(`distillation: student ${f} ${sc[f]} differs from the teacher's ${tc[f]}; they must see the same audio and vocabulary`);
    }
  }
  const frozenEncoder = !!opts.frozenEncoder;
  if (frozenEncoder) {
    if (!teacherWeights) throw new ConfigError(`distillation: frozenEncoder needs a teacher${cachedTeacher ? ' forward (the teacher cache holds no encoder output)' : ''}`);
    const t = teacherWeights.config;
    const differ = encoderFields.filter((f) => sc[f] !== t[f]);
    if (differ.length) throw new ConfigError(`distillation: frozenEncoder needs the teacher's encoder, but ${differ.map((f) => `${f} ${sc[f]} vs ${t[f]}`).join(', ')}`);
  }

  const g = new Graph();
  const teacher = teacherWeights ? buildWhisper(g, teacherWeights, opts.shape, { label: 'teacher' }) : null;
  const userTrainable = opts.trainable ?? (() => true);
  const trainable = (name: string) => name !== FROZEN_ENCODER_POSITIONS && !(frozenEncoder && name.startsWith('model.encoder.')) && userTrainable(name);
  const train = opts.train ?? true;
  const owned: Tensor[] = [];
  const scales = new Map<string, Tensor>();
  const initScales: { weight: Tensor; scale: Tensor; bits?: number }[] = [];
  const learnable = opts.learnableScales;
  const weightScale = (weightName: string): GraphTensor => {
    const name = scaleName(weightName);
    const weight = opts.student.get(weightName);
    const rows = weight.shape[0]!;
    const given = learnable!.initial?.get(name);
    let scale: Tensor;
    if (given && !(given instanceof Float32Array)) {
      if (given.shape.length !== 1 || given.shape[0] !== rows) throw new ShapeError(`distillation: scales "${name}" are [${given.shape.join(', ')}], expected [${rows}]`);
      scale = given;
    } else {
      if (given && given.length !== rows) throw new ShapeError(`distillation: scales "${name}" have ${given.length} values, expected ${rows}`);
      scale = gpu.upload(given ?? new Float32Array(rows), [rows], 'f32', name);
      owned.push(scale);
      if (!given) initScales.push({ weight, scale, bits: opts.quantize?.(weightName)?.bits });
    }
    scales.set(name, scale);
    return g.external(scale, { trainable: train && !learnable!.frozen });
  };
  const student = buildWhisper(g, opts.student, opts.shape, {
    trainable: train ? trainable : false,
    quantize: opts.quantize,
    weightScale: learnable ? weightScale : undefined,
    label: 'student',
    inputs: teacher?.inputs,
    encoder: frozenEncoder && teacher ? { out: teacher.encoderOut, hidden: teacher.encoderHidden } : undefined,
  });
  const labels = g.input([opts.shape.batch, opts.shape.tokens], 'i32', 'labels');
  const roots: GraphTensor[] = [];
  const loss = <T extends GraphTensor>(t: T, weight: number) => {
    if (weight > 0) roots.push(t);
    return t;
  };
  const ce = loss(crossEntropyLoss(g, student.logits, labels, { ignoreIndex, weight: alpha, gradient: train && alpha > 0, label: 'cross-entropy' }), alpha);
  const klOpts = { tau, mask: labels, ignoreIndex, weight: beta, gradient: train && beta > 0, label: 'kl-divergence' };
  const { batch: B, tokens: T } = opts.shape;
  const hiddenStates = opts.hiddenStates ?? d.hiddenStates;
  const sides = !distilling ? [] : (['encoder', 'decoder'] as const).filter((s) => hiddenStates.includes(s) && !(s === 'encoder' && frozenEncoder));
  const cached: CachedTeacherInputs | null = cachedTeacher
    ? {
        topkValues: g.input([B, T, cachedTeacher.topK], 'f32', 'teacher top-k logits'),
        topkIds: g.input([B, T, cachedTeacher.topK], 'i32', 'teacher top-k ids'),
        teacherLogsumexp: cachedTeacher.klForm === 'tail' ? g.input([B, T], 'f32', 'teacher logsumexp') : null,
        encoderStates: sides.includes('encoder') ? g.input([cachedTeacher.config.encoder_layers, B, cachedTeacher.config.max_source_positions, cachedTeacher.config.d_model], 'f32', 'teacher encoder states') : null,
        decoderStates: sides.includes('decoder') ? g.input([cachedTeacher.config.decoder_layers, B, T, cachedTeacher.config.d_model], 'f32', 'teacher decoder states') : null,
      }
    : null;
  const kl = teacher
    ? loss(klDivergenceLoss(g, student.logits, teacher.logits, klOpts), beta)
    : cached
      ? loss(topkKlDivergenceLoss(g, student.logits, cached.topkValues, cached.topkIds, { ...klOpts, teacherLogsumexp: cached.teacherLogsumexp ?? undefined }), beta)
      : null;

  // Hidden-state matching, encoder and decoder separately.
  const projections = new Map<string, Tensor>();
  const matched: MatchedSide[] = [];
  const rng = new Rng(opts.seed ?? 0);
  for (const side of sides) {
    const sHidden = (side === 'encoder' ? student.encoderHidden : student.decoderHidden).slice(1);
    const dS = sc.d_model;
    const dT = tc!.d_model;
    const projected = sHidden.map((h, i) => {
      if (dS === dT) return h;
      const name = projectionName(side, i + 1);
      const given = opts.projections?.get(name);
      let p: Tensor;
      if (given && !(given instanceof Float32Array)) {
        if (given.shape[0] !== dT || given.shape[1] !== dS) throw new ShapeError(`distillation: projection "${name}" is [${given.shape.join(', ')}], expected [${dT}, ${dS}]`);
        p = given;
      } else {
        if (given && given.length !== dT * dS) throw new ShapeError(`distillation: projection "${name}" has ${given.length} values, expected ${dT}x${dS}`);
        // nn.Linear's scale: uniform in ±1/sqrt(in).
        p = gpu.upload(given ?? Float32Array.from({ length: dT * dS }, () => (2 * rng.uniform() - 1) / Math.sqrt(dS)), [dT, dS], 'f32', name);
        owned.push(p);
      }
      projections.set(name, p);
      return linear(g, h, g.external(p, { trainable: train }), null, { label: `${side} projection ${i + 1}` });
    });
    const sStack = stack(g, projected, { label: `student ${side} states` });
    const cachedStates = cached ? (side === 'encoder' ? cached.encoderStates : cached.decoderStates) : null;
    const tStack = cachedStates ?? stack(g, (side === 'encoder' ? teacher!.encoderHidden : teacher!.decoderHidden).slice(1), { label: `teacher ${side} states` });
    const mask = side === 'decoder' ? stack(g, sHidden.map(() => labels), { label: 'decoder state labels' }) : undefined;
    const layerNormed = opts.hiddenLayerNorm ?? d.hiddenLayerNorm;
    const dist = layerDistances(g, sStack, tStack, { mask: side === 'decoder' ? labels : undefined, layerNorm: layerNormed, label: `${side} layer distances` });
    const map = matchLayersOp(g, dist, { ...matching, label: `${side} layer map` });
    const target = gatherLayersOp(g, tStack, map, { label: `matched teacher ${side} states` });
    const norm = (x: GraphTensor, who: string) => (layerNormed ? layerNorm(g, x, null, null, { label: `${who} ${side} states normalised` }) : x);
    const hs = mseLossOp(g, norm(sStack, 'student'), norm(target, 'teacher'), { mask, ignoreIndex, weight: gamma / sides.length, gradient: train && gamma > 0, label: `${side} hidden-state mse` });
    matched.push({ side, dist, map, loss: loss(hs, gamma) });
  }

  if (!roots.length) throw new ConfigError('distillation: every loss weight is 0; nothing to train');
  let grads = new Map<GraphTensor, GraphTensor>();
  let gradNormSquared: GraphTensor | null = null;
  const microBatches = opts.microBatches ?? 1;
  if (!Number.isSafeInteger(microBatches) || microBatches < 1) throw new ConfigError(`distillation: microBatches must be a positive integer, got ${microBatches}`);
  if (train) {
    const accumulation = microBatches > 1;
    grads = backward(g, roots, { accumulate: accumulation });
    const noDecay = (p: GraphTensor) => p.label.endsWith('.bias') || p.label.endsWith('.weight_scale') || /layer_norm\.weight$/.test(p.label);
    const scaleLr = opts.scaleLrFactor ?? 1;
    const lrScale = (p: GraphTensor) => (p.label.endsWith('.weight_scale') ? scaleLr : 1);
    gradNormSquared = adamw(g, grads, { ...opts, noDecay, lrScale, accumulation, gradScale: (opts.gradScale ?? 1) / microBatches }).gradNormSquared;
  }
  // LSQ's initialisation: the max scaling the fixed-scale fake-quant uses (kernels/matmul rowScales).
  if (initScales.length) await gpu.run((rec) => initScales.forEach((s) => rowScales(rec, s.weight, s.scale, { bits: s.bits, label: s.scale.label })));
  const compiled = await compileGraph(gpu, g, opts.compile);
  return new DistillationStep(compiled, student, teacher, labels, { ce, kl, matched }, { alpha, beta, gamma }, gradNormSquared, grads, projections, scales, owned, gpu, cached);
}

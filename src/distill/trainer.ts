// The training loop's engine, browser-safe: batches from a resumable Batcher, prepared on the GPU
// (batch.ts), one compiled DistillationStep per phase (float warm-up, then fake-quant), the
// learning-rate schedule, dev-set losses, the layer maps tracked, and the complete state a
// checkpoint needs for an exact resume. File I/O, signals and progress bars are the caller's
// (src/cli/distill.ts).
import { ConfigError, DqwError } from '../errors.js';
import type { Gpu } from '../gpu/gpu.js';
import type { Tensor } from '../gpu/tensor.js';
import type { AudioReader } from '../data/audio-loader.js';
import { Batcher, type BatcherOptions, type BatcherState } from '../data/batcher.js';
import type { SkippedRow, TrainingExample } from '../data/examples.js';
import type { WhisperWeights } from '../model/whisper.js';
import { BatchPreparer, type PreparedExample } from './batch.js';
import { learningRateAt, validateLearningRateSchedule, type LearningRateSchedule } from './schedule.js';
import { compileDistillationStep, DistillationStep, type CachedKlForm, type CachedTeacher, type CachedTeacherOutputs, type DistillationBatch, type DistillationLossOptions, type DistillationLosses, type LayerMaps } from './step.js';
import { LayerMapTracker, type LayerMapChange, type LayerMapTrackerState } from './tracker.js';

/** Options of a training run (`dqw distill` / `dqw train`). */
export interface TrainerOptions {
  /** Optimizer updates of the whole run. */
  steps: number;
  /** Examples per micro-batch (rows of the compiled step; a short batch repeats its examples). */
  batchSize: number;
  /** Micro-batches whose gradients are averaged into one update (gradient accumulation; default 1). */
  microBatches?: number;
  /** Learning rate over the run (totalSteps is normally `steps`). */
  schedule: LearningRateSchedule;
  weightDecay?: number;
  maxGradNorm?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Loss weights, temperature, hidden states and matching (distillation only). */
  loss?: DistillationLossOptions;
  /** Fake-quantize these student weights, and with `activations` their inputs (quantization-aware distillation). */
  quantize?: (weightName: string) => { bits?: number; activations?: boolean } | null;
  /** Float steps before fake-quant switches on (default 0). */
  quantWarmupSteps?: number;
  /**
   * Learnable per-channel weight scales (LSQ) from the fake-quant switch on, initialised to
   * max|W_c| / qmax of the weights then (DistillationStepOptions.learnableScales).
   */
  learnableScales?: boolean;
  /** Steps of the run after which the learnable scales freeze: steps > this keep them fixed (default never). */
  lsqFreezeSteps?: number;
  /** Learning-rate factor of the learnable scales against the weights' (DistillationStepOptions.scaleLrFactor). */
  scaleLrFactor?: number;
  /** The student keeps the teacher's encoder (see DistillationStepOptions.frozenEncoder). */
  frozenEncoder?: boolean;
  /**
   * Distil from a teacher cache (docs/teacher-cache.md) instead of running the teacher on the
   * training batches. The dev losses read `devTeacherCache` when given, else run the live teacher,
   * so evaluateLoss needs one of the two.
   */
  teacherCache?: TrainerTeacherCache;
  /** The teacher's cached outputs on the dev examples, for evaluateLoss (with teacherCache). */
  devTeacherCache?: TrainerTeacherCache;
  /** Seed of data order and projection initialisation. */
  seed: number;
  /** Batcher pools (language mixing); default 4. */
  poolBatches?: number;
  /** Most bytes of prepared examples (log-mel + tokens) kept in memory between epochs (default 512 MiB). */
  cacheBytes?: number;
}

/** Where a Trainer gets cached teacher outputs (src/io/teacher-cache-files.ts teacherCacheSource); the steps compile for it as it is. */
export interface TrainerTeacherCache extends CachedTeacher {
  klForm: CachedKlForm;
  /** The teacher outputs of a batch of these prepared examples, rows as BatchPreparer.assemble fills them. */
  outputs(prepared: readonly PreparedExample[], batchSize: number): Promise<CachedTeacherOutputs>;
}

/** What one training step did. */
export interface TrainingStepResult {
  step: number;
  epoch: number;
  lr: number;
  losses: DistillationLosses;
  /** Examples in the step's batches (before repetition to fill the compiled rows). */
  examples: number;
  /** Label tokens with a loss. */
  tokens: number;
  /** Wall seconds of the step, batch preparation included. */
  seconds: number;
  /** Maps that changed at this step. */
  mapChanges: { encoder?: LayerMapChange; decoder?: LayerMapChange };
  /** Whether this step ran with fake-quant. */
  quantized: boolean;
}

/** The JSON part of a trainer's checkpoint state (the tensors go in training.safetensors). */
export interface TrainerState {
  step: number;
  batcher: BatcherState;
  maps: { encoder: LayerMapTrackerState | null; decoder: LayerMapTrackerState | null };
  /** Bits each learned scale in the tensors was trained for, by name (`<module>.weight_scale`; `dqw export` checks its plan against them). */
  scaleBits?: Record<string, number>;
}

/** Where a run starts from: nothing (a new run) or a checkpoint's state and training tensors. */
export interface TrainerResume {
  state: TrainerState;
  tensors: ReadonlyMap<string, Float32Array>;
}

function isTrainerState(x: unknown): x is TrainerState {
  const s = x as TrainerState | null;
  return !!s && Number.isSafeInteger(s.step) && typeof s.batcher === 'object' && !!s.batcher && typeof s.maps === 'object' && !!s.maps;
}

/** Validate a checkpoint's JSON state as a TrainerState; `source` names the checkpoint in the error. */
export function trainerStateFrom(json: unknown, source: string): TrainerState {
  const state = (json as { trainer?: unknown } | null)?.trainer;
  if (!isTrainerState(state)) throw new DqwError(`${source}: training.json has no valid "trainer" state (step, batcher, maps); was it written by dqw distill/train?`);
  return state;
}

/** A batch's step data: the preparer's assembly, with the teacher's outputs when they come from a cache. */
async function assembleBatch(preparer: BatchPreparer, prepared: readonly PreparedExample[], batchSize: number, teacherCache?: TrainerTeacherCache): Promise<DistillationBatch> {
  const data = preparer.assemble(prepared, batchSize);
  if (teacherCache) data.teacher = await teacherCache.outputs(prepared, batchSize);
  return data;
}

/**
 * Losses of a forward-only step (compiled with `train: false`) over prepared batches, averaged
 * over label tokens. Rows that only fill a short batch get no labels, so they do not count.
 */
export async function meanLosses(
  step: DistillationStep,
  preparer: BatchPreparer,
  batches: readonly (readonly PreparedExample[])[],
  batchSize: number,
  teacherCache?: TrainerTeacherCache,
): Promise<DistillationLosses & { tokens: number }> {
  const parts = ['total', 'ce', 'kl', 'hs', 'hsEncoder', 'hsDecoder'] as const;
  const sum = { total: 0, ce: 0, kl: 0, hs: 0, hsEncoder: 0, hsDecoder: 0, gradNorm: NaN, tokens: 0 };
  for (const prepared of batches) {
    const data = await assembleBatch(preparer, prepared, batchSize, teacherCache);
    data.labels.fill(-100, prepared.length * preparer.tokens);
    step.write(data);
    const l = await step.run(1, 0);
    const n = BatchPreparer.labelCount(data);
    for (const k of parts) sum[k] += l[k] * n;
    sum.tokens += n;
  }
  if (!sum.tokens) throw new DqwError('losses: the batches hold no labels');
  for (const k of parts) sum[k] /= sum.tokens;
  return sum;
}

/** A training run in progress. */
export class Trainer {
  private current: { step: DistillationStep; quantized: boolean; scalesFrozen: boolean } | null = null;
  private evalStep: DistillationStep | null = null;
  private readonly cache = new Map<string, PreparedExample>();
  private cacheUsed = 0;
  private pendingTensors: ReadonlyMap<string, Float32Array> | null;
  readonly skipped: SkippedRow[] = [];
  readonly encoderMaps: LayerMapTracker | null;
  readonly decoderMaps: LayerMapTracker | null;
  /** Steps done so far. */
  step: number;
  private readonly batcher: Batcher;

  constructor(
    readonly gpu: Gpu,
    readonly teacher: WhisperWeights | null,
    readonly student: WhisperWeights,
    readonly preparer: BatchPreparer,
    readonly examples: readonly TrainingExample[],
    readonly readAudio: AudioReader,
    readonly options: TrainerOptions,
    resume?: TrainerResume,
  ) {
    validateLearningRateSchedule(options.schedule);
    if (!Number.isSafeInteger(options.steps) || options.steps < 1) throw new ConfigError(`training: steps must be a positive integer, got ${options.steps}`);
    if (!Number.isSafeInteger(options.batchSize) || options.batchSize < 1) throw new ConfigError(`training: batch size must be a positive integer, got ${options.batchSize}`);
    if (!examples.length) throw new ConfigError('training: no usable training examples');
    const freeze = options.lsqFreezeSteps;
    if (freeze !== undefined && (!Number.isSafeInteger(freeze) || freeze < 0)) throw new ConfigError(`training: lsqFreezeSteps must be an integer >= 0, got ${freeze}`);
    if (freeze !== undefined && !options.learnableScales) throw new ConfigError('training: lsqFreezeSteps needs learnableScales');
    const batcherOptions: BatcherOptions = { seed: options.seed, maxExamples: options.batchSize, poolBatches: options.poolBatches };
    this.batcher = resume ? Batcher.fromState(examples, batcherOptions, resume.state.batcher) : new Batcher(examples, batcherOptions);
    this.step = resume?.state.step ?? 0;
    const tracker = (layers: number, state: LayerMapTrackerState | null | undefined) => (state ? LayerMapTracker.fromState(state) : new LayerMapTracker(layers));
    const hs = options.loss?.hiddenStates ?? 'encoder+decoder';
    const distilling = !!teacher || !!options.teacherCache;
    this.encoderMaps = distilling && hs.includes('encoder') && !options.frozenEncoder ? tracker(student.config.encoder_layers, resume?.state.maps.encoder) : null;
    this.decoderMaps = distilling && hs.includes('decoder') ? tracker(student.config.decoder_layers, resume?.state.maps.decoder) : null;
    this.pendingTensors = resume?.tensors ?? null;
  }

  /** Whether step `step` (1-based) runs with fake-quant. */
  quantizedAt(step: number): boolean {
    return !!this.options.quantize && step > (this.options.quantWarmupSteps ?? 0);
  }

  /** Whether step `step` (1-based) keeps the learnable scales fixed. */
  scalesFrozenAt(step: number): boolean {
    return step > (this.options.lsqFreezeSteps ?? Infinity);
  }

  /**
   * The compiled step for `step`, compiled (or recompiled at the fake-quant switch and when the
   * learnable scales freeze) on demand, moments, projections and scales carried over.
   */
  private async stepFor(step: number): Promise<DistillationStep> {
    const quantized = this.quantizedAt(step);
    const scalesFrozen = this.scalesFrozenAt(step);
    if (this.current?.quantized === quantized && this.current.scalesFrozen === scalesFrozen) return this.current.step;
    const carried = this.current ? await this.current.step.trainingTensors() : this.pendingTensors;
    this.current?.step.destroy();
    this.current = null;
    this.evalStep?.destroy();
    this.evalStep = null;
    const o = this.options;
    const compiled = await compileDistillationStep(this.gpu, {
      ...o.loss,
      teacher: o.teacherCache ? null : this.teacher,
      cachedTeacher: o.teacherCache,
      student: this.student,
      shape: { batch: o.batchSize, tokens: this.preparer.tokens, padded: true },
      lr: learningRateAt(o.schedule, Math.max(1, step)),
      weightDecay: o.weightDecay,
      maxGradNorm: o.maxGradNorm,
      beta1: o.beta1,
      beta2: o.beta2,
      eps: o.eps,
      quantize: quantized ? o.quantize : undefined,
      learnableScales: quantized && o.learnableScales ? { initial: carried ?? undefined, frozen: scalesFrozen } : undefined,
      scaleLrFactor: o.scaleLrFactor,
      frozenEncoder: o.frozenEncoder,
      projections: carried ?? undefined,
      seed: o.seed,
      microBatches: o.microBatches,
    });
    if (carried) compiled.restoreTrainingTensors(carried, 'resumed training state');
    this.pendingTensors = null;
    this.current = { step: compiled, quantized, scalesFrozen };
    return compiled;
  }

  /** Prepared examples of a batch (from the cache when seen before); bad audio is skipped and recorded. */
  private async prepareAll(examples: readonly TrainingExample[]): Promise<PreparedExample[]> {
    const out: PreparedExample[] = [];
    for (const e of examples) {
      const key = `${e.source}:${e.line}:${e.audio}`;
      const hit = this.cache.get(key);
      if (hit) {
        out.push(hit);
        continue;
      }
      const prepared = await this.preparer.load(e, this.readAudio);
      if ('skipped' in prepared) {
        const { skipped } = prepared;
        if (!this.skipped.some((s) => s.source === skipped.source && s.line === skipped.line)) this.skipped.push(skipped);
        continue;
      }
      const bytes = prepared.mel.byteLength + 8 * prepared.sequence.length;
      if (this.cacheUsed + bytes <= (this.options.cacheBytes ?? 512 * 2 ** 20)) {
        this.cache.set(key, prepared);
        this.cacheUsed += bytes;
      }
      out.push(prepared);
    }
    return out;
  }

  /** The next batch with at least one loadable clip (batches whose every clip fails are passed over, the clips recorded as skipped). */
  private async nextBatch(): Promise<{ epoch: number; prepared: PreparedExample[] }> {
    for (let tries = 0; ; tries++) {
      if (tries > 0 && tries >= this.examples.length) throw new DqwError(`training: no clip of the training set could be loaded (${this.skipped.length} skipped; first: ${this.skipped[0]?.reason ?? '?'})`);
      const batch = this.batcher.next();
      const prepared = await this.prepareAll(batch.examples);
      if (prepared.length) return { epoch: batch.epoch, prepared };
    }
  }

  /** Run the next step: one update from `microBatches` batches (their gradients averaged). */
  async trainStep(): Promise<TrainingStepResult> {
    const started = performance.now();
    const step = this.step + 1;
    const compiled = await this.stepFor(step);
    const lr = learningRateAt(this.options.schedule, step);
    const micro = this.options.microBatches ?? 1;
    if (micro > 1) await compiled.zeroGradients();
    const sum = { total: 0, ce: 0, kl: 0, hs: 0, hsEncoder: 0, hsDecoder: 0, gradNorm: NaN };
    let examples = 0;
    let tokens = 0;
    let epoch = 0;
    for (let k = 0; k < micro; k++) {
      const batch = await this.nextBatch();
      const data = await assembleBatch(this.preparer, batch.prepared, this.options.batchSize, this.options.teacherCache);
      compiled.write(data);
      const l = await compiled.run(step, lr, { apply: k === micro - 1 });
      for (const key of ['total', 'ce', 'kl', 'hs', 'hsEncoder', 'hsDecoder'] as const) sum[key] += l[key] / micro;
      sum.gradNorm = l.gradNorm;
      examples += batch.prepared.length;
      tokens += BatchPreparer.labelCount(data);
      epoch = batch.epoch;
    }
    const losses: DistillationLosses = sum;
    if (!Number.isFinite(losses.total)) throw new DqwError(`training: the loss is ${losses.total} at step ${step} (ce ${losses.ce}, kl ${losses.kl}, hs ${losses.hs}); lower the learning rate or set --max-grad-norm`);
    const mapChanges: TrainingStepResult['mapChanges'] = {};
    if (this.encoderMaps || this.decoderMaps) {
      const maps = await compiled.layerMaps();
      if (maps.encoder && this.encoderMaps) mapChanges.encoder = this.encoderMaps.record(step, maps.encoder);
      if (maps.decoder && this.decoderMaps) mapChanges.decoder = this.decoderMaps.record(step, maps.decoder);
    }
    this.step = step;
    return { step, epoch, lr, losses, examples, tokens, seconds: (performance.now() - started) / 1000, mapChanges, quantized: this.current!.quantized };
  }

  /** The layer maps in use now (null sides when not matched). */
  async layerMaps(): Promise<LayerMaps | null> {
    return this.current ? this.current.step.layerMaps() : null;
  }

  /**
   * Mean losses over `examples` with the current weights (forward only, the phase's fake-quant,
   * the maps chosen on each dev batch), weighted by label tokens.
   */
  async evaluateLoss(examples: readonly TrainingExample[]): Promise<DistillationLosses & { tokens: number }> {
    const cache = this.options.devTeacherCache;
    if (this.options.teacherCache && !this.teacher && !cache) throw new ConfigError('evaluation: the dev losses need the teacher: give the live teacher or the teacher cache of the dev examples (devTeacherCache)');
    const train = await this.stepFor(Math.max(1, this.step));
    if (!this.evalStep) {
      const o = this.options;
      this.evalStep = await compileDistillationStep(this.gpu, {
        ...o.loss,
        teacher: cache ? null : this.teacher,
        cachedTeacher: cache,
        student: this.student,
        shape: { batch: o.batchSize, tokens: this.preparer.tokens, padded: true },
        lr: 0,
        quantize: this.current!.quantized ? o.quantize : undefined,
        learnableScales: this.current!.quantized && o.learnableScales ? { initial: train.scales, frozen: true } : undefined,
        frozenEncoder: o.frozenEncoder,
        projections: train.projections as ReadonlyMap<string, Tensor>,
        train: false,
      });
    }
    const batches: PreparedExample[][] = [];
    for (let i = 0; i < examples.length; i += this.options.batchSize) {
      const prepared = await this.prepareAll(examples.slice(i, i + this.options.batchSize));
      if (prepared.length) batches.push(prepared);
    }
    if (!batches.length) throw new DqwError('evaluation: no dev clip could be loaded');
    return meanLosses(this.evalStep, this.preparer, batches, this.options.batchSize, cache);
  }

  /** Everything a checkpoint needs for an exact resume: JSON state, and optimizer moments, projections and learnable scales. */
  async checkpointState(): Promise<{ state: TrainerState; tensors: Map<string, Float32Array> }> {
    const tensors = this.current ? await this.current.step.trainingTensors() : new Map(this.pendingTensors ?? []);
    const scales = [...(this.current?.step.scales.keys() ?? [])];
    const scaleBits = Object.fromEntries(scales.map((name) => [name, this.options.quantize?.(name.slice(0, -'_scale'.length))?.bits ?? 8]));
    return {
      state: {
        step: this.step, batcher: this.batcher.state(), maps: { encoder: this.encoderMaps?.state() ?? null, decoder: this.decoderMaps?.state() ?? null },
        ...(scales.length ? { scaleBits } : {}),
      },
      tensors,
    };
  }

  destroy(): void {
    this.current?.step.destroy();
    this.evalStep?.destroy();
    this.preparer.destroy();
  }
}

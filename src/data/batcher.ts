import { ConfigError } from '../errors.js';
import { Rng } from '../util/random.js';
import type { TrainingExample } from './examples.js';

/** Options of a {@link Batcher}. At least one of `maxExamples` and `maxPaddedLength` is required. */
export interface BatcherOptions {
  /** Seed of the shuffles; the same seed, examples and options give the same batches. */
  readonly seed: number;
  /** Most examples in one batch. */
  readonly maxExamples?: number;
  /**
   * Budget of one batch: its example count times its longest example's length (the padded size
   * a step processes), in the unit of `length`. With `length` counting tokens this is a token
   * budget. An example longer than the budget alone gets a batch of its own.
   */
  readonly maxPaddedLength?: number;
  /**
   * The length that batches are bucketed by. Default: `duration` in seconds when every example
   * has one, else the text's length in UTF-16 units (one unit for the whole set, so lengths
   * compare). Pass e.g. `(e) => tokenizer.encode(e.text).length` for a token budget.
   */
  readonly length?: (example: TrainingExample) => number;
  /**
   * How many batches' worth of length-sorted examples form one pool, whose languages are dealt
   * evenly over its batches. 1 keeps batch lengths tightest; more mixes languages (and lengths)
   * more. Default 4.
   */
  readonly poolBatches?: number;
}

/** Where a {@link Batcher} stands: JSON-serialisable, for training checkpoints. */
export interface BatcherState {
  readonly seed: number;
  /** The epoch of the next batch (0-based). */
  readonly epoch: number;
  /** The index within that epoch of the next batch. */
  readonly batchIndex: number;
  /** Hash of the examples and options, so a resume with other data or options is refused. */
  readonly fingerprint: string;
}

/** One batch: its examples and its place in the run. */
export interface Batch {
  readonly epoch: number;
  /** Index within the epoch. */
  readonly index: number;
  readonly examples: readonly TrainingExample[];
}

/** FNV-1a, 32 bits: a few lines, enough to tell one data set and option set from another. */
function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return (hash >>> 0).toString(16).padStart(8, '0');
}

function shuffleInPlace<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/**
 * Deterministic, resumable batches for training. Each epoch: examples are sorted by length (ties
 * in a per-epoch random order); the sorted list is cut into pools of `poolBatches` batches'
 * worth; each pool is dealt into batches within `maxExamples` and `maxPaddedLength` so that
 * every batch holds an even share of each language in the pool; finally all batches of the
 * epoch are shuffled. Epoch e's batches depend
 * only on (examples, options, seed, e), so {@link Batcher.fromState} resumes exactly.
 */
export class Batcher {
  private readonly lengths: Float64Array;
  private readonly maxExamples: number;
  private readonly maxPaddedLength: number;
  private readonly poolBatches: number;
  private readonly fingerprint: string;
  private epoch = 0;
  private batchIndex = 0;
  private plan: number[][] | undefined;

  constructor(
    private readonly examples: readonly TrainingExample[],
    private readonly options: BatcherOptions,
  ) {
    const { seed, maxExamples, maxPaddedLength, poolBatches = 4 } = options;
    if (examples.length === 0) throw new ConfigError('Batcher: no examples');
    if (!Number.isSafeInteger(seed) || seed < 0) throw new ConfigError(`Batcher: seed must be a non-negative safe integer, got ${seed}`);
    if (maxExamples === undefined && maxPaddedLength === undefined) throw new ConfigError('Batcher: set maxExamples, maxPaddedLength or both');
    if (maxExamples !== undefined && !(Number.isInteger(maxExamples) && maxExamples >= 1)) throw new ConfigError(`Batcher: maxExamples must be a positive integer, got ${maxExamples}`);
    if (maxPaddedLength !== undefined && !(maxPaddedLength > 0)) throw new ConfigError(`Batcher: maxPaddedLength must be positive, got ${maxPaddedLength}`);
    if (!(Number.isInteger(poolBatches) && poolBatches >= 1)) throw new ConfigError(`Batcher: poolBatches must be a positive integer, got ${poolBatches}`);
    this.maxExamples = maxExamples ?? Infinity;
    this.maxPaddedLength = maxPaddedLength ?? Infinity;
    this.poolBatches = poolBatches;

    const allTimed = examples.every((e) => e.duration !== undefined);
    const length = options.length ?? ((e: TrainingExample) => (allTimed ? e.duration! : e.text.length));
    this.lengths = Float64Array.from(examples, (e) => {
      const value = length(e);
      if (!(Number.isFinite(value) && value >= 0)) throw new ConfigError(`Batcher: length of ${e.source}:${e.line} must be a finite non-negative number, got ${value}`);
      return value;
    });
    const described = examples.map((e, i) => `${e.audio}\t${e.language}\t${e.text}\t${this.lengths[i]}`).join('\n');
    this.fingerprint = fnv1a(`${described}\n${this.maxExamples}/${this.maxPaddedLength}/${poolBatches}`);
  }

  /** A batcher that continues from `state` (taken by {@link Batcher.state}) over the same examples and options. */
  static fromState(examples: readonly TrainingExample[], options: BatcherOptions, state: BatcherState): Batcher {
    const batcher = new Batcher(examples, options);
    if (state.seed !== options.seed) throw new ConfigError(`Batcher state: seed ${state.seed} differs from the options' seed ${options.seed}`);
    if (state.fingerprint !== batcher.fingerprint) {
      throw new ConfigError(`Batcher state: fingerprint ${state.fingerprint} differs from ${batcher.fingerprint}; the examples or batching options changed since the state was saved`);
    }
    if (!(Number.isSafeInteger(state.epoch) && state.epoch >= 0)) throw new ConfigError(`Batcher state: epoch must be a non-negative integer, got ${state.epoch}`);
    const plan = batcher.epochBatches(state.epoch);
    if (!(Number.isInteger(state.batchIndex) && state.batchIndex >= 0 && state.batchIndex <= plan.length)) {
      throw new ConfigError(`Batcher state: batchIndex must be an integer in 0..${plan.length} for epoch ${state.epoch}, got ${state.batchIndex}`);
    }
    batcher.plan = plan;
    batcher.epoch = state.epoch;
    batcher.batchIndex = state.batchIndex;
    return batcher;
  }

  /** The position of the next batch, to store in a checkpoint. */
  state(): BatcherState {
    return { seed: this.options.seed, epoch: this.epoch, batchIndex: this.batchIndex, fingerprint: this.fingerprint };
  }

  /** The next batch; after an epoch's last batch comes the next epoch's first. */
  next(): Batch {
    let plan = this.currentPlan();
    if (this.batchIndex >= plan.length) {
      this.epoch++;
      this.batchIndex = 0;
      this.plan = undefined;
      plan = this.currentPlan();
    }
    const index = this.batchIndex++;
    return { epoch: this.epoch, index, examples: plan[index]!.map((i) => this.examples[i]!) };
  }

  /** Epoch `epoch`'s batches as indices into the examples, in the order {@link Batcher.next} returns them. */
  epochBatches(epoch: number): number[][] {
    const rng = new Rng(this.epochSeed(epoch));
    const order = shuffleInPlace(Array.from(this.examples, (_, i) => i), rng);
    // Stable sort: equal lengths keep the epoch's random order.
    order.sort((a, b) => this.lengths[a]! - this.lengths[b]!);
    const batches: number[][] = [];
    for (const pool of this.cut(order, this.poolBatches)) batches.push(...this.dealPool(pool, rng));
    return shuffleInPlace(batches, rng);
  }

  private currentPlan(): number[][] {
    this.plan ??= this.epochBatches(this.epoch);
    return this.plan;
  }

  /** A seed per epoch, drawn from the run's seed, so epochs differ but each can be rebuilt alone. */
  private epochSeed(epoch: number): number {
    const rng = new Rng(this.options.seed);
    let seed = 0;
    for (let e = 0; e <= epoch; e++) seed = (rng.nextUint32() & 0x1fffff) * 4294967296 + rng.nextUint32();
    return seed;
  }

  /** Cuts length-sorted `order` greedily into pools within `scale` times the batch limits. */
  private cut(order: readonly number[], scale: number): number[][] {
    const runs: number[][] = [];
    let run: number[] = [];
    let longest = 0;
    for (const i of order) {
      const length = this.lengths[i]!;
      const grown = Math.max(longest, length);
      if (run.length > 0 && (run.length + 1 > this.maxExamples * scale || (run.length + 1) * grown > this.maxPaddedLength * scale)) {
        runs.push(run);
        run = [];
        longest = 0;
      }
      run.push(i);
      longest = Math.max(longest, length);
    }
    if (run.length > 0) runs.push(run);
    return runs;
  }

  /**
   * Splits a pool into the fewest batches within the limits (sized for the pool's longest
   * example) and deals its examples to them like cards: languages in random order, each
   * language's examples shuffled, example k to batch k mod B. Every batch then holds
   * floor(n/B) or ceil(n/B) of a language with n examples in the pool, and sizes differ by at most one.
   */
  private dealPool(pool: readonly number[], rng: Rng): number[][] {
    const longest = Math.max(...pool.map((i) => this.lengths[i]!));
    const fitting = longest > 0 ? Math.floor(this.maxPaddedLength / longest) : Infinity;
    const perBatch = Math.max(1, Math.min(this.maxExamples, fitting, pool.length));
    const batches: number[][] = Array.from({ length: Math.ceil(pool.length / perBatch) }, () => []);
    const byLanguage = new Map<string, number[]>();
    for (const i of pool) {
      const language = this.examples[i]!.language;
      const list = byLanguage.get(language);
      if (list) list.push(i);
      else byLanguage.set(language, [i]);
    }
    let k = 0;
    for (const language of shuffleInPlace([...byLanguage.keys()].sort(), rng)) {
      for (const i of shuffleInPlace(byLanguage.get(language)!, rng)) batches[k++ % batches.length]!.push(i);
    }
    return batches;
  }
}

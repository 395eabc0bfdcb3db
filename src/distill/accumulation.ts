import { ConfigError } from '../errors.js';

/** Where a micro-batch falls in gradient accumulation. */
export interface MicroBatchPosition {
  /** The optimizer update (1-based, AdamW's 'step') this micro-batch's gradient goes into. */
  readonly update: number;
  /** 0..microBatches-1 within the update. */
  readonly index: number;
  /** The first of its update: gradients start from zero (overwrite instead of add). */
  readonly first: boolean;
  /** The last of its update: apply the optimizer after its backward pass. */
  readonly last: boolean;
}

/** The state of a {@link GradientAccumulation}: JSON-serialisable, for checkpoints. */
export interface GradientAccumulationState {
  readonly microBatches: number;
  /** Micro-batches already run. */
  readonly done: number;
}

/**
 * Gradient-accumulation bookkeeping: `microBatches` micro-batches per optimizer update. Call
 * {@link next} before each micro-batch to learn which update it feeds and whether it opens or
 * closes one.
 */
export class GradientAccumulation {
  private done = 0;

  constructor(readonly microBatches: number) {
    if (!Number.isSafeInteger(microBatches) || microBatches < 1) throw new ConfigError(`gradient accumulation: microBatches must be a positive integer, got ${microBatches}`);
  }

  /** The position of the next micro-batch, and advance past it. */
  next(): MicroBatchPosition {
    const index = this.done % this.microBatches;
    const position = { update: Math.floor(this.done / this.microBatches) + 1, index, first: index === 0, last: index === this.microBatches - 1 };
    this.done++;
    return position;
  }

  /** Optimizer updates completed so far. */
  get updatesDone(): number {
    return Math.floor(this.done / this.microBatches);
  }

  /** The state, for a checkpoint. */
  state(): GradientAccumulationState {
    return { microBatches: this.microBatches, done: this.done };
  }

  /** Continue from a state taken by {@link GradientAccumulation.state}. */
  static fromState(state: GradientAccumulationState): GradientAccumulation {
    const acc = new GradientAccumulation(state.microBatches);
    if (!Number.isSafeInteger(state.done) || state.done < 0) throw new ConfigError(`gradient accumulation state: done must be a non-negative integer, got ${state.done}`);
    acc.done = state.done;
    return acc;
  }
}

/**
 * Weights w_k = n_k / Σ n of micro-batches holding n_k target tokens, so that Σ_k w_k ∇L_k (each
 * L_k a per-token mean) is the gradient of the per-token mean over the whole update, as one big
 * batch would give. With AdamW's gradScale 1/microBatches, scale micro-batch k's loss by
 * microBatches·w_k. Throws ConfigError for a negative or non-integer count or no tokens at all.
 */
export function microBatchWeights(tokenCounts: readonly number[]): number[] {
  tokenCounts.forEach((n, k) => {
    if (!Number.isSafeInteger(n) || n < 0) throw new ConfigError(`micro-batch weights: micro-batch ${k} has token count ${n}, expected a non-negative integer`);
  });
  const total = tokenCounts.reduce((a, b) => a + b, 0);
  if (total === 0) throw new ConfigError(`micro-batch weights: no target tokens in ${tokenCounts.length} micro-batch(es)`);
  return tokenCounts.map((n) => n / total);
}

import { ConfigError } from '../errors.js';

// Hand-written: a few lines of closed-form arithmetic; npm's schedulers belong to whole training
// frameworks (TF.js has none of this shape) and would not follow AdamW's 1-based step count.

/** How the learning rate falls after warm-up. */
export type LearningRateDecay = 'linear' | 'cosine' | 'constant';

/** A warm-up-then-decay learning-rate schedule over optimizer updates 1..totalSteps. */
export interface LearningRateSchedule {
  /** The rate reached at the end of warm-up. */
  peak: number;
  /** Updates of linear warm-up from peak/warmupSteps to peak; 0 starts at the peak. */
  warmupSteps: number;
  /** The update at which the decay reaches the floor; later updates stay there. */
  totalSteps: number;
  decay: LearningRateDecay;
  /** The rate the decay ends at (absolute, 0 <= floor <= peak); default 0. Unused by 'constant'. */
  floor?: number;
}

/** Check a schedule; throws ConfigError naming the field. */
export function validateLearningRateSchedule(s: LearningRateSchedule): void {
  if (!(Number.isFinite(s.peak) && s.peak > 0)) throw new ConfigError(`learning-rate schedule: peak must be a positive number, got ${s.peak}`);
  const floor = s.floor ?? 0;
  if (!(Number.isFinite(floor) && floor >= 0 && floor <= s.peak)) throw new ConfigError(`learning-rate schedule: floor must be in [0, peak ${s.peak}], got ${floor}`);
  if (!Number.isSafeInteger(s.warmupSteps) || s.warmupSteps < 0) throw new ConfigError(`learning-rate schedule: warmupSteps must be a non-negative integer, got ${s.warmupSteps}`);
  if (!Number.isSafeInteger(s.totalSteps) || s.totalSteps < Math.max(1, s.warmupSteps)) {
    throw new ConfigError(`learning-rate schedule: totalSteps must be an integer >= max(1, warmupSteps ${s.warmupSteps}), got ${s.totalSteps}`);
  }
  if (!['linear', 'cosine', 'constant'].includes(s.decay)) throw new ConfigError(`learning-rate schedule: decay must be linear, cosine or constant, got "${String(s.decay)}"`);
}

/**
 * The learning rate of optimizer update `step` (1-based, as AdamW's 'step' scalar), W = warmupSteps,
 * T = totalSteps, f = floor:
 * - step <= W: peak·step/W (the first update already moves; lr(W) = peak);
 * - W < step <= T, p = (step−W)/(T−W): linear f + (peak−f)(1−p), cosine f + (peak−f)(1+cos πp)/2,
 *   constant peak (so lr(T) = f for the decays);
 * - step > T: f (constant: peak).
 */
export function learningRateAt(schedule: LearningRateSchedule, step: number): number {
  validateLearningRateSchedule(schedule);
  if (!Number.isSafeInteger(step) || step < 1) throw new ConfigError(`learning rate: step must be an integer >= 1 (AdamW counts from 1), got ${step}`);
  const { peak, warmupSteps: w, totalSteps: t, decay } = schedule;
  const floor = schedule.floor ?? 0;
  if (step <= w) return (peak * step) / w;
  if (decay === 'constant') return peak;
  if (step >= t) return floor;
  const p = (step - w) / (t - w);
  const shape = decay === 'linear' ? 1 - p : 0.5 * (1 + Math.cos(Math.PI * p));
  return floor + (peak - floor) * shape;
}

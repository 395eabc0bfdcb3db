// The one-line training progress that the loop puts into its progress bar.
import prettyMilliseconds from 'pretty-ms';
import type { LossParts } from './metrics.js';

/** Where training stands, for {@link formatTrainingProgress}. */
export interface TrainingProgress {
  /** Steps done (1-based number of the last step finished). */
  readonly step: number;
  readonly totalSteps: number;
  /** The last step's loss and its logged parts. */
  readonly loss: LossParts;
  readonly tokensPerSecond?: number;
  /** Seconds since this process began training. */
  readonly elapsedSeconds: number;
  /** The step this process began from (a resumed run's checkpoint step); 0 by default. */
  readonly startStep?: number;
}

/** A duration in whole seconds, at most two units: "45s", "2m 3s", "1h 2m", "1d 1h". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const whole = Math.max(0, Math.round(seconds));
  return whole === 0 ? '0s' : prettyMilliseconds(whole * 1000, { unitCount: 2 });
}

/**
 * Seconds left at this process's pace so far (steps done since `startStep` over the time they
 * took), or undefined before the first step of this process has finished.
 */
export function remainingSeconds(p: TrainingProgress): number | undefined {
  const done = p.step - (p.startStep ?? 0);
  if (done <= 0 || !(p.elapsedSeconds > 0)) return undefined;
  return (Math.max(0, p.totalSteps - p.step) * p.elapsedSeconds) / done;
}

/** A loss for a progress line: four significant digits, readable at any magnitude. */
const lossText = (v: number) => (Number.isFinite(v) ? v.toPrecision(4) : String(v));

/**
 * "step 120/1000 (12.0%) | loss 2.346 (ce 1.234 kl 0.5670 hs 0.08900) | 1234 tok/s | 2m 3s, ETA 15m 2s":
 * the parts of the loss that were logged, the speed when known, and the time left at this
 * process's pace ("ETA ?" until a step has finished).
 */
export function formatTrainingProgress(p: TrainingProgress): string {
  const percent = p.totalSteps > 0 ? ((100 * p.step) / p.totalSteps).toFixed(1) : '0.0';
  const parts = (['ce', 'kl', 'hs'] as const).filter((k) => p.loss[k] !== undefined).map((k) => `${k} ${lossText(p.loss[k]!)}`);
  const loss = `loss ${lossText(p.loss.total)}${parts.length ? ` (${parts.join(' ')})` : ''}`;
  const speed = p.tokensPerSecond !== undefined && Number.isFinite(p.tokensPerSecond) ? ` | ${p.tokensPerSecond.toFixed(0)} tok/s` : '';
  const eta = remainingSeconds(p);
  return `step ${p.step}/${p.totalSteps} (${percent}%) | ${loss}${speed} | ${formatDuration(p.elapsedSeconds)}, ETA ${eta === undefined ? '?' : formatDuration(eta)}`;
}

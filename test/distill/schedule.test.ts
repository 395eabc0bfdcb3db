import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { learningRateAt, type LearningRateSchedule } from '../../src/distill/schedule.js';
import { GradientAccumulation, microBatchWeights } from '../../src/distill/accumulation.js';
import { Rng } from '../../src/util/random.js';

// Closed-form values, relative tolerance 1e-12 (a few float64 operations).
function expectRate(actual: number, expected: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-12 * Math.abs(expected));
}

describe('learningRateAt', () => {
  const base = { peak: 1e-3, warmupSteps: 10, totalSteps: 110, floor: 1e-5 };
  const linear: LearningRateSchedule = { ...base, decay: 'linear' };
  const cosine: LearningRateSchedule = { ...base, decay: 'cosine' };

  it('warms up linearly from peak/W at step 1 to the peak at step W', () => {
    for (const s of [linear, cosine, { ...base, decay: 'constant' as const }]) {
      expectRate(learningRateAt(s, 1), 1e-4);
      expectRate(learningRateAt(s, 4), 4e-4);
      expectRate(learningRateAt(s, 10), 1e-3);
    }
  });

  it('decays linearly to the floor: f + (peak - f)(1 - p)', () => {
    expectRate(learningRateAt(linear, 35), 1e-5 + 0.99e-3 * 0.75); // p = 1/4
    expectRate(learningRateAt(linear, 60), 1e-5 + 0.99e-3 * 0.5);
    expectRate(learningRateAt(linear, 109), 1e-5 + 0.99e-3 * 0.01);
    expect(learningRateAt(linear, 110)).toBe(1e-5);
    expect(learningRateAt(linear, 1000)).toBe(1e-5);
  });

  it('decays on a half cosine to the floor: f + (peak - f)(1 + cos πp)/2', () => {
    expectRate(learningRateAt(cosine, 35), 1e-5 + 0.99e-3 * (1 + Math.SQRT1_2) / 2); // p = 1/4
    expectRate(learningRateAt(cosine, 60), 1e-5 + 0.99e-3 * 0.5);
    expectRate(learningRateAt(cosine, 85), 1e-5 + 0.99e-3 * (1 - Math.SQRT1_2) / 2); // p = 3/4
    expect(learningRateAt(cosine, 110)).toBe(1e-5);
    // No floor given: decays to 0.
    expect(learningRateAt({ peak: 2, warmupSteps: 0, totalSteps: 4, decay: 'cosine' }, 4)).toBe(0);
    expectRate(learningRateAt({ peak: 2, warmupSteps: 0, totalSteps: 4, decay: 'cosine' }, 1), 1 + Math.SQRT1_2); // p = 1/4
  });

  it('constant holds the peak after warm-up, and warm-up 0 starts at the peak', () => {
    expect(learningRateAt({ ...base, decay: 'constant' }, 11)).toBe(1e-3);
    expect(learningRateAt({ ...base, decay: 'constant' }, 5000)).toBe(1e-3);
    expectRate(learningRateAt({ ...linear, warmupSteps: 0 }, 1), 1e-5 + 0.99e-3 * (109 / 110)); // p = 1/110
  });

  it('rejects bad schedules and steps, naming the field', () => {
    expect(() => learningRateAt(linear, 0)).toThrow(/step must be an integer >= 1/);
    expect(() => learningRateAt({ ...linear, peak: 0 }, 1)).toThrow(/peak must be a positive number/);
    expect(() => learningRateAt({ ...linear, floor: 2e-3 }, 1)).toThrow(/floor must be in \[0, peak/);
    expect(() => learningRateAt({ ...linear, totalSteps: 5 }, 1)).toThrow(/totalSteps must be an integer >= max\(1, warmupSteps 10\)/);
    expect(() => learningRateAt({ ...linear, warmupSteps: 1.5 }, 1)).toThrow(ConfigError);
    expect(() => learningRateAt({ ...linear, decay: 'step' as 'linear' }, 1)).toThrow(/decay must be linear, cosine or constant/);
  });
});

describe('gradient accumulation', () => {
  it('groups micro-batches into updates, first and last marked', () => {
    const acc = new GradientAccumulation(3);
    const seen = Array.from({ length: 7 }, () => acc.next());
    expect(seen.map((p) => [p.update, p.index, p.first, p.last])).toEqual([
      [1, 0, true, false], [1, 1, false, false], [1, 2, false, true],
      [2, 0, true, false], [2, 1, false, false], [2, 2, false, true],
      [3, 0, true, false],
    ]);
    expect(acc.updatesDone).toBe(2);
    const resumed = GradientAccumulation.fromState(JSON.parse(JSON.stringify(acc.state())));
    expect(resumed.next()).toEqual({ update: 3, index: 1, first: false, last: false });
    expect(new GradientAccumulation(1).next()).toEqual({ update: 1, index: 0, first: true, last: true });
    expect(() => new GradientAccumulation(0)).toThrow(ConfigError);
    expect(() => GradientAccumulation.fromState({ microBatches: 2, done: -1 })).toThrow(/done must be a non-negative integer/);
  });

  it('token weights make accumulated per-micro-batch means equal the whole-batch per-token mean gradient', () => {
    // Toy loss per token (θ - x_t)²: the gradient of a per-token mean over tokens S is 2(θ - mean_S x).
    const rng = new Rng(21);
    const counts = [3, 17, 0, 9];
    const batches = counts.map((n) => Array.from({ length: n }, () => rng.normal()));
    const theta = 0.3;
    const meanGrad = (xs: number[]) => 2 * (theta - xs.reduce((a, b) => a + b, 0) / xs.length);
    const whole = meanGrad(batches.flat());
    const w = microBatchWeights(counts);
    expect(w).toEqual([3 / 29, 17 / 29, 0, 9 / 29]);
    const accumulated = batches.reduce((sum, xs, k) => (xs.length ? sum + w[k]! * meanGrad(xs) : sum), 0);
    expect(Math.abs(accumulated - whole)).toBeLessThanOrEqual(1e-14);
    // Equal weights over the non-empty micro-batches would not give it (the test can tell).
    const equal = batches.filter((xs) => xs.length).reduce((sum, xs) => sum + meanGrad(xs) / 3, 0);
    expect(Math.abs(equal - whole)).toBeGreaterThan(1e-3);
    expect(() => microBatchWeights([0, 0])).toThrow(/no target tokens in 2 micro-batch/);
    expect(() => microBatchWeights([4, -1])).toThrow(/micro-batch 1 has token count -1/);
  });
});

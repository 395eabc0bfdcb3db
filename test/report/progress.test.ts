import { describe, expect, it } from 'vitest';
import { formatDuration, formatTrainingProgress, remainingSeconds } from '../../src/report/progress.js';

describe('formatDuration', () => {
  it('writes whole seconds in at most two units', () => {
    expect([0, 0.4, 1, 59.6, 61, 3725, 90061].map(formatDuration)).toEqual(['0s', '0s', '1s', '1m', '1m 1s', '1h 2m', '1d 1h']);
    expect(formatDuration(Number.NaN)).toBe('?');
  });
});

describe('formatTrainingProgress', () => {
  const loss = { total: 2.345678, ce: 1.2, kl: 0.567, hs: 0.0891 };

  it('estimates the time left from the pace so far', () => {
    // 100 steps in 50 s: 900 steps left at 0.5 s each = 450 s.
    const p = { step: 100, totalSteps: 1000, loss, tokensPerSecond: 1234.4, elapsedSeconds: 50 };
    expect(remainingSeconds(p)).toBe(450);
    expect(formatTrainingProgress(p)).toBe('step 100/1000 (10.0%) | loss 2.346 (ce 1.200 kl 0.5670 hs 0.08910) | 1234 tok/s | 50s, ETA 7m 30s');
  });

  it('counts only the steps of this process after a resume', () => {
    // Resumed at 500; 100 steps in 100 s: 400 left at 1 s each.
    const p = { step: 600, totalSteps: 1000, loss: { total: 0.5 }, elapsedSeconds: 100, startStep: 500 };
    expect(remainingSeconds(p)).toBe(400);
    expect(formatTrainingProgress(p)).toBe('step 600/1000 (60.0%) | loss 0.5000 | 1m 40s, ETA 6m 40s');
  });

  it('says ? before the first step and 0s at the end', () => {
    expect(formatTrainingProgress({ step: 0, totalSteps: 10, loss: { total: Number.NaN }, elapsedSeconds: 0 })).toBe('step 0/10 (0.0%) | loss NaN | 0s, ETA ?');
    expect(formatTrainingProgress({ step: 10, totalSteps: 10, loss: { total: 1 }, elapsedSeconds: 3725 })).toMatch(/\| 1h 2m, ETA 0s$/);
  });
});

import { describe, expect, it } from 'vitest';
import { ConfigError, ShapeError } from '../../src/errors.js';
import { LayerMapTracker, formatLayerMapChange, type LayerMapTrackerState } from '../../src/distill/tracker.js';
import { matchLayers } from '../../src/distill/matching.js';
import { Rng } from '../../src/util/random.js';

/** A run: dynamic matching on noisy distances every `k` steps; returns the map chosen at each recompute step. */
function simulatedRun(steps: number, k: number, seed: number): { step: number; map: number[] }[] {
  const rng = new Rng(seed);
  const ls = 4;
  const lt = 12;
  const out: { step: number; map: number[] }[] = [];
  for (let step = 1; step <= steps; step += k) {
    // Distances favour a slowly drifting diagonal plus noise, so the map changes now and then.
    const drift = Math.floor(step / 40) % 3;
    const d = Array.from({ length: ls }, (_, r) => Array.from({ length: lt }, (_, c) => Math.abs(c + 1 - (3 * (r + 1) - drift)) + 0.8 * rng.uniform()));
    out.push({ step, map: matchLayers(d, { strategy: 'dynamic' }).teacherLayers });
  }
  return out;
}

describe('LayerMapTracker', () => {
  it('reports exactly the steps where the map changes, with the changed layers', () => {
    const run = simulatedRun(400, 1, 11);
    const tracker = new LayerMapTracker(4);
    const reported = run.map(({ step, map }) => tracker.record(step, map));
    let expectedChanges = 0;
    run.forEach(({ step, map }, k) => {
      const prev = k > 0 ? run[k - 1]!.map : undefined;
      const changed = prev ? map.flatMap((m, r) => (m !== prev[r] ? [r + 1] : [])) : [1, 2, 3, 4];
      if (changed.length === 0) {
        expect(reported[k]).toBeUndefined();
      } else {
        expectedChanges++;
        expect(reported[k]).toEqual({ step, teacherLayers: map, changedLayers: changed, ...(prev && { previous: prev }) });
      }
    });
    expect(expectedChanges).toBeGreaterThan(3); // the run really changes its map
    expect(expectedChanges).toBeLessThan(run.length); // and also keeps it sometimes
    expect(tracker.changes()).toEqual(reported.filter((c) => c !== undefined));
  });

  it('evolution gives the map in effect at every step, also between recomputations', () => {
    const k = 5;
    const run = simulatedRun(300, k, 12);
    const tracker = new LayerMapTracker(4);
    for (const { step, map } of run) tracker.record(step, map);
    const evo = tracker.evolution();
    const lastStep = run[run.length - 1]!.step;
    expect(evo.steps).toEqual(Array.from({ length: lastStep }, (_, i) => i + 1));
    for (const [row, step] of evo.steps.entries()) {
      // Reference: the last recomputation at or before this step.
      const inEffect = run.filter((r) => r.step <= step).pop()!.map;
      expect(Array.from(evo.teacherLayers.subarray(row * 4, row * 4 + 4)), `step ${step}`).toEqual(inEffect);
    }
    const sparse = tracker.evolution(undefined, 50);
    expect(sparse.steps).toEqual([1, 51, 101, 151, 201, 251]);
    expect(Array.from(sparse.teacherLayers.subarray(4, 8))).toEqual(run.filter((r) => r.step <= 51).pop()!.map);
    expect(tracker.evolution([7, 3]).steps).toEqual([7, 3]);
    expect(() => tracker.evolution([0])).toThrow(/step 0 is before the first recorded map \(step 1\)/);
  });

  it('round-trips its state through JSON and continues identically', () => {
    const run = simulatedRun(200, 1, 13);
    const whole = new LayerMapTracker(4);
    const first = new LayerMapTracker(4);
    run.forEach(({ step, map }, k) => {
      whole.record(step, map);
      if (k < 120) first.record(step, map);
    });
    const restored = LayerMapTracker.fromState(JSON.parse(JSON.stringify(first.state())) as LayerMapTrackerState);
    run.slice(120).forEach(({ step, map }) => restored.record(step, map));
    expect(restored.changes()).toEqual(whole.changes());
    expect(restored.evolution()).toEqual(whole.evolution());
    // Steps after the saved lastStep only: a step already done is refused after restoring.
    expect(() => LayerMapTracker.fromState(first.state()).record(run[119]!.step, run[119]!.map)).toThrow(ConfigError);
  });

  it('rejects bad input naming it', () => {
    const tracker = new LayerMapTracker(3);
    expect(() => tracker.evolution()).toThrow(/no map recorded yet/);
    tracker.record(10, [1, 2, 3]);
    expect(() => tracker.record(10, [1, 2, 3])).toThrow(/step 10 recorded after step 10/);
    expect(() => tracker.record(11, [1, 2])).toThrow(ShapeError);
    expect(() => tracker.record(12, [1, 0, 3])).toThrow(/student layer 2 -> 0/);
    expect(() => new LayerMapTracker(0)).toThrow(ConfigError);
    const bad: LayerMapTrackerState = { studentLayers: 2, changes: [{ step: 5, teacherLayers: [1, 2] }], lastStep: 3 };
    expect(() => LayerMapTracker.fromState(bad)).toThrow(/lastStep 3 is before the last change \(step 5\)/);
  });

  it('formats changes for the log', () => {
    const tracker = new LayerMapTracker(3);
    expect(formatLayerMapChange(tracker.record(1, [2, 4, 6])!)).toBe('step 1: layer map 1→2 2→4 3→6 (initial)');
    expect(formatLayerMapChange(tracker.record(9, [2, 5, 6])!)).toBe('step 9: layer map 1→2 2→5 3→6 (layer 2 changed)');
    expect(formatLayerMapChange(tracker.record(10, [1, 3, 6])!)).toBe('step 10: layer map 1→1 2→3 3→6 (layers 1, 2 changed)');
  });
});

import { describe, expect, it } from 'vitest';
import { ConfigError, ShapeError } from '../../src/errors.js';
import { fixedLayerMap, formatLayerMap, LayerMatchingError, layerMapCost, matchLayers } from '../../src/distill/matching.js';
import { Rng } from '../../src/util/random.js';

/** Every strictly increasing 1-based map of ls layers into 1..lt, in lexicographic order. */
function* increasingMaps(ls: number, lt: number, from = 1): Generator<number[]> {
  if (ls === 0) {
    yield [];
    return;
  }
  for (let m = from; m <= lt - ls + 1; m++) for (const rest of increasingMaps(ls - 1, lt, m + 1)) yield [m, ...rest];
}

/** Brute force: the first (lexicographically smallest) map of least cost among those `ok` accepts. */
function bruteForce(d: number[][], ok: (map: number[]) => boolean): { map: number[]; cost: number } | undefined {
  let best: { map: number[]; cost: number } | undefined;
  for (const map of increasingMaps(d.length, d[0]!.length)) {
    if (!ok(map)) continue;
    const cost = map.reduce((s, m, r) => s + d[r]![m - 1]!, 0);
    if (!best || cost < best.cost) best = { map, cost };
  }
  return best;
}

function randomMatrix(rng: Rng, ls: number, lt: number, integerLevels?: number): number[][] {
  return Array.from({ length: ls }, () =>
    Array.from({ length: lt }, () => (integerLevels ? Math.floor(rng.uniform() * integerLevels) : rng.uniform())),
  );
}

const pinned = (lt: number) => (map: number[]) => map[map.length - 1] === lt;

describe('fixedLayerMap', () => {
  it('is round(i·L_T/L_S), 1-based, halves up, last = L_T', () => {
    expect(fixedLayerMap(4, 12)).toEqual([3, 6, 9, 12]);
    expect(fixedLayerMap(6, 12)).toEqual([2, 4, 6, 8, 10, 12]);
    // 12/8 = 1.5: 1.5 -> 2, 4.5 -> 5, 7.5 -> 8, 10.5 -> 11
    expect(fixedLayerMap(8, 12)).toEqual([2, 3, 5, 6, 8, 9, 11, 12]);
    // 4/3: 1.33 -> 1, 2.67 -> 3, 4
    expect(fixedLayerMap(3, 4)).toEqual([1, 3, 4]);
    expect(fixedLayerMap(5, 5)).toEqual([1, 2, 3, 4, 5]);
    expect(fixedLayerMap(1, 7)).toEqual([7]);
  });

  it('is strictly increasing and ends at L_T for every L_S <= L_T <= 32', () => {
    for (let lt = 1; lt <= 32; lt++) {
      for (let ls = 1; ls <= lt; ls++) {
        const map = fixedLayerMap(ls, lt);
        expect(map[ls - 1]).toBe(lt);
        expect(map[0]).toBeGreaterThanOrEqual(1);
        for (let r = 1; r < ls; r++) expect(map[r]!).toBeGreaterThan(map[r - 1]!);
      }
    }
  });

  it('rejects more student than teacher layers', () => {
    expect(() => fixedLayerMap(5, 4)).toThrow(LayerMatchingError);
    expect(() => fixedLayerMap(0, 4)).toThrow(ShapeError);
  });
});

describe('matchLayers dynamic', () => {
  it('equals brute force over all monotonic maps on 400 random matrices (pinned and free)', () => {
    const rng = new Rng(1234);
    for (let trial = 0; trial < 400; trial++) {
      const lt = 1 + Math.floor(rng.uniform() * 8);
      const ls = 1 + Math.floor(rng.uniform() * lt);
      const d = randomMatrix(rng, ls, lt);
      for (const pinLast of [true, false]) {
        const expected = bruteForce(d, pinLast ? pinned(lt) : () => true)!;
        const got = matchLayers(d, { strategy: 'dynamic', pinLast });
        expect(got.teacherLayers, `trial ${trial} ${ls}x${lt} pinLast=${pinLast}`).toEqual(expected.map);
        // Same terms summed in the same order: equal to rounding of the DP's own (backward) sums at most.
        expect(Math.abs(got.cost - expected.cost)).toBeLessThanOrEqual(1e-12);
      }
    }
  });

  it('breaks ties towards the lexicographically smallest map (integer matrices, exact sums)', () => {
    const rng = new Rng(99);
    let tiesSeen = 0;
    for (let trial = 0; trial < 300; trial++) {
      const lt = 2 + Math.floor(rng.uniform() * 6);
      const ls = 1 + Math.floor(rng.uniform() * lt);
      const d = randomMatrix(rng, ls, lt, 3);
      const expected = bruteForce(d, pinned(lt))!;
      let optimal = 0;
      for (const map of increasingMaps(ls, lt)) {
        if (map[ls - 1] === lt && map.reduce((s, m, r) => s + d[r]![m - 1]!, 0) === expected.cost) optimal++;
      }
      if (optimal > 1) tiesSeen++;
      const got = matchLayers(d, { strategy: 'dynamic' });
      expect(got.teacherLayers).toEqual(expected.map);
      expect(got.cost).toBe(expected.cost);
    }
    expect(tiesSeen).toBeGreaterThan(50); // the test really exercises ties
  });

  it('an all-zero matrix gives the lexicographically smallest map: 1, 2, ..., L_S-1, then L_T', () => {
    const d = Array.from({ length: 4 }, () => new Array<number>(9).fill(0));
    expect(matchLayers(d, { strategy: 'dynamic' }).teacherLayers).toEqual([1, 2, 3, 9]);
    expect(matchLayers(d, { strategy: 'dynamic', pinLast: false }).teacherLayers).toEqual([1, 2, 3, 4]);
  });

  it('gives the identity when L_S = L_T (the only strictly increasing map), whatever D favours', () => {
    const rng = new Rng(5);
    const d = randomMatrix(rng, 6, 6);
    expect(matchLayers(d, { strategy: 'dynamic' }).teacherLayers).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('follows a planted diagonal and accepts row-major f32 input', () => {
    // Student layer i is closest to teacher layer 2i+1 except the last (pinned to 12).
    const ls = 5;
    const lt = 12;
    const values = new Float32Array(ls * lt).fill(1);
    const planted = [2, 5, 7, 10, 12];
    planted.forEach((m, r) => (values[r * lt + m - 1] = 0.25));
    const got = matchLayers({ studentLayers: ls, teacherLayers: lt, values }, { strategy: 'dynamic' });
    expect(got.teacherLayers).toEqual(planted);
    expect(got.cost).toBe(5 * 0.25);
  });

  it('reports impossible and malformed inputs', () => {
    expect(() => matchLayers(randomMatrix(new Rng(1), 5, 4), { strategy: 'dynamic' })).toThrow(/5 student layers cannot map strictly increasingly into 4/);
    expect(() => matchLayers([[0, 1], [0]], { strategy: 'dynamic' })).toThrow(ShapeError);
    expect(() => matchLayers({ studentLayers: 2, teacherLayers: 3, values: new Float64Array(5) }, { strategy: 'dynamic' })).toThrow(/5 values, expected .* 2 x 3 = 6/);
    expect(() => matchLayers([[0, NaN, 1]], { strategy: 'dynamic' })).toThrow(/D\[student 1, teacher 2\] is NaN/);
    expect(() => matchLayers([], { strategy: 'dynamic' })).toThrow(ShapeError);
    expect(() => matchLayers([[1]], { strategy: 'best' as 'dynamic' })).toThrow(ConfigError);
  });
});

describe('matchLayers window', () => {
  it('equals brute force restricted to |m(i) - fixed(i)| <= w (always feasible: the fixed map is inside)', () => {
    const rng = new Rng(77);
    for (let trial = 0; trial < 300; trial++) {
      const lt = 1 + Math.floor(rng.uniform() * 9);
      const ls = 1 + Math.floor(rng.uniform() * lt);
      const w = Math.floor(rng.uniform() * 3);
      const d = randomMatrix(rng, ls, lt);
      const centre = fixedLayerMap(ls, lt);
      const expected = bruteForce(d, (map) => map[ls - 1] === lt && map.every((m, r) => Math.abs(m - centre[r]!) <= w));
      expect(expected, `trial ${trial}`).toBeDefined();
      expect(matchLayers(d, { strategy: 'window', window: w }).teacherLayers, `trial ${trial}`).toEqual(expected!.map);
    }
    expect(() => matchLayers(randomMatrix(rng, 5, 4), { strategy: 'window', window: 2 })).toThrow(LayerMatchingError);
  });

  it('window 0 is the fixed map; a wide window is the dynamic map', () => {
    const d = randomMatrix(new Rng(3), 4, 12);
    expect(matchLayers(d, { strategy: 'window', window: 0 }).teacherLayers).toEqual(fixedLayerMap(4, 12));
    expect(matchLayers(d, { strategy: 'window', window: 12 }).teacherLayers).toEqual(matchLayers(d, { strategy: 'dynamic' }).teacherLayers);
    expect(() => matchLayers(d, { strategy: 'window', window: -1 })).toThrow(ConfigError);
  });

  it('window 0 without pinning is still the fixed map', () => {
    const d = randomMatrix(new Rng(4), 3, 5);
    expect(matchLayers(d, { strategy: 'window', window: 0, pinLast: false }).teacherLayers).toEqual(fixedLayerMap(3, 5));
  });
});

describe('matchLayers greedy and fixed', () => {
  it('greedy takes the per-row argmin (first on ties), last row pinned unless told not to', () => {
    const d = [
      [0.5, 0.1, 0.1, 0.9],
      [0.2, 0.7, 0.3, 0.4],
      [0.3, 0.2, 0.1, 0.8],
    ];
    expect(matchLayers(d, { strategy: 'greedy' })).toEqual({ teacherLayers: [2, 1, 4], cost: 0.1 + 0.2 + 0.8 });
    expect(matchLayers(d, { strategy: 'greedy', pinLast: false }).teacherLayers).toEqual([2, 1, 3]);
    // Greedy needs no order, so more student than teacher layers is allowed.
    expect(matchLayers([[1, 0], [0, 1], [1, 0]], { strategy: 'greedy', pinLast: false }).teacherLayers).toEqual([2, 1, 2]);
  });

  it('fixed ignores D but reports its cost', () => {
    const d = randomMatrix(new Rng(8), 3, 6);
    const got = matchLayers(d, { strategy: 'fixed' });
    expect(got.teacherLayers).toEqual([2, 4, 6]);
    expect(got.cost).toBe(d[0]![1]! + d[1]![3]! + d[2]![5]!);
    expect(layerMapCost(d, [1, 2, 3])).toBe(d[0]![0]! + d[1]![1]! + d[2]![2]!);
    expect(() => layerMapCost(d, [1, 2, 7])).toThrow(/student layer 3 -> 7, expected a teacher layer in 1..6/);
  });

  it('formats maps for logs', () => {
    expect(formatLayerMap([3, 6, 12])).toBe('1→3 2→6 3→12');
  });
});

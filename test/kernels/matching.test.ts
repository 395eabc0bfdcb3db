import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.js';
import { fixedLayerMap, matchLayers, type LayerMatchingOptions } from '../../src/distill/matching.js';
import { gatherLayers, matchLayersGpu } from '../../src/kernels/matching.js';
import { Rng } from '../../src/util/random.js';
import { expectClose, randomArray, useGpu } from '../helpers.js';

const gpu = useGpu();

const strategies: LayerMatchingOptions[] = [
  { strategy: 'fixed' },
  { strategy: 'dynamic' },
  { strategy: 'dynamic', pinLast: false },
  { strategy: 'window', window: 1 },
  { strategy: 'window', window: 2, pinLast: false },
  { strategy: 'greedy' },
  { strategy: 'greedy', pinLast: false },
];

/** Run matchLayersGpu on each matrix with each option set in one submit; 1-based maps and status words. */
interface MatchCase {
  ls: number;
  lt: number;
  d: Float32Array;
  opts: LayerMatchingOptions;
  previous?: number[];
  update?: boolean;
}

async function gpuMaps(cases: MatchCase[]) {
  const g = gpu();
  const maps = cases.map((c) => g.upload(Uint32Array.from([...(c.previous ?? new Array(c.ls).fill(7)), 9]), [c.ls + 1], 'u32', 'map'));
  await g.run((rec) => cases.forEach((c, k) => matchLayersGpu(rec, g.upload(c.d, [c.ls, c.lt], 'f32', 'D'), maps[k]!, { ...c.opts, update: c.update })));
  return Promise.all(
    maps.map(async (m, k) => {
      const v = Array.from(await g.readF32(m));
      return { map: v.slice(0, cases[k]!.ls).map((x) => x + 1), status: v[cases[k]!.ls] };
    }),
  );
}

describe('GPU layer matching (CPU reference: distill/matching.ts matchLayers)', () => {
  it('chooses the same map as matchLayers for every strategy on random matrices of odd sizes', async () => {
    const rng = new Rng(5);
    const cases: MatchCase[] = [];
    for (let k = 0; k < 40; k++) {
      const lt = 1 + Math.floor(rng.uniform() * 32);
      const ls = 1 + Math.floor(rng.uniform() * lt);
      cases.push({ ls, lt, d: randomArray(ls * lt, 100 + k).map(Math.abs), opts: strategies[k % strategies.length]! });
    }
    cases.push({ ls: 32, lt: 32, d: randomArray(32 * 32, 99).map(Math.abs), opts: { strategy: 'dynamic' } });
    const got = await gpuMaps(cases);
    cases.forEach((c, k) => {
      const want = matchLayers({ studentLayers: c.ls, teacherLayers: c.lt, values: c.d }, c.opts).teacherLayers;
      expect(got[k], `${c.ls}x${c.lt} ${JSON.stringify(c.opts)}`).toEqual({ map: want, status: 0 });
    });
    // Random matrices must exercise a map other than the fixed one, or the test proves little.
    expect(cases.some((c, k) => c.opts.strategy === 'dynamic' && got[k]!.map.join() !== fixedLayerMap(c.ls, c.lt).join())).toBe(true);
  });

  it('breaks exact ties as matchLayers does (lexicographically smallest map)', async () => {
    // Small integers: every sum is exact in f32 and float64, so ties are real ties on both sides.
    const rng = new Rng(11);
    const cases: MatchCase[] = [];
    for (let k = 0; k < 30; k++) {
      const lt = 2 + Math.floor(rng.uniform() * 8);
      const ls = 1 + Math.floor(rng.uniform() * lt);
      const d = Float32Array.from({ length: ls * lt }, () => Math.floor(rng.uniform() * 3));
      cases.push({ ls, lt, d, opts: strategies[(k * 3) % strategies.length]! });
    }
    cases.push({ ls: 3, lt: 6, d: new Float32Array(18), opts: { strategy: 'dynamic', pinLast: false } });
    const got = await gpuMaps(cases);
    cases.forEach((c, k) => expect(got[k]!.map, `${c.ls}x${c.lt} ${JSON.stringify(c.opts)}`).toEqual(matchLayers({ studentLayers: c.ls, teacherLayers: c.lt, values: c.d }, c.opts).teacherLayers));
    expect(got[got.length - 1]!.map).toEqual([1, 2, 3]);
  });

  it('keeps the previous map when D is not finite (status 1) or when not updating (status untouched)', async () => {
    const d = Float32Array.from([1, 2, NaN, 4, 5, 6]);
    const inf = Float32Array.from([1, Infinity, 3, 4, 5, 6]);
    const ok = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const got = await gpuMaps([
      { ls: 2, lt: 3, d, opts: { strategy: 'dynamic' }, previous: [0, 2] },
      { ls: 2, lt: 3, d: inf, opts: { strategy: 'greedy' }, previous: [1, 2] },
      { ls: 2, lt: 3, d: ok, opts: { strategy: 'dynamic' }, previous: [1, 2], update: false },
    ]);
    expect(got).toEqual([
      { map: [1, 3], status: 1 },
      { map: [2, 3], status: 1 },
      { map: [2, 3], status: 9 },
    ]);
  });

  it('rejects shapes it cannot take, naming the tensor', async () => {
    const g = gpu();
    const big = g.empty([33, 40], 'f32', 'D big');
    await expect(g.run((rec) => matchLayersGpu(rec, big, g.empty([34], 'u32'), { strategy: 'dynamic' }))).rejects.toThrow(ShapeError);
    await expect(g.run((rec) => matchLayersGpu(rec, g.empty([4, 3], 'f32', 'D'), g.empty([5], 'u32'), { strategy: 'dynamic' }))).rejects.toThrow(/4 student layers/);
    await expect(g.run((rec) => matchLayersGpu(rec, g.empty([2, 3], 'f32', 'D'), g.empty([2], 'u32', 'short map'), { strategy: 'dynamic' }))).rejects.toThrow(/short map/);
  });

  it('gathers each student layer its matched teacher state (odd sizes, a repeated layer)', async () => {
    const g = gpu();
    const [lt, ls, n] = [5, 4, 3 * 7 * 13];
    const states = randomArray(lt * n, 21);
    const map = [4, 0, 2, 2];
    const out = g.empty([ls, 3, 7, 13], 'f32', 'gathered');
    await g.run((rec) => gatherLayers(rec, g.upload(states, [lt, 3, 7, 13]), g.upload(Uint32Array.from([...map, 0]), [ls + 1], 'u32'), out));
    const want = new Float32Array(ls * n);
    map.forEach((m, i) => want.set(states.subarray(m * n, (m + 1) * n), i * n));
    expectClose(await g.readF32(out), want, { atol: 0, rtol: 0 });
  });
});

import { describe, expect, it } from 'vitest';
import { adamwStep, bindingRanges, type AdamWParam } from '../../src/kernels/adamw.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { ShapeError } from '../../src/errors.js';
import { expectClose, maxAbsDiff, randomArray, useGpu } from '../helpers.js';
import { adamwRef, type AdamWRefState } from '../ref/losses.js';

const gpu = useGpu();

// Odd sizes, none a multiple of the workgroup; the second has its own learning rate (a tenth), the
// last one is a "bias" without weight decay.
const shapes = [[37, 5], [1], [300], [3, 7, 11]];

interface Setup {
  tensors: AdamWParam[];
  states: AdamWRefState[];
}

function setup(g: Gpu, seed: number): Setup {
  const tensors: AdamWParam[] = [];
  const states: AdamWRefState[] = [];
  shapes.forEach((shape, k) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const p = randomArray(n, seed + k);
    tensors.push({
      param: g.upload(p, shape, 'f32', `w${k}`),
      grad: g.empty(shape, 'f32', `g${k}`),
      expAvg: g.upload(new Float32Array(n), shape, 'f32', `m${k}`),
      expAvgSq: g.upload(new Float32Array(n), shape, 'f32', `v${k}`),
      ...(k === shapes.length - 1 ? { weightDecay: 0 } : {}),
      ...(k === 1 ? { lrScale: 0.1 } : {}),
    });
    states.push({ param: Float64Array.from(p), expAvg: new Float64Array(n), expAvgSq: new Float64Array(n) });
  });
  return { tensors, states };
}

async function expectState(g: Gpu, s: Setup, what: string): Promise<number> {
  let worst = 0;
  for (let k = 0; k < s.tensors.length; k++) {
    const t = s.tensors[k]!;
    const st = s.states[k]!;
    const [p, m, v] = await Promise.all([g.readF32(t.param), g.readF32(t.expAvg), g.readF32(t.expAvgSq)]);
    // Each step adds at most ~lr to a parameter; its f32 rounding (2^-24 relative of |p| ~1 per
    // step) and the relative error of m / (sqrt(v) + eps) (a few ulps of lr) accumulate over the
    // steps. m is a short f32 recurrence whose terms (1 - beta1) g ~0.3 may cancel: a few ulps of
    // 0.3 absolute; v sums positive terms: a few ulps relative.
    expectClose(p, st.param, { atol: 2e-6, rtol: 1e-6 }, `${what}: param ${k}`);
    expectClose(m, st.expAvg, { atol: 1e-7, rtol: 2e-6 }, `${what}: exp_avg ${k}`);
    expectClose(v, st.expAvgSq, { atol: 1e-12, rtol: 4e-6 }, `${what}: exp_avg_sq ${k}`);
    worst = Math.max(worst, maxAbsDiff(p, st.param));
  }
  return worst;
}

describe('AdamW vs a float64 torch.optim.AdamW reference', () => {
  for (const { name, maxNorm, gradScale } of [
    { name: 'no clipping', maxNorm: undefined, gradScale: 1 },
    { name: 'clipping active (norm >> maxNorm), gradScale 0.25', maxNorm: 0.5, gradScale: 0.25 },
    { name: 'clipping inactive (norm < maxNorm)', maxNorm: 1e3, gradScale: 1 },
  ]) {
    it(`five steps, ${name}`, async () => {
      const g = gpu();
      const s = setup(g, 10);
      const o = { lr: 3e-3, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.1 };
      const sumSquares = g.empty([2], 'f32', 'grad sumsq');
      for (let step = 1; step <= 5; step++) {
        // Gradients of magnitude ~3 (norm ~100 in all): clipping at 0.5 is active, at 1e3 not.
        const grads = s.tensors.map((t, k) => randomArray(t.param.shape.reduce((a, b) => a * b, 1), 100 * step + k, 3));
        grads.forEach((gr, k) => g.write(s.tensors[k]!.grad, gr));
        // The norm comes from the CPU here (reduce.wgsl's sumSquares is tested on its own); it is
        // read from slot 1 to check the index.
        g.write(sumSquares, [0, grads.reduce((acc, gr) => acc + gr.reduce((a, v) => a + v * v, 0), 0)]);
        await g.run((rec) =>
          adamwStep(rec, s.tensors, { ...o, step, gradScale, ...(maxNorm !== undefined ? { clip: { sumSquares, maxNorm, index: 1 } } : {}) }),
        );
        adamwRef(s.states, grads, { ...o, step, gradScale, maxNorm, weightDecay: s.tensors.map((t) => t.weightDecay ?? o.weightDecay), lrScale: s.tensors.map((t) => t.lrScale ?? 1) });
      }
      await expectState(g, s, name);
      g.free(sumSquares, ...s.tensors.flatMap((t) => [t.param, t.grad, t.expAvg, t.expAvgSq]));
    });
  }

  it('torch defaults, and clipping scales the first moment by maxNorm / norm', async () => {
    const g = gpu();
    const n = 100;
    const p0 = randomArray(n, 3);
    const grad = randomArray(n, 4, 2);
    const sumsq = grad.reduce((a, v) => a + v * v, 0);
    const run = async (maxNorm?: number) => {
      const t: AdamWParam = { param: g.upload(p0, [n], 'f32', 'w'), grad: g.upload(grad, [n], 'f32', 'g'), expAvg: g.upload(new Float32Array(n), [n]), expAvgSq: g.upload(new Float32Array(n), [n]) };
      const ss = g.upload([sumsq], [1], 'f32', 'sumsq');
      await g.run((rec) => adamwStep(rec, [t], { lr: 1e-2, step: 1, ...(maxNorm ? { clip: { sumSquares: ss, maxNorm } } : {}) }));
      const out = [await g.readF32(t.param), await g.readF32(t.expAvg)];
      g.free(t.param, t.grad, t.expAvg, t.expAvgSq, ss);
      return out;
    };
    const [pPlain, mPlain] = await run();
    const [pClip, mClip] = await run(0.1);
    // torch defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 0.01.
    const ref = (maxNorm?: number) => {
      const st = { param: Float64Array.from(p0), expAvg: new Float64Array(n), expAvgSq: new Float64Array(n) };
      adamwRef([st], [grad], { lr: 1e-2, step: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: [0.01], gradScale: 1, maxNorm });
      return st.param;
    };
    expectClose(pPlain!, ref(), { atol: 1e-7, rtol: 1e-6 }, 'defaults');
    expectClose(pClip!, ref(0.1), { atol: 1e-7, rtol: 1e-6 }, 'defaults, clipped');
    // m is scaled by the clip coefficient maxNorm / norm exactly (up to f32 rounding).
    const coef = 0.1 / (Math.sqrt(sumsq) + 1e-6);
    expectClose(mClip!, Float64Array.from(mPlain!, (v) => v * coef), { atol: 1e-12, rtol: 2e-6 }, 'clipped exp_avg');
  });

  it('steps a tensor larger than one binding in aligned slices', async () => {
    const g = gpu();
    const n = 1000;
    const s: Setup = {
      tensors: [
        {
          param: g.upload(randomArray(n, 5), [n], 'f32', 'big'),
          grad: g.upload(randomArray(n, 6), [n], 'f32', 'big grad'),
          expAvg: g.upload(randomArray(n, 7, 0.1), [n], 'f32', 'm'),
          expAvgSq: g.upload(randomArray(n, 8, 0.1).map(Math.abs), [n], 'f32', 'v'),
        },
      ],
      states: [],
    };
    const [p, gr, m, v] = await Promise.all([s.tensors[0]!.param, s.tensors[0]!.grad, s.tensors[0]!.expAvg, s.tensors[0]!.expAvgSq].map((t) => g.readF32(t)));
    s.states.push({ param: Float64Array.from(p!), expAvg: Float64Array.from(m!), expAvgSq: Float64Array.from(v!) });
    // 1 KiB bindings: 1000 elements go in four slices (256 + 256 + 256 + 232 elements).
    expect(bindingRanges(n, 1024, g.limits.minStorageBufferOffsetAlignment).length).toBe(4);
    const o = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 };
    await g.run((rec) => adamwStep(rec, s.tensors, { ...o, step: 7, maxBindingBytes: 1024 }));
    adamwRef(s.states, [gr!], { ...o, step: 7, gradScale: 1, weightDecay: [0.05] });
    await expectState(g, s, 'split');
    g.free(...s.tensors.flatMap((t) => [t.param, t.grad, t.expAvg, t.expAvgSq]));
  });
});

describe('AdamW helpers and argument checks', () => {
  it('bindingRanges covers n exactly with aligned starts', () => {
    const ranges = bindingRanges(10_001, 4000, 256);
    expect(ranges.map((r) => r.start)).toEqual([0, 960, 1920, 2880, 3840, 4800, 5760, 6720, 7680, 8640, 9600]);
    expect(ranges.reduce((s, r) => s + r.count, 0)).toBe(10_001);
    expect(ranges.every((r) => r.count <= 1000 && (r.start * 4) % 256 === 0)).toBe(true);
    expect(bindingRanges(5, 1 << 27, 256)).toEqual([{ start: 0, count: 5 }]);
    expect(() => bindingRanges(5, 100, 256)).toThrow(ShapeError);
  });

  it('names the tensor whose shape is wrong, rejects bad steps and clip indices', () => {
    const g = gpu();
    const rec = g.record();
    const t: AdamWParam = { param: g.empty([4, 3], 'f32', 'w'), grad: g.empty([3, 4], 'f32', 'w.grad'), expAvg: g.empty([4, 3]), expAvgSq: g.empty([4, 3]) };
    expect(() => adamwStep(rec, [t], { lr: 1, step: 1 })).toThrow(/adamwStep: tensor "w.grad" has shape \[3, 4\], expected \[4, 3\]/);
    const ok = { ...t, grad: g.empty([4, 3], 'f32', 'w.grad') };
    expect(() => adamwStep(rec, [ok], { lr: 1, step: 0 })).toThrow(/step must be a positive integer/);
    expect(() => adamwStep(rec, [ok], { lr: 1, step: 1, clip: { sumSquares: g.empty([1], 'f32', 'norm'), maxNorm: 1, index: 1 } })).toThrow(/clip index 1 is outside tensor "norm"/);
  });
});

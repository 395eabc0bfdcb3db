import { describe, expect, it } from 'vitest';
import type * as tfTypes from '@tensorflow/tfjs-core';
import { attention, attentionBackward } from '../../src/kernels/attention.js';
import { ShapeError } from '../../src/errors.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { expectClose, finiteDifference, maxAbsDiff, randomArray, useGpu } from '../helpers.js';
import { attentionRef, attentionVisible, toHeadMajor, toTokenMajor, type AttentionMask, type AttentionShape } from '../ref/attention.js';
import { tfCpu } from '../ref/tf.js';

// Default limits: the tiles must fit the 16 KiB / 256-invocation budget every device guarantees.
// Both variants: subgroup operations where the device has them, and the workgroup-memory one.
const paths = [
  { name: 'subgroups', gpu: useGpu({ limits: 'webgpu-defaults' }), subgroups: true },
  { name: 'plain', gpu: useGpu({ limits: 'webgpu-defaults', disable: { subgroups: true } }), subgroups: false },
];
const gpu = paths[1]!.gpu;
// f32 dot products over D <= 77 terms, exp/log and a running-max rescale: a few ulps of values
// of size ~1 (measured: out <= 1.4e-7, lse <= 8.2e-7 on lavapipe), so 5e-6 leaves margin for
// other GPUs' exp/log yet catches any masking, indexing or normalisation slip (>= 1e-2).
const tol = { atol: 5e-6, rtol: 1e-5 };
const NEG_MAX = -3.4028234663852886e38;

interface Case extends AttentionShape {
  name: string;
  mask?: AttentionMask;
  scale?: number;
  /** Token-major [B, L, H*D] instead of [B, H, L, D], for q/out and for k/v. */
  tokenQ?: boolean;
  tokenKV?: boolean;
}

/** Inputs of a case (head-major host arrays; the scale used). */
function inputs(c: Case, seed: number) {
  const { B, H, Lq, Lk, D } = c;
  return {
    q: randomArray(B * H * Lq * D, seed),
    k: randomArray(B * H * Lk * D, seed + 1),
    v: randomArray(B * H * Lk * D, seed + 2),
    scale: c.scale ?? 1 / Math.sqrt(D),
  };
}

/** Upload a head-major host array in the case's layout for that operand. */
function put(g: Gpu, x: Float32Array, c: Case, L: number, token: boolean | undefined, label: string): Tensor {
  const { B, H, D } = c;
  return token ? g.upload(toTokenMajor(x, B, H, L, D), [B, L, H * D], 'f32', label) : g.upload(x, [B, H, L, D], 'f32', label);
}

async function take(g: Gpu, t: Tensor, c: Case, L: number, token: boolean | undefined): Promise<Float32Array> {
  const x = await g.readF32(t);
  return token ? toHeadMajor(x, c.B, c.H, L, c.D) : x;
}

function emptyLike(g: Gpu, t: Tensor, label: string): Tensor {
  return g.empty(t.shape, 'f32', label);
}

/** Run forward (and optionally backward with upstream gradient gy) on the GPU; results head-major. */
async function runGpu(g: Gpu, c: Case, x: ReturnType<typeof inputs>, gy?: Float32Array) {
  const q = put(g, x.q, c, c.Lq, c.tokenQ, 'q');
  const k = put(g, x.k, c, c.Lk, c.tokenKV, 'k');
  const v = put(g, x.v, c, c.Lk, c.tokenKV, 'v');
  const out = emptyLike(g, q, 'out');
  const lse = g.empty([c.B, c.H, c.Lq], 'f32', 'lse');
  const keyLengths = c.mask?.keyLengths ? g.upload(Uint32Array.from(c.mask.keyLengths), [c.B], 'u32', 'klen') : undefined;
  const opts = { scale: x.scale, causal: c.mask?.causal, keyLengths };
  const grads = gy ? { q: emptyLike(g, q, 'dq'), k: emptyLike(g, k, 'dk'), v: emptyLike(g, v, 'dv') } : undefined;
  await g.run((rec) => {
    attention(rec, q, k, v, out, lse, opts);
    if (grads) attentionBackward(rec, q, k, v, out, lse, put(g, gy!, c, c.Lq, c.tokenQ, 'dOut'), grads, opts);
  });
  return {
    out: await take(g, out, c, c.Lq, c.tokenQ),
    lse: await g.readF32(lse),
    dq: grads && (await take(g, grads.q, c, c.Lq, c.tokenQ)),
    dk: grads && (await take(g, grads.k, c, c.Lk, c.tokenKV)),
    dv: grads && (await take(g, grads.v, c, c.Lk, c.tokenKV)),
  };
}

/** lse compare: fully masked rows are -Infinity in the reference and NEG_MAX on the GPU. */
function expectLse(actual: Float32Array, expected: Float64Array, what: string): void {
  const masked = [...expected.keys()].filter((i) => expected[i] === -Infinity);
  for (const i of masked) expect(actual[i], `${what}: fully masked row ${i}`).toBe(Math.fround(NEG_MAX));
  const finite = (x: ArrayLike<number>) => Array.from(x).filter((_, i) => expected[i] !== -Infinity);
  expectClose(finite(actual), finite(expected), tol, what);
}

/** Scalar loss sum(gy * attention(q, k, v)) in float64. */
function lossRef(c: Case, scale: number, gy: Float32Array) {
  return (q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>) => attentionRef(q, k, v, c, scale, c.mask).out.reduce((s, o, i) => s + o * gy[i]!, 0);
}

/** The same attention composed from TF.js ops (masking by adding -1e9), differentiated by TF.js. */
async function tfGrads(c: Case, x: ReturnType<typeof inputs>, gy: Float32Array) {
  const tf = await tfCpu();
  const { B, H, Lq, Lk, D } = c;
  const maskAdd = new Float32Array(B * Lq * Lk);
  for (let b = 0; b < B; b++) for (let i = 0; i < Lq; i++) for (let j = 0; j < Lk; j++) if (!attentionVisible(c, c.mask ?? {}, b, i, j)) maskAdd[(b * Lq + i) * Lk + j] = -1e9;
  const mask = tf.tensor4d(maskAdd, [B, 1, Lq, Lk]);
  const upstream = tf.tensor4d(gy, [B, H, Lq, D]);
  const f = (q: tfTypes.Tensor, k: tfTypes.Tensor, v: tfTypes.Tensor) =>
    tf.sum(tf.mul(tf.matMul(tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), x.scale), mask)), v), upstream));
  const grads = tf.grads(f as (...args: tfTypes.Tensor[]) => tfTypes.Tensor)([
    tf.tensor4d(x.q, [B, H, Lq, D]),
    tf.tensor4d(x.k, [B, H, Lk, D]),
    tf.tensor4d(x.v, [B, H, Lk, D]),
  ]);
  return Promise.all(grads.map((t) => t.data() as Promise<Float32Array>));
}

for (const path of paths) {
  const ready = (skip: () => void): Gpu => {
    const g = path.gpu();
    if (path.subgroups && !g.features.subgroups) skip();
    expect(g.features.subgroups).toBe(path.subgroups);
    return g;
  };

  // The cases share six (head dim, CAUSAL, HAS_KLEN) specialisations per variant -- 64, 77 (odd,
  // not a multiple of the 8 lanes), 3 and the largest, with and without masks -- because each one
  // is a pipeline that lavapipe compiles for seconds on a machine without a shader cache.
  describe(`attention forward vs float64 reference (${path.name})`, () => {
    const cases: Case[] = [
      { name: 'Lq=7 Lk=13 D=64', B: 2, H: 3, Lq: 7, Lk: 13, D: 64 },
      { name: 'Lq=37 Lk=70 odd D=77, key padding', B: 2, H: 2, Lq: 37, Lk: 70, D: 77, mask: { keyLengths: [70, 29] } },
      { name: 'causal self-attention L=37 D=64', B: 1, H: 2, Lq: 37, Lk: 37, D: 64, mask: { causal: true, keyLengths: [37] } },
      { name: 'causal with cached keys Lq=5 Lk=21 and padding', B: 2, H: 1, Lq: 5, Lk: 21, D: 64, mask: { causal: true, keyLengths: [21, 19] } },
      { name: 'fully masked rows: klen=0 and causal Lq > Lk', B: 2, H: 2, Lq: 9, Lk: 5, D: 64, mask: { causal: true, keyLengths: [0, 5] } },
      { name: 'cross-attention Lq=5 Lk=300, token-major, Whisper-style scale', B: 1, H: 2, Lq: 5, Lk: 300, D: 64, scale: 0.3, tokenQ: true, tokenKV: true },
      { name: 'D=77, token-major q/out, head-major k/v', B: 1, H: 3, Lq: 19, Lk: 27, D: 77, tokenQ: true, mask: { keyLengths: [27] } },
      { name: 'odd D=3, one query', B: 1, H: 1, Lq: 1, Lk: 10, D: 3 },
    ];
    cases.forEach((c, n) => {
      it(c.name, async ({ skip }) => {
        const g = ready(skip);
        const x = inputs(c, 100 + 10 * n);
        const got = await runGpu(g, c, x);
        const ref = attentionRef(x.q, x.k, x.v, c, x.scale, c.mask);
        expectClose(got.out, ref.out, tol, `${c.name}: out (max err ${maxAbsDiff(got.out, ref.out).toExponential(1)})`);
        expectLse(got.lse, ref.lse, `${c.name}: lse`);
      });
    });

    it('large scores (scale 8): the online softmax rescales without overflow', async ({ skip }) => {
      const c: Case = { name: 'large', B: 1, H: 1, Lq: 11, Lk: 50, D: 64, scale: 8 };
      const x = inputs(c, 7);
      const got = await runGpu(ready(skip), c, x);
      const ref = attentionRef(x.q, x.k, x.v, c, x.scale);
      // Scores reach ~50, so lse is ~50 and f32 rounding of s - lse costs ~50 * 2^-24 relative.
      expectClose(got.out, ref.out, { atol: 2e-5, rtol: 1e-4 }, 'out');
      expectClose(got.lse, ref.lse, { atol: 1e-5, rtol: 1e-6 }, 'lse');
    });
  });

  describe(`attention backward (${path.name})`, () => {
    const fdCases: Case[] = [
      { name: 'Lq=5 Lk=7 D=3', B: 1, H: 2, Lq: 5, Lk: 7, D: 3 },
      { name: 'causal + key padding + a fully masked batch', B: 2, H: 1, Lq: 6, Lk: 9, D: 3, mask: { causal: true, keyLengths: [7, 0] } },
      { name: 'token-major, Lq > Lk causal (masked rows)', B: 1, H: 2, Lq: 7, Lk: 4, D: 3, mask: { causal: true, keyLengths: [4] }, tokenQ: true, tokenKV: true },
    ];
    fdCases.forEach((c, n) => {
      it(`${c.name}: vs finite differences`, async ({ skip }) => {
        const x = inputs(c, 200 + 10 * n);
        const gy = randomArray(c.B * c.H * c.Lq * c.D, 201 + 10 * n);
        const got = await runGpu(ready(skip), c, x, gy);
        const loss = lossRef(c, x.scale, gy);
        // Central differences with eps 1e-3 on a smooth function: truncation error ~eps^2 * f''' ~ 1e-6
        // (measured max difference 1e-7).
        const fdTol = { atol: 1e-5, rtol: 1e-4 };
        expectClose(got.dq!, finiteDifference((t) => loss(t, x.k, x.v), x.q), fdTol, 'dQ vs finite differences');
        expectClose(got.dk!, finiteDifference((t) => loss(x.q, t, x.v), x.k), fdTol, 'dK vs finite differences');
        expectClose(got.dv!, finiteDifference((t) => loss(x.q, x.k, t), x.v), fdTol, 'dV vs finite differences');
      });
    });

    // TF.js masks by adding -1e9, which turns a fully masked row into a uniform softmax rather than
    // zeros, so these cases keep at least one visible key per row (the cases above cover the rest).
    const tfCases: Case[] = [
      { name: 'Lq=7 Lk=13 D=64, causal with cached keys and key padding', B: 2, H: 2, Lq: 7, Lk: 13, D: 64, mask: { causal: true, keyLengths: [13, 6] } },
      { name: 'L=37 odd D=77, key padding', B: 1, H: 2, Lq: 37, Lk: 37, D: 77, mask: { keyLengths: [30] } },
      { name: 'cross-attention Lq=9 Lk=300 token-major', B: 1, H: 2, Lq: 9, Lk: 300, D: 64, tokenQ: true, tokenKV: true },
      // D is set per device: 128 where the subgroup variant runs (subgroups of >= 8 lanes), else
      // the plain variant's 121 (its tiles fill 16 KiB of workgroup memory).
      { name: 'the largest head dim supported', B: 1, H: 1, Lq: 4, Lk: 10, D: 0 },
    ];
    tfCases.forEach((base, n) => {
      it(`${base.name}: vs TF.js autodiff`, async ({ skip }) => {
        const g = ready(skip);
        const c = base.D ? base : { ...base, D: g.features.subgroups && (g.subgroupMinSize ?? 0) >= 8 ? 128 : 121 };
        const x = inputs(c, 300 + 10 * n);
        const gy = randomArray(c.B * c.H * c.Lq * c.D, 301 + 10 * n);
        const got = await runGpu(g, c, x, gy);
        const [tq, tk, tv] = await tfGrads(c, x, gy);
        // Both sides are f32 and sum up to Lk (or Lq) products in different orders (measured max
        // difference 4.8e-7).
        const gradTol = { atol: 1e-5, rtol: 1e-4 };
        expectClose(got.dq!, tq!, gradTol, `dQ vs TF.js (max err ${maxAbsDiff(got.dq!, tq!).toExponential(1)})`);
        expectClose(got.dk!, tk!, gradTol, `dK vs TF.js (max err ${maxAbsDiff(got.dk!, tk!).toExponential(1)})`);
        expectClose(got.dv!, tv!, gradTol, `dV vs TF.js (max err ${maxAbsDiff(got.dv!, tv!).toExponential(1)})`);
      });
    });
  });
}

describe('attention argument checks', () => {
  it('names the tensor whose shape is wrong', () => {
    const g = gpu();
    const rec = g.record();
    const q = g.empty([1, 2, 5, 8], 'f32', 'q');
    const k = g.empty([1, 2, 7, 8], 'f32', 'k');
    const badV = g.empty([1, 2, 6, 8], 'f32', 'enc.v');
    const lse = g.empty([1, 2, 5], 'f32', 'lse');
    expect(() => attention(rec, q, k, badV, g.empty([1, 2, 5, 8]), lse)).toThrow(ShapeError);
    expect(() => attention(rec, q, k, badV, g.empty([1, 2, 5, 8]), lse)).toThrow(/"enc.v" has shape \[1, 2, 6, 8\], expected \[1, 2, 7, 8\]/);
    const tokenK = g.empty([1, 7, 15], 'f32', 'k tokens');
    expect(() => attention(rec, q, tokenK, k, g.empty([1, 2, 5, 8]), lse)).toThrow(/"k tokens".*not a multiple of 2 heads/);
    expect(() => attention(rec, q, k, k, g.empty([1, 2, 5, 8]), g.empty([1, 3, 5], 'f32', 'lse3'))).toThrow(/"q" \[1, 2, 5, 8\] has 2 heads, lse says 3/);
  });

  it('rejects key lengths of the wrong dtype or length, too-large head dims, and dOut of the wrong shape', () => {
    const g = gpu();
    const rec = g.record();
    const t = (shape: number[], label: string) => g.empty(shape, 'f32', label);
    const q = t([2, 1, 3, 8], 'q');
    const lse = t([2, 1, 3], 'lse');
    expect(() => attention(rec, q, q, q, t([2, 1, 3, 8], 'o'), lse, { keyLengths: g.empty([2], 'f32', 'klen') })).toThrow(/"klen" has dtype f32, expected u32/);
    expect(() => attention(rec, q, q, q, t([2, 1, 3, 8], 'o'), lse, { keyLengths: g.empty([3], 'u32', 'klen') })).toThrow(/"klen" has shape \[3\], expected \[2\]/);
    const wide = t([1, 1, 2, 122], 'wide q');
    expect(() => attention(rec, wide, wide, wide, t([1, 1, 2, 122], 'o'), t([1, 1, 2], 'l'))).toThrow(/head dim 122 of "wide q" needs more than 16384 bytes/);
    const grads = { q: t([2, 1, 3, 8], 'dq'), k: t([2, 1, 3, 8], 'dk'), v: t([2, 1, 3, 8], 'dv') };
    expect(() => attentionBackward(rec, q, q, q, t([2, 1, 3, 8], 'o'), lse, t([2, 1, 4, 8], 'dOut'), grads)).toThrow(/"dOut" has shape/);
    const narrow = t([1, 1, 3, 1], 'narrow');
    const narrowGrads = { q: t([1, 1, 3, 1], 'dq'), k: t([1, 1, 3, 1], 'dk'), v: t([1, 1, 3, 1], 'dv') };
    expect(() => attentionBackward(rec, narrow, narrow, narrow, narrow, t([1, 1, 3], 'l'), narrow, narrowGrads)).toThrow(/head dim 1 .* below 2/);
  });
});

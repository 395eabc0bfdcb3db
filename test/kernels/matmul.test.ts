import { describe, expect, it } from 'vitest';
import { biasGrad, fakeQuantGrad, MATMUL_ROWS_MAX_M, matmul, matmulBackward, quantMax, rowScales } from '../../src/kernels/matmul.js';
import { f16BitsToNumber, numberToF16Bits, type Gpu, type Recorder } from '../../src/gpu/gpu.js';
import { KernelBindingError, ShapeError } from '../../src/errors.js';
import { expectClose, finiteDifference, maxAbsDiff, randomArray, useGpu } from '../helpers.js';
import { fakeQuantRef, lsqScaleGradRef, matmulRef, roundHalfEven, rowScalesRef, steMaskRef } from '../ref/matmul.js';
import { tfCpu } from '../ref/tf.js';

// Every product runs in both kernels: shaders/matmul_subgroups.wgsl where the device has
// subgroups of at least 8 lanes (skipped elsewhere), and the plain shaders/matmul.wgsl. The
// cases share twelve (TRANS_A, TRANS_B, HAS_BIAS, GELU, QUANT_A, QUANT_B, f16) specialisations
// per kernel, because each is a pipeline that lavapipe compiles for seconds without a cache.
const paths = [
  { name: 'subgroups', gpu: useGpu(), subgroups: true },
  { name: 'plain', gpu: useGpu({ disable: { subgroups: true } }), subgroups: false },
];
// For what does not depend on the kernel variant (bias gradient, argument checks).
const gpu = paths[1]!.gpu;
// f32 accumulation over K terms of products of values in [-1, 1]: error grows ~ sqrt(K) * 2^-24.
const tol = { atol: 2e-5, rtol: 1e-5 };

/**
 * Values x = s * (q + u) with integer levels q in [-qmax - 3, qmax + 3] (some beyond the clamp)
 * and |u| <= 0.4, so x / s is never within 0.1 of a rounding tie: f32 and float64 then round
 * alike and the fused kernel can be compared with an explicit float64 fake quantization.
 */
function quantizable(scale: ArrayLike<number>, cols: number, qmax: number, seed: number): Float32Array {
  const level = randomArray(scale.length * cols, seed);
  const frac = randomArray(scale.length * cols, seed + 1, 0.4);
  return Float32Array.from(level, (l, i) => scale[Math.floor(i / cols)]! * (Math.round(l * (qmax + 3)) + frac[i]!));
}

/** Per-row scales around 1/qmax (so quantized values are O(1)), deterministic. */
function scalesFor(rows: number, qmax: number, seed: number): Float32Array {
  return Float32Array.from(randomArray(rows, seed), (u) => (1 + 0.5 * u) / qmax);
}

for (const path of paths) {
  const ready = (skip: () => void): Gpu => {
    const g = path.gpu();
    if (path.subgroups && !(g.features.subgroups && (g.subgroupMinSize ?? 0) >= 8)) skip();
    expect(g.features.subgroups).toBe(path.subgroups);
    return g;
  };

  describe(`matmul forward vs float64 reference (${path.name})`, () => {
    const cases: { name: string; batch: number; M: number; N: number; K: number; batchA: boolean; batchB: boolean; transA?: boolean; transB?: boolean; bias?: boolean; gelu?: boolean }[] = [
      { name: '1x1x1', batch: 1, M: 1, N: 1, K: 1, batchA: false, batchB: false },
      { name: 'odd 37x53x29', batch: 1, M: 37, N: 53, K: 29, batchA: false, batchB: false },
      { name: 'tile edge 65x63x17', batch: 1, M: 65, N: 63, K: 17, batchA: false, batchB: false },
      { name: 'transA', batch: 1, M: 19, N: 70, K: 33, batchA: false, batchB: false, transA: true },
      { name: 'transB', batch: 1, M: 70, N: 19, K: 33, batchA: false, batchB: false, transB: true },
      { name: 'both transposed', batch: 1, M: 23, N: 41, K: 67, batchA: false, batchB: false, transA: true, transB: true },
      { name: 'batched both', batch: 3, M: 17, N: 9, K: 31, batchA: true, batchB: true },
      { name: 'batched A, shared weights + bias + gelu', batch: 2, M: 45, N: 70, K: 24, batchA: true, batchB: false, transB: true, bias: true, gelu: true },
      { name: 'shared A, batched B', batch: 2, M: 5, N: 66, K: 7, batchA: false, batchB: true },
      // M <= MATMUL_ROWS_MAX_M: the one-row kernel of decoding steps.
      { name: 'one row (decoding step), B^T + bias + gelu', batch: 1, M: 1, N: 131, K: 33, batchA: false, batchB: false, transB: true, bias: true, gelu: true },
      { name: 'two rows, both transposed, batched', batch: 2, M: 2, N: 70, K: 29, batchA: true, batchB: true, transA: true, transB: true },
      { name: 'two rows, plain layout, shared weights', batch: 3, M: 2, N: 9, K: 67, batchA: true, batchB: false },
    ];
    it(`picks the one-row kernel up to M = ${MATMUL_ROWS_MAX_M} rows and a tiled one above`, ({ skip }) => {
      const g = ready(skip);
      const entries = (M: number) => {
        const seen: string[] = [];
        const rec = { gpu: g, dispatch: (spec: { entry: string }) => seen.push(spec.entry) } as unknown as Recorder;
        matmul(rec, g.empty([M, 8]), g.empty([8, 8]), g.empty([M, 8]));
        return seen;
      };
      expect(entries(1)).toEqual(['matmul_rows']);
      expect(entries(MATMUL_ROWS_MAX_M)).toEqual(['matmul_rows']);
      expect(entries(MATMUL_ROWS_MAX_M + 1)).toEqual(['matmul']);
    });
    for (const c of cases) {
      it(c.name, async ({ skip }) => {
        const g = ready(skip);
        const aShape = c.transA ? [c.K, c.M] : [c.M, c.K];
        const bShape = c.transB ? [c.N, c.K] : [c.K, c.N];
        const aHost = randomArray((c.batchA ? c.batch : 1) * c.M * c.K, 1);
        const bHost = randomArray((c.batchB ? c.batch : 1) * c.K * c.N, 2);
        const biasHost = randomArray(c.N, 3);
        const a = g.upload(aHost, c.batchA ? [c.batch, ...aShape] : aShape, 'f32', 'a');
        const b = g.upload(bHost, c.batchB ? [c.batch, ...bShape] : bShape, 'f32', 'b');
        const bias = c.bias ? g.upload(biasHost, [c.N], 'f32', 'bias') : undefined;
        const batched = c.batchA || c.batchB;
        const out = g.empty(batched ? [c.batch, c.M, c.N] : [c.M, c.N], 'f32', 'out');
        await g.run((rec) => matmul(rec, a, b, out, { transA: c.transA, transB: c.transB, bias, gelu: c.gelu }));
        const expected = matmulRef(aHost, bHost, c, { transA: c.transA, transB: c.transB, bias: c.bias ? biasHost : undefined, gelu: c.gelu });
        expectClose(await g.readF32(out), expected, tol, c.name);
      });
    }

    it('accumulates into the output when asked (tiled and one-row kernels)', async ({ skip }) => {
      const g = ready(skip);
      for (const [M, N, K] of [[13, 21, 8], [1, 70, 9]] as const) {
        const aHost = randomArray(M * K, 4);
        const bHost = randomArray(K * N, 5);
        const init = randomArray(M * N, 6);
        const out = g.upload(init, [M, N], 'f32', 'out');
        await g.run((rec) => matmul(rec, g.upload(aHost, [M, K]), g.upload(bHost, [K, N]), out, { accumulate: true }));
        const ref = matmulRef(aHost, bHost, { batch: 1, M, N, K, batchA: false, batchB: false });
        expectClose(await g.readF32(out), ref.map((v, i) => v + init[i]!), tol);
      }
    });

    it('f16 storage variant matches the reference on f16-rounded inputs', async ({ skip }) => {
      const g = ready(skip);
      if (!g.features.shaderF16) skip();
      for (const [M, N, K] of [[33, 47, 70], [1, 47, 70]] as const) {
        const round = (x: Float32Array) => x.map((v) => f16BitsToNumber(numberToF16Bits(v)));
        const aHost = round(randomArray(M * K, 7));
        const bHost = round(randomArray(N * K, 8));
        const out = g.empty([M, N]);
        await g.run((rec) => matmul(rec, g.upload(aHost, [M, K], 'f16'), g.upload(bHost, [N, K], 'f16'), out, { transB: true }));
        expectClose(await g.readF32(out), matmulRef(aHost, bHost, { batch: 1, M, N, K, batchA: false, batchB: false }, { transB: true }), tol);
      }
    });
  });

  describe(`matmul backward (${path.name})`, () => {
    for (const [transA, transB] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      it(`gradients vs finite differences and TF.js (transA=${transA}, transB=${transB})`, async ({ skip }) => {
        const g = ready(skip);
        const [M, N, K] = [7, 11, 5];
        const aShape = transA ? [K, M] : [M, K];
        const bShape = transB ? [N, K] : [K, N];
        const aHost = randomArray(M * K, 10);
        const bHost = randomArray(K * N, 11);
        const gyHost = randomArray(M * N, 12);
        const shape = { batch: 1, M, N, K, batchA: false, batchB: false };
        // Scalar loss L = sum(gy * (op(a) @ op(b))), whose gradient w.r.t. the output is gy.
        const loss = (av: ArrayLike<number>, bv: ArrayLike<number>) => matmulRef(av, bv, shape, { transA, transB }).reduce((s, v, i) => s + v * gyHost[i]!, 0);
        const fdA = finiteDifference((x) => loss(x, bHost), aHost);
        const fdB = finiteDifference((x) => loss(aHost, x), bHost);

        const a = g.upload(aHost, aShape, 'f32', 'a');
        const b = g.upload(bHost, bShape, 'f32', 'b');
        const gy = g.upload(gyHost, [M, N], 'f32', 'gy');
        const ga = g.empty(aShape, 'f32', 'ga');
        const gb = g.empty(bShape, 'f32', 'gb');
        await g.run((rec) => matmulBackward(rec, a, b, gy, { a: ga, b: gb }, { transA, transB }));
        const gaGpu = await g.readF32(ga);
        const gbGpu = await g.readF32(gb);
        // The loss is bilinear, so central differences are exact up to float64 rounding.
        expectClose(gaGpu, fdA, { atol: 1e-5, rtol: 1e-5 }, 'dA vs finite differences');
        expectClose(gbGpu, fdB, { atol: 1e-5, rtol: 1e-5 }, 'dB vs finite differences');

        const tf = await tfCpu();
        const [tA, tB] = tf.grads((x: import('@tensorflow/tfjs-core').Tensor, y: import('@tensorflow/tfjs-core').Tensor) =>
          tf.sum(tf.mul(tf.matMul(x, y, transA, transB), tf.tensor2d(gyHost, [M, N]))),
        )([tf.tensor2d(aHost, aShape as [number, number]), tf.tensor2d(bHost, bShape as [number, number])]);
        expectClose(gaGpu, await tA!.data(), { atol: 1e-5, rtol: 1e-5 }, 'dA vs TF.js');
        expectClose(gbGpu, await tB!.data(), { atol: 1e-5, rtol: 1e-5 }, 'dB vs TF.js');
      });
    }
  });

  describe(`matmul with fused fake quantization (${path.name})`, () => {
    const cases: { name: string; M: number; N: number; K: number; bits: number; transA?: boolean; transB?: boolean; quantA?: boolean; batch?: number }[] = [
      { name: 'weights int8, B^T (Whisper layout), odd shape', M: 37, N: 70, K: 29, bits: 8, transB: true },
      { name: 'weights int4, B^T', M: 19, N: 65, K: 41, bits: 4, transB: true },
      { name: 'weights and per-token activations int8, B^T', M: 45, N: 23, K: 67, bits: 8, transB: true, quantA: true },
      { name: 'int4 both, plain layout (scales along k)', M: 9, N: 71, K: 33, bits: 4, quantA: true },
      { name: 'int8 both, both transposed (A scales along k)', M: 66, N: 13, K: 20, bits: 8, transA: true, transB: true, quantA: true },
      { name: 'batched activations with shared int8 weights', M: 17, N: 30, K: 24, bits: 8, transB: true, quantA: true, batch: 3 },
      { name: 'one row (decoding step), int8 weights and activations, B^T', M: 1, N: 65, K: 29, bits: 8, transB: true, quantA: true },
      { name: 'two rows, int4 both, both transposed', M: 2, N: 33, K: 20, bits: 4, transA: true, transB: true, quantA: true },
    ];
    for (const c of cases) {
      it(c.name, async ({ skip }) => {
        const g = ready(skip);
        const batch = c.batch ?? 1;
        const qmax = quantMax(c.bits);
        const [aRows, aCols] = c.transA ? [c.K, c.M] : [c.M, c.K];
        const [bRows, bCols] = c.transB ? [c.N, c.K] : [c.K, c.N];
        const sa = scalesFor(batch * aRows, qmax, 20);
        const sb = scalesFor(bRows, qmax, 21);
        const aHost = c.quantA ? quantizable(sa, aCols, qmax, 22) : randomArray(batch * aRows * aCols, 22);
        const bHost = quantizable(sb, bCols, qmax, 24);
        const aShape = batch > 1 ? [batch, aRows, aCols] : [aRows, aCols];
        const out = g.empty(batch > 1 ? [batch, c.M, c.N] : [c.M, c.N], 'f32', 'out');
        const quantA = c.quantA ? { scale: g.upload(sa, [batch * aRows], 'f32', 'sa'), bits: c.bits } : undefined;
        const quantB = { scale: g.upload(sb, [bRows], 'f32', 'sb'), bits: c.bits };
        await g.run((rec) => matmul(rec, g.upload(aHost, aShape, 'f32', 'a'), g.upload(bHost, [bRows, bCols], 'f32', 'w'), out, { transA: c.transA, transB: c.transB, quantA, quantB }));
        const aHat = c.quantA ? fakeQuantRef(aHost, sa, aCols, qmax) : aHost;
        const bHat = fakeQuantRef(bHost, sb, bCols, qmax);
        const shape = { batch, M: c.M, N: c.N, K: c.K, batchA: batch > 1, batchB: false };
        const expected = matmulRef(aHat, bHat, shape, { transA: c.transA, transB: c.transB });
        // Same f32 accumulation bound as the plain product: the quantized operands are exact.
        expectClose(await g.readF32(out), expected, tol, c.name);
        // The quantization must matter, or this test could not tell fused from plain loads.
        expect(maxAbsDiff(expected, matmulRef(aHost, bHost, shape, { transA: c.transA, transB: c.transB }))).toBeGreaterThan(1e-3);
      });
    }

    it('rounds half to even, as int8 export must', async ({ skip }) => {
      const g = ready(skip);
      // w / s with s = 0.25 hits exact ties k + 0.5; with A = I the output is W_hat^T itself.
      const [N, K] = [12, 4];
      const w = Float32Array.from({ length: N * K }, (_, i) => (i - 24) * 0.125);
      const s = new Float32Array(N).fill(0.25);
      const eye = Float32Array.from({ length: K * K }, (_, i) => (i % (K + 1) === 0 ? 1 : 0));
      const out = g.empty([K, N]);
      await g.run((rec) => matmul(rec, g.upload(eye, [K, K]), g.upload(w, [N, K]), out, { transB: true, quantB: { scale: g.upload(s, [N]), bits: 8 } }));
      const got = await g.readF32(out);
      const halfEven = Float64Array.from({ length: K * N }, (_, i) => roundHalfEven(w[(i % N) * K + Math.floor(i / N)]! / 0.25) * 0.25);
      const halfAway = Float64Array.from({ length: K * N }, (_, i) => Math.sign(w[(i % N) * K + Math.floor(i / N)]!) * Math.round(Math.abs(w[(i % N) * K + Math.floor(i / N)]! / 0.25)) * 0.25);
      expect(maxAbsDiff(halfEven, halfAway)).toBeGreaterThan(0.2); // the data has ties the modes disagree on
      expectClose(got, halfEven, { atol: 0, rtol: 0 }, 'half-to-even');
    });

    it('per-row scales (bits 8 and 4) with an all-zero row, which gets scale 1 and no NaN', async ({ skip }) => {
      const g = ready(skip);
      const [rows, cols] = [70, 131];
      const x = randomArray(rows * cols, 30, 3);
      x.fill(0, 5 * cols, 6 * cols);
      for (const bits of [8, 4]) {
        const scale = g.empty([rows], 'f32', 'scale');
        await g.run((rec) => rowScales(rec, g.upload(x, [rows, cols], 'f32', 'x'), scale, { bits }));
        const got = await g.readF32(scale);
        expect(got[5]).toBe(1);
        // One f32 division of an exactly found maximum: within 1 ulp.
        expectClose(got, rowScalesRef(x, cols, quantMax(bits)), { atol: 0, rtol: 1.2e-7 }, `scales, ${bits} bits`);
        // The zero row fake-quantizes to zeros through the fused load (no 0/0).
        const out = g.empty([1, rows]);
        await g.run((rec) => matmul(rec, g.upload(new Float32Array(cols).fill(1), [1, cols]), g.upload(x, [rows, cols]), out, { transB: true, quantB: { scale, bits } }));
        const y = await g.readF32(out);
        expect(y[5]).toBe(0);
        expect(y.every(Number.isFinite)).toBe(true);
      }
    });
  });

  describe(`fake-quant backward (straight-through estimator, LSQ scales) (${path.name})`, () => {
    for (const bits of [8, 4]) {
      it(`dX, STE-masked dW and LSQ dScale vs float64, finite differences of the STE surrogate and TF.js (${bits} bits)`, async ({ skip }) => {
        const g = ready(skip);
        const qmax = quantMax(bits);
        const [M, N, K] = [6, 9, 13];
        // Scales below max|W_c| / qmax for some channels, so the clamp saturates there.
        const s = Float32Array.from(scalesFor(N, qmax, 40), (v, c) => (c % 3 === 0 ? v * 0.6 : v));
        const w = quantizable(s, K, qmax, 41);
        const x = randomArray(M * K, 43);
        const gy = randomArray(M * N, 44);
        const lsqFactor = 1 / Math.sqrt(K * qmax); // LSQ's gradient scale, as a uniform
        // L = sum(gy * (x @ w_hat^T)), w_hat = s * round(clamp(w / s, -qmax, qmax)).
        const xT = g.upload(x, [M, K], 'f32', 'x');
        const wT = g.upload(w, [N, K], 'f32', 'w');
        const sT = g.upload(s, [N], 'f32', 's');
        const gx = g.empty([M, K], 'f32', 'gx');
        const gw = g.empty([N, K], 'f32', 'gw');
        const gs = g.upload(new Float32Array(N).fill(0.25), [N], 'f32', 'gs');
        const quantB = { scale: sT, bits };
        await g.run((rec) => {
          matmulBackward(rec, xT, wT, g.upload(gy, [M, N], 'f32', 'gy'), { a: gx, b: gw }, { transB: true, quantB });
          fakeQuantGrad(rec, wT, sT, gw, { bits, gradScale: gs, lsqFactor, accumulateScale: true });
        });
        const [gxGpu, gwGpu, gsGpu] = [await g.readF32(gx), await g.readF32(gw), await g.readF32(gs)];

        // float64: dW_hat = gy^T @ x; dX = gy @ W_hat.
        const wHat = fakeQuantRef(w, s, K, qmax);
        const dwHat = matmulRef(gy, x, { batch: 1, M: N, N: K, K: M, batchA: false, batchB: false }, { transA: true });
        const masked = steMaskRef(w, s, dwHat, K, qmax);
        expect(masked.filter((v) => v === 0).length).toBeGreaterThan(0); // the mask is exercised
        expect(masked.filter((v) => v !== 0).length).toBeGreaterThan(N * K / 2);
        expectClose(gxGpu, matmulRef(gy, wHat, { batch: 1, M, N: K, K: N, batchA: false, batchB: false }), tol, 'dX vs float64');
        expectClose(gwGpu, masked, tol, 'dW vs float64 masked gradient');
        expectClose(gsGpu, lsqScaleGradRef(w, s, dwHat, K, qmax, lsqFactor).map((v) => v + 0.25), { atol: 1e-5, rtol: 1e-5 }, 'dScale vs float64 LSQ');

        // Finite differences of the loss itself are meaningless (round() is a staircase: zero
        // slope almost everywhere, jumps at ties). The STE rule says: differentiate as if
        // round(u) were u + (round(u0) - u0), a constant offset frozen at the current point u0, for
        // elements inside the clamp range as PyTorch's fake_quantize judges it (|round(v0)| <=
        // qmax, v = w / s); outside, w_hat = s * sign(v) * qmax. That surrogate is smooth around
        // u0, so central differences of it in float64 check the STE mask and the LSQ formula
        // independently of how they are written above.
        const v0 = Float64Array.from(w, (wi, i) => wi / s[Math.floor(i / K)]!);
        const inside = Array.from(v0, (v) => Math.abs(roundHalfEven(v)) <= qmax);
        const offset = Float64Array.from(v0, (v) => roundHalfEven(v) - v);
        const surrogateLoss = (wv: ArrayLike<number>, sv: ArrayLike<number>) => {
          const wh = Float64Array.from({ length: N * K }, (_, i) => {
            const sc = sv[Math.floor(i / K)]!;
            return sc * (inside[i] ? wv[i]! / sc + offset[i]! : Math.sign(v0[i]!) * qmax);
          });
          return matmulRef(x, wh, { batch: 1, M, N, K, batchA: false, batchB: false }, { transB: true }).reduce((acc, v, i) => acc + v * gy[i]!, 0);
        };
        expectClose(gwGpu, finiteDifference((wv) => surrogateLoss(wv, s), w, 1e-6), { atol: 1e-4, rtol: 1e-4 }, 'dW vs finite differences');
        const fdS = finiteDifference((sv) => surrogateLoss(w, sv), s, 1e-7);
        expectClose(gsGpu, fdS.map((v) => v * lsqFactor + 0.25), { atol: 1e-4, rtol: 1e-4 }, 'dScale vs finite differences');

        // TF.js: the same surrogate written with a custom-gradient round inside the range and
        // clipByValue (zero slope in v beyond the clamp) outside it.
        const tf = await tfCpu();
        type T = import('@tensorflow/tfjs-core').Tensor;
        const roundSte = tf.customGrad((u) => ({ value: tf.round(u as T), gradFunc: (dy: T) => dy }));
        const [tX, tW, tS] = tf.grads((xv: T, wv: T, sv: T) => {
          const v = tf.div(wv, sv);
          const wq = tf.mul(tf.where(tf.tensor2d(inside, [N, K], 'bool'), roundSte(v) as T, tf.clipByValue(v, -qmax, qmax)), sv);
          return tf.sum(tf.mul(tf.matMul(xv, wq, false, true), tf.tensor2d(gy, [M, N])));
        })([tf.tensor2d(x, [M, K]), tf.tensor2d(w, [N, K]), tf.tensor2d(s, [N, 1])]);
        expectClose(gxGpu, await tX!.data(), { atol: 1e-5, rtol: 1e-5 }, 'dX vs TF.js');
        expectClose(gwGpu, await tW!.data(), { atol: 1e-5, rtol: 1e-5 }, 'dW vs TF.js');
        expectClose(gsGpu, Float64Array.from(await tS!.data(), (v) => v * lsqFactor + 0.25), { atol: 1e-5, rtol: 1e-4 }, 'dScale vs TF.js');
      });
    }

    it('dW with per-token activation fake-quant uses X_hat (fused into the backward product)', async ({ skip }) => {
      const g = ready(skip);
      const qmax = quantMax(8);
      const [M, N, K] = [21, 10, 35];
      const sx = scalesFor(M, qmax, 50);
      const sw = scalesFor(N, qmax, 51);
      const x = quantizable(sx, K, qmax, 52);
      const w = quantizable(sw, K, qmax, 54);
      const gy = randomArray(M * N, 56);
      const gx = g.empty([M, K]);
      const gw = g.empty([N, K]);
      const quantA = { scale: g.upload(sx, [M]), bits: 8 };
      const quantB = { scale: g.upload(sw, [N]), bits: 8 };
      await g.run((rec) => matmulBackward(rec, g.upload(x, [M, K]), g.upload(w, [N, K]), g.upload(gy, [M, N]), { a: gx, b: gw }, { transB: true, quantA, quantB }));
      const xHat = fakeQuantRef(x, sx, K, qmax);
      const wHat = fakeQuantRef(w, sw, K, qmax);
      // STE for the dynamic activation quantization passes dX through: dX = gy @ W_hat.
      expectClose(await g.readF32(gx), matmulRef(gy, wHat, { batch: 1, M, N: K, K: N, batchA: false, batchB: false }), tol, 'dX');
      expectClose(await g.readF32(gw), matmulRef(gy, xHat, { batch: 1, M: N, N: K, K: M, batchA: false, batchB: false }, { transA: true }), tol, 'dW_hat = gy^T @ X_hat');
    });
  });
}

describe('bias gradient', () => {
  it('sums over rows (odd row and column counts)', async () => {
    const g = gpu();
    const [rows, cols] = [37, 70];
    const gy = randomArray(rows * cols, 13);
    const gb = g.upload(new Float32Array(cols).fill(0.5), [cols]);
    await g.run((rec) => biasGrad(rec, g.upload(gy, [rows, cols]), gb, { accumulate: true }));
    const ref = new Float64Array(cols).fill(0.5);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) ref[c]! += gy[r * cols + c]!;
    expectClose(await g.readF32(gb), ref, tol);
  });
});

describe('matmul argument checks', () => {
  it('names the tensors when fake-quant scales have the wrong length', () => {
    const g = gpu();
    const rec = g.record();
    const x = g.empty([4, 5], 'f32', 'x');
    const w = g.empty([7, 5], 'f32', 'w');
    const bad = g.empty([5], 'f32', 'sw');
    expect(() => matmul(rec, x, w, g.empty([4, 7]), { transB: true, quantB: { scale: bad } })).toThrow(ShapeError);
    expect(() => matmul(rec, x, w, g.empty([4, 7]), { transB: true, quantB: { scale: bad } })).toThrow(/scales of "w": tensor "sw" has shape \[5\], expected \[7\]/);
    expect(() => fakeQuantGrad(rec, w, g.empty([7]), g.empty([4, 5], 'f32', 'gw'))).toThrow(/tensor "gw" has shape \[4, 5\], expected \[7, 5\]/);
    expect(() => matmul(rec, x, w, g.empty([4, 7]), { transB: true, quantB: { scale: g.empty([7]), bits: 1 } })).toThrow(RangeError);
  });

  it('names the tensors when inner dimensions differ', () => {
    const g = gpu();
    const rec = g.record();
    const a = g.empty([4, 5], 'f32', 'x');
    const b = g.empty([6, 7], 'f32', 'w');
    expect(() => matmul(rec, a, b, g.empty([4, 7]))).toThrow(ShapeError);
    expect(() => matmul(rec, a, b, g.empty([4, 7]))).toThrow(/"x" gives K=5, "w" gives K=6/);
  });

  it('rejects a binding of the wrong element type at dispatch, naming kernel and binding', () => {
    const g = gpu();
    const rec = g.record();
    const f = g.empty([4, 4], 'f32', 'f');
    const i = g.empty([4, 4], 'i32', 'ints');
    expect(() =>
      rec.dispatch(
        { shader: 'matmul', entry: 'matmul' },
        { tensors: { a: f, b: i, bias: f, c: f, scale_a: f, scale_b: f }, uniforms: { M: 4, N: 4, K: 4, batch: 1, stride_a: 0, stride_b: 0, stride_c: 16, accumulate: 0, qmax_a: 0, qmax_b: 0 }, workgroups: [1, 1, 1] },
      ),
    ).toThrow(new KernelBindingError('matmul.matmul: binding "b" expects f32 elements, tensor "ints" is i32'));
  });

  it('rejects missing uniforms, unknown bindings and undersized tensors', () => {
    const g = gpu();
    const rec = g.record();
    const t = g.empty([2, 2], 'f32', 'small');
    const base = { M: 4, N: 4, K: 4, batch: 1, stride_a: 0, stride_b: 0, stride_c: 16, accumulate: 0, qmax_a: 0, qmax_b: 0 };
    const s = g.empty([1], 'f32', 'scale');
    const spec = { shader: 'matmul', entry: 'matmul' };
    expect(() => rec.dispatch(spec, { tensors: { a: t, b: t, bias: t, c: t, scale_a: s, scale_b: s }, uniforms: { ...base, K: undefined as unknown as number }, workgroups: [1] })).toThrow(/uniform "K" was not given/);
    expect(() => rec.dispatch(spec, { tensors: { a: t, b: t, bias: t, c: t, scale_a: s, scale_b: s, extra: t }, uniforms: base, workgroups: [1] })).toThrow(/no binding named "extra"/);
    expect(() => rec.dispatch(spec, { tensors: { a: t, b: t, bias: t, c: t, scale_a: s, scale_b: s }, uniforms: base, sizes: { c: 16 }, workgroups: [1] })).toThrow(
      /binding "c" needs at least 16 f32 elements \(64 bytes\), tensor "small" has 4/,
    );
  });
});

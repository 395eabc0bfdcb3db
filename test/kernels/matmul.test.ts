import { describe, expect, it } from 'vitest';
import { biasGrad, matmul, matmulBackward } from '../../src/kernels/matmul.js';
import { f16BitsToNumber, numberToF16Bits } from '../../src/gpu/gpu.js';
import { KernelBindingError, ShapeError } from '../../src/errors.js';
import { expectClose, finiteDifference, randomArray, useGpu } from '../helpers.js';
import { matmulRef } from '../ref/matmul.js';
import { tfCpu } from '../ref/tf.js';

const gpu = useGpu();
// f32 accumulation over K terms of products of values in [-1, 1]: error grows ~ sqrt(K) * 2^-24.
const tol = { atol: 2e-5, rtol: 1e-5 };

describe('matmul forward vs float64 reference', () => {
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
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const g = gpu();
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

  it('accumulates into the output when asked', async () => {
    const g = gpu();
    const [M, N, K] = [13, 21, 8];
    const aHost = randomArray(M * K, 4);
    const bHost = randomArray(K * N, 5);
    const init = randomArray(M * N, 6);
    const out = g.upload(init, [M, N], 'f32', 'out');
    await g.run((rec) => matmul(rec, g.upload(aHost, [M, K]), g.upload(bHost, [K, N]), out, { accumulate: true }));
    const ref = matmulRef(aHost, bHost, { batch: 1, M, N, K, batchA: false, batchB: false });
    expectClose(await g.readF32(out), ref.map((v, i) => v + init[i]!), tol);
  });

  it('f16 storage variant matches the reference on f16-rounded inputs', async (ctx) => {
    const g = gpu();
    if (!g.features.shaderF16) ctx.skip();
    const [M, N, K] = [33, 47, 70];
    const round = (x: Float32Array) => x.map((v) => f16BitsToNumber(numberToF16Bits(v)));
    const aHost = round(randomArray(M * K, 7));
    const bHost = round(randomArray(N * K, 8));
    const out = g.empty([M, N]);
    await g.run((rec) => matmul(rec, g.upload(aHost, [M, K], 'f16'), g.upload(bHost, [N, K], 'f16'), out, { transB: true }));
    expectClose(await g.readF32(out), matmulRef(aHost, bHost, { batch: 1, M, N, K, batchA: false, batchB: false }, { transB: true }), tol);
  });
});

describe('matmul backward', () => {
  for (const [transA, transB] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const) {
    it(`gradients vs finite differences and TF.js (transA=${transA}, transB=${transB})`, async () => {
      const g = gpu();
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

  it('bias gradient sums over rows (odd row and column counts)', async () => {
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

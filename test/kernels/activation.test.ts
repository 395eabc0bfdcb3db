import { describe, expect, it } from 'vitest';
import type * as tfTypes from '@tensorflow/tfjs-core';
import { add, addInPlace, axpy, elementwiseGrid, gelu, geluBackward } from '../../src/kernels/activation.js';
import { ShapeError } from '../../src/errors.js';
import { expectClose, finiteDifference, maxAbsDiff, randomArray, useGpu } from '../helpers.js';
import { geluGradRef, geluRef } from '../ref/elementwise.js';
import { tfCpu } from '../ref/tf.js';

const gpu = useGpu();
// erf_approx has |err| < 1.2e-7, so GELU = 0.5x(1+erf) errs by < 0.6e-7 |x| plus f32 rounding.
const geluTol = { atol: 3e-7, rtol: 3e-7 };
// A single f32 add / fma: half an ulp of the result.
const addTol = { atol: 1e-7, rtol: 1.2e-7 };

/** TF.js GELU composed from primitives, exactly as PyTorch defines it. */
function tfGelu(tf: typeof tfTypes, x: tfTypes.Tensor): tfTypes.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
}

describe('gelu', () => {
  // Lengths divisible by 4 take the vec4 path, others the scalar one.
  const shapes: [string, number[]][] = [
    ['scalar path [7, 13]', [7, 13]],
    ['vec4 path [3, 40]', [3, 40]],
    ['single element', [1]],
  ];
  for (const [name, shape] of shapes) {
    it(`forward vs float64 reference: ${name}`, async () => {
      const g = gpu();
      const n = shape.reduce((a, b) => a * b, 1);
      // Range [-6, 6] covers both tails where erf saturates.
      const xHost = randomArray(n, 21, 6);
      const out = g.empty(shape, 'f32', 'out');
      await g.run((rec) => gelu(rec, g.upload(xHost, shape, 'f32', 'x'), out));
      const got = await g.readF32(out);
      expectClose(got, Array.from(xHost, geluRef), geluTol, name);
    });
  }

  it('backward vs float64 derivative, finite differences and TF.js (both paths, accumulate)', async () => {
    const g = gpu();
    const tf = await tfCpu();
    for (const n of [37, 64]) {
      const xHost = randomArray(n, 22, 4);
      const gyHost = randomArray(n, 23);
      const x = g.upload(xHost, [n], 'f32', 'x');
      const gy = g.upload(gyHost, [n], 'f32', 'gy');
      const gx = g.empty([n], 'f32', 'gx');
      const init = randomArray(n, 24);
      const gxAcc = g.upload(init, [n], 'f32', 'gxAcc');
      await g.run((rec) => {
        geluBackward(rec, x, gy, gx);
        geluBackward(rec, x, gy, gxAcc, { accumulate: true });
      });
      const got = await g.readF32(gx);
      const exact = Array.from(xHost, (v, i) => gyHost[i]! * geluGradRef(v));
      // gelu' is Phi + x*phi: erf error 0.6e-7 plus rounding of a few f32 ops on values <= 1.1.
      expectClose(got, exact, { atol: 5e-7, rtol: 5e-7 }, `n=${n} vs derivative`);
      const fd = finiteDifference((v) => v.reduce((s, xi, i) => s + geluRef(xi) * gyHost[i]!, 0), xHost, 1e-4);
      // Central differences err by h^2/6 |f'''| ~ 1e-9, plus float64 cancellation ~ 1e-12.
      expectClose(got, fd, { atol: 1e-6, rtol: 1e-6 }, `n=${n} vs finite differences`);
      const tfGrad = tf.grad((t: tfTypes.Tensor) => tf.sum(tf.mul(tfGelu(tf, t), tf.tensor1d(gyHost))))(tf.tensor1d(xHost));
      // TF.js's f32 erf is a different approximation (~1e-7 apart).
      expectClose(got, await tfGrad.data(), { atol: 1e-6, rtol: 1e-6 }, `n=${n} vs TF.js`);
      expectClose(await g.readF32(gxAcc), exact.map((v, i) => v + init[i]!), { atol: 6e-7, rtol: 6e-7 }, `n=${n} accumulated`);
    }
  });

  it('forward matches TF.js composed GELU', async () => {
    const g = gpu();
    const tf = await tfCpu();
    const xHost = randomArray(301, 25, 5);
    const out = g.empty([301]);
    await g.run((rec) => gelu(rec, g.upload(xHost, [301]), out));
    const ref = await tfGelu(tf, tf.tensor1d(xHost)).data();
    const got = await g.readF32(out);
    expect(maxAbsDiff(got, ref)).toBeLessThan(1e-6);
  });
});

describe('add and axpy', () => {
  it('residual add, same shapes (vec4 and scalar paths)', async () => {
    const g = gpu();
    for (const shape of [[5, 12], [5, 7]]) {
      const n = shape[0]! * shape[1]!;
      const aHost = randomArray(n, 31);
      const bHost = randomArray(n, 32);
      const out = g.empty(shape);
      await g.run((rec) => add(rec, g.upload(aHost, shape, 'f32', 'a'), g.upload(bHost, shape, 'f32', 'b'), out));
      expectClose(await g.readF32(out), Array.from(aHost, (v, i) => v + bHost[i]!), addTol, `[${shape}]`);
    }
  });

  it('broadcasts [C] over [rows, C] and [T, C] over [B, T, C]', async () => {
    const g = gpu();
    const pairs: [number[], number[]][] = [
      [[9, 6], [6]],
      [[3, 5, 8], [5, 8]],
      [[2, 3, 7], [3, 7]],
    ];
    for (const [big, small] of pairs) {
      const n = big.reduce((a, b) => a * b, 1);
      const m = small.reduce((a, b) => a * b, 1);
      const aHost = randomArray(n, 33);
      const bHost = randomArray(m, 34);
      const out = g.empty(big);
      await g.run((rec) => add(rec, g.upload(aHost, big), g.upload(bHost, small), out));
      expectClose(await g.readF32(out), Array.from(aHost, (v, i) => v + bHost[i % m]!), addTol, `[${big}] + [${small}]`);
    }
  });

  it('accumulates in place: y += x, y += alpha * x, and a broadcast y += pos', async () => {
    const g = gpu();
    const [B, T, C] = [2, 5, 9];
    const n = B * T * C;
    const yHost = randomArray(n, 35);
    const xHost = randomArray(n, 36);
    const posHost = randomArray(T * C, 37);
    const y = g.upload(yHost, [B, T, C], 'f32', 'y');
    const x = g.upload(xHost, [B, T, C], 'f32', 'x');
    const pos = g.upload(posHost, [T, C], 'f32', 'pos');
    await g.run((rec) => {
      addInPlace(rec, y, x);
      axpy(rec, y, x, -0.375);
      addInPlace(rec, y, pos);
    });
    // Three f32 roundings in sequence.
    const expected = Array.from(yHost, (v, i) => v + xHost[i]! - 0.375 * xHost[i]! + posHost[i % (T * C)]!);
    expectClose(await g.readF32(y), expected, { atol: 4e-7, rtol: 4e-7 });
  });

  it('folds grids past 65535 workgroups into 2-D and still covers every element', async () => {
    expect(elementwiseGrid(256 * 65535)).toEqual([65535, 1]);
    expect(elementwiseGrid(256 * 65535 + 1)).toEqual([65535, 2]);
    const g = gpu();
    // 16.8M scalar elements (odd length: scalar path) need 65537 workgroups.
    const n = 256 * 65536 + 3;
    const y = g.upload(new Float32Array(n).fill(1), [n], 'f32', 'y');
    const x = g.upload(new Float32Array(n).fill(2), [n], 'f32', 'x');
    await g.run((rec) => axpy(rec, y, x, 0.5));
    const got = await g.readF32(y);
    let bad = -1;
    for (let i = 0; i < n && bad < 0; i++) if (got[i] !== 2) bad = i;
    expect(bad).toBe(-1);
    g.free(x, y);
  });
});

describe('activation argument checks', () => {
  it('names the tensors on shape mismatches', () => {
    const g = gpu();
    const rec = g.record();
    const a = g.empty([4, 6], 'f32', 'hidden');
    expect(() => add(rec, a, g.empty([5], 'f32', 'bias'), g.empty([4, 6]))).toThrow(ShapeError);
    expect(() => add(rec, a, g.empty([5], 'f32', 'bias'), g.empty([4, 6]))).toThrow(/"bias" \[5\] cannot broadcast to "hidden" \[4, 6\]/);
    expect(() => gelu(rec, a, g.empty([6, 4], 'f32', 'act'))).toThrow(/"act" has shape \[6, 4\], expected \[4, 6\]/);
    expect(() => geluBackward(rec, a, g.empty([4, 6], 'f32', 'gy'), g.empty([24], 'f32', 'gx'))).toThrow(/"gx"/);
    expect(() => axpy(rec, a, g.empty([4, 6], 'i32', 'ints'), 1)).toThrow(/"ints" has dtype i32/);
  });
});

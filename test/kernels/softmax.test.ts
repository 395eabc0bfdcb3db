import { describe, expect, it } from 'vitest';
import type { Tensor as TfTensor } from '@tensorflow/tfjs-core';
import { softmax, softmaxBackward } from '../../src/kernels/softmax.js';
import { ShapeError } from '../../src/errors.js';
import { expectClose, finiteDifference, randomArray, useGpu } from '../helpers.js';
import { softmaxBackwardRef, softmaxRef } from '../ref/norm.js';
import { tfCpu } from '../ref/tf.js';

const paths = [
  { name: 'subgroups', gpu: useGpu(), subgroups: true },
  { name: 'plain', gpu: useGpu({ disable: { subgroups: true } }), subgroups: false },
];

// Outputs lie in [0, 1]. x - max is rounded to f32 (relative 2^-24 of |x - max| <= 2 * scale),
// exp and the f32 row sum add a few ulps: relative error ~1e-6 at scale 8; atol covers tiny
// probabilities whose relative error is amplified by |x - max|.
const forwardTol = { atol: 1e-7, rtol: 4e-6 };
// dx = y * (dy - <dy, y>): the dot product sums C products of magnitude <= 1 in f32.
const backwardTol = (cols: number) => ({ atol: 2e-7 + Math.sqrt(cols) * 2 ** -24, rtol: 1e-5 });

for (const path of paths) {
  describe(`softmax (${path.name})`, () => {
    const ready = (skip: () => void) => {
      const g = path.gpu();
      if (path.subgroups && !g.features.subgroups) skip();
      expect(g.features.subgroups).toBe(path.subgroups);
      return g;
    };

    for (const { shape, scale } of [
      { shape: [5, 37], scale: 8 },
      { shape: [3, 51_865], scale: 8 },
      { shape: [2, 3, 100], scale: 30 },
      { shape: [4, 1], scale: 1 },
    ]) {
      it(`forward and backward on [${shape.join(', ')}] (logits scale ${scale})`, async (ctx) => {
        const g = ready(() => ctx.skip());
        const cols = shape[shape.length - 1]!;
        const rows = shape.reduce((a, b) => a * b, 1) / cols;
        // Offset the logits so a max-subtraction bug (exp overflow at ~88) cannot pass.
        const xHost = randomArray(rows * cols, cols + rows, scale).map((v) => v + 100);
        const dyHost = randomArray(rows * cols, cols + rows + 1);
        const x = g.upload(xHost, shape, 'f32', 'logits');
        const y = g.empty(shape, 'f32', 'probs');
        const dy = g.upload(dyHost, shape, 'f32', 'dprobs');
        const dx = g.empty(shape, 'f32', 'dlogits');
        await g.run((rec) => {
          softmax(rec, x, y);
          softmaxBackward(rec, y, dy, dx);
        });
        const yGpu = await g.readF32(y);
        const yRef = softmaxRef(xHost, rows, cols);
        expectClose(yGpu, yRef, forwardTol, 'y');
        // The backward from the GPU's own y, so the check isolates the backward kernel.
        expectClose(await g.readF32(dx), softmaxBackwardRef(yGpu, dyHost, rows, cols), backwardTol(cols), 'dx');
        g.free(x, y, dy, dx);
      });
    }

    it('backward vs finite differences and TF.js autodiff', async (ctx) => {
      const g = ready(() => ctx.skip());
      const [rows, cols] = [5, 37];
      const xHost = randomArray(rows * cols, 41, 3);
      const dyHost = randomArray(rows * cols, 42);
      // Scalar loss L = sum(dy * softmax(x)), whose gradient w.r.t. y is dy.
      const loss = (xv: ArrayLike<number>) => softmaxRef(xv, rows, cols).reduce((s, v, i) => s + v * dyHost[i]!, 0);
      const fd = finiteDifference(loss, xHost, 1e-4);

      const x = g.upload(xHost, [rows, cols], 'f32', 'x');
      const y = g.empty([rows, cols], 'f32', 'y');
      const dy = g.upload(dyHost, [rows, cols], 'f32', 'dy');
      const dx = g.empty([rows, cols], 'f32', 'dx');
      await g.run((rec) => {
        softmax(rec, x, y);
        softmaxBackward(rec, y, dy, dx);
      });
      const dxGpu = await g.readF32(dx);
      // Central differences with eps 1e-4 have O(eps^2) truncation error ~1e-8 here.
      expectClose(dxGpu, fd, { atol: 1e-6, rtol: 1e-5 }, 'dx vs finite differences');

      const tf = await tfCpu();
      const grad = tf.grad((xt: TfTensor) => tf.sum(tf.mul(tf.softmax(xt), tf.tensor2d(dyHost, [rows, cols]))));
      const dxTf = await grad(tf.tensor2d(xHost, [rows, cols])).data();
      // TF.js computes in f32 too, so both sides carry f32 rounding.
      expectClose(dxGpu, dxTf, { atol: 1e-6, rtol: 1e-5 }, 'dx vs TF.js');
      g.free(x, y, dy, dx);
    });
  });
}

describe('softmax argument checks', () => {
  const gpu = paths[1]!.gpu;

  it('names the tensor whose shape does not match', () => {
    const g = gpu();
    const rec = g.record();
    const x = g.empty([4, 9], 'f32', 'scores');
    expect(() => softmax(rec, x, g.empty([4, 8], 'f32', 'probs'))).toThrow(ShapeError);
    expect(() => softmax(rec, x, g.empty([4, 8], 'f32', 'probs'))).toThrow(/softmax: tensor "probs" has shape \[4, 8\], expected \[4, 9\]/);
    expect(() => softmaxBackward(rec, x, g.empty([9, 4], 'f32', 'grad-probs'), g.empty([4, 9]))).toThrow(/tensor "grad-probs" has shape \[9, 4\], expected \[4, 9\]/);
    expect(() => softmax(rec, g.empty([4, 0], 'f32', 'empty'), g.empty([4, 0]))).toThrow(/"empty" needs a non-empty last dim/);
  });
});

import { describe, expect, it } from 'vitest';
import type { Tensor as TfTensor } from '@tensorflow/tfjs-core';
import { LAYERNORM_EPS, layerNorm, layerNormBackward, layerNormWorkspaceShape } from '../../src/kernels/layernorm.js';
import { ShapeError } from '../../src/errors.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { expectClose, finiteDifference, randomArray, useGpu } from '../helpers.js';
import { layerNormBackwardRef, layerNormRef } from '../ref/norm.js';
import { tfCpu } from '../ref/tf.js';

const paths = [
  { name: 'subgroups', gpu: useGpu(), subgroups: true },
  { name: 'plain', gpu: useGpu({ disable: { subgroups: true } }), subgroups: false },
];

const eps = LAYERNORM_EPS;
// Normalised values are O(1) (|xhat| <= sqrt(C)); mean, variance and rstd carry f32 rounding of
// a C-term sum (relative ~ (C/256 + 8) * 2^-24), so y is good to a few 1e-6 relative.
const forwardTol = { atol: 4e-6, rtol: 4e-6 };
// The backward adds two more C-term row sums, and the param grads sum `rows` terms dy * xhat
// whose xhat = (x - mean) * rstd carries the f32 rounding of |x| <= 7 (about 2^-24 * 8 each).
const backwardTol = (terms: number) => ({ atol: 2e-6 + terms * 2 ** -24 * 8, rtol: 1e-5 });

interface Case {
  rows: number;
  cols: number;
  affine: boolean;
  seed: number;
}

function hostData(c: Case) {
  const n = c.rows * c.cols;
  // Rows offset from 0 like hidden states, so a one-pass variance would lose precision.
  const x = randomArray(n, c.seed, 2).map((v, i) => v + 3 + (Math.floor(i / c.cols) % 5) * 0.5);
  return {
    x,
    dy: randomArray(n, c.seed + 1),
    gamma: randomArray(c.cols, c.seed + 2).map((v) => 1 + 0.5 * v),
    beta: randomArray(c.cols, c.seed + 3, 0.5),
  };
}

function upload(g: Gpu, c: Case, h: ReturnType<typeof hostData>, lead: readonly number[] = [c.rows]) {
  const shape = [...lead, c.cols];
  return {
    x: g.upload(h.x, shape, 'f32', 'x'),
    dy: g.upload(h.dy, shape, 'f32', 'dy'),
    affine: c.affine ? { gamma: g.upload(h.gamma, [c.cols], 'f32', 'gamma'), beta: g.upload(h.beta, [c.cols], 'f32', 'beta') } : null,
    y: g.empty(shape, 'f32', 'y'),
    mean: g.empty(lead, 'f32', 'mean'),
    rstd: g.empty(lead, 'f32', 'rstd'),
  };
}

for (const path of paths) {
  describe(`layernorm (${path.name})`, () => {
    const ready = (skip: () => void) => {
      const g = path.gpu();
      if (path.subgroups && !g.features.subgroups) skip();
      expect(g.features.subgroups).toBe(path.subgroups);
      return g;
    };

    for (const c of [
      { rows: 5, cols: 37, affine: true, seed: 1 },
      { rows: 3, cols: 100, affine: false, seed: 2 },
      { rows: 6, cols: 384, affine: true, seed: 3 },
      { rows: 2, cols: 1280, affine: true, seed: 4 },
      { rows: 1, cols: 1, affine: true, seed: 5 },
    ]) {
      it(`forward [${c.rows}, ${c.cols}]${c.affine ? '' : ' without affine'}: y, mean, rstd`, async (ctx) => {
        const g = ready(() => ctx.skip());
        const h = hostData(c);
        const t = upload(g, c, h);
        await g.run((rec) => layerNorm(rec, t.x, t.affine, t));
        const ref = layerNormRef(h.x, c.rows, c.cols, eps, c.affine ? h : undefined);
        expectClose(await g.readF32(t.y), ref.y, forwardTol, 'y');
        expectClose(await g.readF32(t.mean), ref.mean, { atol: 1e-6, rtol: 1e-6 }, 'mean');
        expectClose(await g.readF32(t.rstd), ref.rstd, { atol: 0, rtol: 4e-6 }, 'rstd');
      });
    }

    for (const c of [
      { rows: 70, cols: 37, affine: true, seed: 11 },
      { rows: 33, cols: 100, affine: false, seed: 12 },
      { rows: 40, cols: 384, affine: true, seed: 13 },
    ]) {
      it(`backward [${c.rows}, ${c.cols}]${c.affine ? '' : ' without affine'} vs float64, overwriting and accumulating`, async (ctx) => {
        const g = ready(() => ctx.skip());
        const h = hostData(c);
        // Leading dims [rows/..., ...] exercise shapes with more than one leading dim.
        const lead = c.rows % 2 === 0 ? [2, c.rows / 2] : [c.rows];
        const t = upload(g, c, h, lead);
        const shape = [...lead, c.cols];
        const dx = g.empty(shape, 'f32', 'dx');
        const dxInit = randomArray(c.rows * c.cols, 90);
        const dxAcc = g.upload(dxInit, shape, 'f32', 'dx-acc');
        const dgamma = g.empty([c.cols], 'f32', 'dgamma');
        const dbeta = g.empty([c.cols], 'f32', 'dbeta');
        const pInit = randomArray(c.cols, 91);
        const dgammaAcc = g.upload(pInit, [c.cols], 'f32', 'dgamma-acc');
        const dbetaAcc = g.upload(pInit, [c.cols], 'f32', 'dbeta-acc');
        const workspace = g.empty(layerNormWorkspaceShape(c.rows, c.cols), 'f32', 'workspace');
        await g.run((rec) => {
          layerNorm(rec, t.x, t.affine, t);
          const gamma = t.affine?.gamma ?? null;
          const params = (a: typeof dgamma, b: typeof dbeta) => (c.affine ? { dgamma: a, dbeta: b, workspace } : {});
          layerNormBackward(rec, t.x, gamma, t, t.dy, { dx, ...params(dgamma, dbeta) });
          layerNormBackward(rec, t.x, gamma, t, t.dy, { dx: dxAcc, ...params(dgammaAcc, dbetaAcc) }, { accumulate: true });
        });
        const ref = layerNormBackwardRef(h.x, h.dy, c.rows, c.cols, eps, c.affine ? h.gamma : undefined);
        const dxTol = backwardTol(c.cols);
        expectClose(await g.readF32(dx), ref.dx, dxTol, 'dx');
        expectClose(await g.readF32(dxAcc), ref.dx.map((v, i) => v + dxInit[i]!), dxTol, 'accumulated dx');
        if (c.affine) {
          const pTol = backwardTol(c.rows);
          expectClose(await g.readF32(dgamma), ref.dgamma, pTol, 'dgamma');
          expectClose(await g.readF32(dbeta), ref.dbeta, pTol, 'dbeta');
          expectClose(await g.readF32(dgammaAcc), ref.dgamma.map((v, i) => v + pInit[i]!), pTol, 'accumulated dgamma');
          expectClose(await g.readF32(dbetaAcc), ref.dbeta.map((v, i) => v + pInit[i]!), pTol, 'accumulated dbeta');
        }
      });
    }

    for (const affine of [true, false]) {
      it(`backward vs finite differences and TF.js autodiff (${affine ? 'affine' : 'no affine'})`, async (ctx) => {
        const g = ready(() => ctx.skip());
        const c = { rows: 5, cols: 37, affine, seed: 21 };
        const h = hostData(c);
        const t = upload(g, c, h);
        const dx = g.empty([c.rows, c.cols], 'f32', 'dx');
        const dgamma = g.empty([c.cols], 'f32', 'dgamma');
        const dbeta = g.empty([c.cols], 'f32', 'dbeta');
        const workspace = g.empty(layerNormWorkspaceShape(c.rows, c.cols), 'f32', 'workspace');
        await g.run((rec) => {
          layerNorm(rec, t.x, t.affine, t);
          layerNormBackward(rec, t.x, t.affine?.gamma ?? null, t, t.dy, affine ? { dx, dgamma, dbeta, workspace } : { dx });
        });
        const dxGpu = await g.readF32(dx);

        // Scalar loss L = sum(dy * layerNorm(x)), whose gradient w.r.t. y is dy.
        const loss = (xv: ArrayLike<number>, gv: ArrayLike<number>, bv: ArrayLike<number>) =>
          layerNormRef(xv, c.rows, c.cols, eps, affine ? { gamma: gv, beta: bv } : undefined).y.reduce((s, v, i) => s + v * h.dy[i]!, 0);
        // eps 1e-3 on inputs of spread ~1: truncation error O(eps^2 * third derivative) ~1e-6.
        const fdTol = { atol: 2e-5, rtol: 1e-4 };
        expectClose(dxGpu, finiteDifference((xv) => loss(xv, h.gamma, h.beta), h.x), fdTol, 'dx vs finite differences');

        const tf = await tfCpu();
        const dyT = tf.tensor2d(h.dy, [c.rows, c.cols]);
        const tfLoss = (xt: TfTensor, gt: TfTensor, bt: TfTensor) => {
          const { mean, variance } = tf.moments(xt, -1, true);
          const xhat = tf.div(tf.sub(xt, mean), tf.sqrt(tf.add(variance, eps)));
          return tf.sum(tf.mul(affine ? tf.add(tf.mul(xhat, gt), bt) : xhat, dyT));
        };
        const xT = tf.tensor2d(h.x, [c.rows, c.cols]);
        // tf.grads rejects inputs the loss does not use, so without affine only x is an input.
        const [tdx, tdg, tdb] = affine
          ? tf.grads(tfLoss)([xT, tf.tensor1d(h.gamma), tf.tensor1d(h.beta)])
          : [tf.grad((xt: TfTensor) => tfLoss(xt, xt, xt))(xT)];
        // TF.js works in f32 with a different summation order.
        const tfTol = { atol: 1e-5, rtol: 1e-4 };
        expectClose(dxGpu, await tdx!.data(), tfTol, 'dx vs TF.js');
        if (affine) {
          const dgGpu = await g.readF32(dgamma);
          const dbGpu = await g.readF32(dbeta);
          expectClose(dgGpu, finiteDifference((gv) => loss(h.x, gv, h.beta), h.gamma), fdTol, 'dgamma vs finite differences');
          expectClose(dbGpu, finiteDifference((bv) => loss(h.x, h.gamma, bv), h.beta), fdTol, 'dbeta vs finite differences');
          expectClose(dgGpu, await tdg!.data(), tfTol, 'dgamma vs TF.js');
          expectClose(dbGpu, await tdb!.data(), tfTol, 'dbeta vs TF.js');
        }
      });
    }
  });
}

describe('layernorm argument checks', () => {
  const gpu = paths[1]!.gpu;

  it('names the tensor whose shape does not match', () => {
    const g = gpu();
    const rec = g.record();
    const x = g.empty([4, 9], 'f32', 'hidden');
    const stats = { mean: g.empty([4], 'f32', 'mean'), rstd: g.empty([4], 'f32', 'rstd') };
    const affine = { gamma: g.empty([8], 'f32', 'ln.weight'), beta: g.empty([9], 'f32', 'ln.bias') };
    expect(() => layerNorm(rec, x, affine, { y: g.empty([4, 9]), ...stats })).toThrow(ShapeError);
    expect(() => layerNorm(rec, x, affine, { y: g.empty([4, 9]), ...stats })).toThrow(/tensor "ln.weight" has shape \[8\], expected \[9\]/);
    expect(() => layerNorm(rec, x, null, { y: g.empty([4, 9]), mean: g.empty([9], 'f32', 'row-mean'), rstd: stats.rstd })).toThrow(
      /tensor "row-mean" has shape \[9\], expected \[4\]/,
    );
  });

  it('asks for a workspace and for both parameter gradients', () => {
    const g = gpu();
    const rec = g.record();
    const x = g.empty([70, 9], 'f32', 'x');
    const stats = { mean: g.empty([70]), rstd: g.empty([70]) };
    const gamma = g.empty([9], 'f32', 'gamma');
    const dgamma = g.empty([9], 'f32', 'dgamma');
    const dbeta = g.empty([9], 'f32', 'dbeta');
    expect(() => layerNormBackward(rec, x, gamma, stats, x, { dgamma, dbeta })).toThrow(/need a workspace tensor of shape \[2, 18, 9\]/);
    expect(() => layerNormBackward(rec, x, gamma, stats, x, { dgamma, dbeta, workspace: g.empty([2, 2, 9], 'f32', 'ws') })).toThrow(/workspace "ws" has 36 elements, needs 324/);
    expect(() => layerNormBackward(rec, x, gamma, stats, x, { dgamma })).toThrow(/give both dgamma and dbeta/);
    expect(() => layerNormBackward(rec, x, null, stats, x, { dgamma, dbeta })).toThrow(/without affine parameters/);
  });
});

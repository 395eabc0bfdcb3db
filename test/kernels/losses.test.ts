import { describe, expect, it } from 'vitest';
import type { Tensor as TfTensor } from '@tensorflow/tfjs-core';
import { crossEntropy, distanceMatrix, distanceWorkspaceSizes, klDivergence, maskedMean, mseLoss, topkKlDivergence } from '../../src/kernels/losses.js';
import { topKRows } from '../../src/util/top-k.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { ShapeError } from '../../src/errors.js';
import { expectClose, finiteDifference, maxAbsDiff, randomArray, useGpu } from '../helpers.js';
import { crossEntropyRef, distanceRef, klRef, mseRef, topkKlRef, validRows } from '../ref/losses.js';
import { tfCpu } from '../ref/tf.js';

const paths = [
  { name: 'subgroups', gpu: useGpu(), subgroups: true },
  { name: 'plain', gpu: useGpu({ disable: { subgroups: true } }), subgroups: false },
];

// Row losses are logsumexp(z) - z_t (or KL sums) of magnitude <= ~30: the f32 row sum of V
// exponentials and the f32 log add a few ulps of the result, so rtol 2e-6 plus an atol for rows
// where the loss is a small difference of large terms (~1e-6 of |z| ~ 110).
const lossTol = { atol: 2e-5, rtol: 2e-6 };
// Gradients are probabilities (<= 1) over n_valid, each exp(z - lse): z - lse carries the f32
// rounding of z and lse (half an ulp of max|z| each), which becomes relative error of p; plus a
// tiny absolute part for underflowing probabilities.
const gradTol = (maxLogit: number) => ({ atol: 1e-8, rtol: 2e-6 + 2 * 2 ** -24 * maxLogit });

/** Targets in [0, V) with the listed rows set to -100. */
function targetsOf(rows: number, vocab: number, ignored: number[], seed: number): Int32Array {
  const u = randomArray(rows, seed);
  return Int32Array.from(u, (v, r) => (ignored.includes(r) ? -100 : Math.min(vocab - 1, Math.floor(((v + 1) / 2) * vocab))));
}

function maskOf(rows: number, ignored: number[]): Int32Array {
  return Int32Array.from({ length: rows }, (_, r) => (ignored.includes(r) ? 0 : 1));
}

/** log sum_i exp(scale * x_i) in float64. */
function logSumExp(x: ArrayLike<number>, scale: number): number {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) max = Math.max(max, x[i]! * scale);
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.exp(x[i]! * scale - max);
  return max + Math.log(sum);
}

async function readAll(g: Gpu, ...ts: Parameters<Gpu['readF32']>[0][]): Promise<Float32Array[]> {
  return Promise.all(ts.map((t) => g.readF32(t)));
}

for (const path of paths) {
  describe(`losses (${path.name})`, () => {
    const ready = (skip: () => void) => {
      const g = path.gpu();
      if (path.subgroups && !g.features.subgroups) skip();
      expect(g.features.subgroups).toBe(path.subgroups);
      return g;
    };

    for (const { shape, ignored, scale } of [
      { shape: [5, 37], ignored: [1, 3], scale: 8 },
      { shape: [3, 51_865], ignored: [1], scale: 8 },
      { shape: [2, 3, 100], ignored: [4], scale: 30 },
    ]) {
      it(`cross-entropy, mean and gradient on [${shape.join(', ')}] with ignored rows ${ignored.join(', ')}`, async (ctx) => {
        const g = ready(() => ctx.skip());
        const vocab = shape[shape.length - 1]!;
        const rows = shape.reduce((a, b) => a * b, 1) / vocab;
        // Offset so that a missing max-subtraction (exp overflows near 88) cannot pass.
        const zHost = randomArray(rows * vocab, vocab + rows, scale).map((v) => v + 100);
        const tHost = targetsOf(rows, vocab, ignored, vocab);
        const logits = g.upload(zHost, shape, 'f32', 'logits');
        const targets = g.upload(tHost, shape.slice(0, -1), 'i32', 'targets');
        const rowLoss = g.empty(shape.slice(0, -1), 'f32', 'ce');
        const grad = g.upload(randomArray(rows * vocab, 3), shape, 'f32', 'dlogits'); // stale contents must be overwritten
        const out = g.empty([2], 'f32', 'loss');
        await g.run((rec) => crossEntropy(rec, logits, targets, rowLoss, { grad, mean: { out, countIndex: 1 } }));
        const ref = crossEntropyRef(zHost, tHost, rows, vocab);
        const [lossGpu, gradGpu, outGpu] = await readAll(g, rowLoss, grad, out);
        expectClose(lossGpu!, ref.rowLoss, lossTol, 'row losses');
        expectClose(gradGpu!, ref.grad, gradTol(100 + scale), 'gradient');
        expectClose(outGpu!, [ref.mean, ref.count], lossTol, 'mean and count');
        g.free(logits, targets, rowLoss, grad, out);
      });
    }

    for (const { rows, vocab, tau, ignored } of [
      { rows: 6, vocab: 37, tau: 1, ignored: [0, 4] },
      { rows: 6, vocab: 37, tau: 2, ignored: [5] },
      { rows: 3, vocab: 51_865, tau: 2, ignored: null },
    ]) {
      it(`KL at tau ${tau}, mean and gradient on [${rows}, ${vocab}]${ignored ? ` with masked rows ${ignored.join(', ')}` : ' without a mask'}`, async (ctx) => {
        const g = ready(() => ctx.skip());
        const sHost = randomArray(rows * vocab, vocab + 1, 6).map((v) => v - 100);
        const tHost = randomArray(rows * vocab, vocab + 2, 6).map((v) => v + 100);
        const mHost = maskOf(rows, ignored ?? []);
        const student = g.upload(sHost, [rows, vocab], 'f32', 'student logits');
        const teacher = g.upload(tHost, [rows, vocab], 'f32', 'teacher logits');
        const mask = g.upload(mHost, [rows], 'i32', 'mask');
        const rowLoss = g.empty([rows], 'f32', 'kl');
        const grad = g.empty([rows, vocab], 'f32', 'dstudent');
        const out = g.empty([1], 'f32', 'loss');
        await g.run((rec) => klDivergence(rec, student, teacher, rowLoss, { tau, mask: ignored ? { ids: mask, ignoreIndex: 0 } : undefined, grad, mean: { out } }));
        const ref = klRef(sHost, tHost, rows, vocab, tau, validRows(rows, mHost, 0));
        const [lossGpu, gradGpu, outGpu] = await readAll(g, rowLoss, grad, out);
        // KL is a sum of p_T * (difference of two log-probabilities): absolute f32 error ~1e-6
        // times tau^2 per unit of KL.
        expectClose(lossGpu!, ref.rowLoss, { atol: 4e-6 * tau * tau, rtol: 1e-5 }, 'row losses');
        // p_S - p_T: a difference of two f32 probabilities, absolute error ~1e-7 / n_valid.
        expectClose(gradGpu!, ref.grad, { atol: 4e-8 * tau, rtol: 1e-5 }, 'gradient');
        expectClose(outGpu!, [ref.mean], { atol: 4e-6 * tau * tau, rtol: 1e-5 }, 'mean');
        g.free(student, teacher, mask, rowLoss, grad, out);
      });
    }

    for (const { shape, k, tau, ignored, accumulate, tail } of [
      { shape: [6, 37], k: 7, tau: 2, ignored: [0, 4], accumulate: false, tail: false },
      { shape: [6, 37], k: 7, tau: 2, ignored: [0, 4], accumulate: false, tail: true },
      { shape: [2, 3, 100], k: 100, tau: 1, ignored: [4], accumulate: true, tail: false },
      { shape: [2, 3, 100], k: 13, tau: 1, ignored: [4], accumulate: true, tail: true },
      { shape: [3, 51_865], k: 64, tau: 2, ignored: null, accumulate: false, tail: false },
      { shape: [3, 51_865], k: 64, tau: 2, ignored: null, accumulate: false, tail: true },
      { shape: [2, 51_865], k: 51_865, tau: 2, ignored: null, accumulate: false, tail: false },
      { shape: [2, 51_865], k: 51_865, tau: 2, ignored: null, accumulate: false, tail: true },
    ]) {
      const vocab = shape[shape.length - 1]!;
      const rows = shape.reduce((a, b) => a * b, 1) / vocab;
      it(`top-k KL (k ${k}${tail ? ', tail bucket' : ', renormalised'}) at tau ${tau} on [${shape.join(', ')}]${ignored ? ` with masked rows ${ignored.join(', ')}` : ''}${accumulate ? ', accumulating' : ''}`, async (ctx) => {
        const g = ready(() => ctx.skip());
        const rowShape = shape.slice(0, -1);
        const sHost = randomArray(rows * vocab, vocab + 7, 6).map((v) => v - 100);
        const tHost = randomArray(rows * vocab, vocab + 8, 6).map((v) => v + 100);
        const top = topKRows(tHost, rows, vocab, k, 'teacher logits');
        // The teacher's logsumexp of logits / tau over the whole row (float64, rounded to f32).
        const lseHost = Float32Array.from({ length: rows }, (_, r) => logSumExp(tHost.subarray(r * vocab, (r + 1) * vocab), 1 / tau));
        const mHost = maskOf(rows, ignored ?? []);
        const prior = randomArray(rows * vocab, 9, 0.01);
        const student = g.upload(sHost, shape, 'f32', 'student logits');
        const values = g.upload(top.values, [...rowShape, k], 'f32', 'top-k values');
        const ids = g.upload(top.ids, [...rowShape, k], 'i32', 'top-k ids');
        const mask = g.upload(mHost, rowShape, 'i32', 'mask');
        const lse = g.upload(lseHost, rowShape, 'f32', 'teacher logsumexp');
        const rowLoss = g.empty(rowShape, 'f32', 'kl');
        const grad = g.upload(prior, shape, 'f32', 'dstudent'); // overwritten, or added to with accumulate
        const out = g.empty([1], 'f32', 'loss');
        await g.run((rec) => topkKlDivergence(rec, student, values, ids, rowLoss, { tau, mask: ignored ? { ids: mask, ignoreIndex: 0 } : undefined, grad, accumulate, mean: { out }, teacherLogsumexp: tail ? lse : undefined }));
        const valid = validRows(rows, mHost, 0);
        const ref = topkKlRef(sHost, top.values, top.ids, rows, vocab, k, tau, valid, 1, tail ? lseHost : undefined);
        const expectedGrad = accumulate ? ref.grad.map((v, i) => v + prior[i]!) : ref.grad;
        const [lossGpu, gradGpu, outGpu] = await readAll(g, rowLoss, grad, out);
        // As the dense KL: f32 differences of log-probabilities, tau^2 per unit of KL; the
        // gradient p_S - q in two f32 terms (one rounding more than the dense kernel's).
        const tol = { atol: 4e-6 * tau * tau, rtol: 1e-5 };
        expectClose(lossGpu!, ref.rowLoss, tol, 'row losses');
        expectClose(outGpu!, [ref.mean], tol, 'mean');
        expectClose(gradGpu!, expectedGrad, { atol: 6e-8 * tau, rtol: 1e-5 }, 'gradient');
        if (k === vocab) {
          // The whole vocabulary cached: the dense KL, to float rounding.
          const dense = klRef(sHost, tHost, rows, vocab, tau, valid);
          expectClose(lossGpu!, dense.rowLoss, tol, 'row losses vs dense KL');
          expectClose(gradGpu!, accumulate ? dense.grad.map((v, i) => v + prior[i]!) : dense.grad, { atol: 6e-8 * tau, rtol: 1e-5 }, 'gradient vs dense KL');
        } else {
          // Truncation changes the loss. With the tail as one bucket it is a lower bound of the
          // full KL (log-sum inequality: the tail's own KL terms sum to at least R log(R / (1 - S_K))).
          const dense = klRef(sHost, tHost, rows, vocab, tau, valid);
          expect(Math.abs(outGpu![0]! - dense.mean)).toBeGreaterThan(1e-3);
          if (tail) lossGpu!.forEach((v, r) => expect(v, `row ${r}`).toBeLessThanOrEqual(dense.rowLoss[r]! + tol.atol));
        }
        g.free(student, values, ids, mask, lse, rowLoss, grad, out);
      });
    }

    it('hidden-state MSE with a padding mask, gradients for both inputs', async (ctx) => {
      const g = ready(() => ctx.skip());
      const [batch, T, C] = [2, 5, 37];
      const rows = batch * T;
      const aHost = randomArray(rows * C, 11, 3);
      const bHost = randomArray(rows * C, 12, 3);
      const mHost = maskOf(rows, [3, 4, 9]);
      const a = g.upload(aHost, [batch, T, C], 'f32', 'projected student');
      const b = g.upload(bHost, [batch, T, C], 'f32', 'teacher states');
      const mask = g.upload(mHost, [batch, T], 'i32', 'padding');
      const rowLoss = g.empty([batch, T], 'f32', 'mse');
      const gradA = g.empty([batch, T, C], 'f32', 'da');
      const gradB = g.empty([batch, T, C], 'f32', 'db');
      const out = g.empty([2], 'f32', 'loss');
      const unmasked = g.empty([batch, T], 'f32', 'mse without mask');
      await g.run((rec) => {
        mseLoss(rec, a, b, rowLoss, { mask: { ids: mask, ignoreIndex: 0 }, gradA, gradB, gradScale: 0.5, mean: { out, countIndex: 1 } });
        mseLoss(rec, a, b, unmasked);
      });
      const ref = mseRef(aHost, bHost, rows, C, validRows(rows, mHost, 0), 0.5);
      const [lossGpu, gaGpu, gbGpu, outGpu, unmaskedGpu] = await readAll(g, rowLoss, gradA, gradB, out, unmasked);
      expectClose(unmaskedGpu!, mseRef(aHost, bHost, rows, C, validRows(rows)).rowLoss, { atol: 1e-6, rtol: 2e-6 }, 'row losses without mask');
      // Means of C squares of f32 differences up to 6: a few ulps relative.
      expectClose(lossGpu!, ref.rowLoss, { atol: 1e-6, rtol: 2e-6 }, 'row losses');
      expectClose(outGpu!, [ref.mean, ref.count], { atol: 1e-6, rtol: 2e-6 }, 'mean and count');
      expectClose(gaGpu!, ref.grad, { atol: 1e-9, rtol: 1e-6 }, 'grad a');
      expectClose(gbGpu!, ref.grad.map((v) => -v), { atol: 1e-9, rtol: 1e-6 }, 'grad b');
      g.free(a, b, mask, rowLoss, gradA, gradB, out, unmasked);
    });

    for (const { ls, lt, batch, T, C, layerNorm, ignored } of [
      { ls: 2, lt: 5, batch: 1, T: 7, C: 37, layerNorm: false, ignored: [2] },
      { ls: 3, lt: 5, batch: 2, T: 4, C: 37, layerNorm: true, ignored: [0, 7] },
      { ls: 5, lt: 9, batch: 1, T: 150, C: 45, layerNorm: false, ignored: null },
      { ls: 5, lt: 9, batch: 1, T: 150, C: 45, layerNorm: true, ignored: [3, 149] },
    ]) {
      const rows = batch * T;
      it(`distance matrix ${ls}x${lt} over [${batch}, ${T}, ${C}]${layerNorm ? ' after LayerNorm' : ''}${ignored ? ' masked' : ''}`, async (ctx) => {
        const g = ready(() => ctx.skip());
        // The teacher layers are noisy copies of a shared signal plus a per-layer offset, so the
        // distances differ across pairs and LayerNorm (which removes the offsets) changes them.
        const base = randomArray(rows * C, 21, 2);
        const layers = (count: number, seed: number) => {
          const out = new Float32Array(count * rows * C);
          for (let l = 0; l < count; l++) {
            const noise = randomArray(rows * C, seed + l, 0.2 * (l + 1));
            for (let k = 0; k < rows * C; k++) out[l * rows * C + k] = base[k]! * (1 + 0.3 * l) + noise[k]! + l;
          }
          return out;
        };
        const sHost = layers(ls, 100);
        const tHost = layers(lt, 200);
        const student = g.upload(sHost, [ls, batch, T, C], 'f32', 'student states');
        const teacher = g.upload(tHost, [lt, batch, T, C], 'f32', 'teacher states');
        const mHost = ignored ? maskOf(rows, ignored) : undefined;
        const mask = mHost ? g.upload(mHost, [batch, T], 'i32', 'padding') : undefined;
        const sizes = distanceWorkspaceSizes(ls, lt, rows, C, layerNorm);
        const partials = g.empty([sizes.partials], 'f32', 'partials');
        const stats = layerNorm ? g.empty([sizes.stats], 'f32', 'stats') : undefined;
        const D = g.empty([ls, lt], 'f32', 'D');
        await g.run((rec) => distanceMatrix(rec, student, teacher, D, { partials, stats }, { mask: mask ? { ids: mask, ignoreIndex: 0 } : undefined, layerNorm }));
        const ref = distanceRef(sHost, tHost, ls, lt, rows, C, validRows(rows, mHost, 0), layerNorm);
        const got = await g.readF32(D);
        // Means of up to 6750 squares accumulated in f32 in a few levels (per invocation, tree,
        // chunks): relative error ~1e-6; LayerNorm'd inputs carry ~1e-6 relative each.
        expectClose(got, ref, { atol: 1e-6, rtol: 1e-5 }, 'D');
        g.free(student, teacher, partials, D, ...(mask ? [mask] : []), ...(stats ? [stats] : []));
      });
    }
  });
}

describe('loss gradients vs finite differences and TF.js', () => {
  const gpu = paths[1]!.gpu;
  const [rows, vocab] = [5, 37];

  it('cross-entropy (gradScale 0.5, ignored rows)', async () => {
    const g = gpu();
    const zHost = randomArray(rows * vocab, 31, 3);
    const tHost = targetsOf(rows, vocab, [2], 32);
    const logits = g.upload(zHost, [rows, vocab], 'f32', 'logits');
    const targets = g.upload(tHost, [rows], 'i32', 'targets');
    const rowLoss = g.empty([rows], 'f32', 'ce');
    const grad = g.empty([rows, vocab], 'f32', 'dlogits');
    await g.run((rec) => crossEntropy(rec, logits, targets, rowLoss, { grad, gradScale: 0.5 }));
    const gpuGrad = await g.readF32(grad);
    const fd = finiteDifference((z) => 0.5 * crossEntropyRef(z, tHost, rows, vocab).mean, zHost, 1e-4);
    // Central differences with eps 1e-4: truncation ~eps^2 * |f'''| ~1e-9, cancellation ~1e-12.
    expectClose(gpuGrad, fd, { atol: 2e-8, rtol: 1e-5 }, 'vs finite differences');

    const tf = await tfCpu();
    const valid = tHost.map((t) => (t === -100 ? 0 : 1));
    const onehot = tf.oneHot(tf.tensor1d(tHost.map((t) => Math.max(t, 0)), 'int32'), vocab);
    const lossFn = (z: TfTensor) =>
      tf.mul(0.5, tf.losses.softmaxCrossEntropy(onehot, z, tf.tensor1d(valid), 0, tf.Reduction.SUM_BY_NONZERO_WEIGHTS)) as TfTensor;
    const tfGrad = await tf.grad(lossFn)(tf.tensor2d(zHost, [rows, vocab])).data();
    // TF.js is f32 too.
    expectClose(gpuGrad, tfGrad, { atol: 2e-8, rtol: 1e-5 }, 'vs TF.js');
    g.free(logits, targets, rowLoss, grad);
  });

  it('KL at tau 2 with a masked row', async () => {
    const g = gpu();
    const tau = 2;
    const sHost = randomArray(rows * vocab, 33, 4);
    const tHost = randomArray(rows * vocab, 34, 4);
    const mHost = maskOf(rows, [1]);
    const valid = validRows(rows, mHost, 0);
    const student = g.upload(sHost, [rows, vocab], 'f32', 'student');
    const teacher = g.upload(tHost, [rows, vocab], 'f32', 'teacher');
    const mask = g.upload(mHost, [rows], 'i32', 'mask');
    const rowLoss = g.empty([rows], 'f32', 'kl');
    const grad = g.empty([rows, vocab], 'f32', 'dstudent');
    await g.run((rec) => klDivergence(rec, student, teacher, rowLoss, { tau, mask: { ids: mask, ignoreIndex: 0 }, grad }));
    const gpuGrad = await g.readF32(grad);
    const fd = finiteDifference((s) => klRef(s, tHost, rows, vocab, tau, valid).mean, sHost, 1e-4);
    expectClose(gpuGrad, fd, { atol: 2e-8, rtol: 1e-5 }, 'vs finite differences');

    const tf = await tfCpu();
    const w = tf.tensor2d(Float32Array.from(valid, (v) => (v ? 1 : 0)), [rows, 1]);
    const count = valid.filter(Boolean).length;
    const logPT = tf.logSoftmax(tf.div(tf.tensor2d(tHost, [rows, vocab]), tau));
    const lossFn = (s: TfTensor) => {
      const perRow = tf.sum(tf.mul(tf.exp(logPT), tf.sub(logPT, tf.logSoftmax(tf.div(s, tau)))), 1, true);
      return tf.div(tf.mul(tau * tau, tf.sum(tf.mul(perRow, w))), count) as TfTensor;
    };
    const tfGrad = await tf.grad(lossFn)(tf.tensor2d(sHost, [rows, vocab])).data();
    expectClose(gpuGrad, tfGrad, { atol: 2e-8, rtol: 1e-5 }, 'vs TF.js');
    g.free(student, teacher, mask, rowLoss, grad);
  });

  it('top-k KL at tau 2 with a masked row', async () => {
    const g = gpu();
    const [tau, k] = [2, 6];
    const sHost = randomArray(rows * vocab, 37, 4);
    const top = topKRows(randomArray(rows * vocab, 38, 4), rows, vocab, k);
    const mHost = maskOf(rows, [3]);
    const valid = validRows(rows, mHost, 0);
    const student = g.upload(sHost, [rows, vocab], 'f32', 'student');
    const values = g.upload(top.values, [rows, k], 'f32', 'top-k values');
    const ids = g.upload(top.ids, [rows, k], 'i32', 'top-k ids');
    const mask = g.upload(mHost, [rows], 'i32', 'mask');
    const rowLoss = g.empty([rows], 'f32', 'kl');
    const grad = g.empty([rows, vocab], 'f32', 'dstudent');
    await g.run((rec) => topkKlDivergence(rec, student, values, ids, rowLoss, { tau, mask: { ids: mask, ignoreIndex: 0 }, grad, gradScale: 0.5 }));
    const gpuGrad = await g.readF32(grad);
    const fd = finiteDifference((s) => 0.5 * topkKlRef(s, top.values, top.ids, rows, vocab, k, tau, valid).mean, sHost, 1e-4);
    expectClose(gpuGrad, fd, { atol: 2e-8, rtol: 1e-5 }, 'vs finite differences');

    const tf = await tfCpu();
    // q as a dense constant (zero outside the ids); the loss's q log q part has no gradient.
    const qDense = new Float32Array(rows * vocab);
    for (let r = 0; r < rows; r++) {
      const lq = tf.logSoftmax(tf.div(tf.tensor1d(top.values.subarray(r * k, (r + 1) * k)), tau)).dataSync();
      for (let j = 0; j < k; j++) qDense[r * vocab + top.ids[r * k + j]!] = Math.exp(lq[j]!);
    }
    const w = tf.tensor2d(Float32Array.from(valid, (v) => (v ? 1 : 0)), [rows, 1]);
    const count = valid.filter(Boolean).length;
    const q = tf.tensor2d(qDense, [rows, vocab]);
    const lossFn = (s: TfTensor) => tf.div(tf.mul(-0.5 * tau * tau, tf.sum(tf.mul(tf.sum(tf.mul(q, tf.logSoftmax(tf.div(s, tau))), 1, true), w))), count) as TfTensor;
    const tfGrad = await tf.grad(lossFn)(tf.tensor2d(sHost, [rows, vocab])).data();
    expectClose(gpuGrad, tfGrad, { atol: 2e-8, rtol: 1e-5 }, 'vs TF.js');
    g.free(student, values, ids, mask, rowLoss, grad);
  });

  it('top-k KL with the teacher tail at tau 2 with a masked row', async () => {
    const g = gpu();
    const [tau, k] = [2, 6];
    const sHost = randomArray(rows * vocab, 39, 4);
    const tHost = randomArray(rows * vocab, 40, 4);
    const top = topKRows(tHost, rows, vocab, k);
    const lseHost = Float32Array.from({ length: rows }, (_, r) => logSumExp(tHost.subarray(r * vocab, (r + 1) * vocab), 1 / tau));
    const mHost = maskOf(rows, [2]);
    const valid = validRows(rows, mHost, 0);
    const student = g.upload(sHost, [rows, vocab], 'f32', 'student');
    const values = g.upload(top.values, [rows, k], 'f32', 'top-k values');
    const ids = g.upload(top.ids, [rows, k], 'i32', 'top-k ids');
    const lse = g.upload(lseHost, [rows], 'f32', 'teacher logsumexp');
    const mask = g.upload(mHost, [rows], 'i32', 'mask');
    const rowLoss = g.empty([rows], 'f32', 'kl');
    const grad = g.empty([rows, vocab], 'f32', 'dstudent');
    await g.run((rec) => topkKlDivergence(rec, student, values, ids, rowLoss, { tau, mask: { ids: mask, ignoreIndex: 0 }, grad, teacherLogsumexp: lse }));
    const gpuGrad = await g.readF32(grad);
    const fd = finiteDifference((s) => topkKlRef(s, top.values, top.ids, rows, vocab, k, tau, valid, 1, lseHost).mean, sHost, 1e-4);
    expectClose(gpuGrad, fd, { atol: 2e-8, rtol: 1e-5 }, 'vs finite differences');

    const tf = await tfCpu();
    // p at the ids (zero elsewhere), the ids' indicator, and R per row, as constants.
    const pDense = new Float32Array(rows * vocab);
    const inK = new Float32Array(rows * vocab);
    const tail = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let j = 0; j < k; j++) {
        const p = Math.exp(top.values[r * k + j]! / tau - lseHost[r]!);
        pDense[r * vocab + top.ids[r * k + j]!] = p;
        inK[r * vocab + top.ids[r * k + j]!] = 1;
        sum += p;
      }
      tail[r] = 1 - sum;
    }
    const w = tf.tensor1d(Float32Array.from(valid, (v) => (v ? 1 : 0)));
    const count = valid.filter(Boolean).length;
    const p = tf.tensor2d(pDense, [rows, vocab]);
    const K = tf.tensor2d(inK, [rows, vocab]);
    const R = tf.tensor1d(tail);
    const lossFn = (s: TfTensor) => {
      const logS = tf.logSoftmax(tf.div(s, tau));
      const head = tf.neg(tf.sum(tf.mul(p, logS), 1));
      const sK = tf.sum(tf.mul(K, tf.exp(logS)), 1);
      const tailTerm = tf.neg(tf.mul(R, tf.log(tf.sub(1, sK))));
      return tf.div(tf.mul(tau * tau, tf.sum(tf.mul(tf.add(head, tailTerm), w))), count) as TfTensor;
    };
    const tfGrad = await tf.grad(lossFn)(tf.tensor2d(sHost, [rows, vocab])).data();
    expectClose(gpuGrad, tfGrad, { atol: 2e-8, rtol: 1e-5 }, 'vs TF.js');
    g.free(student, values, ids, lse, mask, rowLoss, grad);
  });

  it('MSE for both inputs', async () => {
    const g = gpu();
    const C = 13;
    const aHost = randomArray(rows * C, 35);
    const bHost = randomArray(rows * C, 36);
    const mHost = maskOf(rows, [4]);
    const valid = validRows(rows, mHost, 0);
    const a = g.upload(aHost, [rows, C], 'f32', 'a');
    const b = g.upload(bHost, [rows, C], 'f32', 'b');
    const mask = g.upload(mHost, [rows], 'i32', 'mask');
    const rowLoss = g.empty([rows], 'f32', 'mse');
    const gradA = g.empty([rows, C], 'f32', 'da');
    const gradB = g.empty([rows, C], 'f32', 'db');
    await g.run((rec) => mseLoss(rec, a, b, rowLoss, { mask: { ids: mask, ignoreIndex: 0 }, gradA, gradB }));
    const [ga, gb] = await readAll(g, gradA, gradB);
    const fdA = finiteDifference((x) => mseRef(x, bHost, rows, C, valid).mean, aHost, 1e-3);
    const fdB = finiteDifference((x) => mseRef(aHost, x, rows, C, valid).mean, bHost, 1e-3);
    // The loss is quadratic, so central differences are exact up to rounding (~1e-13 / eps).
    expectClose(ga!, fdA, { atol: 1e-8, rtol: 1e-6 }, 'da vs finite differences');
    expectClose(gb!, fdB, { atol: 1e-8, rtol: 1e-6 }, 'db vs finite differences');

    const tf = await tfCpu();
    const w = tf.tensor2d(Float32Array.from(valid, (v) => (v ? 1 : 0)), [rows, 1]);
    const count = valid.filter(Boolean).length;
    const lossFn = (x: TfTensor, y: TfTensor) => tf.div(tf.sum(tf.mul(tf.square(tf.sub(x, y)), w)), count * C) as TfTensor;
    const [ta, tb] = tf.grads(lossFn)([tf.tensor2d(aHost, [rows, C]), tf.tensor2d(bHost, [rows, C])]);
    expectClose(ga!, await ta!.data(), { atol: 1e-8, rtol: 1e-6 }, 'da vs TF.js');
    expectClose(gb!, await tb!.data(), { atol: 1e-8, rtol: 1e-6 }, 'db vs TF.js');
    g.free(a, b, mask, rowLoss, gradA, gradB);
  });
});

describe('combining losses', () => {
  const gpu = paths[1]!.gpu;

  it('alpha CE + beta KL accumulate into one gradient and one total; loss-only calls write no gradient', async () => {
    const g = gpu();
    const [rows, vocab, alpha, beta, tau] = [4, 29, 0.8, 1, 2];
    const sHost = randomArray(rows * vocab, 51, 3);
    const tHost = randomArray(rows * vocab, 52, 3);
    const yHost = targetsOf(rows, vocab, [3], 53);
    const student = g.upload(sHost, [rows, vocab], 'f32', 'student');
    const teacher = g.upload(tHost, [rows, vocab], 'f32', 'teacher');
    const targets = g.upload(yHost, [rows], 'i32', 'targets');
    const ce = g.empty([rows], 'f32', 'ce');
    const kl = g.empty([rows], 'f32', 'kl');
    const grad = g.empty([rows, vocab], 'f32', 'dstudent');
    const total = g.upload([0, 0, 0, 0], [4], 'f32', 'losses');
    const sentinel = randomArray(rows * vocab, 54);
    const untouched = g.upload(sentinel, [rows, vocab], 'f32', 'untouched');
    await g.run((rec) => {
      crossEntropy(rec, student, targets, ce, { grad, gradScale: alpha, mean: { out: total, index: 0, weight: alpha } });
      klDivergence(rec, student, teacher, kl, { tau, mask: { ids: targets }, grad, gradScale: beta, accumulate: true, mean: { out: total, index: 0, weight: beta, accumulate: true, countIndex: 1 } });
      // Evaluation: losses alone, into other slots; `untouched` is bound nowhere.
      crossEntropy(rec, student, targets, ce, { mean: { out: total, index: 2 } });
      klDivergence(rec, student, teacher, kl, { tau, mask: { ids: targets }, mean: { out: total, index: 3 } });
    });
    const ceRef = crossEntropyRef(sHost, yHost, rows, vocab, -100, alpha);
    const klR = klRef(sHost, tHost, rows, vocab, tau, validRows(rows, yHost), beta);
    const [gradGpu, totalGpu, untouchedGpu] = await readAll(g, grad, total, untouched);
    // The two addends (up to ~0.27 each) may cancel: a few ulps of them absolute.
    expectClose(gradGpu!, ceRef.grad.map((v, i) => v + klR.grad[i]!), { atol: 1e-7, rtol: gradTol(3).rtol }, 'combined gradient');
    expectClose(totalGpu!, [alpha * ceRef.mean + beta * klR.mean, 3, ceRef.mean, klR.mean], lossTol, 'total, count, CE, KL');
    expect(maxAbsDiff(untouchedGpu!, sentinel)).toBe(0);
    g.free(student, teacher, targets, ce, kl, grad, total, untouched);
  });

  it('a target outside the vocabulary gives a NaN loss; maskedMean of no valid rows is 0', async () => {
    const g = gpu();
    const [rows, vocab] = [3, 10];
    const logits = g.upload(randomArray(rows * vocab, 61), [rows, vocab], 'f32', 'logits');
    const targets = g.upload([2, 10, -100], [rows], 'i32', 'targets');
    const allIgnored = g.upload([-100, -100, -100], [rows], 'i32', 'all ignored');
    const ce = g.empty([rows], 'f32', 'ce');
    const out = g.upload([7, 7], [2], 'f32', 'out');
    await g.run((rec) => {
      crossEntropy(rec, logits, targets, ce);
      maskedMean(rec, ce, out, { mask: { ids: allIgnored }, countIndex: 1 });
    });
    const [loss, o] = await readAll(g, ce, out);
    expect(Number.isFinite(loss![0])).toBe(true);
    expect(loss![1]).toBeNaN();
    expect(loss![2]).toBe(0);
    expect([...o!]).toEqual([0, 0]);
    g.free(logits, targets, allIgnored, ce, out);
  });
});

describe('top-k KL input errors', () => {
  const gpu = paths[1]!.gpu;

  it('an id outside the vocabulary makes its row NaN; shapes and k are checked by name', async () => {
    const g = gpu();
    const [rows, vocab, k] = [3, 10, 2];
    const student = g.upload(randomArray(rows * vocab, 71), [rows, vocab], 'f32', 'student');
    const values = g.upload(randomArray(rows * k, 72), [rows, k], 'f32', 'top-k values');
    const ids = g.upload([1, 2, 3, 10, 0, 9], [rows, k], 'i32', 'top-k ids');
    const rowLoss = g.empty([rows], 'f32', 'kl');
    await g.run((rec) => topkKlDivergence(rec, student, values, ids, rowLoss, { tau: 2 }));
    const loss = await g.readF32(rowLoss);
    expect(Number.isFinite(loss[0])).toBe(true);
    expect(loss[1]).toBeNaN();
    expect(Number.isFinite(loss[2])).toBe(true);
    const rec = g.record();
    expect(() => topkKlDivergence(rec, student, values, g.empty([rows, 3], 'i32', 'wide ids'), rowLoss)).toThrow(/topkKlDivergence: tensor "wide ids" has shape \[3, 3\], expected \[3, 2\]/);
    expect(() => topkKlDivergence(rec, student, g.empty([rows, 11], 'f32', 'too many'), ids, rowLoss)).toThrow(/"too many" \[3, 11\] must hold 1..10 entries per row/);
    expect(() => topkKlDivergence(rec, student, values, g.empty([rows, k], 'f32', 'float ids'), rowLoss)).toThrow(/"float ids" has dtype f32, expected i32/);
    g.free(student, values, ids, rowLoss);
  });
});

describe('losses argument checks', () => {
  const gpu = paths[1]!.gpu;

  it('names the tensor whose shape or dtype is wrong', () => {
    const g = gpu();
    const rec = g.record();
    const logits = g.empty([4, 11], 'f32', 'logits');
    const targets = g.empty([4], 'i32', 'targets');
    const rowLoss = g.empty([4], 'f32', 'ce');
    expect(() => crossEntropy(rec, logits, g.empty([5], 'i32', 'short targets'), rowLoss)).toThrow(ShapeError);
    expect(() => crossEntropy(rec, logits, g.empty([5], 'i32', 'short targets'), rowLoss)).toThrow(/crossEntropy: tensor "short targets" has shape \[5\], expected \[4\]/);
    expect(() => crossEntropy(rec, logits, g.empty([4], 'f32', 'float targets'), rowLoss)).toThrow(/"float targets" has dtype f32, expected i32/);
    expect(() => crossEntropy(rec, logits, targets, rowLoss, { grad: g.empty([4, 12], 'f32', 'wide grad') })).toThrow(/"wide grad" has shape \[4, 12\], expected \[4, 11\]/);
    expect(() => klDivergence(rec, logits, g.empty([4, 10], 'f32', 'teacher'), rowLoss, { tau: 2 })).toThrow(/klDivergence: tensor "teacher" has shape \[4, 10\]/);
    expect(() => klDivergence(rec, logits, logits, rowLoss, { tau: 0 })).toThrow(/temperature must be positive/);
    expect(() => mseLoss(rec, logits, logits, g.empty([11], 'f32', 'per-row'))).toThrow(/mseLoss: tensor "per-row" has shape \[11\], expected \[4\]/);
    expect(() => maskedMean(rec, rowLoss, g.empty([1], 'f32', 'total'), { index: 1 })).toThrow(/index 1 is outside tensor "total"/);
  });

  it('distanceMatrix checks layers, output and workspace', () => {
    const g = gpu();
    const rec = g.record();
    const student = g.empty([2, 6, 9], 'f32', 'student');
    const teacher = g.empty([5, 6, 9], 'f32', 'teacher');
    const partials = g.empty([distanceWorkspaceSizes(2, 5, 6, 9, false).partials], 'f32', 'partials');
    expect(() => distanceMatrix(rec, student, g.empty([5, 7, 9], 'f32', 'short teacher'), g.empty([2, 5]), { partials })).toThrow(/tensor "short teacher" has shape \[5, 7, 9\], expected \[5, 6, 9\]/);
    expect(() => distanceMatrix(rec, student, teacher, g.empty([5, 2], 'f32', 'D'), { partials })).toThrow(/tensor "D" has shape \[5, 2\], expected \[2, 5\]/);
    expect(() => distanceMatrix(rec, student, teacher, g.empty([2, 5]), { partials: g.empty([3], 'f32', 'tiny') })).toThrow(/workspace "tiny" has 3 elements/);
    expect(() => distanceMatrix(rec, student, teacher, g.empty([2, 5]), { partials }, { layerNorm: true })).toThrow(/layerNorm needs workspace.stats/);
  });

});

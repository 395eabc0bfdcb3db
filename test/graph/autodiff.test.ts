import { describe, expect, it } from 'vitest';
import type * as tfTypes from '@tensorflow/tfjs-core';
import { ShapeError } from '../../src/errors.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { backward } from '../../src/graph/autodiff.js';
import { compileGraph } from '../../src/graph/compile.js';
import { Graph, type GraphTensor } from '../../src/graph/graph.js';
import { crossEntropyLoss, klDivergenceLoss, mseLossOp } from '../../src/graph/losses.js';
import { add, attention, embedding, fakeQuantScales, gelu, layerNorm, linear } from '../../src/graph/ops.js';
import { expectClose, maxAbsDiff, randomArray, useGpu } from '../helpers.js';
import { quantizeRowsRef } from '../ref/quant.js';
import { tfCpu } from '../ref/tf.js';
import { countDeviceObjects } from './counting.js';

const gpu = useGpu();
type TF = Awaited<ReturnType<typeof tfCpu>>;

// Gradients of small composite graphs in float32 on both sides, summed over <= 64 terms per
// element: differences come from summation order (measured <= 6.3e-7 relative to the largest
// gradient); 2e-5 of that scale still catches a missing or doubled contribution (>= 1e-2).
const relTol = 2e-5;

/** Parameters as GPU tensors and graph externals, with their host values. */
function params(g: Graph, gp: Gpu, specs: Record<string, { shape: number[]; scale?: number; trainable?: boolean; offset?: number }>, seed: number) {
  const host = new Map<string, Float32Array>();
  const graph = new Map<string, GraphTensor>();
  const gpuTensors: Tensor[] = [];
  Object.entries(specs).forEach(([name, s], i) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const data = randomArray(n, seed + i, s.scale ?? 0.5).map((v) => v + (s.offset ?? 0));
    host.set(name, data);
    const t = gp.upload(data, s.shape, 'f32', name);
    gpuTensors.push(t);
    graph.set(name, g.external(t, { trainable: s.trainable ?? true }));
  });
  return { host, graph, free: () => gp.free(...gpuTensors) };
}

function expectGradsClose(actual: Float32Array, expected: ArrayLike<number>, what: string): void {
  const scale = Math.max(...Array.from(expected, Math.abs));
  expect(scale).toBeGreaterThan(0);
  expectClose(actual, expected, { atol: relTol * scale, rtol: 0 }, what);
}

function tfLayerNorm(tf: TF, x: tfTypes.Tensor, gamma: tfTypes.Tensor, beta: tfTypes.Tensor): tfTypes.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), gamma), beta);
}

function tfGelu(tf: TF, x: tfTypes.Tensor): tfTypes.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))));
}

/** x [.., in] @ w^T + b with w [out, in]. */
function tfLinear(tf: TF, x: tfTypes.Tensor, w: tfTypes.Tensor, b?: tfTypes.Tensor): tfTypes.Tensor {
  const rows = x.size / x.shape[x.shape.length - 1]!;
  const y = tf.matMul(tf.reshape(x, [rows, x.shape[x.shape.length - 1]!]), w, false, true);
  return tf.reshape(b ? tf.add(y, b) : y, [...x.shape.slice(0, -1), w.shape[0]!]);
}

describe('autodiff', () => {
  it('pre-LN MLP block with a residual (two consumers of x) and an MSE loss matches TF.js tf.grads', async () => {
    const gp = gpu();
    const tf = await tfCpu();
    const [B, T, d, ffn] = [2, 5, 12, 20];
    const g = new Graph();
    const p = params(
      g,
      gp,
      {
        x: { shape: [B, T, d], scale: 1 },
        ln_g: { shape: [d], offset: 1 },
        ln_b: { shape: [d] },
        fc1_w: { shape: [ffn, d] },
        fc1_b: { shape: [ffn] },
        fc2_w: { shape: [d, ffn] },
        fc2_b: { shape: [d] },
        target: { shape: [B, T, d], trainable: false },
      },
      10,
    );
    const P = (n: string) => p.graph.get(n)!;
    const h = layerNorm(g, P('x'), P('ln_g'), P('ln_b'), { label: 'ln' });
    const f = linear(g, linear(g, h, P('fc1_w'), P('fc1_b'), { gelu: true, label: 'fc1' }), P('fc2_w'), P('fc2_b'), { label: 'fc2' });
    const y = add(g, P('x'), f, { label: 'residual' });
    const loss = mseLossOp(g, y, P('target'));
    const grads = backward(g, [loss]);
    expect([...grads.keys()].map((t) => t.label).sort()).toEqual(['fc1_b', 'fc1_w', 'fc2_b', 'fc2_w', 'ln_b', 'ln_g', 'x']);
    const step = await compileGraph(gp, g);
    await step.run();

    const names = ['x', 'ln_g', 'ln_b', 'fc1_w', 'fc1_b', 'fc2_w', 'fc2_b'];
    const shapes = names.map((n) => P(n).shape as number[]);
    const target = tf.tensor(p.host.get('target')!, [B, T, d]);
    const fTf = (x: tfTypes.Tensor, lg: tfTypes.Tensor, lb: tfTypes.Tensor, w1: tfTypes.Tensor, b1: tfTypes.Tensor, w2: tfTypes.Tensor, b2: tfTypes.Tensor) => {
      const out = tf.add(x, tfLinear(tf, tfGelu(tf, tfLinear(tf, tfLayerNorm(tf, x, lg, lb), w1, b1)), w2, b2));
      return tf.mean(tf.square(tf.sub(out, target)));
    };
    const inputs = names.map((n, i) => tf.tensor(p.host.get(n)!, shapes[i]));
    const { value, grads: tfGrads } = tf.valueAndGrads(fTf as (...a: tfTypes.Tensor[]) => tfTypes.Scalar)(inputs);
    expectClose(await step.read(loss), value.dataSync(), { atol: 0, rtol: 1e-5 }, 'loss');
    for (const [i, n] of names.entries()) {
      expectGradsClose(await step.read(grads.get(P(n))!), tfGrads[i]!.dataSync(), `d${n}`);
    }
    step.destroy();
    p.free();
  });

  it('attention block with shared input, causal mask, key padding, tied embedding and cross-entropy matches TF.js', async () => {
    const gp = gpu();
    const tf = await tfCpu();
    const [B, T, d, H, V] = [2, 6, 8, 2, 11];
    const lengths = [6, 4];
    const tokens = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % V);
    const labels = Int32Array.from({ length: B * T }, (_, i) => (Math.floor(i / T) === 1 && i % T >= lengths[1]! ? -100 : (i * 5 + 1) % V));
    const g = new Graph();
    const p = params(
      g,
      gp,
      {
        emb: { shape: [V, d], scale: 1 },
        pos: { shape: [T + 3, d] },
        ln_g: { shape: [d], offset: 1 },
        ln_b: { shape: [d] },
        q_w: { shape: [d, d] },
        q_b: { shape: [d] },
        k_w: { shape: [d, d] },
        v_w: { shape: [d, d] },
        v_b: { shape: [d] },
        o_w: { shape: [d, d] },
        o_b: { shape: [d] },
      },
      30,
    );
    const P = (n: string) => p.graph.get(n)!;
    const ids = g.input([B, T], 'i32', 'tokens');
    const targets = g.input([B, T], 'i32', 'labels');
    const klen = g.input([B], 'u32', 'lengths');
    // Positions: the first T rows of a longer table (a partial view gets the gradient rows it used).
    const x = add(g, embedding(g, ids, P('emb')), g.view(P('pos'), [T, d]), { label: 'embed + positions' });
    const h = layerNorm(g, x, P('ln_g'), P('ln_b'));
    const q = linear(g, h, P('q_w'), P('q_b'), { label: 'q' });
    const k = linear(g, h, P('k_w'), null, { label: 'k' });
    const v = linear(g, h, P('v_w'), P('v_b'), { label: 'v' });
    const a = attention(g, q, k, v, { heads: H, causal: true, keyLengths: klen });
    const y = add(g, x, linear(g, a, P('o_w'), P('o_b'), { label: 'out' }));
    const logits = linear(g, y, P('emb'), null, { label: 'logits' });
    const loss = crossEntropyLoss(g, logits, targets);
    const grads = backward(g, [loss]);
    const step = await compileGraph(gp, g);
    step.write(ids, tokens);
    step.write(targets, labels);
    step.write(klen, Uint32Array.from(lengths));
    await step.run();

    const names = ['emb', 'pos', 'ln_g', 'ln_b', 'q_w', 'q_b', 'k_w', 'v_w', 'v_b', 'o_w', 'o_b'];
    const D = d / H;
    const maskAdd = new Float32Array(B * T * T);
    for (let b = 0; b < B; b++) for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) maskAdd[(b * T + i) * T + j] = j > i || j >= lengths[b]! ? -1e30 : 0;
    const mask = tf.tensor(maskAdd, [B, 1, T, T]);
    const heads = (t: tfTypes.Tensor) => tf.transpose(tf.reshape(t, [B, T, H, D]), [0, 2, 1, 3]);
    const valid = Array.from(labels, (l): number => (l === -100 ? 0 : 1));
    const onehot = tf.mul(tf.oneHot(tf.tensor1d(Array.from(labels, (l) => Math.max(l, 0)), 'int32'), V), tf.tensor(valid, [B * T, 1]));
    const count = valid.reduce((s, v) => s + v, 0);
    const fTf = (...w: tfTypes.Tensor[]) => {
      const [emb, pos, lg, lb, qw, qb, kw, vw, vb, ow, ob] = w as [tfTypes.Tensor, ...tfTypes.Tensor[]];
      const xx = tf.add(tf.gather(emb, tf.tensor(tokens, [B, T], 'int32')), tf.slice(pos!, [0, 0], [T, d]));
      const hh = tfLayerNorm(tf, xx, lg!, lb!);
      const s = tf.add(tf.mul(tf.matMul(heads(tfLinear(tf, hh, qw!, qb)), heads(tfLinear(tf, hh, kw!)), false, true), 1 / Math.sqrt(D)), mask);
      const att = tf.reshape(tf.transpose(tf.matMul(tf.softmax(s), heads(tfLinear(tf, hh, vw!, vb))), [0, 2, 1, 3]), [B, T, d]);
      const yy = tf.add(xx, tfLinear(tf, att, ow!, ob));
      const lsm = tf.logSoftmax(tf.reshape(tfLinear(tf, yy, emb), [B * T, V]));
      return tf.div(tf.neg(tf.sum(tf.mul(lsm, onehot))), count);
    };
    const inputs = names.map((n) => tf.tensor(p.host.get(n)!, P(n).shape as number[]));
    const { value, grads: tfGrads } = tf.valueAndGrads(fTf as (...a: tfTypes.Tensor[]) => tfTypes.Scalar)(inputs);
    expectClose(await step.read(loss), value.dataSync(), { atol: 0, rtol: 1e-5 }, 'loss');
    for (const [i, n] of names.entries()) {
      expectGradsClose(await step.read(grads.get(P(n))!), tfGrads[i]!.dataSync(), `d${n}`);
    }
    // Rows of the position table past T were not used: their gradient is exactly zero.
    const dpos = await step.read(grads.get(P('pos'))!);
    expect(Array.from(dpos.subarray(T * d)).every((v) => v === 0)).toBe(true);
    step.destroy();
    p.free();
  });

  it('gives frozen parameters no gradient and agrees with central finite differences of the replayed loss', async () => {
    const gp = gpu();
    const [rows, d] = [7, 6];
    const g = new Graph();
    const p = params(g, gp, { x: { shape: [rows, d], scale: 1, trainable: false }, w: { shape: [d, d] }, frozen: { shape: [d, d], trainable: false }, t: { shape: [rows, d], trainable: false } }, 50);
    const P = (n: string) => p.graph.get(n)!;
    const y = gelu(g, linear(g, linear(g, P('x'), P('frozen'), null), P('w'), null));
    const loss = mseLossOp(g, y, P('t'));
    const grads = backward(g, [loss]);
    expect([...grads.keys()].map((t) => t.label)).toEqual(['w']);
    const step = await compileGraph(gp, g);
    await step.run();
    const dw = await step.read(grads.get(P('w'))!);
    // Finite differences through the compiled step itself: perturb one weight, replay, read the loss.
    const w = p.host.get('w')!;
    const wTensor = step.tensor(P('w'));
    const eps = 1e-2;
    const lossAt = async (i: number, delta: number) => {
      const moved = w.slice();
      moved[i]! += delta;
      gp.write(wTensor, moved);
      // A replay creates no buffers or bind groups, and encodes the whole step once.
      const counts = countDeviceObjects(gp.device);
      try {
        await step.run();
      } finally {
        counts.restore();
      }
      expect([counts.buffers, counts.bindGroups, counts.encoders]).toEqual([0, 0, 1]);
      return (await step.readScalars([loss]))[0]!;
    };
    for (const i of [0, 7, 20, 35]) {
      const fd = ((await lossAt(i, eps)) - (await lossAt(i, -eps))) / (2 * eps);
      // f32 loss ~0.3 read twice: rounding 3e-8 / 1e-2 plus eps^2 curvature terms ~1e-5.
      expect(Math.abs(fd - dw[i]!)).toBeLessThan(2e-4 + 1e-3 * Math.abs(dw[i]!));
    }
    gp.write(wTensor, w);
    step.destroy();
    p.free();
  });

  it('distillation losses: CE + KL on the same student logits and hidden-state MSE through a projection, frozen teacher, match TF.js', async () => {
    const gp = gpu();
    const tf = await tfCpu();
    const [rows, dS, dT, V] = [6, 8, 10, 13];
    const [alpha, beta, gamma, tau] = [0.8, 1, 0.5, 2];
    const labels = Int32Array.from([3, -100, 7, 0, 12, -100]);
    const g = new Graph();
    const p = params(
      g,
      gp,
      {
        x: { shape: [rows, dS], scale: 1, trainable: false },
        w1: { shape: [dS, dS] },
        out: { shape: [V, dS] },
        proj: { shape: [dT, dS] },
        teacherIn: { shape: [rows, dT], scale: 1, trainable: false },
        teacherOut: { shape: [V, dT], trainable: false },
      },
      90,
    );
    const P = (n: string) => p.graph.get(n)!;
    const targets = g.input([rows], 'i32', 'labels');
    // Teacher (frozen): its hidden state and logits; the student learns from both.
    const teacherLogits = linear(g, P('teacherIn'), P('teacherOut'), null, { label: 'teacher logits' });
    const h = gelu(g, linear(g, P('x'), P('w1'), null, { label: 'student hidden' }));
    const logits = linear(g, h, P('out'), null, { label: 'student logits' });
    const roots = [
      crossEntropyLoss(g, logits, targets, { weight: alpha }),
      klDivergenceLoss(g, logits, teacherLogits, { tau, mask: targets, weight: beta }),
      mseLossOp(g, linear(g, h, P('proj'), null, { label: 'projection' }), P('teacherIn'), { mask: targets, weight: gamma }),
    ];
    const grads = backward(g, roots);
    expect([...grads.keys()].map((t) => t.label).sort()).toEqual(['out', 'proj', 'w1']);
    const step = await compileGraph(gp, g);
    step.write(targets, labels);
    await step.run();

    const valid = Array.from(labels, (l): number => (l === -100 ? 0 : 1));
    const count = valid.reduce((a, b) => a + b, 0);
    const rowMask = tf.tensor(valid, [rows, 1]);
    const onehot = tf.mul(tf.oneHot(tf.tensor1d(Array.from(labels, (l) => Math.max(l, 0)), 'int32'), V), rowMask);
    const x = tf.tensor(p.host.get('x')!, [rows, dS]);
    const teacherIn = tf.tensor(p.host.get('teacherIn')!, [rows, dT]);
    const zT = tfLinear(tf, teacherIn, tf.tensor(p.host.get('teacherOut')!, [V, dT]));
    const terms = (w1: tfTypes.Tensor, out: tfTypes.Tensor, proj: tfTypes.Tensor) => {
      const hh = tfGelu(tf, tfLinear(tf, x, w1));
      const z = tfLinear(tf, hh, out);
      const ce = tf.div(tf.neg(tf.sum(tf.mul(tf.logSoftmax(z), onehot))), count);
      const logPT = tf.logSoftmax(tf.div(zT, tau));
      const kl = tf.mul(tf.div(tf.sum(tf.mul(rowMask, tf.sum(tf.mul(tf.exp(logPT), tf.sub(logPT, tf.logSoftmax(tf.div(z, tau)))), -1, true))), count), tau * tau);
      const mse = tf.div(tf.sum(tf.mul(rowMask, tf.square(tf.sub(tfLinear(tf, hh, proj), teacherIn)))), count * dT);
      return [ce, kl, mse] as tfTypes.Scalar[];
    };
    const names = ['w1', 'out', 'proj'];
    const inputs = names.map((n) => tf.tensor(p.host.get(n)!, P(n).shape as number[]));
    const total = (...w: tfTypes.Tensor[]) => {
      const [ce, kl, mse] = terms(w[0]!, w[1]!, w[2]!);
      return tf.addN([tf.mul(ce!, alpha), tf.mul(kl!, beta), tf.mul(mse!, gamma)]) as tfTypes.Scalar;
    };
    const { grads: tfGrads } = tf.valueAndGrads(total)(inputs);
    // Each loss reports its own unweighted mean.
    const values = terms(inputs[0]!, inputs[1]!, inputs[2]!).map((t) => t.dataSync()[0]!);
    expectClose(await step.readScalars(roots), values, { atol: 0, rtol: 1e-5 }, 'CE, KL, MSE');
    for (const [i, n] of names.entries()) expectGradsClose(await step.read(grads.get(P(n))!), tfGrads[i]!.dataSync(), `d${n}`);
    step.destroy();
    p.free();
  });

  describe('fake-quantized linear (int4 per output channel, scales from the weight each step)', () => {
    const [rows, inF, outF] = [9, 12, 7];
    const bits = 4;
    const qmax = 2 ** (bits - 1) - 1;
    /** GPU gradients of x, w, b and TF.js's with respect to x, the fake-quantized weight and b. */
    const run = async () => {
      const gp = gpu();
      const tf = await tfCpu();
      const g = new Graph();
      const p = params(g, gp, { x: { shape: [rows, inF], scale: 1 }, w: { shape: [outF, inF] }, b: { shape: [outF] }, t: { shape: [rows, outF], trainable: false } }, 70);
      const P = (n: string) => p.graph.get(n)!;
      const y = linear(g, P('x'), P('w'), P('b'), { quant: { scale: fakeQuantScales(g, P('w'), bits), bits } });
      const loss = mseLossOp(g, y, P('t'));
      const grads = backward(g, [loss]);
      const step = await compileGraph(gp, g);
      await step.run();
      // Per-channel absmax scales never clamp, so the straight-through gradient of w is the
      // gradient with respect to the fake-quantized weight w_hat, and x sees w_hat.
      const w = p.host.get('w')!;
      const { q, scales } = quantizeRowsRef(w, outF, inF, qmax);
      const wHat = Float32Array.from(q, (v, i) => v * scales[Math.floor(i / inF)]!);
      expect(maxAbsDiff(wHat, w)).toBeGreaterThan(1e-3);
      const target = tf.tensor(p.host.get('t')!, [rows, outF]);
      const f = (x: tfTypes.Tensor, wq: tfTypes.Tensor, b: tfTypes.Tensor) => tf.mean(tf.square(tf.sub(tfLinear(tf, x, wq, b), target)));
      const { value, grads: tfGrads } = tf.valueAndGrads(f as (...a: tfTypes.Tensor[]) => tfTypes.Scalar)([tf.tensor(p.host.get('x')!, [rows, inF]), tf.tensor(wHat, [outF, inF]), tf.tensor(p.host.get('b')!, [outF])]);
      const out = {
        loss: await step.read(loss),
        refLoss: value.dataSync(),
        ours: await Promise.all(['x', 'w', 'b'].map((n) => step.read(grads.get(P(n))!))),
        ref: tfGrads.map((t) => t.dataSync() as Float32Array),
        // Where f32 |w / s| lands above qmax although w is its row's absmax (s = fround(max / qmax)).
        boundary: Array.from(w, (v, i) => Math.abs(Math.fround(v / scales[Math.floor(i / inF)]!)) > qmax),
      };
      step.destroy();
      p.free();
      return out;
    };

    it('forward and straight-through gradients match TF.js on the quantized weight', async () => {
      const r = await run();
      expectClose(r.loss, r.refLoss, { atol: 0, rtol: 1e-5 }, 'loss');
      expectGradsClose(r.ours[0]!, r.ref[0]!, 'dx');
      expectGradsClose(r.ours[2]!, r.ref[2]!, 'db');
      // The kernel's mask passes |w / s| <= qmax in f32; rows whose absmax lands just above
      // qmax are the known boundary case below.
      expect(r.boundary.filter(Boolean).length).toBeLessThan(outF);
      const keep = (x: Float32Array) => x.filter((_, i) => !r.boundary[i]);
      expectGradsClose(keep(r.ours[1]!), keep(r.ref[1]!), 'dw');
    });

    // Where f32 w / s lands a rounding step above qmax, the mask must test round(w / s) as
    // PyTorch's fake_quantize does, or the absmax element loses its gradient.
    it('gives each row\'s absmax element its gradient even where f32 w / s rounds above qmax', async () => {
      const r = await run();
      expect(r.boundary.some(Boolean)).toBe(true);
      expectGradsClose(r.ours[1]!, r.ref[1]!, 'dw');
    });
  });

  // A table both looked up and used as a linear weight (Whisper's tied token embedding), fake-
  // quantized by both ops with one scales tensor. The scales are given, odd rows at 0.6 of the
  // max-scaled value so their largest entries clip and the straight-through mask matters; with
  // `accumulate` the gradient already holds an unmasked value, so each use's contribution must
  // be masked on its own before it is added (the linear's through a scratch tensor, the lookup's
  // in its kernel).
  it('tied fake-quantized table (lookup + linear, shared clipping scales), accumulated: straight-through gradient matches TF.js', async () => {
    const gp = gpu();
    const tf = await tfCpu();
    const [V, C, bits] = [11, 6, 4];
    const qmax = 2 ** (bits - 1) - 1;
    const tokens = Int32Array.from([3, 0, 7, 3, 10, 2, 7, 3, 5]);
    const N = tokens.length;
    const g = new Graph();
    const p = params(g, gp, { w: { shape: [V, C] }, t: { shape: [N, V], trainable: false } }, 85);
    const w = p.host.get('w')!;
    const scalesHost = Float32Array.from({ length: V }, (_, r) => (Math.max(...Array.from(w.subarray(r * C, (r + 1) * C), Math.abs)) / qmax) * (r % 2 ? 0.6 : 1));
    const scalesT = gp.upload(scalesHost, [V], 'f32', 'scales');
    const quant = { scale: g.external(scalesT), bits };
    const ids = g.input([N], 'i32', 'ids');
    const x = embedding(g, ids, p.graph.get('w')!, { quant, label: 'lookup' });
    const loss = mseLossOp(g, linear(g, x, p.graph.get('w')!, null, { quant, label: 'tied linear' }), p.graph.get('t')!);
    const grads = backward(g, [loss], { accumulate: true });
    const step = await compileGraph(gp, g);
    const before = randomArray(V * C, 86);
    step.write(ids, tokens);
    step.write(grads.get(p.graph.get('w')!)!, before);
    await step.run();

    // TF.js: w_hat = fake_quant(w) with the given scales, gradient dy * [|round(w / s)| <= qmax].
    const s = tf.tensor(scalesHost, [V, 1]);
    const inside = tf.lessEqual(tf.abs(tf.round(tf.div(tf.tensor(w, [V, C]), s))), qmax);
    const fakeQuant = tf.customGrad((...inputs: (tfTypes.Tensor | tfTypes.GradSaveFunc)[]) => {
      const t = inputs[0] as tfTypes.Tensor;
      return { value: tf.mul(tf.clipByValue(tf.round(tf.div(t, s)), -qmax, qmax), s), gradFunc: (dy: tfTypes.Tensor) => tf.mul(dy, tf.cast(inside, 'float32')) };
    });
    const target = tf.tensor(p.host.get('t')!, [N, V]);
    const f = (t: tfTypes.Tensor) => {
      const wHat = fakeQuant(t);
      return tf.mean(tf.square(tf.sub(tfLinear(tf, tf.gather(wHat, tf.tensor1d(tokens, 'int32')), wHat), target))) as tfTypes.Scalar;
    };
    const { value, grad } = tf.valueAndGrad(f)(tf.tensor(w, [V, C]));
    expectClose(await step.read(loss), value.dataSync(), { atol: 0, rtol: 1e-5 }, 'loss');
    const refGrad = grad.dataSync();
    // The mask zeroes entries the lookup or the linear would otherwise give gradient.
    expect(Array.from(inside.dataSync()).filter((v) => !v).length).toBeGreaterThan(0);
    expectGradsClose(Float32Array.from(await step.read(grads.get(p.graph.get('w')!)!), (v, i) => v - before[i]!), refGrad, 'dw (after subtracting what it held)');
    step.destroy();
    p.free();
    gp.free(scalesT);
  });

  it('refuses a node without a gradient rule on the gradient path, naming it', () => {
    const g = new Graph();
    const fakeParam = { buffer: null as unknown as GPUBuffer, offset: 0, dtype: 'f32' as const, shape: [4], label: 'w' };
    const w = g.external(fakeParam, { trainable: true });
    const y = g.temp([4], 'y', [w]);
    g.add({ name: 'mystery', label: 'no rule', reads: [w], writes: [y], record: () => {} });
    expect(() => backward(g, [y])).toThrow(ShapeError);
    expect(() => backward(g, [y])).toThrow(/mystery \(no rule\) has no gradient rule/);
  });
});

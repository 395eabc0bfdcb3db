// Learnable fake-quant scales of a linear layer (LSQ, Esser et al. 2020) against central finite
// differences in float64. LSQ's gradients are the exact gradients of its straight-through
// surrogate: round() passes its input's change through, so around (w0, s0) each weight's
// fake-quantized value is w + s * (round(v0) - v0) where the clamp does not saturate (v0 = w0 / s0)
// and s * clamp(round(v0)) where it does. The surrogate equals the fake quantization at (w0, s0),
// and is smooth there, so its finite differences are the reference.
import { describe, expect, it } from 'vitest';
import { backward } from '../../src/graph/autodiff.js';
import { compileGraph } from '../../src/graph/compile.js';
import { Graph } from '../../src/graph/graph.js';
import { mseLossOp } from '../../src/graph/losses.js';
import { linear } from '../../src/graph/ops.js';
import { expectClose, finiteDifference, randomArray, useGpu } from '../helpers.js';

const gpu = useGpu();

describe('linear with learnable weight scales (LSQ)', () => {
  it('scale, weight, input and bias gradients (added to what the gradients held) match finite differences of the float64 surrogate; clipped weights get no gradient', async () => {
    const gp = gpu();
    const [rows, inF, outF, bits] = [5, 12, 6, 4];
    const qmax = 2 ** (bits - 1) - 1;
    const x = randomArray(rows * inF, 1, 1);
    const w = randomArray(outF * inF, 2, 0.5);
    const b = randomArray(outF, 3, 0.1);
    const t = randomArray(rows * outF, 4, 1);
    // Max scaling on even rows; odd rows at 0.6 of it, so their largest weights clip.
    const s = Float32Array.from({ length: outF }, (_, r) => (Math.max(...Array.from(w.subarray(r * inF, (r + 1) * inF), Math.abs)) / qmax) * (r % 2 ? 0.6 : 1));
    const g = new Graph();
    const uploads = { x, w, b, s, t };
    const shapes = { x: [rows, inF], w: [outF, inF], b: [outF], s: [outF], t: [rows, outF] };
    const tensors = Object.fromEntries(Object.entries(uploads).map(([k, v]) => [k, gp.upload(v, shapes[k as keyof typeof shapes], 'f32', k)]));
    const P = Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k, g.external(v, { trainable: k !== 't' })]));
    const loss = mseLossOp(g, linear(g, P.x!, P.w!, P.b!, { quant: { scale: P.s!, bits } }), P.t!);
    const grads = backward(g, [loss], { accumulate: true });
    const step = await compileGraph(gp, g);
    const held = Object.fromEntries(['x', 'w', 'b', 's'].map((k, i) => [k, randomArray(uploads[k as keyof typeof uploads].length, 10 + i)]));
    for (const k of Object.keys(held)) step.write(grads.get(P[k]!)!, held[k]!);
    await step.run();
    const ours = async (k: string) => Float32Array.from(await step.read(grads.get(P[k]!)!), (v, i) => v - held[k]![i]!);

    // The surrogate around (w, s), its pieces fixed by the f32 quotient the kernels compute.
    const v0 = Float32Array.from(w, (wv, i) => wv / s[Math.floor(i / inF)]!);
    const inside = Array.from(v0, (v) => Math.abs(Math.round(v)) <= qmax);
    expect(inside.filter((ok) => !ok).length).toBeGreaterThan(0);
    const lossOf = (xv: ArrayLike<number>, wv: ArrayLike<number>, bv: ArrayLike<number>, sv: ArrayLike<number>): number => {
      let sum = 0;
      for (let r = 0; r < rows; r++) {
        for (let o = 0; o < outF; o++) {
          let y = bv[o]!;
          for (let k = 0; k < inF; k++) {
            const i = o * inF + k;
            const q = Math.round(v0[i]!);
            const wHat = inside[i] ? wv[i]! + sv[o]! * (q - v0[i]!) : sv[o]! * Math.max(-qmax, Math.min(qmax, q));
            y += xv[r * inF + k]! * wHat;
          }
          sum += (y - t[r * outF + o]!) ** 2;
        }
      }
      return sum / (rows * outF);
    };
    expectClose(await step.read(loss), [lossOf(x, w, b, s)], { atol: 0, rtol: 1e-5 }, 'loss');
    const fd = {
      x: finiteDifference((v) => lossOf(v, w, b, s), x, 1e-4),
      w: finiteDifference((v) => lossOf(x, v, b, s), w, 1e-4),
      b: finiteDifference((v) => lossOf(x, w, v, s), b, 1e-4),
      s: finiteDifference((v) => lossOf(x, w, b, v), s, 1e-5),
    };
    // LSQ's gradient scale g = 1 / sqrt(in * qmax) multiplies the scales' gradient.
    const lsqFactor = 1 / Math.sqrt(inF * qmax);
    const expected = { ...fd, s: fd.s.map((v) => v * lsqFactor) };
    for (const k of ['x', 'w', 'b', 's'] as const) {
      const got = await ours(k);
      const scale = Math.max(...Array.from(expected[k], Math.abs));
      expect(scale).toBeGreaterThan(0);
      // f32 GPU sums against float64: measured <= 6.2e-7 of each gradient's largest entry (ds 9e-8); 1e-4 catches a missing term.
      expectClose(got, expected[k], { atol: 1e-4 * scale, rtol: 0 }, `d${k}`);
      if (k === 'w') expect(Array.from(got).filter((v, i) => !inside[i] && v !== 0)).toEqual([]);
    }
    step.destroy();
    gp.free(...Object.values(tensors));
  });
});

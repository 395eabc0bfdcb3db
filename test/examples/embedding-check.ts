// Checks of the embedding example's outputs against the float64 references of test/ref, shared
// by the Node run (node-embedding.test.ts) and the browser run (test/web/page.test.ts).
import { expect } from 'vitest';
import { exampleShapes, type ExampleInputs } from '../../examples/embedding-kernels.js';
import { expectClose } from '../helpers.js';
import { attentionRef, toHeadMajor, toTokenMajor } from '../ref/attention.js';
import { crossEntropyRef } from '../ref/losses.js';
import { fakeQuantLinearRef, quantizeRowsRef } from '../ref/quant.js';

/** The outputs as numbers (typed arrays under Node, plain arrays from the page's JSON). */
export interface OutputsLike {
  attention: { out: ArrayLike<number>; lse: ArrayLike<number> };
  int8: { y: ArrayLike<number>; xScales: ArrayLike<number>; wScales: ArrayLike<number> };
  loss: { rowLoss: ArrayLike<number>; mean: number; validRows: number; grad: ArrayLike<number> };
}

export function expectMatchesReferences(inputs: ExampleInputs, got: OutputsLike): void {
  const { attention: a, int8: m, loss: l } = exampleShapes;

  // Attention: inputs token-major, the reference head-major. Tolerances as test/kernels/attention.
  const headMajor = (x: Float32Array, L: number) => toHeadMajor(x, a.B, a.H, L, a.D);
  const attn = attentionRef(headMajor(inputs.q, a.Lq), headMajor(inputs.k, a.Lk), headMajor(inputs.v, a.Lk), a, 1 / Math.sqrt(a.D), { causal: true });
  expectClose(got.attention.out, toTokenMajor(attn.out, a.B, a.H, a.Lq, a.D), { atol: 2e-5, rtol: 1e-4 }, 'attention out');
  expectClose(got.attention.lse, attn.lse, { atol: 1e-5, rtol: 1e-6 }, 'attention lse');

  // Int8: scales are exact (f32 arithmetic emulated by the reference); y within f32 rounding of
  // the float64 fake-quant product, 1e-6 of the magnitude of its terms (test/kernels/int8).
  const xq = quantizeRowsRef(inputs.x, m.M, m.K, 127);
  const wq = quantizeRowsRef(inputs.w, m.N, m.K, 127);
  expect(Array.from(got.int8.xScales)).toEqual(Array.from(xq.scales));
  expect(Array.from(got.int8.wScales)).toEqual(Array.from(wq.scales));
  const lin = fakeQuantLinearRef(xq.q, xq.scales, wq.q, wq.scales, m, { bias: inputs.bias });
  const bound = Float64Array.from(lin.magnitude, (mag) => 1e-6 * mag + 1e-7);
  const excess = Array.from(got.int8.y, (y, i) => Math.abs(y - lin.y[i]!) - bound[i]!);
  expect(Math.max(...excess), 'int8 y: largest |error| beyond 1e-6 * magnitude + 1e-7').toBeLessThanOrEqual(0);

  // Cross-entropy with one ignored row. Tolerances as test/kernels/losses.
  const ce = crossEntropyRef(inputs.logits, inputs.targets, l.rows, l.vocab);
  expect(got.loss.validRows).toBe(ce.count);
  expectClose(got.loss.rowLoss, ce.rowLoss, { atol: 2e-5, rtol: 2e-6 }, 'row losses');
  expectClose([got.loss.mean], [ce.mean], { atol: 2e-5, rtol: 2e-6 }, 'mean loss');
  expectClose(got.loss.grad, ce.grad, { atol: 1e-7, rtol: 1e-5 }, 'dlogits');
}

import { afterAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { compileGraph } from '../../src/graph/compile.js';
import { Graph } from '../../src/graph/graph.js';
import { int8Embedding, int8Linear, linear, type QuantizedGraphWeight } from '../../src/graph/ops.js';
import { packedWords } from '../../src/kernels/int8.js';
import { dequantizeWeight, packForInt8Kernels, quantizeWeight } from '../../src/quant/weights.js';
import { expectClose, randomArray, useGpu } from '../helpers.js';
import { fakeQuantLinearRef, quantizeRowsRef } from '../ref/quant.js';

// The graph ops of int8 inference with dot4I8Packed (where the device has it; lavapipe's default
// is the core-WGSL path, measured faster there) and on a device with it switched off.
const deviceGpu = useGpu();
const devices: [string, () => Gpu][] = [
  ['dot4I8Packed where available', () => Object.assign(deviceGpu(), { int8Dot: 'dot4I8Packed' as const })],
  ['core-WGSL fallback', useGpu({ disable: { dot4I8Packed: true } })],
];

const measured: Record<string, number> = {};
afterAll(() => console.log('int8 ops measured max error (|err| / (|x_hat W_hat^T| + |bias|)):', measured));

/** A weight quantized on the host and uploaded in the kernels' layout, bound on `g`. */
function uploadWeight(gpu: Gpu, g: Graph, w: Float32Array, N: number, K: number, bits: number) {
  const qw = quantizeWeight(w, N, K, { bits });
  const { packed, scales } = packForInt8Kernels(qw);
  const graphWeight: QuantizedGraphWeight = {
    packed: g.external(gpu.upload(packed, [N, packedWords(K)], 'u32', 'w int8')),
    scales: g.external(gpu.upload(scales, [N], 'f32', 'w scales')),
    cols: K,
  };
  return { qw, graphWeight };
}

describe('int8 graph ops', () => {
  // Odd sizes: K not a multiple of 4 (padded words), N past one 64-column tile, M past 8-row tiles, 3-D input.
  const cases = [
    { name: '[2, 5, 37] x [70, 37]^T + bias', lead: [2, 5], K: 37, N: 70, bits: 8, bias: true, gelu: false },
    { name: '[13, 130] x [9, 130]^T + bias -> GELU', lead: [13], K: 130, N: 9, bits: 8, bias: true, gelu: true },
    { name: '[3, 66] x [129, 66]^T, 4-bit weight, no bias', lead: [3], K: 66, N: 129, bits: 4, bias: false, gelu: false },
  ];
  for (const [device, gpu] of devices) {
    for (const c of cases) {
      it(`${device}: int8Linear ${c.name} equals the float64 quantize -> int dot -> rescale reference`, async () => {
        const M = c.lead.reduce((a, b) => a * b, 1);
        const x = randomArray(M * c.K, 3 + c.K, 2);
        // A zero row (scale 1, all q = 0) and a row with one large outlier.
        x.fill(0, 0, c.K);
        x[c.K + 1] = 40;
        const w = randomArray(c.N * c.K, 7 + c.N, 0.3);
        const bias = c.bias ? randomArray(c.N, 11, 0.5) : null;
        const g = new Graph();
        const xIn = g.input([...c.lead, c.K], 'f32', 'x');
        const { qw, graphWeight } = uploadWeight(gpu(), g, w, c.N, c.K, c.bits);
        const b = bias ? g.external(gpu().upload(bias, [c.N], 'f32', 'bias')) : null;
        const y = g.keep(int8Linear(g, xIn, graphWeight, b, { gelu: c.gelu, label: c.name }));
        expect(y.shape).toEqual([...c.lead, c.N]);
        const compiled = await compileGraph(gpu(), g);
        compiled.write(xIn, x);
        await compiled.run();
        const got = await compiled.read(y);
        compiled.destroy();

        // Activations per row at 8 bits, exactly as the kernels' f32 arithmetic; the rest in float64.
        const xq = quantizeRowsRef(x, M, c.K, 127);
        const ref = fakeQuantLinearRef(xq.q, xq.scales, qw.q, qw.scales, { M, N: c.N, K: c.K }, { bias: bias ?? undefined, gelu: c.gelu });
        // f32 rescaling of an exact integer sum: a few ulps of |x_hat W_hat^T| + |bias| (GELU's
        // erf adds ~1e-7 of its input); an off-by-one quantized value would be ~1e-2.
        let worst = 0;
        for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - ref.y[i]!) / (ref.magnitude[i]! + 1e-30));
        measured[`${device} ${c.name}`] = worst;
        expect(worst).toBeLessThan(1e-6);
        // The zero row gives exactly the bias (or GELU of it, or 0).
        expectClose(got.subarray(0, c.N), ref.y.subarray(0, c.N), { atol: 1e-7, rtol: 1e-6 }, 'zero row');
      });
    }

    it(`${device}: int8Embedding looks up dequantized rows bit for bit; ids outside the table give zero rows`, async () => {
      const V = 23;
      const C = 42;
      const table = randomArray(V * C, 5, 1);
      table.fill(0, 4 * C, 5 * C); // an all-zero row
      const qw = quantizeWeight(table, V, C, { bits: 8 });
      const { packed, scales } = packForInt8Kernels(qw);
      const g = new Graph();
      const ids = g.input([2, 4], 'i32', 'ids');
      const out = g.keep(int8Embedding(g, ids, {
        packed: g.external(gpu().upload(packed, [V, packedWords(C)], 'u32', 'table int8')),
        scales: g.external(gpu().upload(scales, [V], 'f32', 'table scales')),
        cols: C,
      }));
      const compiled = await compileGraph(gpu(), g);
      const idValues = [0, 22, 4, 7, 7, -1, 23, 13];
      compiled.write(ids, Int32Array.from(idValues));
      await compiled.run();
      const got = await compiled.read(out);
      compiled.destroy();
      const rows = dequantizeWeight(qw);
      const expected = new Float32Array(idValues.length * C);
      idValues.forEach((id, n) => {
        if (id >= 0 && id < V) expected.set(rows.subarray(id * C, (id + 1) * C), n * C);
      });
      expect(Array.from(got)).toEqual(Array.from(expected));
    });
  }

  it('refuses gradients and mismatched shapes with ShapeError naming the layer', () => {
    const g = new Graph();
    const weight: QuantizedGraphWeight = { packed: g.input([6, 3], 'u32', 'w int8'), scales: g.input([6], 'f32', 'w scales'), cols: 10 };
    const trainable = g.external({ shape: [4, 10], dtype: 'f32', label: 'x' }, { trainable: true });
    expect(() => int8Linear(g, trainable, weight, null, { label: 'fc1' })).toThrow(ShapeError);
    expect(() => int8Linear(g, trainable, weight, null, { label: 'fc1' })).toThrow(/int8Linear \(fc1\): int8 layers are inference only/);
    const x = g.input([4, 12], 'f32', 'x12');
    expect(() => int8Linear(g, x, weight, null, { label: 'fc2' })).toThrow(/int8Linear \(fc2\): weight .* must hold \[out, 12\]/);
    const x10 = g.input([4, 10], 'f32', 'x10');
    // The float simulation of int8 activations (linear's quantInput, trainable since activation
    // QAT) needs one scale per input row.
    const w = g.external({ shape: [6, 10], dtype: 'f32', label: 'w' });
    expect(() => linear(g, x10, w, null, { quantInput: { scale: g.input([3], 'f32', 'scales') }, label: 'fq' })).toThrow(/linear \(fq\) input scales/);
    expect(() => int8Linear(g, x10, weight, g.input([5], 'f32', 'b'), { label: 'fc3' })).toThrow(/int8Linear \(fc3\).*\[6\]/);
  });
});

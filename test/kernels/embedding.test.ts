import { describe, expect, it } from 'vitest';
import type * as tfTypes from '@tensorflow/tfjs-core';
import { embedding, embeddingBackward, validateIds } from '../../src/kernels/embedding.js';
import { f16BitsToNumber, numberToF16Bits } from '../../src/gpu/gpu.js';
import { ShapeError } from '../../src/errors.js';
import { expectClose, finiteDifference, maxAbsDiff, randomArray, useGpu } from '../helpers.js';
import { embeddingGradRef, embeddingRef } from '../ref/elementwise.js';
import { fakeQuantRef, roundHalfEven, steMaskRef } from '../ref/matmul.js';
import { tfCpu } from '../ref/tf.js';

const gpu = useGpu();
// Gathers copy values exactly.
const exact = { atol: 0, rtol: 0 };
// A scatter-add sums at most a handful of f32 values: a few ulps.
const sumTol = { atol: 1e-6, rtol: 1e-6 };

describe('embedding gather', () => {
  it('copies rows for i32 ids of shape [2, 5] with repeats (odd C)', async () => {
    const g = gpu();
    const [V, C] = [13, 11];
    const ids = [3, 0, 12, 3, 7, 7, 1, 3, 12, 5];
    const tableHost = randomArray(V * C, 71);
    const out = g.empty([2, 5, C], 'f32', 'out');
    await g.run((rec) => embedding(rec, g.upload(ids, [2, 5], 'i32', 'ids'), g.upload(tableHost, [V, C], 'f32', 'table'), out));
    expectClose(await g.readF32(out), embeddingRef(ids, tableHost, V, C), exact);
  });

  it('writes zero rows for out-of-range ids (i32 negative / too large, u32 huge)', async () => {
    const g = gpu();
    const [V, C] = [6, 8];
    const tableHost = randomArray(V * C, 72);
    const table = g.upload(tableHost, [V, C], 'f32', 'table');
    const i32Ids = [2, -1, 6, 5, -2147483648, 0];
    const u32Ids = [4, 6, 0xffffffff, 0x80000000, 1, 5];
    const outI = g.upload(new Float32Array(6 * C).fill(9), [6, C]);
    const outU = g.upload(new Float32Array(6 * C).fill(9), [6, C]);
    await g.run((rec) => {
      embedding(rec, g.upload(i32Ids, [6], 'i32'), table, outI);
      embedding(rec, g.upload(u32Ids, [6], 'u32'), table, outU);
    });
    // The reference treats anything outside [0, V) as a zero row.
    expectClose(await g.readF32(outI), embeddingRef(i32Ids, tableHost, V, C), exact, 'i32 ids');
    expectClose(await g.readF32(outU), embeddingRef(u32Ids, tableHost, V, C), exact, 'u32 ids');
  });

  it('covers more than 65535 positions (grid folded into z)', async () => {
    const g = gpu();
    const [V, C, N] = [7, 3, 65537];
    const ids = Int32Array.from({ length: N }, (_, i) => (i * 5) % V);
    const tableHost = randomArray(V * C, 73);
    const out = g.empty([N, C]);
    await g.run((rec) => embedding(rec, g.upload(ids, [N], 'i32'), g.upload(tableHost, [V, C]), out));
    expectClose(await g.readF32(out), embeddingRef(ids, tableHost, V, C), exact);
  });

  it('f16 table variant widens to f32', async (ctx) => {
    const g = gpu();
    if (!g.features.shaderF16) ctx.skip();
    const [V, C] = [9, 5];
    const tableHost = randomArray(V * C, 74).map((v) => f16BitsToNumber(numberToF16Bits(v)));
    const ids = [8, 0, 4, 4];
    const out = g.empty([4, C]);
    await g.run((rec) => embedding(rec, g.upload(ids, [4], 'u32'), g.upload(tableHost, [V, C], 'f16'), out));
    expectClose(await g.readF32(out), embeddingRef(ids, tableHost, V, C), exact);
  });

  it('matches TF.js gather', async () => {
    const g = gpu();
    const tf = await tfCpu();
    const [V, C] = [17, 6];
    const ids = [16, 2, 2, 9, 0];
    const tableHost = randomArray(V * C, 75);
    const out = g.empty([5, C]);
    await g.run((rec) => embedding(rec, g.upload(ids, [5], 'i32'), g.upload(tableHost, [V, C]), out));
    expectClose(await g.readF32(out), await tf.gather(tf.tensor2d(tableHost, [V, C]), tf.tensor1d(ids, 'int32')).data(), exact);
  });
});

describe('embedding backward (scatter-add)', () => {
  it('sums repeated ids vs float64 reference, finite differences and TF.js', async () => {
    const g = gpu();
    const tf = await tfCpu();
    const [V, C] = [10, 13];
    // Id 4 three times, 9 twice, some rows never used.
    const ids = [4, 9, 0, 4, 2, 9, 4, 7];
    const N = ids.length;
    const tableHost = randomArray(V * C, 81);
    const gyHost = randomArray(N * C, 82);
    // Stale values to prove non-accumulating mode clears the rows no id touches.
    const gt = g.upload(new Float32Array(V * C).fill(5), [V, C], 'f32', 'gradTable');
    await g.run((rec) => embeddingBackward(rec, g.upload(ids, [2, 4], 'i32', 'ids'), g.upload(gyHost, [2, 4, C], 'f32', 'gy'), gt));
    const got = await g.readF32(gt);
    expectClose(got, embeddingGradRef(ids, gyHost, V, C), sumTol, 'vs reference');
    const loss = (t: ArrayLike<number>) => embeddingRef(ids, t, V, C).reduce((s, v, i) => s + v * gyHost[i]!, 0);
    // Linear loss: central differences are exact up to float64 rounding.
    expectClose(got, finiteDifference(loss, tableHost), sumTol, 'vs finite differences');
    const tfGrad = tf.grad((t: tfTypes.Tensor) => tf.sum(tf.mul(tf.gather(t, tf.tensor1d(ids, 'int32')), tf.tensor2d(gyHost, [N, C]))))(tf.tensor2d(tableHost, [V, C]));
    expectClose(got, await tfGrad.data(), sumTol, 'vs TF.js');
  });

  it('accumulates into existing gradients and drops out-of-range ids (u32 ids, vec-unfriendly C)', async () => {
    const g = gpu();
    const [V, C] = [5, 7];
    const ids = [1, 5, 1, 0xffffffff, 4, 1];
    const gyHost = randomArray(ids.length * C, 83);
    const init = randomArray(V * C, 84);
    const gt = g.upload(init, [V, C]);
    await g.run((rec) => embeddingBackward(rec, g.upload(ids, [ids.length], 'u32'), g.upload(gyHost, [ids.length, C]), gt, { accumulate: true }));
    const ref = embeddingGradRef(ids, gyHost, V, C).map((v, i) => v + init[i]!);
    expectClose(await g.readF32(gt), ref, sumTol);
  });

  it('Whisper-like 448 positions into a [1000, 64] table with many repeats', async () => {
    const g = gpu();
    const [V, C, N] = [1000, 64, 448];
    // Ids cluster on 40 values so most rows are hit ~11 times.
    const ids = Int32Array.from({ length: N }, (_, i) => ((i * 7919) % 40) * 23);
    const gyHost = randomArray(N * C, 85);
    const gt = g.empty([V, C]);
    await g.run((rec) => embeddingBackward(rec, g.upload(ids, [1, N], 'i32'), g.upload(gyHost, [1, N, C]), gt));
    expectClose(await g.readF32(gt), embeddingGradRef(ids, gyHost, V, C), { atol: 2e-6, rtol: 2e-6 });
  });
});

/**
 * A [V, C] table and per-row scales exercising every path of the fake quantization: random rows
 * with max-scaled scales max|row| / qmax (f32, as rowScales gives), row 1 all zeros with scale 0
 * (an int8 export's all-zero row), row 2 all zeros with scale 1 (rowScales' all-zero row), row 3
 * with half the max-scaled scale (its large values clamp), row 4 on exact ties k + 0.5 of s = 0.25
 * (round half to even differs from half away from zero there).
 */
function quantTable(V: number, C: number, qmax: number, seed: number): { table: Float32Array; scales: Float32Array } {
  const table = randomArray(V * C, seed);
  table.fill(0, C, 3 * C);
  for (let c = 0; c < C; c++) table[4 * C + c] = (c - (C >> 1) + 0.5) * 0.25;
  const scales = Float32Array.from({ length: V }, (_, r) => {
    const max = Math.max(...Array.from(table.subarray(r * C, (r + 1) * C), Math.abs));
    return r === 1 ? 0 : r === 2 ? 1 : r === 3 ? max / qmax / 2 : r === 4 ? 0.25 : max / qmax;
  });
  return { table, scales };
}

describe('embedding with fake-quantized rows (QUANT)', () => {
  // Each output is q * s with q an integer <= qmax: the f32 product is within half an ulp of the
  // float64 one, so 1.2e-7 relative (and 0 absolute: zero rows must be exactly 0).
  const quantTol = { atol: 0, rtol: 1.2e-7 };
  for (const bits of [4, 8]) {
    it(`gathers fake_quant(table[id], scale[id]) at ${bits} bits: repeats, all-zero rows, clamped row, ties (odd C)`, async () => {
      const g = gpu();
      const [V, C] = [11, 13];
      const qmax = 2 ** (bits - 1) - 1;
      const { table, scales } = quantTable(V, C, qmax, 90 + bits);
      const ids = [3, 1, 10, 4, 2, 3, 0, 7, 7, 4, 9, 3, 5];
      const out = g.empty([ids.length, C], 'f32', 'out');
      await g.run((rec) =>
        embedding(rec, g.upload(ids, [ids.length], 'i32', 'ids'), g.upload(table, [V, C], 'f32', 'table'), out, { quant: { scale: g.upload(scales, [V], 'f32', 'scales'), bits } }),
      );
      const got = await g.readF32(out);
      const tableHat = fakeQuantRef(table, scales, C, qmax);
      const expected = embeddingRef(ids, tableHat, V, C);
      expectClose(got, expected, quantTol, `${bits} bits`);
      expect(got.every(Number.isFinite)).toBe(true);
      // The quantization must show (or this could not tell fused from plain loads), and the tie
      // row must round half to even: half away from zero gives other values there.
      expect(maxAbsDiff(expected, embeddingRef(ids, table, V, C))).toBeGreaterThan(1e-3);
      const tieRow = Array.from(table.subarray(4 * C, 5 * C));
      expect(tieRow.map((v) => roundHalfEven(v / 0.25))).not.toEqual(tieRow.map((v) => Math.sign(v) * Math.round(Math.abs(v / 0.25))));
      expectClose(got.subarray(3 * C, 4 * C), tieRow.map((v) => roundHalfEven(v / 0.25) * 0.25), { atol: 0, rtol: 0 }, 'tie row');
    });
  }

  it('scatters the straight-through gradient: masked where the forward clamped or the scale is 0, accumulating unmasked into what was there', async () => {
    const g = gpu();
    const [V, C, bits] = [9, 7, 4];
    const qmax = 2 ** (bits - 1) - 1;
    const { table, scales } = quantTable(V, C, qmax, 95);
    // Rows 1-4 (zeros with scale 0 and 1, clamped, ties) each hit, some twice; row 6 never.
    const ids = [3, 1, 8, 2, 3, 0, 4, 5, 1, 7, 3];
    const N = ids.length;
    const gy = randomArray(N * C, 96);
    const init = randomArray(V * C, 97);
    const fresh = g.upload(new Float32Array(V * C).fill(5), [V, C], 'f32', 'fresh grad');
    const accumulated = g.upload(init, [V, C], 'f32', 'accumulated grad');
    await g.run((rec) => {
      const quant = { table: g.upload(table, [V, C], 'f32', 'table'), scale: g.upload(scales, [V], 'f32', 'scales'), bits };
      const idsT = g.upload(ids, [N], 'i32', 'ids');
      const gyT = g.upload(gy, [N, C], 'f32', 'gy');
      embeddingBackward(rec, idsT, gyT, fresh, { quant });
      embeddingBackward(rec, idsT, gyT, accumulated, { quant, accumulate: true });
    });
    const expected = steMaskRef(table, scales, embeddingGradRef(ids, gy, V, C), C, qmax);
    // The mask must zero something beyond the unused rows: the scale-0 row and the clamped row.
    const zeroed = Array.from(expected, (v, i) => v === 0 && embeddingGradRef(ids, gy, V, C)[i] !== 0).filter(Boolean).length;
    expect(zeroed).toBeGreaterThan(C);
    expectClose(await g.readF32(fresh), expected, sumTol, 'fresh');
    expectClose(await g.readF32(accumulated), expected.map((v, i) => v + init[i]!), sumTol, 'accumulated');
  });
});

describe('embedding argument checks', () => {
  it('validateIds names the first bad position', () => {
    expect(() => validateIds(Int32Array.from([0, 5, 51865, -1]), 51865, 'tokens')).toThrow(ShapeError);
    expect(() => validateIds(Int32Array.from([0, 5, 51865, -1]), 51865, 'tokens')).toThrow('tokens: id 51865 at position 2 is outside the vocabulary [0, 51865)');
    expect(() => validateIds(Uint32Array.from([3, 2, 1]), 3)).toThrow(/id 3 at position 0/);
    expect(() => validateIds(Int32Array.from([0, 1, 2]), 3)).not.toThrow();
  });

  it('names the tensors on bad shapes and dtypes', () => {
    const g = gpu();
    const rec = g.record();
    const ids = g.empty([2, 4], 'i32', 'tokens');
    const table = g.empty([10, 6], 'f32', 'token_embedding');
    expect(() => embedding(rec, ids, table, g.empty([8, 6], 'f32', 'x'))).toThrow(/"x" has shape \[8, 6\], expected \[2, 4, 6\]/);
    expect(() => embedding(rec, g.empty([8], 'f32', 'floats'), table, g.empty([8, 6]))).toThrow(/"floats" has dtype f32, expected i32 or u32/);
    expect(() => embedding(rec, ids, g.empty([60], 'f32', 'flat'), g.empty([2, 4, 6]))).toThrow(/"flat" must be \[V, C\]/);
    expect(() => embeddingBackward(rec, ids, g.empty([2, 4, 5], 'f32', 'gy'), g.empty([10, 6], 'f32', 'gt'))).toThrow(/"gy" has shape \[2, 4, 5\], expected \[2, 4, 6\]/);
    expect(() => embedding(rec, ids, table, g.empty([2, 4, 6]), { quant: { scale: g.empty([6], 'f32', 'column scales') } })).toThrow(/"column scales" has shape \[6\], expected \[10\]/);
    expect(() => embedding(rec, ids, table, g.empty([2, 4, 6]), { quant: { scale: g.empty([10]), bits: 1 } })).toThrow(/2\.\.16 bits, got 1/);
    const quant = { table: g.empty([10, 5], 'f32', 'other table'), scale: g.empty([10]) };
    expect(() => embeddingBackward(rec, ids, g.empty([2, 4, 6]), g.empty([10, 6]), { quant })).toThrow(/"other table" has shape \[10, 5\], expected \[10, 6\]/);
  });
});

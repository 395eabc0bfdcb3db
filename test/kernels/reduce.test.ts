import { describe, expect, it } from 'vitest';
import { colSum, partialsSize, rowMax, rowSum, sum, sumSquares } from '../../src/kernels/reduce.js';
import { ShapeError } from '../../src/errors.js';
import { expectClose, randomArray, useGpu } from '../helpers.js';
import { colSumRef, rowReduceRef, sumRef } from '../ref/norm.js';

// Both workgroup-reduction paths: subgroup ops where the device has them, and the plain tree.
const paths = [
  { name: 'subgroups', gpu: useGpu(), subgroups: true },
  { name: 'plain', gpu: useGpu({ disable: { subgroups: true } }), subgroups: false },
];

/** Small integers: every partial sum is exact in f32 (|sum| < 2^24), so results must be exact. */
function integerArray(n: number, seed: number, max: number): Float32Array {
  return randomArray(n, seed).map((v) => Math.round(v * max));
}

function absSum(arrays: readonly ArrayLike<number>[], square = false): number {
  return sumRef(arrays.map((a) => Array.from(a, Math.abs)), square);
}

for (const path of paths) {
  describe(`reductions (${path.name})`, () => {
    const ready = (skip: () => void) => {
      const g = path.gpu();
      if (path.subgroups && !g.features.subgroups) skip();
      expect(g.features.subgroups).toBe(path.subgroups);
      return g;
    };

    it('sum over n = 1,000,003 is exact on integers and close on floats', async (ctx) => {
      const g = ready(() => ctx.skip());
      const n = 1_000_003;
      const ints = integerArray(n, 1, 3);
      const floats = randomArray(n, 2);
      const partials = g.empty([partialsSize([g.empty([n])])], 'f32', 'partials');
      const out = g.empty([2], 'f32', 'out');
      const a = g.upload(ints, [n], 'f32', 'ints');
      const b = g.upload(floats, [n], 'f32', 'floats');
      await g.run((rec) => {
        sum(rec, a, partials, out, { index: 0 });
        sum(rec, b, partials, out, { index: 1 });
      });
      const got = await g.readF32(out);
      expect(got[0]).toBe(sumRef([ints]));
      // Tree summation: |error| <= depth * 2^-24 * sum|x| in the worst case; the depth here is
      // ~21 (4 per invocation, 8 + 8 tree levels, 1 final loop), typically far below the bound.
      expectClose([got[1]!], [sumRef([floats])], { atol: 21 * 2 ** -24 * absSum([floats]), rtol: 0 }, 'float sum');
      g.free(a, b, partials, out);
    });

    it('sumSquares of several odd-sized tensors accumulates into one slot', async (ctx) => {
      const g = ready(() => ctx.skip());
      const sizes = [1, 37, 1000, 70_001, 300_000];
      const ints = sizes.map((n, i) => integerArray(n, 10 + i, 3));
      const floats = sizes.map((n, i) => randomArray(n, 20 + i));
      const intTensors = ints.map((v, i) => g.upload(v, [v.length], 'f32', `int${i}`));
      const floatTensors = floats.map((v, i) => g.upload(v, [v.length], 'f32', `float${i}`));
      const partials = g.empty([partialsSize(intTensors)], 'f32', 'partials');
      const out = g.upload([0, 7, 0.25, 0], [4], 'f32', 'out');
      await g.run((rec) => {
        sumSquares(rec, intTensors, partials, out, { index: 1, accumulate: true });
        sumSquares(rec, floatTensors, partials, out, { index: 2, accumulate: true });
      });
      const got = await g.readF32(out);
      expect(got[0]).toBe(0);
      expect(got[1]).toBe(7 + sumRef(ints, true));
      expectClose([got[2]!], [0.25 + sumRef(floats, true)], { atol: 21 * 2 ** -24 * absSum(floats, true), rtol: 0 }, 'float sum of squares');
      expect(got[3]).toBe(0);
      g.free(...intTensors, ...floatTensors, partials, out);
    });

    // Row reductions add at most ceil(C/256) values per invocation then 8 tree levels.
    for (const [rows, cols] of [
      [5, 37],
      [3, 51_865],
      [7, 256],
      [1, 1],
    ] as const) {
      it(`rowSum and rowMax of [${rows}, ${cols}]`, async (ctx) => {
        const g = ready(() => ctx.skip());
        const xHost = randomArray(rows * cols, rows * 1000 + cols, 4);
        const x = g.upload(xHost, [rows, cols], 'f32', 'x');
        const sums = g.empty([rows], 'f32', 'sums');
        const maxes = g.empty([rows], 'f32', 'maxes');
        await g.run((rec) => {
          rowSum(rec, x, sums);
          rowMax(rec, x, maxes);
        });
        const depth = Math.ceil(cols / 256) + 8;
        expectClose(await g.readF32(sums), rowReduceRef(xHost, rows, cols, 'sum'), { atol: depth * 2 ** -24 * 4 * cols, rtol: 0 }, 'rowSum');
        // max is exact: it only selects.
        expectClose(await g.readF32(maxes), rowReduceRef(xHost, rows, cols, 'max'), { atol: 0, rtol: 0 }, 'rowMax');
        g.free(x, sums, maxes);
      });
    }

    it('row reductions keep leading dims and spread > 65535 rows over a 2-D grid', async (ctx) => {
      const g = ready(() => ctx.skip());
      const [a, b, cols] = [70, 1000, 3];
      const xHost = integerArray(a * b * cols, 31, 50);
      const x = g.upload(xHost, [a, b, cols], 'f32', 'x');
      const sums = g.empty([a, b], 'f32', 'sums');
      await g.run((rec) => rowSum(rec, x, sums));
      expectClose(await g.readF32(sums), rowReduceRef(xHost, a * b, cols, 'sum'), { atol: 0, rtol: 0 }, 'rowSum');
      g.free(x, sums);
    });

    it('colSum over odd shapes, overwriting and accumulating', async (ctx) => {
      const g = ready(() => ctx.skip());
      for (const [rows, cols] of [
        [37, 70],
        [1500, 5],
        [1, 129],
      ] as const) {
        const xHost = randomArray(rows * cols, rows + cols);
        const init = randomArray(cols, 99);
        const x = g.upload(xHost, [rows, cols], 'f32', 'x');
        const fresh = g.empty([cols], 'f32', 'fresh');
        const acc = g.upload(init, [cols], 'f32', 'acc');
        await g.run((rec) => {
          colSum(rec, x, fresh);
          colSum(rec, x, acc, { accumulate: true });
        });
        const ref = colSumRef(xHost, rows, cols);
        // Each lane adds rows/4 values in sequence: error <= (rows/4 + 2) * 2^-24 * rows.
        const tol = { atol: (rows / 4 + 2) * 2 ** -24 * rows, rtol: 0 };
        expectClose(await g.readF32(fresh), ref, tol, `colSum [${rows}, ${cols}]`);
        expectClose(await g.readF32(acc), ref.map((v, i) => v + init[i]!), { atol: tol.atol + 2 ** -24, rtol: 0 }, `accumulated colSum [${rows}, ${cols}]`);
        g.free(x, fresh, acc);
      }
    });
  });
}

describe('reduction argument checks', () => {
  const gpu = paths[1]!.gpu;

  it('names the partials tensor when it is too small', () => {
    const g = gpu();
    const rec = g.record();
    const x = g.empty([300_000], 'f32', 'grads');
    const partials = g.empty([3], 'f32', 'tiny-partials');
    expect(() => sumSquares(rec, [x], partials, g.empty([1]))).toThrow(ShapeError);
    expect(() => sumSquares(rec, [x], partials, g.empty([1]))).toThrow(/"tiny-partials" has 3 elements, needs 293/);
  });

  it('names the output when its shape or index is wrong', () => {
    const g = gpu();
    const rec = g.record();
    const x = g.empty([4, 9], 'f32', 'logits');
    expect(() => rowMax(rec, x, g.empty([9], 'f32', 'row-max'))).toThrow(/rowMax: tensor "row-max" has shape \[9\], expected \[4\]/);
    expect(() => colSum(rec, x, g.empty([4], 'f32', 'col'))).toThrow(/colSum: tensor "col" has shape \[4\], expected \[9\]/);
    expect(() => sum(rec, x, g.empty([1]), g.empty([2], 'f32', 'total'), { index: 2 })).toThrow(/index 2 is outside tensor "total"/);
    expect(() => rowSum(rec, g.empty([4, 9], 'i32', 'ints'), g.empty([4]))).toThrow(/"ints" has dtype i32/);
  });
});

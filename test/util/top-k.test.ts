import { describe, expect, it } from 'vitest';
import { topKRows } from '../../src/util/top-k.js';
import { randomArray } from '../helpers.js';

/** The reference: a full stable sort of each row by value descending (ties: lower id first). */
function sortedTopK(x: ArrayLike<number>, rows: number, cols: number, k: number): { values: number[]; ids: number[] } {
  const values: number[] = [];
  const ids: number[] = [];
  for (let r = 0; r < rows; r++) {
    const order = Array.from({ length: cols }, (_, c) => c).sort((a, b) => x[r * cols + b]! - x[r * cols + a]! || a - b);
    for (const c of order.slice(0, k)) {
      ids.push(c);
      values.push(x[r * cols + c]!);
    }
  }
  return { values, ids };
}

describe('topKRows', () => {
  for (const { rows, cols, k } of [
    { rows: 4, cols: 37, k: 1 },
    { rows: 3, cols: 101, k: 8 },
    { rows: 2, cols: 50, k: 50 },
  ]) {
    it(`matches a full sort on [${rows}, ${cols}] for k ${k}, ties to the lower id`, () => {
      // Rounded to a coarse grid so that ties occur.
      const x = randomArray(rows * cols, rows + cols + k, 4).map((v) => Math.round(v * 2) / 2);
      const got = topKRows(x, rows, cols, k);
      const ref = sortedTopK(x, rows, cols, k);
      expect(Array.from(got.ids)).toEqual(ref.ids);
      expect(Array.from(got.values)).toEqual(ref.values);
    });
  }

  it('refuses k out of range and NaN, naming the tensor and row', () => {
    const x = new Float32Array(6);
    expect(() => topKRows(x, 2, 3, 4, 'teacher logits')).toThrow(/top-k of teacher logits: k must be 1..3, got 4/);
    x[4] = NaN;
    expect(() => topKRows(x, 2, 3, 2, 'teacher logits')).toThrow(/row 1 holds NaN at column 1/);
  });
});

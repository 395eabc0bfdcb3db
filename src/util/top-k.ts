// The k largest values of each row: the teacher cache's top-k logits (docs/teacher-cache.md) and
// beam search's candidate tokens (decode/search.ts).
import { ShapeError } from '../errors.js';

/** Top-k entries of rows: ids and values, [rows, k] row-major, each row by value descending. */
export interface TopKRows {
  values: Float32Array;
  ids: Int32Array;
  k: number;
}

/**
 * The k largest values of each row of x [rows, cols] and their column ids (distinct), by value
 * descending, ties to the lower id. A min-heap of k per row: O(cols log k). A NaN in a row is an
 * error naming the row (`what` names the tensor).
 */
export function topKRows(x: ArrayLike<number>, rows: number, cols: number, k: number, what = 'logits'): TopKRows {
  if (!Number.isInteger(k) || k < 1 || k > cols) throw new ShapeError(`top-k of ${what}: k must be 1..${cols}, got ${k}`);
  if (x.length !== rows * cols) throw new ShapeError(`top-k of ${what}: ${x.length} values, expected ${rows}x${cols}`);
  const values = new Float32Array(rows * k);
  const ids = new Int32Array(rows * k);
  const heapV = new Float64Array(k);
  const heapI = new Int32Array(k);
  // a is worse than b: smaller, or equal with the higher id.
  const worse = (va: number, ia: number, vb: number, ib: number) => va < vb || (va === vb && ia > ib);
  const swap = (a: number, b: number) => {
    const v = heapV[a]!;
    heapV[a] = heapV[b]!;
    heapV[b] = v;
    const i = heapI[a]!;
    heapI[a] = heapI[b]!;
    heapI[b] = i;
  };
  const siftDown = (n: number, at: number) => {
    for (;;) {
      const l = 2 * at + 1;
      const r = l + 1;
      let m = at;
      if (l < n && worse(heapV[l]!, heapI[l]!, heapV[m]!, heapI[m]!)) m = l;
      if (r < n && worse(heapV[r]!, heapI[r]!, heapV[m]!, heapI[m]!)) m = r;
      if (m === at) return;
      swap(at, m);
      at = m;
    }
  };
  for (let row = 0; row < rows; row++) {
    const base = row * cols;
    let n = 0;
    for (let c = 0; c < cols; c++) {
      const v = x[base + c]!;
      if (Number.isNaN(v)) throw new ShapeError(`top-k of ${what}: row ${row} holds NaN at column ${c}`);
      if (n < k) {
        heapV[n] = v;
        heapI[n] = c;
        for (let at = n++; at > 0; ) {
          const parent = (at - 1) >> 1;
          if (!worse(heapV[at]!, heapI[at]!, heapV[parent]!, heapI[parent]!)) break;
          swap(at, parent);
          at = parent;
        }
      } else if (worse(heapV[0]!, heapI[0]!, v, c)) {
        heapV[0] = v;
        heapI[0] = c;
        siftDown(k, 0);
      }
    }
    // Pop the worst first into the back: the row comes out best first.
    for (let end = k - 1; end >= 0; end--) {
      values[row * k + end] = heapV[0]!;
      ids[row * k + end] = heapI[0]!;
      heapV[0] = heapV[end]!;
      heapI[0] = heapI[end]!;
      siftDown(end, 0);
    }
  }
  return { values, ids, k };
}

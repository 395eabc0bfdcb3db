// float64 references for layernorm, softmax and the reductions. x is row-major [rows, cols].

/** LayerNorm over the last dim: y = (x - mean) * rstd (* gamma + beta), rstd = 1/sqrt(var + eps). */
export function layerNormRef(
  x: ArrayLike<number>,
  rows: number,
  cols: number,
  eps: number,
  affine?: { gamma: ArrayLike<number>; beta: ArrayLike<number> },
): { y: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(rows * cols);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[r * cols + c]!;
    const mu = s / cols;
    let q = 0;
    for (let c = 0; c < cols; c++) q += (x[r * cols + c]! - mu) ** 2;
    const rs = 1 / Math.sqrt(q / cols + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let c = 0; c < cols; c++) {
      const v = (x[r * cols + c]! - mu) * rs;
      y[r * cols + c] = affine ? v * affine.gamma[c]! + affine.beta[c]! : v;
    }
  }
  return { y, mean, rstd };
}

/** Analytic LayerNorm gradients for upstream gradient dy (gamma omitted: no affine). */
export function layerNormBackwardRef(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  rows: number,
  cols: number,
  eps: number,
  gamma?: ArrayLike<number>,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const { mean, rstd } = layerNormRef(x, rows, cols, eps);
  const dx = new Float64Array(rows * cols);
  const dgamma = new Float64Array(cols);
  const dbeta = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const xhat = (c: number) => (x[r * cols + c]! - mean[r]!) * rstd[r]!;
    const g = (c: number) => dy[r * cols + c]! * (gamma ? gamma[c]! : 1);
    let a = 0;
    let b = 0;
    for (let c = 0; c < cols; c++) {
      a += g(c);
      b += g(c) * xhat(c);
      dgamma[c]! += dy[r * cols + c]! * xhat(c);
      dbeta[c]! += dy[r * cols + c]!;
    }
    for (let c = 0; c < cols; c++) dx[r * cols + c] = rstd[r]! * (g(c) - a / cols - (xhat(c) * b) / cols);
  }
  return { dx, dgamma, dbeta };
}

/** Softmax over the last dim, max-subtracted. */
export function softmaxRef(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c]! - m);
    for (let c = 0; c < cols; c++) y[r * cols + c] = Math.exp(x[r * cols + c]! - m) / s;
  }
  return y;
}

/** Softmax gradient: dx = y * (dy - sum(dy * y)) per row. */
export function softmaxBackwardRef(y: ArrayLike<number>, dy: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let d = 0;
    for (let c = 0; c < cols; c++) d += dy[r * cols + c]! * y[r * cols + c]!;
    for (let c = 0; c < cols; c++) dx[r * cols + c] = y[r * cols + c]! * (dy[r * cols + c]! - d);
  }
  return dx;
}

/** Sum of all elements (squared first when `square`) of several arrays. */
export function sumRef(arrays: readonly ArrayLike<number>[], square = false): number {
  let s = 0;
  for (const a of arrays) for (let i = 0; i < a.length; i++) s += square ? a[i]! * a[i]! : a[i]!;
  return s;
}

/** Per-row sum or max over the last dim. */
export function rowReduceRef(x: ArrayLike<number>, rows: number, cols: number, op: 'sum' | 'max'): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = op === 'sum' ? 0 : -Infinity;
    for (let c = 0; c < cols; c++) acc = op === 'sum' ? acc + x[r * cols + c]! : Math.max(acc, x[r * cols + c]!);
    out[r] = acc;
  }
  return out;
}

/** Per-column sum over rows. */
export function colSumRef(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c]! += x[r * cols + c]!;
  return out;
}

import { matmulRef, roundHalfEven } from './matmul.js';

/**
 * Per-row symmetric quantization as the kernels define it, with f32 arithmetic emulated exactly
 * (Math.fround after each correctly rounded f32 operation): scale = fround(max|row| / qmax), 1 for
 * an all-zero row (or the given scales), q = clamp(roundHalfEven(fround(x / scale)), -qmax, qmax);
 * a given scale <= 0 gives q = 0. x: [rows, cols] row-major.
 */
export function quantizeRowsRef(
  x: ArrayLike<number>,
  rows: number,
  cols: number,
  qmax: number,
  givenScales?: ArrayLike<number>,
): { q: Int32Array; scales: Float32Array } {
  const q = new Int32Array(rows * cols);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s: number;
    if (givenScales) {
      s = givenScales[r]!;
    } else {
      let m = 0;
      for (let k = 0; k < cols; k++) m = Math.max(m, Math.abs(x[r * cols + k]!));
      s = m > 0 ? Math.fround(m / qmax) : 1;
    }
    scales[r] = s;
    if (!(s > 0)) continue;
    for (let k = 0; k < cols; k++) {
      q[r * cols + k] = Math.min(qmax, Math.max(-qmax, roundHalfEven(Math.fround(x[r * cols + k]! / s))));
    }
  }
  return { q, scales };
}

/**
 * float64 fake-quant linear forward: x_hat @ W_hat^T (+ bias) (-> GELU) with
 * x_hat[m, k] = xScale[m] * xq[m, k] and W_hat[n, k] = wScale[n] * wq[n, k]. Also returns the
 * magnitude |x_hat @ W_hat^T| + |bias| of each pre-activation, what f32 rounding scales with.
 */
export function fakeQuantLinearRef(
  xq: ArrayLike<number>,
  xScale: ArrayLike<number>,
  wq: ArrayLike<number>,
  wScale: ArrayLike<number>,
  shape: { M: number; N: number; K: number },
  opts: { bias?: ArrayLike<number>; gelu?: boolean } = {},
): { y: Float64Array; preActivation: Float64Array; magnitude: Float64Array } {
  const { M, N, K } = shape;
  const xHat = Float64Array.from(xq, (v, i) => v * xScale[Math.floor(i / K)]!);
  const wHat = Float64Array.from(wq, (v, i) => v * wScale[Math.floor(i / K)]!);
  const dims = { batch: 1, M, N, K, batchA: false, batchB: false };
  const product = matmulRef(xHat, wHat, dims, { transB: true });
  const bias = opts.bias;
  const preActivation = product.map((v, i) => v + (bias ? bias[i % N]! : 0));
  const magnitude = product.map((v, i) => Math.abs(v) + (bias ? Math.abs(bias[i % N]!) : 0));
  const y = opts.gelu ? matmulRef(xHat, wHat, dims, { transB: true, bias, gelu: true }) : preActivation;
  return { y, preActivation, magnitude };
}

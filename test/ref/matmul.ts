/** float64 reference: C[b] = op(A[b]) @ op(B[b]) (+bias) (->GELU); 2-D operands broadcast. */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  shape: { batch: number; M: number; N: number; K: number; batchA: boolean; batchB: boolean },
  opts: { transA?: boolean; transB?: boolean; bias?: ArrayLike<number>; gelu?: boolean } = {},
): Float64Array {
  const { batch, M, N, K } = shape;
  const out = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const oa = shape.batchA ? z * M * K : 0;
    const ob = shape.batchB ? z * K * N : 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a[oa + (opts.transA ? k * M + m : m * K + k)]!;
          const bv = b[ob + (opts.transB ? n * K + k : k * N + n)]!;
          s += av * bv;
        }
        if (opts.bias) s += opts.bias[n]!;
        if (opts.gelu) s = geluRef(s);
        out[z * M * N + m * N + n] = s;
      }
    }
  }
  return out;
}

/** erf by its Maclaurin series / continued fraction, accurate to ~1e-15 in float64. */
export function erfRef(x: number): number {
  const z = Math.abs(x);
  let r: number;
  if (z < 3) {
    // Series: erf(z) = 2/sqrt(pi) * sum (-1)^n z^(2n+1) / (n! (2n+1))
    let term = z;
    let sum = z;
    for (let n = 1; n < 200; n++) {
      term *= (-z * z) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // Continued fraction for erfc, evaluated backwards.
    let f = 0;
    for (let n = 60; n >= 1; n--) f = n / 2 / (z + f);
    r = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / (z + f);
  }
  return x < 0 ? -r : r;
}

export function geluRef(x: number): number {
  return 0.5 * x * (1 + erfRef(x / Math.SQRT2));
}

/** Round half to even, as WGSL round() does. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Fake quantization per row of a row-major [rows, cols] array: clamp(round(x/s), -qmax, qmax) * s
 * with s = scale[row]; s <= 0 gives 0 (the kernels' guard).
 */
export function fakeQuantRef(x: ArrayLike<number>, scale: ArrayLike<number>, cols: number, qmax: number): Float64Array {
  return Float64Array.from({ length: x.length }, (_, i) => {
    const s = scale[Math.floor(i / cols)]!;
    return s > 0 ? Math.min(qmax, Math.max(-qmax, roundHalfEven(x[i]! / s))) * s : 0;
  });
}

/** max|row| / qmax per row, 1 for an all-zero row. */
export function rowScalesRef(x: ArrayLike<number>, cols: number, qmax: number): Float64Array {
  return Float64Array.from({ length: x.length / cols }, (_, r) => {
    let m = 0;
    for (let k = 0; k < cols; k++) m = Math.max(m, Math.abs(x[r * cols + k]!));
    return m > 0 ? m / qmax : 1;
  });
}

/**
 * Straight-through estimator: grad where |round(w/s)| <= qmax (and s > 0), else 0. Like PyTorch's
 * fake_quantize the mask tests the rounded value, so a row's absmax element (w/s = qmax, perhaps
 * a rounding step above it in f32) keeps its gradient.
 */
export function steMaskRef(w: ArrayLike<number>, scale: ArrayLike<number>, grad: ArrayLike<number>, cols: number, qmax: number): Float64Array {
  return Float64Array.from({ length: w.length }, (_, i) => {
    const s = scale[Math.floor(i / cols)]!;
    return s > 0 && Math.abs(roundHalfEven(w[i]! / s)) <= qmax ? grad[i]! : 0;
  });
}

/** LSQ scale gradient per row: factor * sum grad * (round(v) - v where |round(v)| <= qmax, sign(v) * qmax outside). */
export function lsqScaleGradRef(w: ArrayLike<number>, scale: ArrayLike<number>, grad: ArrayLike<number>, cols: number, qmax: number, factor = 1): Float64Array {
  return Float64Array.from({ length: scale.length }, (_, r) => {
    const s = scale[r]!;
    if (!(s > 0)) return 0;
    let sum = 0;
    for (let k = 0; k < cols; k++) {
      const v = w[r * cols + k]! / s;
      sum += grad[r * cols + k]! * (Math.abs(roundHalfEven(v)) <= qmax ? roundHalfEven(v) - v : Math.sign(v) * qmax);
    }
    return factor * sum;
  });
}

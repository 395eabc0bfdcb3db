// float64 references for activation.wgsl, conv1d.wgsl and embedding.wgsl.
import { erfRef, geluRef } from './matmul.js';

export { geluRef };

/** d/dx of exact GELU: Phi(x) + x * phi(x). */
export function geluGradRef(x: number): number {
  return 0.5 * (1 + erfRef(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
}

export interface ConvShape {
  B: number;
  Cin: number;
  Cout: number;
  T: number;
  stride: number;
}

/** Output length of a kernel-3, padding-1 convolution. */
export function convOutLength(T: number, stride: number): number {
  return Math.floor((T + 2 - 3) / stride) + 1;
}

/**
 * Conv1d as PyTorch (kernel 3, padding 1): x [B, Cin, T], w [Cout, Cin, 3], bias [Cout] ->
 * [B, Cout, Tout], or [B, Tout, Cout] with tokenMajor; optional GELU after the bias.
 */
export function conv1dRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  bias: ArrayLike<number>,
  s: ConvShape,
  opts: { tokenMajor?: boolean; gelu?: boolean } = {},
): Float64Array {
  const Tout = convOutLength(s.T, s.stride);
  const out = new Float64Array(s.B * s.Cout * Tout);
  for (let b = 0; b < s.B; b++) {
    for (let co = 0; co < s.Cout; co++) {
      for (let t = 0; t < Tout; t++) {
        let acc = bias[co]!;
        for (let ci = 0; ci < s.Cin; ci++) {
          for (let k = 0; k < 3; k++) {
            const p = t * s.stride + k - 1;
            if (p >= 0 && p < s.T) acc += w[(co * s.Cin + ci) * 3 + k]! * x[(b * s.Cin + ci) * s.T + p]!;
          }
        }
        if (opts.gelu) acc = geluRef(acc);
        out[opts.tokenMajor ? (b * Tout + t) * s.Cout + co : (b * s.Cout + co) * Tout + t] = acc;
      }
    }
  }
  return out;
}

/** Gathered rows table[ids[i]] of a [V, C] table; out-of-range ids give zero rows. */
export function embeddingRef(ids: ArrayLike<number>, table: ArrayLike<number>, V: number, C: number): Float64Array {
  const out = new Float64Array(ids.length * C);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= V) continue;
    for (let c = 0; c < C; c++) out[i * C + c] = table[id * C + c]!;
  }
  return out;
}

/** Gradient of embeddingRef w.r.t. the table: rows of gradOut summed per id; out-of-range ids dropped. */
export function embeddingGradRef(ids: ArrayLike<number>, gradOut: ArrayLike<number>, V: number, C: number): Float64Array {
  const grad = new Float64Array(V * C);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= V) continue;
    for (let c = 0; c < C; c++) grad[id * C + c]! += gradOut[i * C + c]!;
  }
  return grad;
}

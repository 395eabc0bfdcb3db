// float64 reference for scaled-dot-product attention. All arrays head-major: q [B, H, Lq, D],
// k and v [B, H, Lk, D], out [B, H, Lq, D], lse [B, H, Lq].

export interface AttentionShape {
  B: number;
  H: number;
  Lq: number;
  Lk: number;
  D: number;
}

export interface AttentionMask {
  causal?: boolean;
  /** Per batch: keys j >= keyLengths[b] are masked. */
  keyLengths?: ArrayLike<number>;
}

/** Whether query i of batch b may see key j (causal aligned so the last query sees the last key). */
export function attentionVisible(s: AttentionShape, mask: AttentionMask, b: number, i: number, j: number): boolean {
  if (mask.keyLengths && j >= mask.keyLengths[b]!) return false;
  return !mask.causal || j <= i + s.Lk - s.Lq;
}

/**
 * out = softmax(scale * q k^T + mask) v and lse = log sum exp of the masked scaled scores, in
 * float64. Fully masked rows give out = 0 and lse = -Infinity.
 */
export function attentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  s: AttentionShape,
  scale: number,
  mask: AttentionMask = {},
): { out: Float64Array; lse: Float64Array } {
  const { B, H, Lq, Lk, D } = s;
  const out = new Float64Array(B * H * Lq * D);
  const lse = new Float64Array(B * H * Lq);
  const scores = new Float64Array(Lk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const bh = b * H + h;
      for (let i = 0; i < Lq; i++) {
        let max = -Infinity;
        for (let j = 0; j < Lk; j++) {
          if (!attentionVisible(s, mask, b, i, j)) {
            scores[j] = -Infinity;
            continue;
          }
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[(bh * Lq + i) * D + d]! * k[(bh * Lk + j) * D + d]!;
          scores[j] = dot * scale;
          max = Math.max(max, scores[j]!);
        }
        const row = bh * Lq + i;
        if (max === -Infinity) {
          lse[row] = -Infinity;
          continue;
        }
        let sum = 0;
        for (let j = 0; j < Lk; j++) sum += Math.exp(scores[j]! - max);
        lse[row] = max + Math.log(sum);
        for (let j = 0; j < Lk; j++) {
          const p = Math.exp(scores[j]! - lse[row]!);
          if (p === 0) continue;
          for (let d = 0; d < D; d++) out[row * D + d]! += p * v[(bh * Lk + j) * D + d]!;
        }
      }
    }
  }
  return { out, lse };
}

/** [B, H, L, D] -> [B, L, H*D] (token-major, as projections produce). */
export function toTokenMajor(x: ArrayLike<number>, B: number, H: number, L: number, D: number): Float32Array {
  const y = new Float32Array(B * H * L * D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let l = 0; l < L; l++)
        for (let d = 0; d < D; d++) y[((b * L + l) * H + h) * D + d] = x[((b * H + h) * L + l) * D + d]!;
  return y;
}

/** [B, L, H*D] -> [B, H, L, D]. */
export function toHeadMajor(x: ArrayLike<number>, B: number, H: number, L: number, D: number): Float32Array {
  const y = new Float32Array(B * H * L * D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let l = 0; l < L; l++)
        for (let d = 0; d < D; d++) y[((b * H + h) * L + l) * D + d] = x[((b * L + l) * H + h) * D + d]!;
  return y;
}

/**
 * Gradients of sum(dOut * out) for out = attentionRef(q, k, v, ...), in float64, written out
 * analytically: P = softmax rows, dV = P^T dOut, dP = dOut V^T, dS = P * (dP - rowsum(dOut * out)),
 * dQ = scale dS K, dK = scale dS^T Q. Fully masked rows contribute nothing. Head-major like
 * attentionRef; dOut is [B, H, Lq, D].
 */
export function attentionBackwardRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dOut: ArrayLike<number>,
  s: AttentionShape,
  scale: number,
  mask: AttentionMask = {},
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, H, Lq, Lk, D } = s;
  const { out, lse } = attentionRef(q, k, v, s, scale, mask);
  const dq = new Float64Array(B * H * Lq * D);
  const dk = new Float64Array(B * H * Lk * D);
  const dv = new Float64Array(B * H * Lk * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const bh = b * H + h;
      for (let i = 0; i < Lq; i++) {
        const row = bh * Lq + i;
        if (lse[row] === -Infinity) continue;
        let delta = 0;
        for (let d = 0; d < D; d++) delta += dOut[row * D + d]! * out[row * D + d]!;
        for (let j = 0; j < Lk; j++) {
          if (!attentionVisible(s, mask, b, i, j)) continue;
          const key = bh * Lk + j;
          let dot = 0;
          let dp = 0;
          for (let d = 0; d < D; d++) {
            dot += q[row * D + d]! * k[key * D + d]!;
            dp += dOut[row * D + d]! * v[key * D + d]!;
          }
          const p = Math.exp(dot * scale - lse[row]!);
          const ds = p * (dp - delta);
          for (let d = 0; d < D; d++) {
            dv[key * D + d]! += p * dOut[row * D + d]!;
            dq[row * D + d]! += scale * ds * k[key * D + d]!;
            dk[key * D + d]! += scale * ds * q[row * D + d]!;
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

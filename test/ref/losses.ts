// Float64 references for the distillation losses (losses.wgsl) and the AdamW step (adamw.wgsl),
// written from the definitions (method.md; PyTorch's documented algorithms), not from the kernels.

/** valid[r]: whether row r counts (ids[r] != ignoreIndex), or all rows without ids. */
export function validRows(rows: number, ids?: ArrayLike<number>, ignoreIndex = -100): boolean[] {
  return Array.from({ length: rows }, (_, r) => !ids || ids[r] !== ignoreIndex);
}

function logSoftmaxRow(x: ArrayLike<number>, base: number, cols: number, scale = 1): Float64Array {
  let max = -Infinity;
  for (let c = 0; c < cols; c++) max = Math.max(max, x[base + c]! * scale);
  let sum = 0;
  for (let c = 0; c < cols; c++) sum += Math.exp(x[base + c]! * scale - max);
  const lse = max + Math.log(sum);
  return Float64Array.from({ length: cols }, (_, c) => x[base + c]! * scale - lse);
}

export interface LossRef {
  rowLoss: Float64Array;
  /** Mean of rowLoss over valid rows (0 when none). */
  mean: number;
  count: number;
  /** Gradient of `mean` (times gradScale) w.r.t. the first input. */
  grad: Float64Array;
}

function meanOf(rowLoss: Float64Array, valid: boolean[]): { mean: number; count: number } {
  const count = valid.filter(Boolean).length;
  let s = 0;
  rowLoss.forEach((v, r) => (s += valid[r] ? v : 0));
  return { mean: count ? s / count : 0, count };
}

/** PyTorch cross_entropy(logits, targets, ignore_index, reduction='mean') per row, mean and gradient. */
export function crossEntropyRef(logits: ArrayLike<number>, targets: ArrayLike<number>, rows: number, cols: number, ignoreIndex = -100, gradScale = 1): LossRef {
  const valid = validRows(rows, targets, ignoreIndex);
  const rowLoss = new Float64Array(rows);
  const grad = new Float64Array(rows * cols);
  const count = valid.filter(Boolean).length;
  for (let r = 0; r < rows; r++) {
    if (!valid[r]) continue;
    const lp = logSoftmaxRow(logits, r * cols, cols);
    const t = targets[r]!;
    rowLoss[r] = -lp[t]!;
    for (let c = 0; c < cols; c++) grad[r * cols + c] = ((Math.exp(lp[c]!) - (c === t ? 1 : 0)) * gradScale) / count;
  }
  return { rowLoss, grad, ...meanOf(rowLoss, valid) };
}

/** tau^2 * KL(softmax(teacher/tau) || softmax(student/tau)) per row; gradient w.r.t. student of the masked mean. */
export function klRef(student: ArrayLike<number>, teacher: ArrayLike<number>, rows: number, cols: number, tau: number, valid: boolean[], gradScale = 1): LossRef {
  const rowLoss = new Float64Array(rows);
  const grad = new Float64Array(rows * cols);
  const count = valid.filter(Boolean).length;
  for (let r = 0; r < rows; r++) {
    if (!valid[r]) continue;
    const ls = logSoftmaxRow(student, r * cols, cols, 1 / tau);
    const lt = logSoftmaxRow(teacher, r * cols, cols, 1 / tau);
    let kl = 0;
    for (let c = 0; c < cols; c++) kl += Math.exp(lt[c]!) * (lt[c]! - ls[c]!);
    rowLoss[r] = tau * tau * kl;
    // d/dz_S of tau^2 KL = tau^2 * (p_S - p_T) / tau.
    for (let c = 0; c < cols; c++) grad[r * cols + c] = (tau * (Math.exp(ls[c]!) - Math.exp(lt[c]!)) * gradScale) / count;
  }
  return { rowLoss, grad, ...meanOf(rowLoss, valid) };
}

/**
 * tau^2 * KL(teacher || softmax(student/tau)) per row against a top-k teacher: the k cached
 * logits `values` at `ids`; renormalised (q = softmax(values/tau) over the k) without `tailLse`,
 * or with `tailLse[r]` (the teacher's full-vocabulary logsumexp of logits/tau) as p_j =
 * exp(values_j/tau - lse) plus one tail bucket R = 1 - sum p_j against the student's rest
 * 1 - S_K. The gradient w.r.t. student of the masked mean is differentiated by hand from the
 * loss: d/dz_v = tau * (p_S[v] * sum_j q_j - q[v] + R * (p_S[v] [v in K] - p_S[v] S_K) / (1 - S_K)).
 */
export function topkKlRef(
  student: ArrayLike<number>,
  values: ArrayLike<number>,
  ids: ArrayLike<number>,
  rows: number,
  cols: number,
  k: number,
  tau: number,
  valid: boolean[],
  gradScale = 1,
  tailLse?: ArrayLike<number>,
): LossRef {
  const rowLoss = new Float64Array(rows);
  const grad = new Float64Array(rows * cols);
  const count = valid.filter(Boolean).length;
  for (let r = 0; r < rows; r++) {
    if (!valid[r]) continue;
    const ls = logSoftmaxRow(student, r * cols, cols, 1 / tau);
    const lq = tailLse ? Float64Array.from({ length: k }, (_, j) => values[r * k + j]! / tau - tailLse[r]!) : logSoftmaxRow(values, r * k, k, 1 / tau);
    let kl = 0;
    let qSum = 0;
    let sK = 0;
    const inK = new Set<number>();
    for (let j = 0; j < k; j++) {
      const q = Math.exp(lq[j]!);
      const id = ids[r * k + j]!;
      kl += q * (lq[j]! - ls[id]!);
      qSum += q;
      sK += Math.exp(ls[id]!);
      inK.add(id);
      const at = r * cols + id;
      grad[at] = grad[at]! - (tau * q * gradScale) / count;
    }
    const tail = tailLse && k < cols ? Math.max(1 - qSum, 0) : 0;
    if (tail > 0) kl += tail * Math.log(tail / (1 - sK));
    rowLoss[r] = tau * tau * kl;
    for (let c = 0; c < cols; c++) {
      const ps = Math.exp(ls[c]!);
      const tailPart = tail > 0 ? (tail * (ps * (inK.has(c) ? 1 : 0) - ps * sK)) / (1 - sK) : 0;
      grad[r * cols + c] = grad[r * cols + c]! + (tau * (ps * qSum + tailPart) * gradScale) / count;
    }
  }
  return { rowLoss, grad, ...meanOf(rowLoss, valid) };
}

/** Per-row mean of (a - b)^2; gradient w.r.t. a of the mean over valid rows and channels. */
export function mseRef(a: ArrayLike<number>, b: ArrayLike<number>, rows: number, cols: number, valid: boolean[], gradScale = 1): LossRef {
  const rowLoss = new Float64Array(rows);
  const grad = new Float64Array(rows * cols);
  const count = valid.filter(Boolean).length;
  for (let r = 0; r < rows; r++) {
    if (!valid[r]) continue;
    let s = 0;
    for (let c = 0; c < cols; c++) {
      const d = a[r * cols + c]! - b[r * cols + c]!;
      s += d * d;
      grad[r * cols + c] = (2 * d * gradScale) / (count * cols);
    }
    rowLoss[r] = s / cols;
  }
  return { rowLoss, grad, ...meanOf(rowLoss, valid) };
}

/** LayerNorm without affine of each row of x [rows, C] (eps 1e-5, biased variance). */
export function layerNormRows(x: ArrayLike<number>, rows: number, cols: number, eps = 1e-5): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let c = 0; c < cols; c++) mean += x[r * cols + c]!;
    mean /= cols;
    let variance = 0;
    for (let c = 0; c < cols; c++) variance += (x[r * cols + c]! - mean) ** 2;
    const rstd = 1 / Math.sqrt(variance / cols + eps);
    for (let c = 0; c < cols; c++) out[r * cols + c] = (x[r * cols + c]! - mean) * rstd;
  }
  return out;
}

/**
 * D[i, j] = mean over valid rows and channels of (S_i - T_j)^2 for stacked S [ls, rows, C] and
 * T [lt, rows, C], optionally after LayerNorm without affine on every row of both.
 */
export function distanceRef(S: ArrayLike<number>, T: ArrayLike<number>, ls: number, lt: number, rows: number, cols: number, valid: boolean[], layerNorm: boolean): Float64Array {
  const s = layerNorm ? layerNormRows(S, ls * rows, cols) : Float64Array.from(S);
  const t = layerNorm ? layerNormRows(T, lt * rows, cols) : Float64Array.from(T);
  const count = valid.filter(Boolean).length;
  const D = new Float64Array(ls * lt);
  for (let i = 0; i < ls; i++) {
    for (let j = 0; j < lt; j++) {
      let sum = 0;
      for (let r = 0; r < rows; r++) {
        if (!valid[r]) continue;
        for (let c = 0; c < cols; c++) sum += (s[(i * rows + r) * cols + c]! - t[(j * rows + r) * cols + c]!) ** 2;
      }
      D[i * lt + j] = count ? sum / (count * cols) : 0;
    }
  }
  return D;
}

export interface AdamWRefState {
  param: Float64Array;
  expAvg: Float64Array;
  expAvgSq: Float64Array;
}

/**
 * torch.optim.AdamW's documented algorithm (amsgrad = maximize = false), preceded by
 * torch.nn.utils.clip_grad_norm_(maxNorm) over all tensors when maxNorm is given, for one step t
 * (1-based) in float64; grads are first multiplied by gradScale. Updates the states in place.
 */
export function adamwRef(
  states: AdamWRefState[],
  grads: ArrayLike<number>[],
  o: { lr: number; step: number; beta1: number; beta2: number; eps: number; weightDecay: number[]; gradScale: number; maxNorm?: number; lrScale?: number[] },
): void {
  const scaled = grads.map((g) => Float64Array.from(g, (v) => v * o.gradScale));
  if (o.maxNorm !== undefined) {
    const norm = Math.sqrt(scaled.reduce((s, g) => s + g.reduce((a, v) => a + v * v, 0), 0));
    const coef = Math.min(1, o.maxNorm / (norm + 1e-6));
    for (const g of scaled) g.forEach((v, i) => (g[i] = v * coef));
  }
  states.forEach((st, k) => {
    const g = scaled[k]!;
    const lr = o.lr * (o.lrScale?.[k] ?? 1);
    for (let i = 0; i < g.length; i++) {
      st.param[i] = st.param[i]! * (1 - lr * o.weightDecay[k]!);
      st.expAvg[i] = o.beta1 * st.expAvg[i]! + (1 - o.beta1) * g[i]!;
      st.expAvgSq[i] = o.beta2 * st.expAvgSq[i]! + (1 - o.beta2) * g[i]! ** 2;
      const mHat = st.expAvg[i]! / (1 - o.beta1 ** o.step);
      const vHat = st.expAvgSq[i]! / (1 - o.beta2 ** o.step);
      st.param[i] = st.param[i]! - (lr * mHat) / (Math.sqrt(vHat) + o.eps);
    }
  });
}

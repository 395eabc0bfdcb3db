// Distillation losses, each fused with its gradient, row-parallel over rows of any length (the
// whole 51865/51866-token vocabulary) without storing probabilities:
// - cross_entropy: loss_r = lse(z_r) - z_r[y_r]; grad = (softmax(z_r) - onehot(y_r)) * scale.
// - kl_divergence: loss_r = tau^2 * sum_v p_T (log p_T - log p_S), p = softmax(z / tau);
//   grad w.r.t. the student logits = tau * (p_S - p_T) * scale.
// - topk_kl_divergence: the same KL against a teacher cached as its top-k logits per row
//   (renormalised over the k, or with the rest of its mass as one tail bucket).
// - mse_rows: loss_r = mean_c (a - b)^2; grad_a = 2 (a - b) / C * scale, grad_b = -grad_a.
// - masked_mean: one scalar out of the per-row losses, the mean over valid rows.
// - row_stats, distance_partial, distance_finish: the dynamic-matching distance matrix
//   D[i, j] = mean over valid rows and channels of (S_i - T_j)^2, optionally after LayerNorm
//   without affine on both sides.
// Rows are masked by an i32 id per row: a row is ignored where ids[row] == ignore_index (the
// targets with -100, or a 0/1 padding mask with ignore_index 0). scale = grad_scale / n_valid,
// where every workgroup counts the valid rows itself, so no pass has to run first.
// Accumulation is in f32 throughout; the workgroup reductions are shaders/lib/reduction.wgsl.
// The row entries (cross_entropy, kl_divergence, mse_rows, row_stats) run small workgroups of
// WG invocations (host: rowLaunch); masked_mean and the distance matrix keep 256. Row data stays
// f32 here (vocabulary rows have an odd length), so the module is never compiled with V = vec4f.

// #include "lib/reduction.wgsl"

// The mask every entry shares: ids[row] == ignore_index marks an ignored row.
@group(0) @binding(2) var<storage, read> ids: array<i32>;
override HAS_MASK: bool = true;
// Whether the fused entries write their gradient (off for evaluation).
override WRITE_GRAD: bool = true;

fn row_valid(row: u32, ignore_index: i32) -> bool {
  return !HAS_MASK || ids[row] != ignore_index;
}

// Number of valid rows among `rows`, on every invocation of the workgroup.
fn count_valid(rows: u32, ignore_index: i32, inv: Invocation) -> f32 {
  if (!HAS_MASK) { return f32(rows); }
  var n = 0.0;
  for (var r = inv.lid; r < rows; r += WG) { n += select(0.0, 1.0, ids[r] != ignore_index); }
  return wg_sum(n, inv);
}

// A quiet NaN from a runtime value (a constant NaN is a shader-creation error in WGSL).
fn nan_from(zero: u32) -> f32 {
  return bitcast<f32>(0x7fc00000u | zero);
}

// Shared by cross_entropy, kl_divergence and mse_rows.
struct RowParams {
  rows: u32, cols: u32, groups_x: u32, ignore_index: i32,
  grad_scale: f32,
  // 1 adds the gradient into grad instead of overwriting it (several losses into one gradient).
  accumulate: u32,
  // Temperature (kl_divergence only).
  tau: f32,
}
@group(0) @binding(0) var<uniform> rp: RowParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
@group(0) @binding(5) var<storage, read> teacher: array<f32>;

fn write_grad(i: u32, g: f32) {
  if (rp.accumulate != 0u) { grad[i] += g; } else { grad[i] = g; }
}

// A row the mask ignores adds nothing: loss 0 and, unless accumulating, a zero gradient row.
// Returns whether the row is ignored (the caller then returns; the row is workgroup-uniform).
fn ignored_row(row: u32, cols: u32, ignore_index: i32, accumulate: u32, inv: Invocation) -> bool {
  if (row_valid(row, ignore_index)) { return false; }
  if (inv.lid == 0u) { row_loss[row] = 0.0; }
  if (WRITE_GRAD && accumulate == 0u) {
    for (var i = inv.lid; i < cols; i += WG) { grad[row * cols + i] = 0.0; }
  }
  return true;
}

// Cross-entropy with ignore index; ids are the targets (HAS_MASK must be on). A target outside
// [0, cols) that is not ignore_index gives a NaN loss, so a bad label cannot pass silently.
@compute @workgroup_size(WG)
fn cross_entropy(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, rp.groups_x);
  if (row >= rp.rows) { return; }
  let n_valid = count_valid(rp.rows, rp.ignore_index, inv);
  let base = row * rp.cols;
  let label_id = ids[row];
  if (ignored_row(row, rp.cols, rp.ignore_index, rp.accumulate, inv)) { return; }
  // Online max and sum of exp(z - max): one read of the row.
  var ms = vec2f(NEG_MAX, 0.0);
  var i = inv.lid;
  for (; i + 3u * WG < rp.cols; i += 4u * WG) {
    let e = base + i;
    ms = max_sum4(ms, logits[e], logits[e + WG], logits[e + 2u * WG], logits[e + 3u * WG]);
  }
  for (; i < rp.cols; i += WG) { ms = max_sum1(ms, logits[base + i]); }
  let stats = wg_max_sum(ms, inv);
  let lse = stats.x + log(stats.y);
  let in_range = label_id >= 0 && u32(label_id) < rp.cols;
  if (inv.lid == 0u) {
    row_loss[row] = select(nan_from(rp.rows & 0u), lse - logits[base + min(u32(label_id), rp.cols - 1u)], in_range);
  }
  if (WRITE_GRAD) {
    let scale = rp.grad_scale / n_valid;
    for (var i = inv.lid; i < rp.cols; i += WG) {
      let p = exp(logits[base + i] - lse);
      write_grad(base + i, (p - select(0.0, 1.0, i32(i) == label_id)) * scale);
    }
  }
}

// KL(teacher || student) at temperature tau; `logits` are the student's, grad is w.r.t. them.
@compute @workgroup_size(WG)
fn kl_divergence(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, rp.groups_x);
  if (row >= rp.rows) { return; }
  let n_valid = count_valid(rp.rows, rp.ignore_index, inv);
  let base = row * rp.cols;
  if (ignored_row(row, rp.cols, rp.ignore_index, rp.accumulate, inv)) { return; }
  let inv_tau = 1.0 / rp.tau;
  // Online max and sum of exp for both softened distributions in one read of each row.
  var ms_s = vec2f(NEG_MAX, 0.0);
  var ms_t = vec2f(NEG_MAX, 0.0);
  var i = inv.lid;
  for (; i + 3u * WG < rp.cols; i += 4u * WG) {
    let e = base + i;
    let f = e + WG;
    let g = e + 2u * WG;
    let h = e + 3u * WG;
    ms_s = max_sum4(ms_s, logits[e] * inv_tau, logits[f] * inv_tau, logits[g] * inv_tau, logits[h] * inv_tau);
    ms_t = max_sum4(ms_t, teacher[e] * inv_tau, teacher[f] * inv_tau, teacher[g] * inv_tau, teacher[h] * inv_tau);
  }
  for (; i < rp.cols; i += WG) {
    ms_s = max_sum1(ms_s, logits[base + i] * inv_tau);
    ms_t = max_sum1(ms_t, teacher[base + i] * inv_tau);
  }
  let row_max = vec2f(wg_max(ms_s.x, inv), wg_max(ms_t.x, inv));
  let lse = row_max + log(wg_sum2(vec2f(ms_s.y, ms_t.y) * exp(vec2f(ms_s.x, ms_t.x) - row_max), inv));
  // Second read: the KL terms and the gradient together.
  let scale = rp.tau * rp.grad_scale / n_valid;
  var kl = 0.0;
  for (var i = inv.lid; i < rp.cols; i += WG) {
    let log_p_s = logits[base + i] * inv_tau - lse.x;
    let log_p_t = teacher[base + i] * inv_tau - lse.y;
    let p_t = exp(log_p_t);
    kl += p_t * (log_p_t - log_p_s);
    if (WRITE_GRAD) { write_grad(base + i, (exp(log_p_s) - p_t) * scale); }
  }
  let total = wg_sum(kl, inv);
  if (inv.lid == 0u) { row_loss[row] = rp.tau * rp.tau * total; }
}

// KL(teacher || student) at temperature tau against a cached top-k teacher (docs/teacher-cache.md),
// the student's p_S = softmax(logits / tau) over all cols, the teacher's k cached logits at ids
// (distinct, in [0, cols); an id outside gives a NaN loss). Two forms of the teacher:
// - renormalised (TAIL off): q = softmax(topk_values / tau) over the k entries;
//   loss_r = tau^2 * sum_j q_j (log q_j - log p_S[id_j]), grad = tau * (p_S - q) * scale with q
//   zero outside the ids (sum_j q_j = 1).
// - with its tail (TAIL on): p_j = exp(topk_values_j / tau - topk_lse[row]), topk_lse the
//   teacher's logsumexp of logits / tau over the whole vocabulary, so the k entries keep their
//   true probabilities and the rest R = 1 - sum_j p_j is one bucket against the student's rest
//   1 - S_K (S_K = sum_j p_S[id_j]): loss_r = tau^2 * (sum_j p_j (log p_j - log p_S[id_j]) +
//   R log(R / (1 - S_K))); grad = tau * (p_S - q) * scale with q = p_j at the ids and
//   p_S * R / (1 - S_K) elsewhere (the teacher's tail spread as the student's). With k = cols
//   there is no tail (R = 0).
// With k = cols and every id once both are kl_divergence.
struct TopkParams {
  rows: u32, cols: u32, groups_x: u32, ignore_index: i32,
  grad_scale: f32, accumulate: u32, tau: f32,
  // Cached teacher entries per row.
  k: u32,
}
@group(0) @binding(0) var<uniform> tp: TopkParams;
@group(0) @binding(5) var<storage, read> topk_values: array<f32>;
@group(0) @binding(6) var<storage, read> topk_ids: array<i32>;
@group(0) @binding(7) var<storage, read> topk_lse: array<f32>;
override TAIL: bool = false;

@compute @workgroup_size(WG)
fn topk_kl_divergence(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, tp.groups_x);
  if (row >= tp.rows) { return; }
  let n_valid = count_valid(tp.rows, tp.ignore_index, inv);
  let base = row * tp.cols;
  let kbase = row * tp.k;
  if (ignored_row(row, tp.cols, tp.ignore_index, tp.accumulate, inv)) { return; }
  let inv_tau = 1.0 / tp.tau;
  // Online max and sum of exp: the student over the whole row, the teacher over its k entries
  // (renormalised form; with its tail the teacher's logsumexp is given).
  var ms_s = vec2f(NEG_MAX, 0.0);
  var i = inv.lid;
  for (; i + 3u * WG < tp.cols; i += 4u * WG) {
    let e = base + i;
    ms_s = max_sum4(ms_s, logits[e] * inv_tau, logits[e + WG] * inv_tau, logits[e + 2u * WG] * inv_tau, logits[e + 3u * WG] * inv_tau);
  }
  for (; i < tp.cols; i += WG) { ms_s = max_sum1(ms_s, logits[base + i] * inv_tau); }
  var ms_t = vec2f(NEG_MAX, 0.0);
  if (!TAIL) {
    for (var j = inv.lid; j < tp.k; j += WG) { ms_t = max_sum1(ms_t, topk_values[kbase + j] * inv_tau); }
  }
  let row_max = vec2f(wg_max(ms_s.x, inv), wg_max(ms_t.x, inv));
  var lse = row_max + log(wg_sum2(vec2f(ms_s.y, ms_t.y) * exp(vec2f(ms_s.x, ms_t.x) - row_max), inv));
  if (TAIL) { lse.y = topk_lse[row]; }
  let scale = tp.tau * tp.grad_scale / n_valid;
  // The k entries: their KL terms, and (with the tail) the masses P_K and S_K.
  var kl = 0.0;
  var bad = 0.0;
  var mass = vec2f(0.0);  // (P_K, S_K)
  for (var j = inv.lid; j < tp.k; j += WG) {
    let id = topk_ids[kbase + j];
    if (id < 0 || u32(id) >= tp.cols) {
      bad = 1.0;
      continue;
    }
    let log_q = topk_values[kbase + j] * inv_tau - lse.y;
    let log_p_s = logits[base + u32(id)] * inv_tau - lse.x;
    let q = exp(log_q);
    kl += q * (log_q - log_p_s);
    mass += vec2f(q, exp(log_p_s));
  }
  let sums = wg_sum2(vec2f(kl, bad), inv);
  var total = sums.x;
  // The teacher's tail against the student's: R log(R / (1 - S_K)); ratio = R / (1 - S_K).
  var ratio = 0.0;
  if (TAIL && tp.k < tp.cols) {
    let m = wg_sum2(mass, inv);
    let tail_t = max(1.0 - m.x, 0.0);
    let tail_s = max(1.0 - m.y, 1e-30);
    if (tail_t > 0.0) { total += tail_t * (log(tail_t) - log(tail_s)); }
    ratio = tail_t / tail_s;
  }
  if (inv.lid == 0u) { row_loss[row] = select(tp.tau * tp.tau * total, nan_from(tp.rows & 0u), sums.y > 0.0); }
  if (WRITE_GRAD) {
    // The student part (with the tail: times 1 - ratio) over the whole row ...
    for (var v = inv.lid; v < tp.cols; v += WG) {
      let g = exp(logits[base + v] * inv_tau - lse.x) * (1.0 - ratio) * scale;
      if (tp.accumulate != 0u) { grad[base + v] += g; } else { grad[base + v] = g; }
    }
  }
  // ... visible to the whole workgroup before the teacher part is added at the k ids (each id
  // one element, written by whichever invocation covered it above): tau (p_S ratio - q).
  storageBarrier();
  if (WRITE_GRAD) {
    for (var j = inv.lid; j < tp.k; j += WG) {
      let id = topk_ids[kbase + j];
      if (id < 0 || u32(id) >= tp.cols) { continue; }
      let q = exp(topk_values[kbase + j] * inv_tau - lse.y);
      let p_s = exp(logits[base + u32(id)] * inv_tau - lse.x);
      grad[base + u32(id)] += (p_s * ratio - q) * scale;
    }
  }
}

// Hidden-state MSE per row; grad (w.r.t. a) and grad_b (w.r.t. b) each written when their flag
// is on.
@group(0) @binding(1) var<storage, read> mse_a: array<f32>;
@group(0) @binding(5) var<storage, read> mse_b: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_b: array<f32>;
override WRITE_GRAD_B: bool = false;

// Rows one workgroup of mse_rows covers: every workgroup counts the valid rows of the whole batch,
// which for short rows would cost more than the rows themselves (host: MSE_ROWS).
const MSE_ROWS: u32 = 4u;

@compute @workgroup_size(WG)
fn mse_rows(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row0 = row_of(wg, rp.groups_x) * MSE_ROWS;
  if (row0 >= rp.rows) { return; }
  let n_valid = count_valid(rp.rows, rp.ignore_index, inv);
  for (var row = row0; row < min(row0 + MSE_ROWS, rp.rows); row++) {
    let base = row * rp.cols;
    let valid = row_valid(row, rp.ignore_index);
    let scale = select(0.0, 2.0 * rp.grad_scale / (n_valid * f32(rp.cols)), valid);
    var acc = 0.0;
    for (var i = inv.lid; i < rp.cols; i += WG) {
      let d = select(0.0, mse_a[base + i] - mse_b[base + i], valid);
      acc += d * d;
      let g = d * scale;
      if (WRITE_GRAD) { write_grad(base + i, g); }
      if (WRITE_GRAD_B) {
        if (rp.accumulate != 0u) { grad_b[base + i] -= g; } else { grad_b[base + i] = -g; }
      }
    }
    let total = wg_sum(acc, inv);
    if (inv.lid == 0u) { row_loss[row] = total / f32(rp.cols); }
  }
}

// out[out_index] (+)= weight * (sum of row_in over valid rows) / n_valid (0 when none is valid),
// and out[count_index] = n_valid unless count_index is 0xffffffff. One workgroup.
struct MeanParams {
  rows: u32, ignore_index: i32, out_index: u32, count_index: u32,
  weight: f32, accumulate: u32,
}
@group(0) @binding(0) var<uniform> mp: MeanParams;
@group(0) @binding(1) var<storage, read> row_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn masked_mean(inv: Invocation) {
  var acc = vec2f(0.0);  // (sum, count)
  for (var r = inv.lid; r < mp.rows; r += WG) {
    if (row_valid(r, mp.ignore_index)) { acc += vec2f(row_in[r], 1.0); }
  }
  let total = wg_sum2(acc, inv);
  if (inv.lid != 0u) { return; }
  var v = select(0.0, mp.weight * total.x / total.y, total.y > 0.0);
  if (mp.accumulate != 0u) { v += out[mp.out_index]; }
  out[mp.out_index] = v;
  if (mp.count_index != 0xffffffffu) { out[mp.count_index] = total.y; }
}

// ---- Dynamic-matching distance matrix --------------------------------------------------------
// student: [LS, rows, C], teacher: [LT, rows, C] (LT counts the embedding output too).

// Per-row mean and 1/sqrt(var + eps) (Welford, one read) of x [count, C], written to
// stats[2 * (first + r)] and stats[2 * (first + r) + 1].
struct StatsParams { count: u32, cols: u32, groups_x: u32, first: u32, eps: f32 }
@group(0) @binding(0) var<uniform> sp: StatsParams;
@group(0) @binding(1) var<storage, read> stats_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats_out: array<f32>;

@compute @workgroup_size(WG)
fn row_stats(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, sp.groups_x);
  if (row >= sp.count) { return; }
  let base = row * sp.cols;
  var w = Welford(0.0, 0.0, 0.0);
  for (var i = inv.lid; i < sp.cols; i += WG) { w = welford_add(w, stats_x[base + i]); }
  let mv = wg_mean_var(w, f32(sp.cols), inv);
  let mean = mv.x;
  let variance = mv.y;
  if (inv.lid == 0u) {
    stats_out[2u * (sp.first + row)] = mean;
    stats_out[2u * (sp.first + row) + 1u] = inverseSqrt(variance + sp.eps);
  }
}

// Each workgroup sums (S_i - T_j)^2 over one chunk of rows for a tile of TI x TJ layer pairs,
// reading every element once for all pairs of its tile; distance_finish adds the chunks up.
const TI: u32 = 4u;
const TJ: u32 = 8u;
struct DistParams {
  rows: u32, cols: u32, ls: u32, lt: u32,
  rows_per_chunk: u32, chunks: u32, tiles_j: u32, ignore_index: i32,
}
@group(0) @binding(0) var<uniform> dp: DistParams;
@group(0) @binding(1) var<storage, read> student: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<storage, read> teacher_h: array<f32>;
// Row statistics from row_stats: the student's layers first, then the teacher's.
@group(0) @binding(6) var<storage, read> dist_stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> dist: array<f32>;
override LAYER_NORM: bool = false;

// Element (row, c) of stacked layer `layer`, normalised with stats row `stat_row` when LAYER_NORM.
fn normalised(v: f32, stat_row: u32) -> f32 {
  if (!LAYER_NORM) { return v; }
  return (v - dist_stats[2u * stat_row]) * dist_stats[2u * stat_row + 1u];
}
fn load_student(layer: u32, row: u32, c: u32) -> f32 {
  return normalised(student[(layer * dp.rows + row) * dp.cols + c], layer * dp.rows + row);
}
fn load_teacher(layer: u32, row: u32, c: u32) -> f32 {
  return normalised(teacher_h[(layer * dp.rows + row) * dp.cols + c], (dp.ls + layer) * dp.rows + row);
}

@compute @workgroup_size(WG)
fn distance_partial(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let chunk = wg.x;
  let tile = wg.y;
  let i0 = (tile / dp.tiles_j) * TI;
  let j0 = (tile % dp.tiles_j) * TJ;
  let r0 = chunk * dp.rows_per_chunk;
  let n = (min(r0 + dp.rows_per_chunk, dp.rows) - r0) * dp.cols;
  var acc: array<f32, 32>;  // TI * TJ, [ti * TJ + tj]
  for (var e = inv.lid; e < n; e += WG) {
    let row = r0 + e / dp.cols;
    let c = e % dp.cols;
    if (!row_valid(row, dp.ignore_index)) { continue; }
    var s: array<f32, TI>;
    for (var ti = 0u; ti < TI; ti++) {
      let i = min(i0 + ti, dp.ls - 1u);  // out-of-range pairs compute junk that is never read
      s[ti] = load_student(i, row, c);
    }
    for (var tj = 0u; tj < TJ; tj++) {
      let j = j0 + tj;
      if (j >= dp.lt) { break; }
      let t = load_teacher(j, row, c);
      for (var ti = 0u; ti < TI; ti++) {
        let d = s[ti] - t;
        acc[ti * TJ + tj] = fma(d, d, acc[ti * TJ + tj]);
      }
    }
  }
  let out_base = (chunk * (dp.tiles_j * ((dp.ls + TI - 1u) / TI)) + tile) * TI * TJ;
  for (var k = 0u; k < TI * TJ; k += 2u) {
    let t = wg_sum2(vec2f(acc[k], acc[k + 1u]), inv);
    if (inv.lid == 0u) {
      partials[out_base + k] = t.x;
      partials[out_base + k + 1u] = t.y;
    }
  }
}

// One invocation per pair: D[i, j] = (sum over chunks) / (n_valid * C), 0 when no row is valid.
@compute @workgroup_size(64)
fn distance_finish(@builtin(global_invocation_id) gid: vec3u) {
  let pair = gid.x;
  if (pair >= dp.ls * dp.lt) { return; }
  let i = pair / dp.lt;
  let j = pair % dp.lt;
  let tiles = dp.tiles_j * ((dp.ls + TI - 1u) / TI);
  let tile = (i / TI) * dp.tiles_j + j / TJ;
  let k = (i % TI) * TJ + j % TJ;
  var total = 0.0;
  for (var chunk = 0u; chunk < dp.chunks; chunk++) { total += partials[(chunk * tiles + tile) * TI * TJ + k]; }
  var n_valid = f32(dp.rows);
  if (HAS_MASK) {
    n_valid = 0.0;
    for (var r = 0u; r < dp.rows; r++) { n_valid += select(0.0, 1.0, ids[r] != dp.ignore_index); }
  }
  dist[pair] = select(0.0, total / (n_valid * f32(dp.cols)), n_valid > 0.0);
}

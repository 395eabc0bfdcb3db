// LayerNorm over the last dim (Whisper: eps 1e-5), optionally affine (gamma, beta):
//   y = (x - mean) * rstd (* gamma + beta),  rstd = 1 / sqrt(var + eps),  var biased.
// layernorm_forward also saves mean and rstd per row for the backward.
// layernorm_backward_dx: with g = dy (* gamma) and xhat = (x - mean) * rstd,
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
// dgamma = sum over rows of dy * xhat and dbeta = sum of dy, without float atomics:
// layernorm_param_grad_partial sums chunks of ROWS rows per column into partials [2, chunks, C],
// then layernorm_param_grad_final adds up the chunks of every column.
// A workgroup owns ROWS rows and walks them column-outer, so gamma and beta are read once per
// ROWS rows (bench/lab/rows v4/v6). Row data is array<V> (f32 or vec4f, lib/reduction.wgsl).

// #include "lib/reduction.wgsl"

// Rows one workgroup covers (host: LAYERNORM_ROWS in src/kernels/layernorm.ts).
const ROWS: u32 = 4u;

// Whether gamma and beta apply. Without them the gamma and beta bindings still exist in the
// layout and the host binds x in their place; they are never read.
override AFFINE: bool = true;

@group(0) @binding(1) var<storage, read> x: array<V>;
@group(0) @binding(2) var<storage, read> gamma: array<V>;

struct ForwardParams { rows: u32, cols: u32, eps: f32, groups_x: u32 }
@group(0) @binding(0) var<uniform> fp: ForwardParams;
@group(0) @binding(3) var<storage, read> beta: array<V>;
@group(0) @binding(4) var<storage, read_write> y: array<V>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;

@compute @workgroup_size(WG)
fn layernorm_forward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row0 = row_of(wg, fp.groups_x) * ROWS;
  if (row0 >= fp.rows) { return; }
  let nrows = min(ROWS, fp.rows - row0);
  let n_v = fp.cols / V_WIDTH;
  let total = f32(fp.cols);
  var mu_row: array<f32, ROWS>;
  var r: array<f32, ROWS>;
  for (var k = 0u; k < ROWS; k++) {
    if (k >= nrows) { break; }
    let base = (row0 + k) * n_v;
    var w = Welford(0.0, V(0.0), V(0.0));
    for (var j = inv.lid; j < n_v; j += WG) { w = welford_add(w, x[base + j]); }
    let mv = wg_mean_var(w, total, inv);
    mu_row[k] = mv.x;
    r[k] = inverseSqrt(mv.y + fp.eps);
  }
  for (var j = inv.lid; j < n_v; j += WG) {
    var g = V(1.0);
    var b = V(0.0);
    if (AFFINE) {
      g = gamma[j];
      b = beta[j];
    }
    for (var k = 0u; k < ROWS; k++) {
      if (k < nrows) {
        let e = (row0 + k) * n_v + j;
        y[e] = (x[e] - mu_row[k]) * r[k] * g + b;
      }
    }
  }
  if (inv.lid == 0u) {
    for (var k = 0u; k < ROWS; k++) {
      if (k < nrows) {
        mean[row0 + k] = mu_row[k];
        rstd[row0 + k] = r[k];
      }
    }
  }
}

@group(0) @binding(7) var<storage, read> dy: array<V>;
@group(0) @binding(8) var<storage, read> mean_in: array<f32>;
@group(0) @binding(9) var<storage, read> rstd_in: array<f32>;

struct BackwardParams { rows: u32, cols: u32, groups_x: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> bp: BackwardParams;
@group(0) @binding(10) var<storage, read_write> dx: array<V>;

// mean and rstd of the workgroup's ROWS rows (the last row repeated past the end).
struct RowStats { mu: array<f32, ROWS>, r: array<f32, ROWS> }

fn load_stats(row0: u32, rows: u32) -> RowStats {
  var s: RowStats;
  for (var k = 0u; k < ROWS; k++) {
    let row = min(row0 + k, rows - 1u);
    s.mu[k] = mean_in[row];
    s.r[k] = rstd_in[row];
  }
  return s;
}

@compute @workgroup_size(WG)
fn layernorm_backward_dx(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row0 = row_of(wg, bp.groups_x) * ROWS;
  if (row0 >= bp.rows) { return; }
  let nrows = min(ROWS, bp.rows - row0);
  let n_v = bp.cols / V_WIDTH;
  let st = load_stats(row0, bp.rows);
  // Row sums of g and g * xhat, read column-outer so gamma is read once per ROWS rows.
  var acc: array<vec2f, ROWS>;
  for (var j = inv.lid; j < n_v; j += WG) {
    var gm = V(1.0);
    if (AFFINE) { gm = gamma[j]; }
    for (var k = 0u; k < ROWS; k++) {
      if (k < nrows) {
        let e = (row0 + k) * n_v + j;
        let g = dy[e] * gm;
        acc[k] += vec2f(hsum(g), hsum(g * (x[e] - st.mu[k])) * st.r[k]);
      }
    }
  }
  var means: array<vec2f, ROWS>;
  for (var k = 0u; k < ROWS; k++) { means[k] = wg_sum2(acc[k], inv) / f32(bp.cols); }
  for (var j = inv.lid; j < n_v; j += WG) {
    var gm = V(1.0);
    if (AFFINE) { gm = gamma[j]; }
    for (var k = 0u; k < ROWS; k++) {
      if (k < nrows) {
        let e = (row0 + k) * n_v + j;
        let xhat = (x[e] - st.mu[k]) * st.r[k];
        var v = st.r[k] * (dy[e] * gm - means[k].x - xhat * means[k].y);
        if (bp.accumulate != 0u) { v += dx[e]; }
        dx[e] = v;
      }
    }
  }
}

struct PartialParams { rows: u32, cols: u32, groups_x: u32, chunks: u32 }
@group(0) @binding(0) var<uniform> pp: PartialParams;
@group(0) @binding(11) var<storage, read_write> partials: array<V>;

// partials[0, chunk, c] = sum of dy * xhat and partials[1, chunk, c] = sum of dy over the ROWS rows
// of chunk = the workgroup's row index. No reductions: every invocation owns its columns.
@compute @workgroup_size(WG)
fn layernorm_param_grad_partial(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let chunk = row_of(wg, pp.groups_x);
  let row0 = chunk * ROWS;
  if (row0 >= pp.rows) { return; }
  let nrows = min(ROWS, pp.rows - row0);
  let n_v = pp.cols / V_WIDTH;
  let st = load_stats(row0, pp.rows);
  for (var j = inv.lid; j < n_v; j += WG) {
    var dgamma_part = V(0.0);
    var dbeta_part = V(0.0);
    for (var k = 0u; k < ROWS; k++) {
      if (k < nrows) {
        let e = (row0 + k) * n_v + j;
        let d = dy[e];
        dgamma_part += d * (x[e] - st.mu[k]) * st.r[k];
        dbeta_part += d;
      }
    }
    partials[chunk * n_v + j] = dgamma_part;
    partials[(pp.chunks + chunk) * n_v + j] = dbeta_part;
  }
}

struct FinalParams { cols: u32, chunks: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> fin: FinalParams;
@group(0) @binding(12) var<storage, read> partials_in: array<V>;
@group(0) @binding(13) var<storage, read_write> dgamma: array<V>;
@group(0) @binding(14) var<storage, read_write> dbeta: array<V>;

// dgamma[c] (+)= sum over chunks of partials[0, chunk, c]; dbeta[c] likewise from partials[1].
// One invocation per V of columns; 64 invocations per workgroup, no reductions.
@compute @workgroup_size(64)
fn layernorm_param_grad_final(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  let n_v = fin.cols / V_WIDTH;
  if (j >= n_v) { return; }
  var dg = V(0.0);
  var db = V(0.0);
  for (var k = 0u; k < fin.chunks; k++) {
    dg += partials_in[k * n_v + j];
    db += partials_in[(fin.chunks + k) * n_v + j];
  }
  if (fin.accumulate != 0u) {
    dg += dgamma[j];
    db += dbeta[j];
  }
  dgamma[j] = dg;
  dbeta[j] = db;
}

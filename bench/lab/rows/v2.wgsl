// lab: ln_fwd=1 ln_bwd=split/1 sm_fwd=1 sm_bwd=1 LANES-invocation workgroups (8) that are one subgroup: reductions are subgroupAdd/Max alone (plain: a LANES-slot tree), Welford single pass
// As v1, but a workgroup is LANES invocations (lavapipe: one SIMD vector, subgroup size 8), so
// the subgroup path needs no workgroup memory or barriers; the LayerNorm forward reads x twice
// (Welford mean/M2 per lane, merged with Chan's formula) instead of three times.
override LANES: u32 = 8u;
override AFFINE: bool = true;
const NEG_MAX: f32 = -3.4028234e38;

// #if subgroups
struct Invocation {
  @builtin(local_invocation_index) lid: u32,
}
fn lanes_sum(v: f32, inv: Invocation) -> f32 { return subgroupAdd(v); }
fn lanes_sum2(v: vec2f, inv: Invocation) -> vec2f { return subgroupAdd(v); }
fn lanes_max(v: f32, inv: Invocation) -> f32 { return subgroupMax(v); }
// #else
struct Invocation {
  @builtin(local_invocation_index) lid: u32,
}
var<workgroup> slots: array<vec2f, LANES>;
fn lanes_sum2(v: vec2f, inv: Invocation) -> vec2f {
  slots[inv.lid] = v;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (inv.lid < s) { slots[inv.lid] += slots[inv.lid + s]; }
    workgroupBarrier();
  }
  let t = slots[0];
  workgroupBarrier();
  return t;
}
fn lanes_sum(v: f32, inv: Invocation) -> f32 { return lanes_sum2(vec2f(v, 0.0), inv).x; }
fn lanes_max(v: f32, inv: Invocation) -> f32 {
  slots[inv.lid].x = v;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (inv.lid < s) { slots[inv.lid].x = max(slots[inv.lid].x, slots[inv.lid + s].x); }
    workgroupBarrier();
  }
  let t = slots[0].x;
  workgroupBarrier();
  return t;
}
// #endif

fn row_of(wg: vec3u, groups_x: u32) -> u32 { return wg.y * groups_x + wg.x; }

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
struct ForwardParams { rows: u32, cols: u32, eps: f32, groups_x: u32 }
@group(0) @binding(0) var<uniform> fp: ForwardParams;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;

@compute @workgroup_size(LANES)
fn layernorm_forward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, fp.groups_x);
  if (row >= fp.rows) { return; }
  let base = row * fp.cols;
  // Welford per lane, then Chan's merge: mean = sum(n_i mu_i) / N, M2 = sum(M2_i + n_i (mu_i - mean)^2).
  var n = 0.0;
  var mu = 0.0;
  var m2 = 0.0;
  for (var i = inv.lid; i < fp.cols; i += LANES) {
    let v = x[base + i];
    n += 1.0;
    let d = v - mu;
    mu += d / n;
    m2 += d * (v - mu);
  }
  let total = f32(fp.cols);
  let mu_row = lanes_sum(n * mu, inv) / total;
  let dm = mu - mu_row;
  let r = inverseSqrt(lanes_sum(m2 + n * dm * dm, inv) / total + fp.eps);
  for (var i = inv.lid; i < fp.cols; i += LANES) {
    var v = (x[base + i] - mu_row) * r;
    if (AFFINE) { v = v * gamma[i] + beta[i]; }
    y[base + i] = v;
  }
  if (inv.lid == 0u) {
    mean[row] = mu_row;
    rstd[row] = r;
  }
}

@group(0) @binding(7) var<storage, read> dy: array<f32>;
@group(0) @binding(8) var<storage, read> mean_in: array<f32>;
@group(0) @binding(9) var<storage, read> rstd_in: array<f32>;
struct BackwardParams { rows: u32, cols: u32, groups_x: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> bp: BackwardParams;
@group(0) @binding(10) var<storage, read_write> dx: array<f32>;

fn upstream(base: u32, i: u32) -> f32 {
  if (AFFINE) { return dy[base + i] * gamma[i]; }
  return dy[base + i];
}

@compute @workgroup_size(LANES)
fn layernorm_backward_dx(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, bp.groups_x);
  if (row >= bp.rows) { return; }
  let base = row * bp.cols;
  let mu = mean_in[row];
  let r = rstd_in[row];
  var acc = vec2f(0.0);
  for (var i = inv.lid; i < bp.cols; i += LANES) {
    let g = upstream(base, i);
    acc += vec2f(g, g * (x[base + i] - mu) * r);
  }
  let means = lanes_sum2(acc, inv) / f32(bp.cols);
  for (var i = inv.lid; i < bp.cols; i += LANES) {
    let xhat = (x[base + i] - mu) * r;
    var v = r * (upstream(base, i) - means.x - xhat * means.y);
    if (bp.accumulate != 0u) { v += dx[base + i]; }
    dx[base + i] = v;
  }
}

// dgamma/dbeta as in v1 (256-invocation workgroups, 64 columns x 4 lanes of rows).
const WG: u32 = 256u;
struct PartialParams { rows: u32, cols: u32, chunks: u32 }
@group(0) @binding(0) var<uniform> pp: PartialParams;
@group(0) @binding(11) var<storage, read_write> partials: array<f32>;
const COLS_PER_GROUP: u32 = 64u;
const ROW_LANES: u32 = WG / COLS_PER_GROUP;
const ROWS_PER_CHUNK: u32 = 32u;
var<workgroup> col_slots: array<vec2f, WG>;

@compute @workgroup_size(WG)
fn layernorm_param_grad_partial(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3u) {
  let c = wg.x * COLS_PER_GROUP + lid % COLS_PER_GROUP;
  let lane = lid / COLS_PER_GROUP;
  let chunk = wg.y;
  let end = min((chunk + 1u) * ROWS_PER_CHUNK, pp.rows);
  var acc = vec2f(0.0);
  if (c < pp.cols) {
    for (var row = chunk * ROWS_PER_CHUNK + lane; row < end; row += ROW_LANES) {
      let i = row * pp.cols + c;
      let d = dy[i];
      acc += vec2f(d * (x[i] - mean_in[row]) * rstd_in[row], d);
    }
  }
  col_slots[lid] = acc;
  workgroupBarrier();
  if (lane == 0u && c < pp.cols) {
    var total = vec2f(0.0);
    for (var l = 0u; l < ROW_LANES; l++) { total += col_slots[l * COLS_PER_GROUP + lid]; }
    partials[chunk * pp.cols + c] = total.x;
    partials[(pp.chunks + chunk) * pp.cols + c] = total.y;
  }
}

struct FinalParams { cols: u32, chunks: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> fin: FinalParams;
@group(0) @binding(12) var<storage, read> partials_in: array<f32>;
@group(0) @binding(13) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(14) var<storage, read_write> dbeta: array<f32>;

@compute @workgroup_size(64)
fn layernorm_param_grad_final(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= fin.cols) { return; }
  var acc = vec2f(0.0);
  for (var k = 0u; k < fin.chunks; k++) {
    acc += vec2f(partials_in[k * fin.cols + c], partials_in[(fin.chunks + k) * fin.cols + c]);
  }
  if (fin.accumulate != 0u) { acc += vec2f(dgamma[c], dbeta[c]); }
  dgamma[c] = acc.x;
  dbeta[c] = acc.y;
}

// ---- softmax
struct SoftmaxParams { rows: u32, cols: u32, groups_x: u32 }
@group(0) @binding(0) var<uniform> params: SoftmaxParams;
@group(0) @binding(15) var<storage, read> y_in: array<f32>;

@compute @workgroup_size(LANES)
fn softmax_forward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, params.groups_x);
  if (row >= params.rows) { return; }
  let base = row * params.cols;
  var m = NEG_MAX;
  var s = 0.0;
  for (var i = inv.lid; i < params.cols; i += LANES) {
    let v = x[base + i];
    if (v > m) {
      s = s * exp(m - v) + 1.0;
      m = v;
    } else {
      s += exp(v - m);
    }
  }
  let row_max = lanes_max(m, inv);
  let inv_total = 1.0 / lanes_sum(s * exp(m - row_max), inv);
  for (var i = inv.lid; i < params.cols; i += LANES) {
    y[base + i] = exp(x[base + i] - row_max) * inv_total;
  }
}

@compute @workgroup_size(LANES)
fn softmax_backward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, params.groups_x);
  if (row >= params.rows) { return; }
  let base = row * params.cols;
  var acc = 0.0;
  for (var i = inv.lid; i < params.cols; i += LANES) { acc += dy[base + i] * y_in[base + i]; }
  let dot = lanes_sum(acc, inv);
  for (var i = inv.lid; i < params.cols; i += LANES) {
    dx[base + i] = y_in[base + i] * (dy[base + i] - dot);
  }
}

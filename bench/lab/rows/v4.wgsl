// lab: ln_fwd=8 ln_bwd=fused/8 sm_fwd=1 v3 with ROWS an override (default 8, up to 16); softmax online max/sum four elements at a time
// LayerNorm as v3 with the per-row arrays sized MAX_ROWS and ROWS an override constant, so one
// file sweeps ROWS (runner: v4@ROWS=4). Softmax forward: v2 with a branch-free online max/sum
// that rescales once per four elements.
// Rows per workgroup, an override up to MAX_ROWS (the size of the per-row register arrays).
const MAX_ROWS: u32 = 16u;
override ROWS: u32 = 8u;
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
  let row0 = row_of(wg, fp.groups_x) * ROWS;
  if (row0 >= fp.rows) { return; }
  let nrows = min(ROWS, fp.rows - row0);
  let total = f32(fp.cols);
  var mu_row: array<f32, MAX_ROWS>;
  var r: array<f32, MAX_ROWS>;
  for (var k = 0u; k < ROWS; k++) {
    if (k >= nrows) { break; }
    let base = (row0 + k) * fp.cols;
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
    mu_row[k] = lanes_sum(n * mu, inv) / total;
    let dm = mu - mu_row[k];
    r[k] = inverseSqrt(lanes_sum(m2 + n * dm * dm, inv) / total + fp.eps);
  }
  for (var i = inv.lid; i < fp.cols; i += LANES) {
    var g = 1.0;
    var b = 0.0;
    if (AFFINE) {
      g = gamma[i];
      b = beta[i];
    }
    for (var k = 0u; k < ROWS; k++) {
      if (k < nrows) {
        let e = (row0 + k) * fp.cols + i;
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

@group(0) @binding(7) var<storage, read> dy: array<f32>;
@group(0) @binding(8) var<storage, read> mean_in: array<f32>;
@group(0) @binding(9) var<storage, read> rstd_in: array<f32>;
struct BackwardParams { rows: u32, cols: u32, groups_x: u32, accumulate: u32, chunks: u32 }
@group(0) @binding(0) var<uniform> bp: BackwardParams;
@group(0) @binding(10) var<storage, read_write> dx: array<f32>;
@group(0) @binding(11) var<storage, read_write> partials: array<f32>;

// dx of rows [chunk * ROWS, +ROWS) and partials[0, chunk, c] = sum of dy * xhat, partials[1, chunk, c]
// = sum of dy over those rows.
@compute @workgroup_size(LANES)
fn layernorm_backward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let chunk = row_of(wg, bp.groups_x);
  let row0 = chunk * ROWS;
  if (row0 >= bp.rows) { return; }
  let nrows = min(ROWS, bp.rows - row0);
  var mu: array<f32, MAX_ROWS>;
  var r: array<f32, MAX_ROWS>;
  for (var k = 0u; k < ROWS; k++) {
    let row = min(row0 + k, bp.rows - 1u);
    mu[k] = mean_in[row];
    r[k] = rstd_in[row];
  }
  var acc: array<vec2f, MAX_ROWS>;
  for (var i = inv.lid; i < bp.cols; i += LANES) {
    var gm = 1.0;
    if (AFFINE) { gm = gamma[i]; }
    for (var k = 0u; k < ROWS; k++) {
      if (k < nrows) {
        let e = (row0 + k) * bp.cols + i;
        let g = dy[e] * gm;
        acc[k] += vec2f(g, g * (x[e] - mu[k]) * r[k]);
      }
    }
  }
  var means: array<vec2f, MAX_ROWS>;
  for (var k = 0u; k < ROWS; k++) { means[k] = lanes_sum2(acc[k], inv) / f32(bp.cols); }
  for (var i = inv.lid; i < bp.cols; i += LANES) {
    var gm = 1.0;
    if (AFFINE) { gm = gamma[i]; }
    var pg = vec2f(0.0);
    for (var k = 0u; k < ROWS; k++) {
      if (k < nrows) {
        let e = (row0 + k) * bp.cols + i;
        let d = dy[e];
        let xhat = (x[e] - mu[k]) * r[k];
        var v = r[k] * (d * gm - means[k].x - xhat * means[k].y);
        if (bp.accumulate != 0u) { v += dx[e]; }
        dx[e] = v;
        pg += vec2f(d * xhat, d);
      }
    }
    partials[chunk * bp.cols + i] = pg.x;
    partials[(bp.chunks + chunk) * bp.cols + i] = pg.y;
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

// Online max and sum of exp(v - max) over four elements at a time: one rescale per four
// elements, 1.25 exp per element (v2: a branch whose sides each take an exp).
@compute @workgroup_size(LANES)
fn softmax_forward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, params.groups_x);
  if (row >= params.rows) { return; }
  let base = row * params.cols;
  var m = NEG_MAX;
  var s = 0.0;
  var i = inv.lid;
  for (; i + 3u * LANES < params.cols; i += 4u * LANES) {
    let v = vec4f(x[base + i], x[base + i + LANES], x[base + i + 2u * LANES], x[base + i + 3u * LANES]);
    let m_new = max(m, max(max(v.x, v.y), max(v.z, v.w)));
    let e = exp(v - m_new);
    s = s * exp(m - m_new) + (e.x + e.y) + (e.z + e.w);
    m = m_new;
  }
  for (; i < params.cols; i += LANES) {
    let v = x[base + i];
    let m_new = max(m, v);
    s = s * exp(m - m_new) + exp(v - m_new);
    m = m_new;
  }
  let row_max = lanes_max(m, inv);
  let inv_total = 1.0 / lanes_sum(s * exp(m - row_max), inv);
  for (var i = inv.lid; i < params.cols; i += LANES) {
    y[base + i] = exp(x[base + i] - row_max) * inv_total;
  }
}

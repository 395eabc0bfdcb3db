// lab: ln_fwd=4 ln_bwd=fused/4 as v2 with ROWS rows per workgroup (4), loops column-outer so gamma/beta load once per ROWS rows; the backward writes dx and the dgamma/dbeta partials of its rows in one kernel
// LayerNorm only (softmax has nothing to share between rows). Loads per element: forward
// 2 + 2/ROWS and a store (v2: 4 and a store); backward 4 + 1/ROWS and a store, + 2/ROWS partial
// stores (v2: 6 and a store in dx, then 4 more in layernorm_param_grad_partial).
const ROWS: u32 = 4u;
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
  var mu_row: array<f32, ROWS>;
  var r: array<f32, ROWS>;
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
  var mu: array<f32, ROWS>;
  var r: array<f32, ROWS>;
  for (var k = 0u; k < ROWS; k++) {
    let row = min(row0 + k, bp.rows - 1u);
    mu[k] = mean_in[row];
    r[k] = rstd_in[row];
  }
  var acc: array<vec2f, ROWS>;
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
  var means: array<vec2f, ROWS>;
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


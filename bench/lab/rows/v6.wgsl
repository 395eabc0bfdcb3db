// lab: ln_fwd=8 ln_bwd=fused/8 sm_fwd=1 sm_bwd=1 v4 written over an element type V (f32, or vec4f via v6@vec4 for rows of a multiple of 4 columns); softmax backward and both softmax passes read 4 V per step
// One text for scalar and vec4 storage: every storage array of row data is array<V>, and
// `alias V = f32;` is rewritten to vec4f by the engine's alias specialisation. Horizontal sums
// and maxima (hsum, hmax) reduce a V to f32 through vec4f(v), which splats a scalar.
alias V = f32;
// Elements per V: |V(1)|^2 is 1 for f32 and 4 for vec4f.
const V_WIDTH: u32 = u32(length(V(1.0)) * length(V(1.0)));
// dot(vec4f(v), HSUM_WEIGHTS) is v for a scalar (splat) and the component sum for a vec4.
const HSUM_WEIGHTS = select(vec4f(1.0), vec4f(1.0, 0.0, 0.0, 0.0), V_WIDTH == 1u);
fn hsum(v: V) -> f32 { return dot(vec4f(v), HSUM_WEIGHTS); }
fn hmax(v: V) -> f32 {
  let a = vec4f(v);
  return max(max(a.x, a.y), max(a.z, a.w));
}

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

@group(0) @binding(1) var<storage, read> x: array<V>;
@group(0) @binding(2) var<storage, read> gamma: array<V>;
struct ForwardParams { rows: u32, cols: u32, eps: f32, groups_x: u32 }
@group(0) @binding(0) var<uniform> fp: ForwardParams;
@group(0) @binding(3) var<storage, read> beta: array<V>;
@group(0) @binding(4) var<storage, read_write> y: array<V>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;

@compute @workgroup_size(LANES)
fn layernorm_forward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row0 = row_of(wg, fp.groups_x) * ROWS;
  if (row0 >= fp.rows) { return; }
  let nrows = min(ROWS, fp.rows - row0);
  let n_v = fp.cols / V_WIDTH;
  let total = f32(fp.cols);
  var mu_row: array<f32, MAX_ROWS>;
  var r: array<f32, MAX_ROWS>;
  for (var k = 0u; k < ROWS; k++) {
    if (k >= nrows) { break; }
    let base = (row0 + k) * n_v;
    var n = 0.0;
    var mu = V(0.0);
    var m2 = V(0.0);
    for (var j = inv.lid; j < n_v; j += LANES) {
      let v = x[base + j];
      n += 1.0;
      let d = v - mu;
      mu += d / n;
      m2 += d * (v - mu);
    }
    mu_row[k] = lanes_sum(n * hsum(mu), inv) / total;
    let dm = mu - mu_row[k];
    r[k] = inverseSqrt(lanes_sum(hsum(m2 + n * dm * dm), inv) / total + fp.eps);
  }
  for (var j = inv.lid; j < n_v; j += LANES) {
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
struct BackwardParams { rows: u32, cols: u32, groups_x: u32, accumulate: u32, chunks: u32 }
@group(0) @binding(0) var<uniform> bp: BackwardParams;
@group(0) @binding(10) var<storage, read_write> dx: array<V>;
@group(0) @binding(11) var<storage, read_write> partials: array<V>;

@compute @workgroup_size(LANES)
fn layernorm_backward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let chunk = row_of(wg, bp.groups_x);
  let row0 = chunk * ROWS;
  if (row0 >= bp.rows) { return; }
  let nrows = min(ROWS, bp.rows - row0);
  let n_v = bp.cols / V_WIDTH;
  var mu: array<f32, MAX_ROWS>;
  var r: array<f32, MAX_ROWS>;
  for (var k = 0u; k < ROWS; k++) {
    let row = min(row0 + k, bp.rows - 1u);
    mu[k] = mean_in[row];
    r[k] = rstd_in[row];
  }
  var acc: array<vec2f, MAX_ROWS>;
  for (var j = inv.lid; j < n_v; j += LANES) {
    var gm = V(1.0);
    if (AFFINE) { gm = gamma[j]; }
    for (var k = 0u; k < ROWS; k++) {
      if (k < nrows) {
        let e = (row0 + k) * n_v + j;
        let g = dy[e] * gm;
        acc[k] += vec2f(hsum(g), hsum(g * (x[e] - mu[k]))) * vec2f(1.0, r[k]);
      }
    }
  }
  var means: array<vec2f, MAX_ROWS>;
  for (var k = 0u; k < ROWS; k++) { means[k] = lanes_sum2(acc[k], inv) / f32(bp.cols); }
  for (var j = inv.lid; j < n_v; j += LANES) {
    var gm = V(1.0);
    if (AFFINE) { gm = gamma[j]; }
    var dgamma_part = V(0.0);
    var dbeta_part = V(0.0);
    for (var k = 0u; k < ROWS; k++) {
      if (k < nrows) {
        let e = (row0 + k) * n_v + j;
        let d = dy[e];
        let xhat = (x[e] - mu[k]) * r[k];
        var v = r[k] * (d * gm - means[k].x - xhat * means[k].y);
        if (bp.accumulate != 0u) { v += dx[e]; }
        dx[e] = v;
        dgamma_part += d * xhat;
        dbeta_part += d;
      }
    }
    partials[chunk * n_v + j] = dgamma_part;
    partials[(bp.chunks + chunk) * n_v + j] = dbeta_part;
  }
}

struct FinalParams { cols: u32, chunks: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> fin: FinalParams;
@group(0) @binding(12) var<storage, read> partials_in: array<V>;
@group(0) @binding(13) var<storage, read_write> dgamma: array<V>;
@group(0) @binding(14) var<storage, read_write> dbeta: array<V>;

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

// ---- softmax
struct SoftmaxParams { rows: u32, cols: u32, groups_x: u32 }
@group(0) @binding(0) var<uniform> params: SoftmaxParams;
@group(0) @binding(15) var<storage, read> y_in: array<V>;

// Online (max, sum of exp(v - max)) over four V at a time: one rescale per 4 V.
fn max_sum4(ms: vec2f, a: V, b: V, c: V, d: V) -> vec2f {
  let m = max(ms.x, hmax(max(max(a, b), max(c, d))));
  let e = (exp(a - m) + exp(b - m)) + (exp(c - m) + exp(d - m));
  return vec2f(m, ms.y * exp(ms.x - m) + hsum(e));
}
fn max_sum1(ms: vec2f, a: V) -> vec2f {
  let m = max(ms.x, hmax(a));
  return vec2f(m, ms.y * exp(ms.x - m) + hsum(exp(a - m)));
}

@compute @workgroup_size(LANES)
fn softmax_forward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, params.groups_x);
  if (row >= params.rows) { return; }
  let n_v = params.cols / V_WIDTH;
  let base = row * n_v;
  var ms = vec2f(NEG_MAX, 0.0);
  var j = inv.lid;
  for (; j + 3u * LANES < n_v; j += 4u * LANES) {
    let e = base + j;
    ms = max_sum4(ms, x[e], x[e + LANES], x[e + 2u * LANES], x[e + 3u * LANES]);
  }
  for (; j < n_v; j += LANES) { ms = max_sum1(ms, x[base + j]); }
  let row_max = lanes_max(ms.x, inv);
  let inv_total = 1.0 / lanes_sum(ms.y * exp(ms.x - row_max), inv);
  for (var j = inv.lid; j < n_v; j += LANES) {
    y[base + j] = exp(x[base + j] - row_max) * inv_total;
  }
}

@compute @workgroup_size(LANES)
fn softmax_backward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, params.groups_x);
  if (row >= params.rows) { return; }
  let n_v = params.cols / V_WIDTH;
  let base = row * n_v;
  var acc = V(0.0);
  for (var j = inv.lid; j < n_v; j += LANES) { acc += dy[base + j] * y_in[base + j]; }
  let dot = lanes_sum(hsum(acc), inv);
  for (var j = inv.lid; j < n_v; j += LANES) {
    dx[base + j] = y_in[base + j] * (dy[base + j] - dot);
  }
}

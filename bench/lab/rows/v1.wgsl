// lab: ln_fwd=1 ln_bwd=split/1 sm_fwd=1 sm_bwd=1 the engine before the lab: 256 invocations, one row per workgroup, subgroup reduction + slots (or a plain tree), two-pass variance
// shaders/layernorm.wgsl and shaders/softmax.wgsl as of cf07538, includes expanded; softmax bindings renamed to share the module.
// LayerNorm over the last dim (Whisper: eps 1e-5), optionally affine (gamma, beta):
//   y = (x - mean) * rstd (* gamma + beta),  rstd = 1 / sqrt(var + eps),  var biased.
// layernorm_forward also saves mean and rstd per row for the backward.
// layernorm_backward_dx: with g = dy (* gamma) and xhat = (x - mean) * rstd,
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
// dgamma = sum over rows of dy * xhat and dbeta = sum of dy, without float atomics:
// layernorm_param_grad_partial sums chunks of rows per column into partials [2, chunks, C],
// then layernorm_param_grad_final adds up the chunks of every column.
// Row kernels use one workgroup per row; the workgroup reduction has a subgroup path and a plain
// tree (shaders/lib/reduction.wgsl).

// Workgroup reductions shared by reduce.wgsl, layernorm.wgsl, softmax.wgsl and losses.wgsl
// (pulled in with `// #include "lib/reduction.wgsl"`, resolved by scripts/bundle-shaders.mjs).
// A subgroup path and a plain shared-memory tree: kernel.ts keeps the `// #if subgroups` half when
// the variant enables subgroups and the `// #else` half otherwise.
// Entry points take the workgroup id as a separate parameter, not inside Invocation: uniformity
// analysis treats a struct parameter as non-uniform as a whole, and barriers need a uniform row.
const WG: u32 = 256u;
// Identity of max: the most negative finite f32 (WGSL has no infinity literal).
const NEG_MAX: f32 = -3.4028234e38;

// #if subgroups
struct Invocation {
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sg_lane: u32,
  @builtin(subgroup_size) sg_size: u32,
}

var<workgroup> red_slots: array<vec2f, WG>;

// Sum of v over the workgroup, returned to every invocation. Each subgroup's first lane parks the
// subgroup's sum in its own slot (the other lanes park 0), so nothing assumes how subgroups map
// onto local_invocation_index; then every subgroup adds up all slots in the same order.
fn wg_sum2(v: vec2f, inv: Invocation) -> vec2f {
  let s = subgroupAdd(v);
  red_slots[inv.lid] = select(vec2f(0.0), s, inv.sg_lane == 0u);
  workgroupBarrier();
  var t = vec2f(0.0);
  for (var i = 0u; i < WG; i += inv.sg_size) { t += red_slots[i + inv.sg_lane]; }
  workgroupBarrier();
  return subgroupAdd(t);
}

fn wg_max(v: f32, inv: Invocation) -> f32 {
  let m = subgroupMax(v);
  red_slots[inv.lid].x = select(NEG_MAX, m, inv.sg_lane == 0u);
  workgroupBarrier();
  var t = NEG_MAX;
  for (var i = 0u; i < WG; i += inv.sg_size) { t = max(t, red_slots[i + inv.sg_lane].x); }
  workgroupBarrier();
  return subgroupMax(t);
}
// #else
struct Invocation {
  @builtin(local_invocation_index) lid: u32,
}

var<workgroup> red_slots: array<vec2f, WG>;

// Sum of v over the workgroup by a shared-memory tree, returned to every invocation.
fn wg_sum2(v: vec2f, inv: Invocation) -> vec2f {
  red_slots[inv.lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (inv.lid < s) { red_slots[inv.lid] += red_slots[inv.lid + s]; }
    workgroupBarrier();
  }
  let t = red_slots[0];
  workgroupBarrier();
  return t;
}

fn wg_max(v: f32, inv: Invocation) -> f32 {
  red_slots[inv.lid].x = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (inv.lid < s) { red_slots[inv.lid].x = max(red_slots[inv.lid].x, red_slots[inv.lid + s].x); }
    workgroupBarrier();
  }
  let t = red_slots[0].x;
  workgroupBarrier();
  return t;
}
// #endif

fn wg_sum(v: f32, inv: Invocation) -> f32 {
  return wg_sum2(vec2f(v, 0.0), inv).x;
}

// Row index of a workgroup when the rows are spread over an x/y grid of groups_x columns.
fn row_of(wg: vec3u, groups_x: u32) -> u32 {
  return wg.y * groups_x + wg.x;
}

// Whether gamma and beta apply. Without them the gamma and beta bindings still exist in the
// layout and the host binds x in their place; they are never read.
override AFFINE: bool = true;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;

struct ForwardParams { rows: u32, cols: u32, eps: f32, groups_x: u32 }
@group(0) @binding(0) var<uniform> fp: ForwardParams;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;

@compute @workgroup_size(WG)
fn layernorm_forward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, fp.groups_x);
  if (row >= fp.rows) { return; }
  let base = row * fp.cols;
  let n = f32(fp.cols);
  var s = 0.0;
  for (var i = inv.lid; i < fp.cols; i += WG) { s += x[base + i]; }
  let mu = wg_sum(s, inv) / n;
  // Two passes (mean, then squared deviations) avoid the cancellation of E[x^2] - E[x]^2.
  var q = 0.0;
  for (var i = inv.lid; i < fp.cols; i += WG) {
    let d = x[base + i] - mu;
    q += d * d;
  }
  let r = inverseSqrt(wg_sum(q, inv) / n + fp.eps);
  for (var i = inv.lid; i < fp.cols; i += WG) {
    var v = (x[base + i] - mu) * r;
    if (AFFINE) { v = v * gamma[i] + beta[i]; }
    y[base + i] = v;
  }
  if (inv.lid == 0u) {
    mean[row] = mu;
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

@compute @workgroup_size(WG)
fn layernorm_backward_dx(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, bp.groups_x);
  if (row >= bp.rows) { return; }
  let base = row * bp.cols;
  let mu = mean_in[row];
  let r = rstd_in[row];
  var acc = vec2f(0.0);
  for (var i = inv.lid; i < bp.cols; i += WG) {
    let g = upstream(base, i);
    acc += vec2f(g, g * (x[base + i] - mu) * r);
  }
  let means = wg_sum2(acc, inv) / f32(bp.cols);
  for (var i = inv.lid; i < bp.cols; i += WG) {
    let xhat = (x[base + i] - mu) * r;
    var v = r * (upstream(base, i) - means.x - xhat * means.y);
    if (bp.accumulate != 0u) { v += dx[base + i]; }
    dx[base + i] = v;
  }
}

struct PartialParams { rows: u32, cols: u32, chunks: u32 }
@group(0) @binding(0) var<uniform> pp: PartialParams;
@group(0) @binding(11) var<storage, read_write> partials: array<f32>;
const COLS_PER_GROUP: u32 = 64u;
const ROW_LANES: u32 = WG / COLS_PER_GROUP;
// Rows one workgroup of layernorm_param_grad_partial covers (host: LAYERNORM_ROWS_PER_CHUNK).
const ROWS_PER_CHUNK: u32 = 32u;

// partials[0, chunk, c] = sum of dy * xhat and partials[1, chunk, c] = sum of dy over the rows of
// the chunk. A workgroup covers 64 columns x 4 lanes of rows, so reads are coalesced.
@compute @workgroup_size(WG)
fn layernorm_param_grad_partial(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let c = wg.x * COLS_PER_GROUP + inv.lid % COLS_PER_GROUP;
  let lane = inv.lid / COLS_PER_GROUP;
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
  red_slots[inv.lid] = acc;
  workgroupBarrier();
  if (lane == 0u && c < pp.cols) {
    var total = vec2f(0.0);
    for (var l = 0u; l < ROW_LANES; l++) { total += red_slots[l * COLS_PER_GROUP + inv.lid]; }
    partials[chunk * pp.cols + c] = total.x;
    partials[(pp.chunks + chunk) * pp.cols + c] = total.y;
  }
}

struct FinalParams { cols: u32, chunks: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> fin: FinalParams;
@group(0) @binding(12) var<storage, read> partials_in: array<f32>;
@group(0) @binding(13) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(14) var<storage, read_write> dbeta: array<f32>;

// dgamma[c] (+)= sum over chunks of partials[0, chunk, c]; dbeta[c] likewise from partials[1].
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

@compute @workgroup_size(WG)
fn softmax_forward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, params.groups_x);
  if (row >= params.rows) { return; }
  let base = row * params.cols;
  // Online max and sum of exp(x - max) over this invocation's elements: 2 reads of x, not 3.
  var m = NEG_MAX;
  var s = 0.0;
  for (var i = inv.lid; i < params.cols; i += WG) {
    let v = x[base + i];
    if (v > m) {
      s = s * exp(m - v) + 1.0;
      m = v;
    } else {
      s += exp(v - m);
    }
  }
  let row_max = wg_max(m, inv);
  let total = wg_sum(s * exp(m - row_max), inv);
  let inv_total = 1.0 / total;
  for (var i = inv.lid; i < params.cols; i += WG) {
    y[base + i] = exp(x[base + i] - row_max) * inv_total;
  }
}

@compute @workgroup_size(WG)
fn softmax_backward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, params.groups_x);
  if (row >= params.rows) { return; }
  let base = row * params.cols;
  var acc = 0.0;
  for (var i = inv.lid; i < params.cols; i += WG) { acc += dy[base + i] * y_in[base + i]; }
  let dot = wg_sum(acc, inv);
  for (var i = inv.lid; i < params.cols; i += WG) {
    dx[base + i] = y_in[base + i] * (dy[base + i] - dot);
  }
}

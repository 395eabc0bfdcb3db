// Softmax over the last dim, one workgroup per row, looping over the row so rows of any length
// (the 51865-token vocabulary) work.
// softmax_forward: y = exp(x - max) / sum(exp(x - max)), max and sum found in one online pass.
// softmax_backward: dx = y * (dy - sum(dy * y)).
// The workgroup reduction has a subgroup path and a plain tree (see reduce.wgsl, whose helpers
// are copied below verbatim since WGSL has no includes).

// BEGIN reduction helpers
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
// END reduction helpers

struct Params { rows: u32, cols: u32, groups_x: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> y_in: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

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

// Reductions without float atomics:
// - partial_sum + final_sum: sum (or, with SQUARE, sum of squares) of whole tensors to a scalar.
//   partial_sum writes one partial per workgroup (a contiguous chunk of the tensor) into slots
//   [slot0, slot0 + groups) of a partials buffer, so several tensors can fill disjoint slot
//   ranges of one buffer; final_sum then reduces a range of slots into one output element.
// - row_reduce: sum or (ROW_MAX) max over the last dim, one workgroup per row.
// - col_sum: sum over rows for every column.
// The workgroup reduction has a subgroup path and a plain shared-memory tree: kernel.ts keeps the
// `// #if subgroups` half when the variant enables subgroups and the `// #else` half otherwise.
// The reduction helpers between the BEGIN/END lines are copied verbatim into layernorm.wgsl and
// softmax.wgsl, since WGSL has no includes (test/kernels/reduce.test.ts checks the copies match).

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

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

struct PartialParams { n: u32, chunk: u32, slot0: u32 }
@group(0) @binding(0) var<uniform> pp: PartialParams;
override SQUARE: bool = false;

// out[slot0 + g] = sum of x[i] (or x[i]^2) over workgroup g's chunk [g*chunk, (g+1)*chunk) ∩ [0, n).
@compute @workgroup_size(WG)
fn partial_sum(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let start = wg.x * pp.chunk;
  let end = min(start + pp.chunk, pp.n);
  var acc = 0.0;
  for (var i = start + inv.lid; i < end; i += WG) {
    let v = x[i];
    acc += select(v, v * v, SQUARE);
  }
  let total = wg_sum(acc, inv);
  if (inv.lid == 0u) { out[pp.slot0 + wg.x] = total; }
}

struct FinalParams { count: u32, slot0: u32, out_index: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> fp: FinalParams;

// out[out_index] (+)= sum of x[slot0 .. slot0 + count). One workgroup.
@compute @workgroup_size(WG)
fn final_sum(inv: Invocation) {
  var acc = 0.0;
  for (var i = inv.lid; i < fp.count; i += WG) { acc += x[fp.slot0 + i]; }
  let total = wg_sum(acc, inv);
  if (inv.lid == 0u) {
    out[fp.out_index] = select(total, total + out[fp.out_index], fp.accumulate != 0u);
  }
}

struct RowParams { rows: u32, cols: u32, groups_x: u32 }
@group(0) @binding(0) var<uniform> rp: RowParams;
override ROW_MAX: bool = false;

// out[row] = sum (or ROW_MAX: max) of x[row, :]. One workgroup per row.
@compute @workgroup_size(WG)
fn row_reduce(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, rp.groups_x);
  if (row >= rp.rows) { return; }
  let base = row * rp.cols;
  var acc = select(0.0, NEG_MAX, ROW_MAX);
  for (var i = inv.lid; i < rp.cols; i += WG) {
    let v = x[base + i];
    acc = select(acc + v, max(acc, v), ROW_MAX);
  }
  var total: f32;
  if (ROW_MAX) { total = wg_max(acc, inv); } else { total = wg_sum(acc, inv); }
  if (inv.lid == 0u) { out[row] = total; }
}

struct ColParams { rows: u32, cols: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> cp: ColParams;
const COLS_PER_GROUP: u32 = 64u;
const ROW_LANES: u32 = WG / COLS_PER_GROUP;

// out[c] (+)= sum over rows of x[r, c]. A workgroup covers 64 columns with 4 lanes of rows, so
// adjacent invocations read adjacent addresses.
@compute @workgroup_size(WG)
fn col_sum(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let c = wg.x * COLS_PER_GROUP + inv.lid % COLS_PER_GROUP;
  let lane = inv.lid / COLS_PER_GROUP;
  var acc = 0.0;
  if (c < cp.cols) {
    for (var r = lane; r < cp.rows; r += ROW_LANES) { acc += x[r * cp.cols + c]; }
  }
  red_slots[inv.lid].x = acc;
  workgroupBarrier();
  if (lane == 0u && c < cp.cols) {
    var total = 0.0;
    for (var l = 0u; l < ROW_LANES; l++) { total += red_slots[l * COLS_PER_GROUP + inv.lid].x; }
    out[c] = select(total, total + out[c], cp.accumulate != 0u);
  }
}

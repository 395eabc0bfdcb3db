// Reductions without float atomics:
// - partial_sum + final_sum: sum (or, with SQUARE, sum of squares) of whole tensors to a scalar.
//   partial_sum writes one partial per workgroup (a contiguous chunk of the tensor) into slots
//   [slot0, slot0 + groups) of a partials buffer, so several tensors can fill disjoint slot
//   ranges of one buffer; final_sum then reduces a range of slots into one output element.
// - row_reduce: sum or (ROW_MAX) max over the last dim, one small workgroup per row.
// - col_sum: sum over rows for every column.
// The workgroup reduction (subgroup path and plain tree) is in shaders/lib/reduction.wgsl.

// #include "lib/reduction.wgsl"

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
// row_reduce's x as row data (f32 or vec4f, bound to the same tensor as x would be).
@group(0) @binding(3) var<storage, read> rows_in: array<V>;
override ROW_MAX: bool = false;

// out[row] = sum (or ROW_MAX: max) of rows_in[row, :]. One small workgroup per row (host:
// rowLaunch).
@compute @workgroup_size(WG)
fn row_reduce(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, rp.groups_x);
  if (row >= rp.rows) { return; }
  let n_v = rp.cols / V_WIDTH;
  let base = row * n_v;
  var acc = select(V(0.0), V(NEG_MAX), ROW_MAX);
  for (var j = inv.lid; j < n_v; j += WG) {
    let v = rows_in[base + j];
    acc = select(acc + v, max(acc, v), ROW_MAX);
  }
  var total: f32;
  if (ROW_MAX) { total = wg_max(hmax(acc), inv); } else { total = wg_sum(hsum(acc), inv); }
  if (inv.lid == 0u) { out[row] = total; }
}

struct ColParams { rows: u32, cols: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> cp: ColParams;
const COLS_PER_GROUP: u32 = 64u;
override ROW_LANES: u32 = WG / COLS_PER_GROUP;

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

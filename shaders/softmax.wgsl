// Softmax over the last dim, one workgroup per row, looping over the row so rows of any length
// (the 51865-token vocabulary) work.
// softmax_forward: y = exp(x - max) / sum(exp(x - max)), max and sum found in one online pass.
// softmax_backward: dx = y * (dy - sum(dy * y)).
// Row data is array<V> (f32 or vec4f) and the workgroup reductions have a subgroup path and a
// plain tree (shaders/lib/reduction.wgsl).

// #include "lib/reduction.wgsl"

struct Params { rows: u32, cols: u32, groups_x: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<V>;
@group(0) @binding(2) var<storage, read_write> y: array<V>;
@group(0) @binding(3) var<storage, read> y_in: array<V>;
@group(0) @binding(4) var<storage, read> dy: array<V>;
@group(0) @binding(5) var<storage, read_write> dx: array<V>;

@compute @workgroup_size(WG)
fn softmax_forward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, params.groups_x);
  if (row >= params.rows) { return; }
  let n_v = params.cols / V_WIDTH;
  let base = row * n_v;
  // Online max and sum of exp(x - max): 2 reads of x, not 3.
  var ms = vec2f(NEG_MAX, 0.0);
  var j = inv.lid;
  for (; j + 3u * WG < n_v; j += 4u * WG) {
    let e = base + j;
    ms = max_sum4(ms, x[e], x[e + WG], x[e + 2u * WG], x[e + 3u * WG]);
  }
  for (; j < n_v; j += WG) { ms = max_sum1(ms, x[base + j]); }
  let stats = wg_max_sum(ms, inv);
  let inv_total = 1.0 / stats.y;
  for (var j = inv.lid; j < n_v; j += WG) {
    y[base + j] = exp(x[base + j] - stats.x) * inv_total;
  }
}

@compute @workgroup_size(WG)
fn softmax_backward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, params.groups_x);
  if (row >= params.rows) { return; }
  let n_v = params.cols / V_WIDTH;
  let base = row * n_v;
  var acc = V(0.0);
  for (var j = inv.lid; j < n_v; j += WG) { acc += dy[base + j] * y_in[base + j]; }
  let dot = wg_sum(hsum(acc), inv);
  for (var j = inv.lid; j < n_v; j += WG) {
    dx[base + j] = y_in[base + j] * (dy[base + j] - dot);
  }
}

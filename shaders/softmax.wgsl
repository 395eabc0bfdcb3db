// Softmax over the last dim, one workgroup per row, looping over the row so rows of any length
// (the 51865-token vocabulary) work.
// softmax_forward: y = exp(x - max) / sum(exp(x - max)), max and sum found in one online pass.
// softmax_backward: dx = y * (dy - sum(dy * y)).
// The workgroup reduction has a subgroup path and a plain tree (shaders/lib/reduction.wgsl).

// #include "lib/reduction.wgsl"

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

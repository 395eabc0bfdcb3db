// lab: sm_bwd=1 v2's softmax backward with vec4 loads and stores (rows of a multiple of 4 columns; others fall back to component access)
// A probe of whether vec4 storage access pays on lavapipe for a pure streaming row kernel.
override LANES: u32 = 8u;
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


struct SoftmaxParams { rows: u32, cols: u32, groups_x: u32 }
@group(0) @binding(0) var<uniform> params: SoftmaxParams;
@group(0) @binding(1) var<storage, read> y4: array<vec4f>;
@group(0) @binding(2) var<storage, read> dy4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> dx4: array<vec4f>;

fn elem(a: ptr<storage, array<vec4f>, read>, e: u32) -> f32 { return (*a)[e / 4u][e % 4u]; }

@compute @workgroup_size(LANES)
fn softmax_backward(inv: Invocation, @builtin(workgroup_id) wg: vec3u) {
  let row = row_of(wg, params.groups_x);
  if (row >= params.rows) { return; }
  let base = row * params.cols;
  if (params.cols % 4u == 0u) {
    let base4 = base / 4u;
    let n4 = params.cols / 4u;
    var acc = vec4f(0.0);
    for (var j = inv.lid; j < n4; j += LANES) { acc += dy4[base4 + j] * y4[base4 + j]; }
    let dot = lanes_sum(acc.x + acc.y + acc.z + acc.w, inv);
    for (var j = inv.lid; j < n4; j += LANES) {
      dx4[base4 + j] = y4[base4 + j] * (dy4[base4 + j] - dot);
    }
  } else {
    var acc = 0.0;
    for (var i = inv.lid; i < params.cols; i += LANES) { acc += elem(&dy4, base + i) * elem(&y4, base + i); }
    let dot = lanes_sum(acc, inv);
    for (var i = inv.lid; i < params.cols; i += LANES) {
      let e = base + i;
      dx4[e / 4u][e % 4u] = elem(&y4, e) * (elem(&dy4, e) - dot);
    }
  }
}

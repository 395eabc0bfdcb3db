// Elementwise ops: exact (erf) GELU forward and backward, residual add with broadcasting, and
// axpy (y += alpha * x) for in-place accumulation of residuals and gradients.
// Element type V is vec4<f32>, or f32 in the variant the host builds when a length (or a
// broadcast period) is not a multiple of 4: one text serves both, since every builtin used here
// works componentwise. Flat index i counts V elements. All tensors are f32.

alias V = vec4<f32>;

struct Params {
  // Elements (of V) to process.
  n: u32,
  // Length (of V) of the broadcast operand: it is read at i % period. n for no broadcasting.
  period: u32,
  // axpy: the scale; add/gelu: unused.
  alpha: f32,
  // gelu_backward: 1 adds into dx instead of overwriting it.
  accumulate: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<V>;
@group(0) @binding(2) var<storage, read_write> y: array<V>;
@group(0) @binding(3) var<storage, read> b: array<V>;
@group(0) @binding(4) var<storage, read> dy: array<V>;
@group(0) @binding(5) var<storage, read_write> dx: array<V>;

const WG: u32 = 256u;

// Grids larger than 65535 workgroups are dispatched as 2-D; this flattens the index back.
fn flat_index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.y * nwg.x * WG + gid.x;
}

alias Erf = V;
// #include "lib/gelu.wgsl"

// y = x * Phi(x), PyTorch's nn.GELU() (approximate='none'), as in Whisper.
@compute @workgroup_size(256)
fn gelu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  if (i >= params.n) { return; }
  let v = x[i];
  y[i] = v * normal_cdf(v);
}

// dx (+)= dy * gelu'(x), gelu'(x) = Phi(x) + x * phi(x) with phi the standard normal density.
@compute @workgroup_size(256)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  if (i >= params.n) { return; }
  let v = x[i];
  let density = 0.3989422804014327 * exp(-0.5 * v * v);
  var g = dy[i] * (normal_cdf(v) + v * density);
  if (params.accumulate != 0u) { g += dx[i]; }
  dx[i] = g;
}

// y = x + b[i % period]: residual add, or a bias / positional embedding broadcast over rows.
@compute @workgroup_size(256)
fn add(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  if (i >= params.n) { return; }
  y[i] = x[i] + b[i % params.period];
}

// y += alpha * x[i % period], in place: residual or gradient accumulation, optionally broadcast.
@compute @workgroup_size(256)
fn axpy(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg);
  if (i >= params.n) { return; }
  y[i] = fma(V(params.alpha), x[i % params.period], y[i]);
}

// lab: TM=64 TN=64 (the engine kernel before the lab: 16x16 invocations, 4x4 outputs each, K step 16, shared-memory tiles)
// Batched matmul: C[b] = op(A[b]) @ op(B[b]) (+ bias) (-> GELU), and the bias gradient.
// op(A) is A [M,K] or, with TRANS_A, A stored [K,M]; op(B) is B [K,N] or, with TRANS_B, B [N,K].
// Batch strides may be 0 to broadcast one operand (weights shared across the batch).
// Backward is the same kernel with other transposes: dA = dC @ op(B)^T, dB = op(A)^T @ dC, and
// bias_grad below for the bias; GELU's backward lives in activation.wgsl.
// Storage element type S is f32, or f16 in the variant the host builds when shader-f16 exists;
// arithmetic is always f32.

alias S = f32;

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  stride_a: u32, stride_b: u32, stride_c: u32,
  // 1 adds into C instead of overwriting it (gradient accumulation).
  accumulate: u32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override GELU: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<S>;
@group(0) @binding(2) var<storage, read> b: array<S>;
@group(0) @binding(3) var<storage, read> bias: array<S>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// 64x64 output tile per workgroup of 16x16 invocations, 4x4 outputs each, K in steps of 16.
const TILE: u32 = 64u;
const TK: u32 = 16u;
var<workgroup> tile_a: array<array<f32, 64>, 16>;  // [k][m]
var<workgroup> tile_b: array<array<f32, 64>, 16>;  // [k][n]

fn gelu_erf(x: f32) -> f32 {
  return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476));
}

// erf with |error| < 1.2e-7 (Numerical Recipes erfc, Chebyshev fit), since WGSL has no erf.
fn erf_approx(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
          t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
          t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

fn load_a(base: u32, m: u32, k: u32) -> f32 {
  if (m >= params.M || k >= params.K) { return 0.0; }
  if (TRANS_A) { return f32(a[base + k * params.M + m]); }
  return f32(a[base + m * params.K + k]);
}

fn load_b(base: u32, k: u32, n: u32) -> f32 {
  if (k >= params.K || n >= params.N) { return 0.0; }
  if (TRANS_B) { return f32(b[base + n * params.K + k]); }
  return f32(b[base + k * params.N + n]);
}

@compute @workgroup_size(16, 16, 1)
fn matmul(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let batch = wg.z;
  let base_a = batch * params.stride_a;
  let base_b = batch * params.stride_b;
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  let tid = lid.y * 16u + lid.x;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < params.K; k0 += TK) {
    // 256 invocations load 16x64 elements of each operand: 4 each.
    for (var i = 0u; i < 4u; i++) {
      let e = tid + i * 256u;
      let kk = e / TILE;
      let mm = e % TILE;
      tile_a[kk][mm] = load_a(base_a, row0 + mm, k0 + kk);
      tile_b[kk][mm] = load_b(base_b, k0 + kk, col0 + mm);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        av[i] = tile_a[kk][lid.y * 4u + i];
        bv[i] = tile_b[kk][lid.x * 4u + i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] = fma(av[i], bv[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }
  let base_c = batch * params.stride_c;
  for (var i = 0u; i < 4u; i++) {
    let m = row0 + lid.y * 4u + i;
    if (m >= params.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = col0 + lid.x * 4u + j;
      if (n >= params.N) { continue; }
      var v = acc[i][j];
      if (HAS_BIAS) { v += f32(bias[n]); }
      if (GELU) { v = gelu_erf(v); }
      let idx = base_c + m * params.N + n;
      if (params.accumulate != 0u) { v += c[idx]; }
      c[idx] = v;
    }
  }
}

struct BiasGradParams { rows: u32, cols: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> bg_params: BiasGradParams;
@group(0) @binding(1) var<storage, read> grad_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_bias: array<f32>;

// grad_bias[n] = sum over rows of grad_out[row, n]. One invocation per column; each workgroup
// walks rows together so adjacent invocations read adjacent addresses.
@compute @workgroup_size(64)
fn bias_grad(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  if (n >= bg_params.cols) { return; }
  var s = 0.0;
  for (var r = 0u; r < bg_params.rows; r++) { s += grad_out[r * bg_params.cols + n]; }
  if (bg_params.accumulate != 0u) { s += grad_bias[n]; }
  grad_bias[n] = s;
}

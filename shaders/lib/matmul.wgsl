// What the `matmul` entry points of shaders/matmul.wgsl (plain) and
// shaders/matmul_subgroups.wgsl share: storage type, uniform struct, override constants,
// bindings (the host binds both variants alike), the fake-quant operand loads and the output
// epilogue. Pulled in with `// #include "lib/matmul.wgsl"` (scripts/bundle-shaders.mjs); the
// including file also includes lib/gelu.wgsl (with `alias Erf = f32;`) for store_c's GELU.

alias S = f32;

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  stride_a: u32, stride_b: u32, stride_c: u32,
  // 1 adds into C instead of overwriting it (gradient accumulation).
  accumulate: u32,
  // 2^(bits-1) - 1 of the fake quantization of A and B (read only with QUANT_A / QUANT_B).
  qmax_a: f32, qmax_b: f32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override GELU: bool = false;
override QUANT_A: bool = false;
override QUANT_B: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<S>;
@group(0) @binding(2) var<storage, read> b: array<S>;
@group(0) @binding(3) var<storage, read> bias: array<S>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
// Fake-quant scales per stored row of A and of B (per batch entry when that operand is batched).
@group(0) @binding(5) var<storage, read> scale_a: array<f32>;
@group(0) @binding(6) var<storage, read> scale_b: array<f32>;

// #include "lib/fake_quant.wgsl"

/** Index of batch entry z's first scale in scale_a: one per stored row, 0 when A is broadcast. */
fn scale_base_a(z: u32) -> u32 {
  return select(0u, z * select(params.M, params.K, TRANS_A), params.stride_a != 0u);
}

/** As scale_base_a, for scale_b. */
fn scale_base_b(z: u32) -> u32 {
  return select(0u, z * select(params.K, params.N, TRANS_B), params.stride_b != 0u);
}

/**
 * op(A)[m, k] of the batch entry starting at base, fake-quantized with scale s under QUANT_A
 * (s belongs to stored row m, or k with TRANS_A; the caller loads it where it stays constant).
 */
fn load_a(base: u32, m: u32, k: u32, s: f32) -> f32 {
  var v: f32;
  if (TRANS_A) { v = f32(a[base + k * params.M + m]); } else { v = f32(a[base + m * params.K + k]); }
  if (QUANT_A) { v = fake_quant(v, s, params.qmax_a); }
  return v;
}

/** op(B)[k, n], as load_a (s belongs to stored row k, or n with TRANS_B). */
fn load_b(base: u32, k: u32, n: u32, s: f32) -> f32 {
  var v: f32;
  if (TRANS_B) { v = f32(b[base + n * params.K + k]); } else { v = f32(b[base + k * params.N + n]); }
  if (QUANT_B) { v = fake_quant(v, s, params.qmax_b); }
  return v;
}

/** C[m, n] of the batch entry starting at base = (or +=, with accumulate) epilogue(sum). */
fn store_c(base: u32, m: u32, n: u32, sum: f32) {
  var v = sum;
  if (HAS_BIAS) { v += f32(bias[n]); }
  if (GELU) { v = gelu_erf(v); }
  let idx = base + m * params.N + n;
  if (params.accumulate != 0u) { v += c[idx]; }
  c[idx] = v;
}

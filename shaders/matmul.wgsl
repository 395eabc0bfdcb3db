// Batched matmul: C[b] = op(A[b]) @ op(B[b]) (+ bias) (-> GELU), and the bias gradient.
// op(A) is A [M,K] or, with TRANS_A, A stored [K,M]; op(B) is B [K,N] or, with TRANS_B, B [N,K].
// Batch strides may be 0 to broadcast one operand (weights shared across the batch).
// Backward is the same kernel with other transposes: dA = dC @ op(B)^T, dB = op(A)^T @ dC, and
// bias_grad below for the bias; GELU's backward lives in activation.wgsl.
// Storage element type S is f32, or f16 in the variant the host builds when shader-f16 exists;
// arithmetic is always f32.
//
// Fake quantization (quantization-aware training) is fused into the operand loads: with QUANT_B
// every element x of B is replaced, as it is loaded, by clamp(round(x / s), -qmax_b, qmax_b) * s
// where s = scale_b[stored row of B] (for a Whisper weight stored [out, in] that is the output
// channel); QUANT_A does the same to A with scale_a per stored row (per token for activations).
// round() is WGSL's round-half-to-even; int8 export must round the same way. No quantized copy
// of either operand is ever written. Backward (straight-through estimator) uses the same loads:
// dX = dY @ W_hat, dW = X_hat^T @ dY, then ste_mask / lsq_scale_grad below.
//
// Kernel shape (bench/lab/matmul v3, the fastest portable version on lavapipe): one workgroup
// of 8 invocations computes an 8-row x 64-column tile straight from global memory, each
// invocation 8 rows x 8 columns (columns 8 apart, so the 8 lanes read adjacent addresses).
// No workgroup memory or barriers: on lavapipe every load is gathered lane by lane, so what
// counts is loads per FMA (16 per 64 here); see bench/lab/matmul/RESULTS.md. Devices with
// subgroups of at least 8 lanes run shaders/matmul_subgroups.wgsl instead (src/kernels/matmul.ts).

// #include "lib/matmul.wgsl"
alias Erf = f32;
// #include "lib/gelu.wgsl"

const R: u32 = 8u;  // rows per workgroup (and per invocation)
const C: u32 = 8u;  // columns per invocation, 8 apart: a workgroup covers 8 * C columns

@compute @workgroup_size(8, 1, 1)
fn matmul(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = params.M;
  let N = params.N;
  let K = params.K;
  let base_a = wg.z * params.stride_a;
  let base_b = wg.z * params.stride_b;
  let sbase_a = scale_base_a(wg.z);
  let sbase_b = scale_base_b(wg.z);
  // Rows and columns past the edge are clamped to the last one (computed, never stored), so
  // the k loop has no bounds checks.
  var row: array<u32, R>;
  var col: array<u32, C>;
  // Scales that do not change along k are loaded once: per row of A, per column of B^T.
  var s_row: array<f32, R>;
  var s_col: array<f32, C>;
  for (var i = 0u; i < R; i++) {
    row[i] = min(wg.y * R + i, M - 1u);
    if (QUANT_A && !TRANS_A) { s_row[i] = scale_a[sbase_a + row[i]]; }
  }
  for (var j = 0u; j < C; j++) {
    col[j] = min(wg.x * 8u * C + j * 8u + lid.x, N - 1u);
    if (QUANT_B && TRANS_B) { s_col[j] = scale_b[sbase_b + col[j]]; }
  }
  var acc: array<array<f32, C>, R>;
  for (var k = 0u; k < K; k++) {
    var s_k_a = 0.0;
    var s_k_b = 0.0;
    if (QUANT_A && TRANS_A) { s_k_a = scale_a[sbase_a + k]; }
    if (QUANT_B && !TRANS_B) { s_k_b = scale_b[sbase_b + k]; }
    var bv: array<f32, C>;
    for (var j = 0u; j < C; j++) { bv[j] = load_b(base_b, k, col[j], select(s_k_b, s_col[j], TRANS_B)); }
    for (var i = 0u; i < R; i++) {
      let av = load_a(base_a, row[i], k, select(s_row[i], s_k_a, TRANS_A));
      for (var j = 0u; j < C; j++) { acc[i][j] = fma(av, bv[j], acc[i][j]); }
    }
  }
  let base_c = wg.z * params.stride_c;
  for (var i = 0u; i < R; i++) {
    let m = wg.y * R + i;
    if (m >= M) { break; }
    for (var j = 0u; j < C; j++) {
      let n = wg.x * 8u * C + j * 8u + lid.x;
      if (n < N) { store_c(base_c, m, n, acc[i][j]); }
    }
  }
}

// The same product one output row per workgroup (grid y = M), for the few rows of a decoding
// step (one per sequence): an R-row tile would compute its clamped rows for nothing, 32 of them
// per row in the subgroup kernel. Each invocation C columns 8 apart, as `matmul`; per k one load
// of A (every lane the same) and C of B for C FMAs. src/kernels/matmul.ts picks it for M <=
// MATMUL_ROWS_MAX_M.
@compute @workgroup_size(8, 1, 1)
fn matmul_rows(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let N = params.N;
  let K = params.K;
  let m = wg.y;
  let base_a = wg.z * params.stride_a;
  let base_b = wg.z * params.stride_b;
  let sbase_a = scale_base_a(wg.z);
  let sbase_b = scale_base_b(wg.z);
  var s_row = 0.0;
  if (QUANT_A && !TRANS_A) { s_row = scale_a[sbase_a + m]; }
  var col: array<u32, C>;
  var s_col: array<f32, C>;
  for (var j = 0u; j < C; j++) {
    col[j] = min(wg.x * 8u * C + j * 8u + lid.x, N - 1u);
    if (QUANT_B && TRANS_B) { s_col[j] = scale_b[sbase_b + col[j]]; }
  }
  var acc: array<f32, C>;
  for (var k = 0u; k < K; k++) {
    var s_k_a = 0.0;
    var s_k_b = 0.0;
    if (QUANT_A && TRANS_A) { s_k_a = scale_a[sbase_a + k]; }
    if (QUANT_B && !TRANS_B) { s_k_b = scale_b[sbase_b + k]; }
    let av = load_a(base_a, m, k, select(s_row, s_k_a, TRANS_A));
    for (var j = 0u; j < C; j++) { acc[j] = fma(av, load_b(base_b, k, col[j], select(s_k_b, s_col[j], TRANS_B)), acc[j]); }
  }
  let base_c = wg.z * params.stride_c;
  for (var j = 0u; j < C; j++) {
    let n = wg.x * 8u * C + j * 8u + lid.x;
    if (n < N) { store_c(base_c, m, n, acc[j]); }
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

// Fake-quant helpers on a row-major [rows, cols] f32 tensor whose rows are quantization groups
// (weight: output channels; activations: tokens).
struct QuantParams { rows: u32, cols: u32, qmax: f32, lsq_factor: f32, accumulate: u32 }
@group(0) @binding(0) var<uniform> q_params: QuantParams;
@group(0) @binding(1) var<storage, read> q_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> q_scale_out: array<f32>;
@group(0) @binding(2) var<storage, read> q_scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> q_grad_x: array<f32>;
@group(0) @binding(3) var<storage, read> q_grad_x_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> q_grad_scale: array<f32>;

const QWG: u32 = 64u;
var<workgroup> q_partial: array<f32, 64>;

// Rows are spread over x and y so that more than 65535 rows still fit the dispatch limits.
fn q_row(wg: vec3u, nwg: vec3u) -> u32 { return wg.y * nwg.x + wg.x; }

fn q_reduce(lane: u32, v: f32, is_max: bool) -> f32 {
  q_partial[lane] = v;
  workgroupBarrier();
  for (var step = QWG / 2u; step > 0u; step /= 2u) {
    if (lane < step) {
      let o = q_partial[lane + step];
      q_partial[lane] = select(q_partial[lane] + o, max(q_partial[lane], o), is_max);
    }
    workgroupBarrier();
  }
  return q_partial[0];
}

// scale[r] = max|x[r, :]| / qmax, one workgroup per row. An all-zero row gets scale 1 (its
// fake-quantized values are 0 either way), so no later division sees 0.
@compute @workgroup_size(64)
fn row_scales(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = q_row(wg, nwg);
  if (r >= q_params.rows) { return; }  // uniform per workgroup, so the barriers stay uniform
  var m = 0.0;
  for (var k = lid.x; k < q_params.cols; k += QWG) { m = max(m, abs(q_x[r * q_params.cols + k])); }
  m = q_reduce(lid.x, m, true);
  if (lid.x == 0u) { q_scale_out[r] = select(1.0, m / q_params.qmax, m > 0.0); }
}

// Straight-through estimator for W_hat = fake_quant(W): in place, grad_x[r, k] is zeroed where
// |x / s| > qmax (the clamp saturated) and passed unchanged elsewhere. Rows with s <= 0 (whose
// W_hat is identically 0) get zero gradient.
@compute @workgroup_size(64)
fn ste_mask(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = q_row(wg, nwg);
  if (r >= q_params.rows) { return; }
  let s = q_scale[r];
  for (var k = lid.x; k < q_params.cols; k += QWG) {
    let i = r * q_params.cols + k;
    if (!fake_quant_passes(q_x[i], s, q_params.qmax)) { q_grad_x[i] = 0.0; }
  }
}

// LSQ scale gradient (Esser et al. 2020) for learnable per-row scales, from the gradient of the
// fake-quantized tensor (before ste_mask): with v = x / s,
//   grad_scale[r] (+)= lsq_factor * sum_k grad[r, k] * (round(v) - v   if |round(v)| <= qmax
//                                                       sign(v) * qmax otherwise).
// lsq_factor is LSQ's gradient scale g (1/sqrt(cols * qmax) in the paper); 1 gives the plain
// gradient. Rows with s <= 0 get 0. One workgroup per row.
@compute @workgroup_size(64)
fn lsq_scale_grad(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = q_row(wg, nwg);
  if (r >= q_params.rows) { return; }
  let s = q_scale[r];
  let qmax = q_params.qmax;
  var sum = 0.0;
  if (s > 0.0) {
    for (var k = lid.x; k < q_params.cols; k += QWG) {
      let i = r * q_params.cols + k;
      let v = q_x[i] / s;
      sum += q_grad_x_in[i] * select(sign(v) * qmax, round(v) - v, abs(round(v)) <= qmax);
    }
  }
  sum = q_reduce(lid.x, sum, false) * q_params.lsq_factor;
  if (lid.x == 0u) {
    if (q_params.accumulate != 0u) { sum += q_grad_scale[r]; }
    q_grad_scale[r] = sum;
  }
}

enable subgroups;

// Batched matmul C[b] = op(A[b]) @ op(B[b]) (+ bias) (-> GELU), the subgroup variant of the
// `matmul` entry point of shaders/matmul.wgsl: same bindings, uniforms and overrides (all in
// lib/matmul.wgsl), same results; see that file for transposes, batch strides, fake quantization
// and the f16 storage variant. src/kernels/matmul.ts picks this file on devices with subgroups
// whose subgroups have at least 8 lanes, because it relies on its 8-invocation workgroup being
// one subgroup.
//
// Kernel shape (bench/lab/matmul, the subgroup winner on lavapipe): one workgroup of 8
// invocations computes an R-row x 8C-column tile straight from global memory, each invocation
// all R rows x C columns (columns 8 apart, so the 8 lanes read adjacent addresses). Per k, lane
// l gathers op(A) of rows l, l + 8, ... (R / 8 loads instead of R) and subgroupShuffle hands
// each row's value to every lane, so R * C FMAs cost R / 8 + C gathered loads; on lavapipe
// every load is gathered lane by lane and that ratio is what counts (RESULTS.md there).

// #include "lib/matmul.wgsl"
alias Erf = f32;
// #include "lib/gelu.wgsl"

const R: u32 = 32u;  // rows per workgroup (and per invocation), a multiple of the 8 lanes
const C: u32 = 4u;   // columns per invocation, 8 apart: a workgroup covers 8 * C columns
const H: u32 = R / 8u;  // rows of A each lane gathers per k

@compute @workgroup_size(8, 1, 1)
fn matmul(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
  let M = params.M;
  let N = params.N;
  let K = params.K;
  let base_a = wg.z * params.stride_a;
  let base_b = wg.z * params.stride_b;
  let sbase_a = scale_base_a(wg.z);
  let sbase_b = scale_base_b(wg.z);
  // Rows and columns past the edge are clamped to the last one (computed, never stored), so
  // the k loop has no bounds checks. Rows are indexed by subgroup lane, as the shuffle reads them.
  var row: array<u32, H>;
  var col: array<u32, C>;
  // Scales that do not change along k are loaded once: per gathered row of A, per column of B^T.
  var s_row: array<f32, H>;
  var s_col: array<f32, C>;
  for (var h = 0u; h < H; h++) {
    row[h] = min(wg.y * R + h * 8u + lane, M - 1u);
    if (QUANT_A && !TRANS_A) { s_row[h] = scale_a[sbase_a + row[h]]; }
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
    // Fake quantization happens once per gathered value, before the shuffle shares it.
    var a_lane: array<f32, H>;
    for (var h = 0u; h < H; h++) { a_lane[h] = load_a(base_a, row[h], k, select(s_row[h], s_k_a, TRANS_A)); }
    for (var h = 0u; h < H; h++) {
      for (var i = 0u; i < 8u; i++) {
        let av = subgroupShuffle(a_lane[h], i);
        for (var j = 0u; j < C; j++) { acc[h * 8u + i][j] = fma(av, bv[j], acc[h * 8u + i][j]); }
      }
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

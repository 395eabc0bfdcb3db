enable subgroups;
// lab: TM=32 TN=32 v10 (32x4 per lane, subgroupShuffle) with the k loop unrolled 4x by hand: each accumulator is loaded, blended with the loop mask and stored once per 4 FMAs instead of once per FMA
alias S = f32;

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  stride_a: u32, stride_b: u32, stride_c: u32,
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

const R: u32 = 32u;  // rows per workgroup (and per lane)
const C: u32 = 4u;   // columns per lane, 8 apart
const H: u32 = R / 8u;  // rows of A each lane gathers per k

fn gelu_erf(x: f32) -> f32 {
  return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476));
}

fn erf_approx(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
          t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
          t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

/** acc += op(A)[rows, k] x op(B)[k, cols]; lane l gathers rows l, l + 8, ... and shuffles them. */
fn step(acc: ptr<function, array<array<f32, C>, R>>, k: u32, row: array<u32, H>, col: array<u32, C>, base_a: u32, base_b: u32) {
  let M = params.M;
  let N = params.N;
  let K = params.K;
  var bv: array<f32, C>;
  for (var j = 0u; j < C; j++) {
    if (TRANS_B) { bv[j] = f32(b[base_b + col[j] * K + k]); } else { bv[j] = f32(b[base_b + k * N + col[j]]); }
  }
  var a_lane: array<f32, H>;
  for (var h = 0u; h < H; h++) {
    if (TRANS_A) { a_lane[h] = f32(a[base_a + k * M + row[h]]); } else { a_lane[h] = f32(a[base_a + row[h] * K + k]); }
  }
  for (var h = 0u; h < H; h++) {
    for (var i = 0u; i < 8u; i++) {
      let av = subgroupShuffle(a_lane[h], i);
      for (var j = 0u; j < C; j++) { (*acc)[h * 8u + i][j] = fma(av, bv[j], (*acc)[h * 8u + i][j]); }
    }
  }
}

@compute @workgroup_size(8, 1, 1)
fn matmul(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
  let M = params.M;
  let N = params.N;
  let K = params.K;
  let base_a = wg.z * params.stride_a;
  let base_b = wg.z * params.stride_b;
  var row: array<u32, H>;
  var col: array<u32, C>;
  for (var h = 0u; h < H; h++) { row[h] = min(wg.y * R + h * 8u + lane, M - 1u); }
  for (var j = 0u; j < C; j++) { col[j] = min(wg.x * 8u * C + j * 8u + lid.x, N - 1u); }
  var acc: array<array<f32, C>, R>;
  var k = 0u;
  for (; k + 4u <= K; k += 4u) {
    step(&acc, k, row, col, base_a, base_b);
    step(&acc, k + 1u, row, col, base_a, base_b);
    step(&acc, k + 2u, row, col, base_a, base_b);
    step(&acc, k + 3u, row, col, base_a, base_b);
  }
  for (; k < K; k++) { step(&acc, k, row, col, base_a, base_b); }
  let base_c = wg.z * params.stride_c;
  for (var i = 0u; i < R; i++) {
    let m = wg.y * R + i;
    if (m >= M) { break; }
    for (var j = 0u; j < C; j++) {
      let n = wg.x * 8u * C + j * 8u + lid.x;
      if (n >= N) { continue; }
      var v = acc[i][j];
      if (HAS_BIAS) { v += f32(bias[n]); }
      if (GELU) { v = gelu_erf(v); }
      let idx = base_c + m * N + n;
      if (params.accumulate != 0u) { v += c[idx]; }
      c[idx] = v;
    }
  }
}

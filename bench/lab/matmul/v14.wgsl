enable subgroups;
// lab: TM=32 TN=32 as v10 (32x4 per lane) with the accumulators as vec4 rows (fewer array elements for NIR to split)
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
const C: u32 = 4u;  // columns per lane, 8 apart, held as C / 4 vec4 accumulators per row
const V: u32 = C / 4u;
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
  var acc: array<array<vec4f, V>, R>;
  for (var k = 0u; k < K; k++) {
    var bv: array<vec4f, V>;
    for (var v = 0u; v < V; v++) {
      for (var j = 0u; j < 4u; j++) {
        let n = col[v * 4u + j];
        if (TRANS_B) { bv[v][j] = f32(b[base_b + n * K + k]); } else { bv[v][j] = f32(b[base_b + k * N + n]); }
      }
    }
    var a_lane: array<f32, H>;
    for (var h = 0u; h < H; h++) {
      if (TRANS_A) { a_lane[h] = f32(a[base_a + k * M + row[h]]); } else { a_lane[h] = f32(a[base_a + row[h] * K + k]); }
    }
    for (var h = 0u; h < H; h++) {
      for (var i = 0u; i < 8u; i++) {
        let av = vec4f(subgroupShuffle(a_lane[h], i));
        for (var v = 0u; v < V; v++) { acc[h * 8u + i][v] = fma(av, bv[v], acc[h * 8u + i][v]); }
      }
    }
  }
  let base_c = wg.z * params.stride_c;
  for (var i = 0u; i < R; i++) {
    let m = wg.y * R + i;
    if (m >= M) { break; }
    for (var j = 0u; j < C; j++) {
      let n = wg.x * 8u * C + j * 8u + lid.x;
      if (n >= N) { continue; }
      var v = acc[i][j / 4u][j % 4u];
      if (HAS_BIAS) { v += f32(bias[n]); }
      if (GELU) { v = gelu_erf(v); }
      let idx = base_c + m * N + n;
      if (params.accumulate != 0u) { v += c[idx]; }
      c[idx] = v;
    }
  }
}

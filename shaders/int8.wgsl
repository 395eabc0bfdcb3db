// Int8 inference: row quantization with 4-per-u32 packing, and the int8 x int8 matmul
//   y[m, n] = a[m] * s[n] * sum_k xq[m, k] * wq[n, k] (+ bias[n]) (-> GELU)
// with the integer sum accumulated exactly in i32.
//
// Quantization convention (the same as the fake quantization of shaders/matmul.wgsl, so the
// int8 forward reproduces the trained fake-quant forward): per row r (an output channel of a
// weight stored [out, in], or a token of the activations), symmetric,
//   scale[r] = max_k |x[r, k]| / qmax,  q = clamp(round(x / scale[r]), -qmax, qmax),
// qmax = 2^(bits-1) - 1 (127 for int8, 7 for int4), round() = WGSL's round-half-to-even. An
// all-zero row gets scale 1 (all q = 0, no NaN).
//
// Packing: row r of a [rows, K] matrix becomes ceil(K/4) u32 words; word j holds q[r, 4j + b] as
// a two's-complement byte in bits 8b..8b+7 (element 4j in the low byte), the layout
// dot4I8Packed reads; K is padded with zeros to a multiple of 4. 4-bit weights use the same
// int8 lanes (values in [-7, 7]), so the matmul needs no second path.
//
// The dot product of two packed words has a path per device: dot4I8Packed where the WGSL
// language feature packed_4x8_integer_dot_product exists (the host builds that variant, which
// also prepends `requires`), and core-WGSL byte unpacking with an integer dot() otherwise. Both
// give the same exact i32 sums, so the outputs are bit-identical.

// Row quantization. One workgroup of 64 per row; rows are spread over x and y of the grid so
// that more than 65535 rows fit the dispatch limits.
struct QuantParams {
  rows: u32,
  cols: u32,
  // ceil(cols / 4): packed words per row.
  words: u32,
  // 2^(bits-1) - 1.
  qmax: f32,
}

@group(0) @binding(0) var<uniform> q_params: QuantParams;
@group(0) @binding(1) var<storage, read> q_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> q_packed: array<u32>;
@group(0) @binding(3) var<storage, read_write> q_scale_out: array<f32>;
@group(0) @binding(3) var<storage, read> q_scale_in: array<f32>;

const QWG: u32 = 64u;
var<workgroup> q_partial: array<f32, QWG>;

fn q_row(wg: vec3u, nwg: vec3u) -> u32 { return wg.y * nwg.x + wg.x; }

// Max of v over the workgroup (a shared-memory tree), returned to every invocation.
fn q_max(lane: u32, v: f32) -> f32 {
  q_partial[lane] = v;
  workgroupBarrier();
  for (var step = QWG / 2u; step > 0u; step /= 2u) {
    if (lane < step) { q_partial[lane] = max(q_partial[lane], q_partial[lane + step]); }
    workgroupBarrier();
  }
  return q_partial[0];
}

// Quantize row r with `scale` and write its packed words. A scale <= 0 (possible only for
// given scales) quantizes the row to 0, as fake_quant in matmul.wgsl does.
fn pack_row(r: u32, scale: f32, lane: u32) {
  let cols = q_params.cols;
  let qmax = q_params.qmax;
  let divisor = select(1.0, scale, scale > 0.0);
  for (var w = lane; w < q_params.words; w += QWG) {
    var word = 0u;
    for (var b = 0u; b < 4u; b++) {
      let k = 4u * w + b;
      if (k < cols && scale > 0.0) {
        let q = i32(clamp(round(q_x[r * cols + k] / divisor), -qmax, qmax));
        word |= (bitcast<u32>(q) & 0xffu) << (8u * b);
      }
    }
    q_packed[r * q_params.words + w] = word;
  }
}

// scale_out[r] = max|x[r, :]| / qmax (1 for an all-zero row), and packed[r, :] = q(x[r, :]).
@compute @workgroup_size(QWG)
fn quantize_rows(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = q_row(wg, nwg);
  if (r >= q_params.rows) { return; }  // uniform per workgroup, so the barriers stay uniform
  var m = 0.0;
  for (var k = lid.x; k < q_params.cols; k += QWG) { m = max(m, abs(q_x[r * q_params.cols + k])); }
  m = q_max(lid.x, m);
  let scale = select(1.0, m / q_params.qmax, m > 0.0);
  pack_row(r, scale, lid.x);
  if (lid.x == 0u) { q_scale_out[r] = scale; }
}

// packed[r, :] = q(x[r, :]) with the given scale_in[r] (e.g. learned LSQ scales at export).
@compute @workgroup_size(QWG)
fn quantize_rows_given_scales(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = q_row(wg, nwg);
  if (r >= q_params.rows) { return; }
  pack_row(r, q_scale_in[r], lid.x);
}

// Int8 matmul. Kernel shape as shaders/matmul.wgsl (its bench/lab/matmul v3, the fastest
// portable one on lavapipe): a workgroup of 8 invocations computes an 8-row x 64-column tile
// straight from global memory, each invocation 8 rows x 8 columns 8 apart; per packed k-step
// it loads 8 + 8 words for 64 four-way dot products.
struct MatmulParams {
  M: u32,
  N: u32,
  // Packed words per row of x and of w: ceil(K / 4).
  words: u32,
}

override HAS_BIAS: bool = false;
override GELU: bool = false;

@group(0) @binding(0) var<uniform> params: MatmulParams;
// x quantized per row: packed [M, words], scale [M].
@group(0) @binding(1) var<storage, read> x_packed: array<u32>;
@group(0) @binding(2) var<storage, read> x_scale: array<f32>;
// The weight [N, K] quantized per output channel: packed [N, words], scale [N].
@group(0) @binding(3) var<storage, read> w_packed: array<u32>;
@group(0) @binding(4) var<storage, read> w_scale: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

const R: u32 = 8u;  // rows per workgroup (and per invocation)
const C: u32 = 8u;  // columns per invocation, 8 apart: a workgroup covers 8 * C columns

// The four signed bytes of a packed word, in the form the dot product below takes: the word
// itself for dot4I8Packed; else unpacked once into vec4<i32> (core WGSL: shift the byte to the
// top, arithmetic shift back to sign-extend), so each unpack serves a whole row or column of
// the register tile and every product is a plain integer dot().
// #if packed_4x8_integer_dot_product
alias Lanes = u32;
fn lanes_of(word: u32) -> Lanes { return word; }
fn dot4_i8(a: Lanes, b: Lanes) -> i32 { return dot4I8Packed(a, b); }
// #else
alias Lanes = vec4<i32>;
fn lanes_of(word: u32) -> Lanes {
  return (vec4<i32>(bitcast<i32>(word)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
}
fn dot4_i8(a: Lanes, b: Lanes) -> i32 { return dot(a, b); }
// #endif

alias Erf = f32;
// #include "lib/gelu.wgsl"

// y[m, n] from the integer dot product: both scales, then + bias, -> GELU.
fn store_y(m: u32, n: u32, dot: i32) {
  var v = (x_scale[m] * w_scale[n]) * f32(dot);
  if (HAS_BIAS) { v += bias[n]; }
  if (GELU) { v = gelu_erf(v); }
  y[m * params.N + n] = v;
}

@compute @workgroup_size(8, 1, 1)
fn int8_matmul(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = params.M;
  let N = params.N;
  let words = params.words;
  // Rows and columns past the edge are clamped to the last one (computed, never stored), so
  // the k loop has no bounds checks.
  var row: array<u32, R>;
  var col: array<u32, C>;
  for (var i = 0u; i < R; i++) { row[i] = min(wg.y * R + i, M - 1u); }
  for (var j = 0u; j < C; j++) { col[j] = min(wg.x * 8u * C + j * 8u + lid.x, N - 1u); }
  var acc: array<array<i32, C>, R>;
  for (var k = 0u; k < words; k++) {
    var wv: array<Lanes, C>;
    for (var j = 0u; j < C; j++) { wv[j] = lanes_of(w_packed[col[j] * words + k]); }
    for (var i = 0u; i < R; i++) {
      let xv = lanes_of(x_packed[row[i] * words + k]);
      for (var j = 0u; j < C; j++) { acc[i][j] += dot4_i8(xv, wv[j]); }
    }
  }
  for (var i = 0u; i < R; i++) {
    let m = wg.y * R + i;
    if (m >= M) { break; }
    for (var j = 0u; j < C; j++) {
      let n = wg.x * 8u * C + j * 8u + lid.x;
      if (n < N) { store_y(m, n, acc[i][j]); }
    }
  }
}

// The same product one output row per workgroup (grid y = M), for the few rows of a decoding
// step, as matmul_rows in matmul.wgsl: the R-row tile would compute its clamped rows for
// nothing. src/kernels/int8.ts picks it for M <= MATMUL_ROWS_MAX_M.
@compute @workgroup_size(8, 1, 1)
fn int8_matmul_rows(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let m = wg.y;
  let N = params.N;
  let words = params.words;
  var col: array<u32, C>;
  for (var j = 0u; j < C; j++) { col[j] = min(wg.x * 8u * C + j * 8u + lid.x, N - 1u); }
  var acc: array<i32, C>;
  for (var k = 0u; k < words; k++) {
    let xv = lanes_of(x_packed[m * words + k]);
    for (var j = 0u; j < C; j++) { acc[j] += dot4_i8(xv, lanes_of(w_packed[col[j] * words + k])); }
  }
  for (var j = 0u; j < C; j++) {
    let n = wg.x * 8u * C + j * 8u + lid.x;
    if (n < N) { store_y(m, n, acc[j]); }
  }
}

// Embedding lookup in a row-quantized table (the tied token embedding of an int8 export):
// out[n, c] = scale[ids[n]] * q[ids[n], c], the f32 value the fake-quant forward looks up.
// Ids outside [0, V) give zero rows, as shaders/embedding.wgsl. A scale <= 0 marks an all-zero
// row (quant/hf-int8.ts). Grid: (ceil(C/64), positions folded into y and z as y + z * num_workgroups.y).
struct EmbedParams {
  N: u32,
  V: u32,
  C: u32,
  words: u32,
}

@group(0) @binding(0) var<uniform> e_params: EmbedParams;
@group(0) @binding(1) var<storage, read> e_ids: array<i32>;
@group(0) @binding(2) var<storage, read> e_packed: array<u32>;
@group(0) @binding(3) var<storage, read> e_scale: array<f32>;
@group(0) @binding(4) var<storage, read_write> e_out: array<f32>;

@compute @workgroup_size(64)
fn int8_embedding(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = gid.x;
  let n = wg.y + wg.z * nwg.y;
  if (c >= e_params.C || n >= e_params.N) { return; }
  let id = e_ids[n];
  var v = 0.0;
  if (id >= 0 && id < i32(e_params.V)) {
    let row = u32(id);
    let word = bitcast<i32>(e_packed[row * e_params.words + c / 4u]);
    let q = (word << (24u - 8u * (c % 4u))) >> 24u;
    v = max(e_scale[row], 0.0) * f32(q);
  }
  e_out[n * e_params.C + c] = v;
}

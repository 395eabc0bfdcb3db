// Whisper's frontend convolution (PyTorch Conv1d, kernel 3, padding 1, stride 1 or 2) and its
// gradients. x [B, Cin, T] channels-first, w [Cout, Cin, 3], bias [Cout]; the output is
// [B, Cout, Tout], or with TOKEN_MAJOR [B, Tout, Cout] (Whisper's permute after conv2, for free),
// Tout = (T - 1) / stride + 1. Backward reads dy in the same layout as the output.
// All three entries are implicit GEMMs (tile_product) shaped as the plain matmul.wgsl kernel:
// 8-invocation workgroups, each invocation 8 rows x 8 columns (columns 8 apart), operands read
// straight from global memory with im2col indexing and no workgroup memory, edge rows and columns
// clamped (computed, never stored). On lavapipe (`npm run bench -- --filter conv1d`) that took
// Whisper tiny's conv1 from 156 to 62 ms, conv2 from 409 to 141 ms and conv2's backward from
// 1275 to ~500 ms against the 64x64 shared-memory tiles this file had before; lavapipe gathers
// workgroup-memory loads lane by lane like global ones (bench/lab/matmul/RESULTS.md). The
// reductions need no atomics:
//   conv1d:          out[co, t]  = sum_(ci,k) w[co, ci, k] * x[ci, t*s + k - 1]      (+ bias)
//   conv1d_grad_x:   dx[ci, p]   = sum_(co,k) w[co, ci, k] * dy[co, (p + 1 - k) / s]  (when whole)
//   conv1d_grad_w:   dw[co, (ci,k)] = sum_(b,t) dy[b, co, t] * x[b, ci, t*s + k - 1], with one
//                    extra column of ones whose sum is dbias[co].

struct Params {
  B: u32, Cin: u32, Cout: u32, T: u32, Tout: u32, stride: u32,
  // 1 adds into dx / dw / db instead of overwriting them (gradient accumulation).
  accumulate: u32,
}

override TOKEN_MAJOR: bool = false;
// Forward only: exact GELU after the bias (inference; training keeps the pre-activation).
override GELU: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
// The product's two operands, by role, so that each entry binds only what it reads:
// conv1d lhs = w, rhs = x; conv1d_grad_x lhs = w, rhs = dy; conv1d_grad_w lhs = dy, rhs = x.
@group(0) @binding(1) var<storage, read> lhs: array<f32>;
@group(0) @binding(2) var<storage, read> rhs: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw: array<f32>;
@group(0) @binding(8) var<storage, read_write> db: array<f32>;

const R: u32 = 8u;  // rows per workgroup (and per invocation)
const C: u32 = 8u;  // columns per invocation, 8 apart: a workgroup covers 8 * C = 64 columns
alias Acc = array<array<f32, C>, R>;

alias Erf = f32;
// #include "lib/gelu.wgsl"

// Which product tile_product runs: a literal at each entry's call, folded once inlined.
const FORWARD: u32 = 0u;
const GRAD_X: u32 = 1u;
const GRAD_W: u32 = 2u;

// x[b, ci, p] (x is rhs) with zero padding outside [0, T) (the load is clamped so it stays in bounds).
fn input_at(b: u32, ci: u32, p: i32) -> f32 {
  let v = rhs[(b * params.Cin + ci) * params.T + u32(clamp(p, 0, i32(params.T) - 1))];
  return select(0.0, v, p >= 0 && p < i32(params.T));
}

fn out_index(b: u32, co: u32, t: u32) -> u32 {
  if (TOKEN_MAJOR) { return (b * params.Tout + t) * params.Cout + co; }
  return (b * params.Cout + co) * params.Tout + t;
}

// Row m, reduction index k of each product's left operand (dy is in the output's layout):
//   FORWARD  w[co = m, (ci, tap) = k];  GRAD_X  w[co, ci = m, tap] with k = (co, tap);
//   GRAD_W   dy[b, co = m, t] with k = (b, t).
fn load_a(mode: u32, b: u32, m: u32, k: u32) -> f32 {
  switch mode {
    case FORWARD: { return lhs[m * params.Cin * 3u + k]; }
    case GRAD_X: { return lhs[((k / 3u) * params.Cin + m) * 3u + k % 3u]; }
    default: { return lhs[out_index(k / params.Tout, m, k % params.Tout)]; }
  }
}

// Reduction index k, column n of each product's right operand:
//   FORWARD  x[b, ci, t * stride + tap - 1] with k = (ci, tap), n = t (im2col);
//   GRAD_X   dy[b, co, t] where position p = n took tap from t = (p + 1 - tap) / stride, when
//            that is whole and in range, else 0; k = (co, tap);
//   GRAD_W   x im2col at (b, t) = k and (ci, tap) = n, and 1 in the extra column n = 3 Cin whose
//            sum is the bias gradient.
fn load_b(mode: u32, b: u32, k: u32, n: u32) -> f32 {
  switch mode {
    case FORWARD: { return input_at(b, k / 3u, i32(n * params.stride + k % 3u) - 1); }
    case GRAD_X: {
      // Strides are 1 or 2 (conv1dDims checks), so / and % by the stride are a shift and a mask:
      // a division by a runtime value costs one scalar divide per lane on lavapipe.
      let q = i32(n) + 1 - i32(k % 3u);
      let t = u32(max(q, 0)) >> (params.stride - 1u);
      let whole = q >= 0 && (u32(q) & (params.stride - 1u)) == 0u && t < params.Tout;
      return select(0.0, rhs[out_index(b, k / 3u, min(t, params.Tout - 1u))], whole);
    }
    default: {
      let KW = params.Cin * 3u;
      let tap = min(n, KW - 1u);
      let t = k % params.Tout;
      let v = input_at(k / params.Tout, tap / 3u, i32(t * params.stride + tap % 3u) - 1);
      return select(select(0.0, 1.0, n == KW), v, n < KW);
    }
  }
}

// This workgroup's R x 8C tile of the M x N product over K of `mode`, batch entry b.
fn tile_product(mode: u32, b: u32, wg: vec3u, lid: vec3u, M: u32, N: u32, K: u32) -> Acc {
  var row: array<u32, R>;
  var col: array<u32, C>;
  for (var i = 0u; i < R; i++) { row[i] = min(wg.y * R + i, M - 1u); }
  for (var j = 0u; j < C; j++) { col[j] = min(wg.x * 8u * C + j * 8u + lid.x, N - 1u); }
  var acc: Acc;
  for (var k = 0u; k < K; k++) {
    var bv: array<f32, C>;
    for (var j = 0u; j < C; j++) { bv[j] = load_b(mode, b, k, col[j]); }
    for (var i = 0u; i < R; i++) {
      let av = load_a(mode, b, row[i], k);
      for (var j = 0u; j < C; j++) { acc[i][j] = fma(av, bv[j], acc[i][j]); }
    }
  }
  return acc;
}

// Output column n of invocation lid, column slot j of this workgroup.
fn column(wg: vec3u, lid: vec3u, j: u32) -> u32 {
  return wg.x * 8u * C + j * 8u + lid.x;
}

// Grid: (ceil(Tout / 64), ceil(Cout / 8), B).
@compute @workgroup_size(8, 1, 1)
fn conv1d(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wg.z;
  let acc = tile_product(FORWARD, b, wg, lid, params.Cout, params.Tout, params.Cin * 3u);
  for (var i = 0u; i < R; i++) {
    let co = wg.y * R + i;
    if (co >= params.Cout) { break; }
    for (var j = 0u; j < C; j++) {
      let t = column(wg, lid, j);
      if (t >= params.Tout) { continue; }
      var v = acc[i][j] + bias[co];
      if (GELU) { v = gelu_erf(v); }
      out[out_index(b, co, t)] = v;
    }
  }
}

// Grid: (ceil(T / 64), ceil(Cin / 8), B).
@compute @workgroup_size(8, 1, 1)
fn conv1d_grad_x(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wg.z;
  let acc = tile_product(GRAD_X, b, wg, lid, params.Cin, params.T, params.Cout * 3u);
  for (var i = 0u; i < R; i++) {
    let ci = wg.y * R + i;
    if (ci >= params.Cin) { break; }
    for (var j = 0u; j < C; j++) {
      let p = column(wg, lid, j);
      if (p >= params.T) { continue; }
      let idx = (b * params.Cin + ci) * params.T + p;
      var v = acc[i][j];
      if (params.accumulate != 0u) { v += dx[idx]; }
      dx[idx] = v;
    }
  }
}

// Grid: (ceil((3 Cin + 1) / 64), ceil(Cout / 8), 1). Column 3 Cin is the bias gradient.
@compute @workgroup_size(8, 1, 1)
fn conv1d_grad_w(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let KW = params.Cin * 3u;
  let acc = tile_product(GRAD_W, 0u, wg, lid, params.Cout, KW + 1u, params.B * params.Tout);
  for (var i = 0u; i < R; i++) {
    let co = wg.y * R + i;
    if (co >= params.Cout) { break; }
    for (var j = 0u; j < C; j++) {
      let n = column(wg, lid, j);
      var v = acc[i][j];
      if (n < KW) {
        let idx = co * KW + n;
        if (params.accumulate != 0u) { v += dw[idx]; }
        dw[idx] = v;
      } else if (n == KW) {
        if (params.accumulate != 0u) { v += db[co]; }
        db[co] = v;
      }
    }
  }
}

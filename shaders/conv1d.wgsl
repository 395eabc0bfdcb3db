// Whisper's frontend convolution (PyTorch Conv1d, kernel 3, padding 1, stride 1 or 2) and its
// gradients. x [B, Cin, T] channels-first, w [Cout, Cin, 3], bias [Cout]; the output is
// [B, Cout, Tout], or with TOKEN_MAJOR [B, Tout, Cout] (Whisper's permute after conv2, for free),
// Tout = (T - 1) / stride + 1. Backward reads dy in the same layout as the output.
// All three entries are implicit GEMMs over 64x64 output tiles: each K step gathers a 16-deep
// im2col slice of the input (or of dy) into workgroup memory, then multiply_tiles does the
// same register-tiled product as matmul.wgsl. The reductions need no atomics:
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
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw: array<f32>;
@group(0) @binding(8) var<storage, read_write> db: array<f32>;

const TILE: u32 = 64u;
const TK: u32 = 16u;
var<workgroup> tile_a: array<array<f32, 64>, 16>;  // [k][m]
var<workgroup> tile_b: array<array<f32, 64>, 16>;  // [k][n]
// One invocation's 4x4 accumulators.
alias Acc = array<array<f32, 4>, 4>;

alias Erf = f32;
// #include "lib/gelu.wgsl"

// Each invocation owns outputs (m0 + lid.y + 16i, n0 + lid.x + 16j): neighbouring invocations
// touch neighbouring time steps, so global reads and channel-major writes coalesce.
fn multiply_tiles(lid: vec3u, acc: ptr<function, Acc>) {
  for (var kk = 0u; kk < TK; kk++) {
    var av: array<f32, 4>;
    var bv: array<f32, 4>;
    for (var i = 0u; i < 4u; i++) {
      av[i] = tile_a[kk][lid.y + 16u * i];
      bv[i] = tile_b[kk][lid.x + 16u * i];
    }
    for (var i = 0u; i < 4u; i++) {
      for (var j = 0u; j < 4u; j++) {
        (*acc)[i][j] = fma(av[i], bv[j], (*acc)[i][j]);
      }
    }
  }
}

// x[b, ci, p] with zero padding outside [0, T).
fn input_at(b: u32, ci: u32, p: i32) -> f32 {
  if (p < 0 || p >= i32(params.T)) { return 0.0; }
  return x[(b * params.Cin + ci) * params.T + u32(p)];
}

fn out_index(b: u32, co: u32, t: u32) -> u32 {
  if (TOKEN_MAJOR) { return (b * params.Tout + t) * params.Cout + co; }
  return (b * params.Cout + co) * params.Tout + t;
}

// Tile element e (0..1023) of a [16][64] tile, walking n fastest.
fn tile_k(e: u32) -> u32 { return e / TILE; }
fn tile_mn(e: u32) -> u32 { return e % TILE; }

// Grid: (ceil(Tout/64), ceil(Cout/64), B).
@compute @workgroup_size(16, 16, 1)
fn conv1d(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wg.z;
  let co0 = wg.y * TILE;
  let t0 = wg.x * TILE;
  let tid = lid.y * 16u + lid.x;
  let K = params.Cin * 3u;
  var acc: Acc;
  for (var k0 = 0u; k0 < K; k0 += TK) {
    for (var i = 0u; i < 4u; i++) {
      let e = tid + i * 256u;
      // Weights: 16 consecutive (ci, k) of one output channel per 16 invocations.
      let wk = e % TK;
      let wm = e / TK;
      let co = co0 + wm;
      var wv = 0.0;
      if (co < params.Cout && k0 + wk < K) { wv = w[co * K + k0 + wk]; }
      tile_a[wk][wm] = wv;
      // im2col of x: row (ci, k), column t reads x[ci, t*stride + k - 1].
      let kg = k0 + tile_k(e);
      let t = t0 + tile_mn(e);
      var v = 0.0;
      if (kg < K && t < params.Tout) { v = input_at(b, kg / 3u, i32(t * params.stride + kg % 3u) - 1); }
      tile_b[tile_k(e)][tile_mn(e)] = v;
    }
    workgroupBarrier();
    multiply_tiles(lid, &acc);
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let co = co0 + lid.y + 16u * i;
    if (co >= params.Cout) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let t = t0 + lid.x + 16u * j;
      if (t >= params.Tout) { continue; }
      var v = acc[i][j] + bias[co];
      if (GELU) { v = gelu_erf(v); }
      out[out_index(b, co, t)] = v;
    }
  }
}

// dy[b, co, t] in the output's layout.
fn grad_out_at(b: u32, co: u32, t: u32) -> f32 {
  return dy[out_index(b, co, t)];
}

// Grid: (ceil(T/64), ceil(Cin/64), B).
@compute @workgroup_size(16, 16, 1)
fn conv1d_grad_x(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wg.z;
  let ci0 = wg.y * TILE;
  let p0 = wg.x * TILE;
  let tid = lid.y * 16u + lid.x;
  let K = params.Cout * 3u;
  var acc: Acc;
  for (var k0 = 0u; k0 < K; k0 += TK) {
    for (var i = 0u; i < 4u; i++) {
      let e = tid + i * 256u;
      let kg = k0 + tile_k(e);
      let co = kg / 3u;
      let k = kg % 3u;
      // Transposed weights: row (co, k), column ci.
      let ci = ci0 + tile_mn(e);
      var wv = 0.0;
      if (kg < K && ci < params.Cin) { wv = w[(co * params.Cin + ci) * 3u + k]; }
      tile_a[tile_k(e)][tile_mn(e)] = wv;
      // dy scattered back: position p received tap k from t = (p + 1 - k) / stride when whole.
      let p = p0 + tile_mn(e);
      let q = i32(p) + 1 - i32(k);
      var g = 0.0;
      if (kg < K && p < params.T && q >= 0 && u32(q) % params.stride == 0u) {
        let t = u32(q) / params.stride;
        if (t < params.Tout) { g = grad_out_at(b, co, t); }
      }
      tile_b[tile_k(e)][tile_mn(e)] = g;
    }
    workgroupBarrier();
    multiply_tiles(lid, &acc);
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let ci = ci0 + lid.y + 16u * i;
    if (ci >= params.Cin) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let p = p0 + lid.x + 16u * j;
      if (p >= params.T) { continue; }
      let idx = (b * params.Cin + ci) * params.T + p;
      var v = acc[i][j];
      if (params.accumulate != 0u) { v += dx[idx]; }
      dx[idx] = v;
    }
  }
}

// Grid: (ceil((3*Cin + 1)/64), ceil(Cout/64), 1). Column 3*Cin is the bias gradient.
@compute @workgroup_size(16, 16, 1)
fn conv1d_grad_w(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let co0 = wg.y * TILE;
  let n0 = wg.x * TILE;
  let tid = lid.y * 16u + lid.x;
  let KW = params.Cin * 3u;
  let R = params.B * params.Tout;
  var acc: Acc;
  for (var r0 = 0u; r0 < R; r0 += TK) {
    for (var i = 0u; i < 4u; i++) {
      let e = tid + i * 256u;
      // dy: channel-major dy is contiguous in t, so there 16 invocations walk r together.
      let gk = select(e % TK, tile_k(e), TOKEN_MAJOR);
      let gm = select(e / TK, tile_mn(e), TOKEN_MAJOR);
      let rg = r0 + gk;
      let co = co0 + gm;
      var g = 0.0;
      if (rg < R && co < params.Cout) { g = grad_out_at(rg / params.Tout, co, rg % params.Tout); }
      tile_a[gk][gm] = g;
      // im2col of x as in the forward, plus the ones column for the bias.
      let r = r0 + tile_k(e);
      let b = r / params.Tout;
      let t = r % params.Tout;
      let n = n0 + tile_mn(e);
      var v = 0.0;
      if (r < R) {
        if (n < KW) { v = input_at(b, n / 3u, i32(t * params.stride + n % 3u) - 1); }
        else if (n == KW) { v = 1.0; }
      }
      tile_b[tile_k(e)][tile_mn(e)] = v;
    }
    workgroupBarrier();
    multiply_tiles(lid, &acc);
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let co = co0 + lid.y + 16u * i;
    if (co >= params.Cout) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x + 16u * j;
      if (n < KW) {
        let idx = co * KW + n;
        var v = acc[i][j];
        if (params.accumulate != 0u) { v += dw[idx]; }
        dw[idx] = v;
      } else if (n == KW) {
        var v = acc[i][j];
        if (params.accumulate != 0u) { v += db[co]; }
        db[co] = v;
      }
    }
  }
}

// Fused scaled-dot-product attention (flash-attention style) and its backward.
//
//   out[b,h,i,:] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h,j,:] + mask) v[b,h,j,:]
//   lse[b,h,i]   = log sum_j exp(scale * q . k + mask)
//
// Key j is masked for query i when j >= klen[b] (HAS_KLEN) or, with CAUSAL, when
// j > i + causal_offset. Fully masked rows give out = 0 and lse = NEG_MAX (standing for
// log 0 = -inf: WGSL may assume no infinities exist). The Lq x Lk score matrix never reaches
// global memory: the forward streams key tiles with an online softmax, the backward recomputes
// P = exp(S - lse) from the saved lse.
//
// Every tensor is addressed through (batch, head, row) element strides with the head dimension
// contiguous, so one kernel reads head-major [B, H, L, D] and token-major [B, L, H*D] (what the
// projections produce) without transposes. Gradients share their input's strides (dq: q's,
// dk: k's, dv: v's, d_out: out's). f32 throughout.
//
// Work split: a workgroup owns ROWS rows (queries in the forward and in dQ, keys in dK/dV) of
// one (batch, head), LANES = 8 invocations per owned row. It streams tiles of LANES rows of the
// other side through workgroup memory; invocation (row r, lane c) computes the one score
// (r, tile row c), and for the products with a tile it owns head dims d = c + LANES * slot.
// The backward avoids float atomics: attention_bwd_dkdv is parallel over key blocks,
// attention_bwd_dq over query blocks.
//
// This is the plain variant, which every device runs; where subgroups of at least 8 lanes exist
// the host runs shaders/attention_subgroups.wgsl instead (same bindings and results, about 3x
// faster on lavapipe: bench/lab/attention/RESULTS.md).
//
// Backward order: attention_bwd_prep writes each query row's (lse, delta = dOut . out) into the
// first two elements of that row of dq, used as scratch (head dim >= 2); attention_bwd_dkdv
// reads them as `stats`; attention_bwd_dq reads its own rows' pair first, then overwrites them.

// #include "lib/attention.wgsl"

// Rows a workgroup owns: 16, or 8 where 16 would not fit the backward in 16 KiB (head dim > 77).
override ROWS: u32 = 16u;

const LANES: u32 = 8u;
// Register slots per invocation for a row of head dims: ceil(128 / LANES).
const MAX_SLOTS: u32 = 16u;

override WG_SIZE: u32 = ROWS * LANES;
override SLOTS: u32 = (HEAD_DIM + LANES - 1u) / LANES;
// Odd row pitch in workgroup memory so that the LANES invocations reading LANES different rows
// at the same head dim hit different banks. The slack lets the last slot of the last row read
// past HEAD_DIM (those results are never written).
override PITCH: u32 = HEAD_DIM | 1u;
override OWN_LEN: u32 = ROWS * PITCH + LANES;
override TILE_LEN: u32 = LANES * PITCH + LANES;
override SCORE_LEN: u32 = ROWS * LANES;

// Owned rows (q or k, then d_out or v), the streamed tile (k or q, then v or d_out), scores.
var<workgroup> own_a: array<f32, OWN_LEN>;
var<workgroup> own_b: array<f32, OWN_LEN>;
var<workgroup> tile_a: array<f32, TILE_LEN>;
var<workgroup> tile_b: array<f32, TILE_LEN>;
var<workgroup> score_a: array<f32, SCORE_LEN>;
var<workgroup> score_b: array<f32, SCORE_LEN>;
// (lse, delta) of the streamed tile's query rows (dkdv) or of the owned query rows (dq).
var<workgroup> row_stats: array<vec2f, ROWS>;
var<workgroup> key_count: u32;

// Keys of batch b that exist: lk, or klen[b] when shorter. Read through workgroup memory so
// that loop bounds around barriers are provably uniform.
fn key_end(tid: u32, b: u32) -> u32 {
  if (tid == 0u) {
    var n = params.lk;
    if (HAS_KLEN) { n = min(n, klen[b]); }
    key_count = n;
  }
  return workgroupUniformLoad(&key_count);
}

// One past the last key any of the query rows [row0, row0 + ROWS) may see.
fn key_stop(row0: u32, kend: u32) -> u32 {
  if (!CAUSAL) { return kend; }
  let last = i32(min(row0 + ROWS, params.lq)) - 1;
  return u32(clamp(last + params.causal_offset + 1, 0, i32(kend)));
}

// Dot product of owned row r of `own` with tile row c of `tile`, over the head dims.
fn dot_own_a_tile_a(r: u32, c: u32) -> f32 {
  var s = 0.0;
  for (var d = 0u; d < HEAD_DIM; d++) { s = fma(own_a[r * PITCH + d], tile_a[c * PITCH + d], s); }
  return s;
}

fn dot_own_b_tile_b(r: u32, c: u32) -> f32 {
  var s = 0.0;
  for (var d = 0u; d < HEAD_DIM; d++) { s = fma(own_b[r * PITCH + d], tile_b[c * PITCH + d], s); }
  return s;
}

@compute @workgroup_size(WG_SIZE)
fn attention_fwd(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let b = wg.z;
  let h = wg.y;
  let row0 = wg.x * ROWS;
  let r = tid / LANES;
  let lane = tid % LANES;
  let i = row0 + r;
  let q_base = b * params.q_sb + h * params.q_sh;
  let k_base = b * params.k_sb + h * params.k_sh;
  let v_base = b * params.v_sb + h * params.v_sh;
  for (var e = tid; e < ROWS * HEAD_DIM; e += WG_SIZE) {
    let rr = e / HEAD_DIM;
    let d = e % HEAD_DIM;
    var x = 0.0;
    if (row0 + rr < params.lq) { x = q[q_base + (row0 + rr) * params.q_sl + d]; }
    own_a[rr * PITCH + d] = x;
  }
  let kend = key_end(tid, b);
  let kstop = key_stop(row0, kend);

  var m = NEG_MAX;  // running max of the row's visible scores
  var l = 0.0;      // running sum of exp(score - m)
  var acc: array<f32, MAX_SLOTS>;
  for (var j0 = 0u; j0 < kstop; j0 += LANES) {
    workgroupBarrier();  // the previous tile is consumed
    for (var e = tid; e < LANES * HEAD_DIM; e += WG_SIZE) {
      let c = e / HEAD_DIM;
      let d = e % HEAD_DIM;
      let j = j0 + c;
      var kx = 0.0;
      var vx = 0.0;
      if (j < kstop) {
        kx = k[k_base + j * params.k_sl + d];
        vx = v[v_base + j * params.v_sl + d];
      }
      tile_a[c * PITCH + d] = kx;
      tile_b[c * PITCH + d] = vx;
    }
    workgroupBarrier();
    let s = dot_own_a_tile_a(r, lane) * params.scale;
    score_a[r * LANES + lane] = select(NEG_MAX, s, visible(i, j0 + lane, kend));
    workgroupBarrier();
    // Each lane of a row redoes the row's max and weights: cheaper than another barrier.
    var tile_max = NEG_MAX;
    for (var c = 0u; c < LANES; c++) { tile_max = max(tile_max, score_a[r * LANES + c]); }
    let m_new = max(m, tile_max);
    let alpha = exp(m - m_new);
    l *= alpha;
    for (var sl = 0u; sl < SLOTS; sl++) { acc[sl] *= alpha; }
    for (var c = 0u; c < LANES; c++) {
      let sc = score_a[r * LANES + c];
      let p = select(0.0, exp(sc - m_new), sc > NEG_MAX);
      l += p;
      for (var sl = 0u; sl < SLOTS; sl++) { acc[sl] = fma(p, tile_b[c * PITCH + lane + sl * LANES], acc[sl]); }
    }
    m = m_new;
  }
  if (i >= params.lq) { return; }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  let o_row = b * params.o_sb + h * params.o_sh + i * params.o_sl;
  for (var sl = 0u; sl < SLOTS; sl++) {
    let d = lane + sl * LANES;
    if (d < HEAD_DIM) { out[o_row + d] = acc[sl] * inv; }
  }
  if (lane == 0u) { lse[(b * params.heads + h) * params.lq + i] = select(NEG_MAX, m + log(l), l > 0.0); }
}

// dV_j = sum_i P_ij dOut_i;  dK_j = scale * sum_i dS_ij q_i;  dS_ij = P_ij (dOut_i . v_j - delta_i).
// A workgroup owns ROWS keys and streams LANES queries at a time.
@compute @workgroup_size(WG_SIZE)
fn attention_bwd_dkdv(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let b = wg.z;
  let h = wg.y;
  let col0 = wg.x * ROWS;
  let r = tid / LANES;
  let lane = tid % LANES;
  let j = col0 + r;
  let q_base = b * params.q_sb + h * params.q_sh;
  let k_base = b * params.k_sb + h * params.k_sh;
  let v_base = b * params.v_sb + h * params.v_sh;
  let o_base = b * params.o_sb + h * params.o_sh;
  let kend = key_end(tid, b);
  for (var e = tid; e < ROWS * HEAD_DIM; e += WG_SIZE) {
    let rr = e / HEAD_DIM;
    let d = e % HEAD_DIM;
    var kx = 0.0;
    var vx = 0.0;
    if (col0 + rr < kend) {
      kx = k[k_base + (col0 + rr) * params.k_sl + d];
      vx = v[v_base + (col0 + rr) * params.v_sl + d];
    }
    own_a[rr * PITCH + d] = kx;
    own_b[rr * PITCH + d] = vx;
  }
  // Queries before the first that sees key col0 contribute nothing; masked keys get zeros.
  var qstart = 0u;
  if (CAUSAL) { qstart = u32(max(i32(col0) - params.causal_offset, 0)); }
  var qstop = params.lq;
  if (col0 >= kend) { qstop = 0u; }

  var dk_acc: array<f32, MAX_SLOTS>;
  var dv_acc: array<f32, MAX_SLOTS>;
  for (var i0 = qstart; i0 < qstop; i0 += LANES) {
    workgroupBarrier();
    for (var e = tid; e < LANES * HEAD_DIM; e += WG_SIZE) {
      let c = e / HEAD_DIM;
      let d = e % HEAD_DIM;
      let i = i0 + c;
      var qx = 0.0;
      var gx = 0.0;
      if (i < params.lq) {
        qx = q[q_base + i * params.q_sl + d];
        gx = d_out[o_base + i * params.o_sl + d];
      }
      tile_a[c * PITCH + d] = qx;
      tile_b[c * PITCH + d] = gx;
    }
    if (tid < LANES && i0 + tid < params.lq) {
      let q_row = q_base + (i0 + tid) * params.q_sl;
      row_stats[tid] = vec2f(stats[q_row], stats[q_row + 1u]);
    }
    workgroupBarrier();
    let i = i0 + lane;
    let st = row_stats[lane];
    let s = dot_own_a_tile_a(r, lane) * params.scale;
    let dp = dot_own_b_tile_b(r, lane);
    let p = select(0.0, exp(s - st.x), visible(i, j, kend));
    score_a[r * LANES + lane] = p;
    score_b[r * LANES + lane] = p * (dp - st.y);
    workgroupBarrier();
    for (var c = 0u; c < LANES; c++) {
      let pc = score_a[r * LANES + c];
      let dsc = score_b[r * LANES + c];
      for (var sl = 0u; sl < SLOTS; sl++) {
        let d = lane + sl * LANES;
        dv_acc[sl] = fma(pc, tile_b[c * PITCH + d], dv_acc[sl]);
        dk_acc[sl] = fma(dsc, tile_a[c * PITCH + d], dk_acc[sl]);
      }
    }
  }
  if (j >= params.lk) { return; }
  let dk_row = k_base + j * params.k_sl;
  let dv_row = v_base + j * params.v_sl;
  for (var sl = 0u; sl < SLOTS; sl++) {
    let d = lane + sl * LANES;
    if (d < HEAD_DIM) {
      dk[dk_row + d] = dk_acc[sl] * params.scale;
      dv[dv_row + d] = dv_acc[sl];
    }
  }
}

// dQ_i = scale * sum_j dS_ij k_j. A workgroup owns ROWS queries and streams LANES keys at a time.
@compute @workgroup_size(WG_SIZE)
fn attention_bwd_dq(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let b = wg.z;
  let h = wg.y;
  let row0 = wg.x * ROWS;
  let r = tid / LANES;
  let lane = tid % LANES;
  let i = row0 + r;
  let q_base = b * params.q_sb + h * params.q_sh;
  let k_base = b * params.k_sb + h * params.k_sh;
  let v_base = b * params.v_sb + h * params.v_sh;
  let o_base = b * params.o_sb + h * params.o_sh;
  for (var e = tid; e < ROWS * HEAD_DIM; e += WG_SIZE) {
    let rr = e / HEAD_DIM;
    let d = e % HEAD_DIM;
    var qx = 0.0;
    var gx = 0.0;
    if (row0 + rr < params.lq) {
      qx = q[q_base + (row0 + rr) * params.q_sl + d];
      gx = d_out[o_base + (row0 + rr) * params.o_sl + d];
    }
    own_a[rr * PITCH + d] = qx;
    own_b[rr * PITCH + d] = gx;
  }
  if (tid < ROWS && row0 + tid < params.lq) {
    let q_row = q_base + (row0 + tid) * params.q_sl;
    row_stats[tid] = vec2f(dq[q_row], dq[q_row + 1u]);
  }
  // The (lse, delta) scratch in dq must be read by all before any invocation overwrites it.
  storageBarrier();
  let kend = key_end(tid, b);  // also a workgroup barrier
  let kstop = key_stop(row0, kend);
  let st = row_stats[r];

  var dq_acc: array<f32, MAX_SLOTS>;
  for (var j0 = 0u; j0 < kstop; j0 += LANES) {
    workgroupBarrier();
    for (var e = tid; e < LANES * HEAD_DIM; e += WG_SIZE) {
      let c = e / HEAD_DIM;
      let d = e % HEAD_DIM;
      let j = j0 + c;
      var kx = 0.0;
      var vx = 0.0;
      if (j < kstop) {
        kx = k[k_base + j * params.k_sl + d];
        vx = v[v_base + j * params.v_sl + d];
      }
      tile_a[c * PITCH + d] = kx;
      tile_b[c * PITCH + d] = vx;
    }
    workgroupBarrier();
    let s = dot_own_a_tile_a(r, lane) * params.scale;
    let dp = dot_own_b_tile_b(r, lane);
    let p = select(0.0, exp(s - st.x), visible(i, j0 + lane, kend));
    score_a[r * LANES + lane] = p * (dp - st.y);
    workgroupBarrier();
    for (var c = 0u; c < LANES; c++) {
      let dsc = score_a[r * LANES + c];
      for (var sl = 0u; sl < SLOTS; sl++) { dq_acc[sl] = fma(dsc, tile_a[c * PITCH + lane + sl * LANES], dq_acc[sl]); }
    }
  }
  if (i >= params.lq) { return; }
  let q_row = q_base + i * params.q_sl;
  for (var sl = 0u; sl < SLOTS; sl++) {
    let d = lane + sl * LANES;
    if (d < HEAD_DIM) { dq[q_row + d] = dq_acc[sl] * params.scale; }
  }
}

enable subgroups;
// lab: bwd=prep/64,dkdv/8,dq/16 v7 with 64 queries per dK/dV step (8 per lane) and 16 owned queries in dQ: more FMAs per gather, more accumulators
// Interface as shaders/attention.wgsl (backward only). Head dims <= 64. Needs subgroups of >= 8 lanes.

struct Params {
  heads: u32,
  lq: u32,
  lk: u32,
  scale: f32,
  causal_offset: i32,
  q_sb: u32, q_sh: u32, q_sl: u32,
  k_sb: u32, k_sh: u32, k_sl: u32,
  v_sb: u32, v_sh: u32, v_sl: u32,
  o_sb: u32, o_sh: u32, o_sl: u32,
}

override HEAD_DIM: u32 = 64u;
override CAUSAL: bool = false;
override HAS_KLEN: bool = false;

const LANES: u32 = 8u;
// Owned rows per workgroup and streamed rows per lane per step (LANES apart), per entry point.
const KV_ROWS: u32 = 8u;
const KV_COLS: u32 = 8u;
const Q_ROWS: u32 = 16u;
const Q_COLS: u32 = 4u;
const SLOTS: u32 = 8u;           // head dims per lane, LANES apart
const NEG_MAX: f32 = -0x1.fffffep+127f;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> klen: array<u32>;
@group(0) @binding(7) var<storage, read> d_out: array<f32>;
@group(0) @binding(8) var<storage, read_write> dq: array<f32>;
@group(0) @binding(9) var<storage, read_write> dk: array<f32>;
@group(0) @binding(10) var<storage, read_write> dv: array<f32>;
@group(0) @binding(11) var<storage, read> stats: array<f32>;
@group(0) @binding(12) var<storage, read> saved_out: array<f32>;
@group(0) @binding(13) var<storage, read> saved_lse: array<f32>;

fn visible(i: u32, j: u32, kend: u32) -> bool {
  return i < params.lq && j < kend && (!CAUSAL || i32(j) <= i32(i) + params.causal_offset);
}

fn key_end(b: u32) -> u32 {
  if (HAS_KLEN) { return min(params.lk, klen[b]); }
  return params.lk;
}

// delta_i = dOut_i . out_i, stored with lse_i in elements 0 and 1 of dq's row i.
@compute @workgroup_size(64)
fn attention_bwd_prep(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  let h = gid.y;
  let b = gid.z;
  if (i >= params.lq) { return; }
  let o_row = b * params.o_sb + h * params.o_sh + i * params.o_sl;
  var delta = 0.0;
  for (var d = 0u; d < HEAD_DIM; d++) { delta = fma(d_out[o_row + d], saved_out[o_row + d], delta); }
  let q_row = b * params.q_sb + h * params.q_sh + i * params.q_sl;
  dq[q_row] = saved_lse[(b * params.heads + h) * params.lq + i];
  dq[q_row + 1u] = delta;
}

// dV_j = sum_i P_ij dOut_i;  dK_j = scale * sum_i dS_ij q_i;  dS_ij = P_ij (dOut_i . v_j - delta_i).
@compute @workgroup_size(LANES)
fn attention_bwd_dkdv(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let b = wg.z;
  let h = wg.y;
  let col0 = wg.x * KV_ROWS;
  let q_base = b * params.q_sb + h * params.q_sh;
  let k_base = b * params.k_sb + h * params.k_sh;
  let v_base = b * params.v_sb + h * params.v_sh;
  let o_base = b * params.o_sb + h * params.o_sh;
  let kend = key_end(b);
  // Queries before the first that sees key col0 contribute nothing; masked keys get zeros.
  var qstart = 0u;
  if (CAUSAL) { qstart = u32(clamp(i32(col0) - params.causal_offset, 0, i32(params.lq))); }
  var qstop = params.lq;
  if (col0 >= kend) { qstop = qstart; }
  let key = min(col0 + lane, params.lk - 1u);
  let k_row = k_base + key * params.k_sl;
  let v_row = v_base + key * params.v_sl;
  var dim: array<u32, SLOTS>;
  for (var sl = 0u; sl < SLOTS; sl++) { dim[sl] = min(lane + sl * LANES, HEAD_DIM - 1u); }

  var dk_acc: array<array<f32, SLOTS>, KV_ROWS>;
  var dv_acc: array<array<f32, SLOTS>, KV_ROWS>;
  for (var i0 = qstart; i0 < qstop; i0 += (LANES * KV_COLS)) {
    var q_row: array<u32, KV_COLS>;
    var o_row: array<u32, KV_COLS>;
    for (var c = 0u; c < KV_COLS; c++) {
      let i = min(i0 + lane + c * LANES, params.lq - 1u);
      q_row[c] = q_base + i * params.q_sl;
      o_row[c] = o_base + i * params.o_sl;
    }
    var s: array<array<f32, KV_COLS>, KV_ROWS>;
    var dp: array<array<f32, KV_COLS>, KV_ROWS>;
    for (var r = 0u; r < KV_ROWS; r++) { for (var c = 0u; c < KV_COLS; c++) { s[r][c] = 0.0; dp[r][c] = 0.0; } }
    for (var d = 0u; d < HEAD_DIM; d++) {
      let k_lane = k[k_row + d];
      let v_lane = v[v_row + d];
      var qv: array<f32, KV_COLS>;
      var gv: array<f32, KV_COLS>;
      for (var c = 0u; c < KV_COLS; c++) { qv[c] = q[q_row[c] + d]; gv[c] = d_out[o_row[c] + d]; }
      for (var r = 0u; r < KV_ROWS; r++) {
        let kr = subgroupShuffle(k_lane, r);
        let vr = subgroupShuffle(v_lane, r);
        for (var c = 0u; c < KV_COLS; c++) {
          s[r][c] = fma(kr, qv[c], s[r][c]);
          dp[r][c] = fma(vr, gv[c], dp[r][c]);
        }
      }
    }
    // P and dS of this lane's queries; (lse, delta) sit in elements 0, 1 of each dq row.
    for (var c = 0u; c < KV_COLS; c++) {
      let i = i0 + lane + c * LANES;
      let lse_i = stats[q_row[c]];
      let delta_i = stats[q_row[c] + 1u];
      for (var r = 0u; r < KV_ROWS; r++) {
        let p = select(0.0, exp(s[r][c] * params.scale - lse_i), visible(i, col0 + r, kend));
        s[r][c] = p;
        dp[r][c] = p * (dp[r][c] - delta_i);
      }
    }
    // Query i0 + c * LANES + src has its P and dS in lane src, slot c.
    for (var c = 0u; c < KV_COLS; c++) {
      for (var src = 0u; src < LANES; src++) {
        let i = min(i0 + c * LANES + src, params.lq - 1u);
        let q_at = q_base + i * params.q_sl;
        let o_at = o_base + i * params.o_sl;
        var qq: array<f32, SLOTS>;
        var gg: array<f32, SLOTS>;
        for (var sl = 0u; sl < SLOTS; sl++) { qq[sl] = q[q_at + dim[sl]]; gg[sl] = d_out[o_at + dim[sl]]; }
        for (var r = 0u; r < KV_ROWS; r++) {
          let p = subgroupShuffle(s[r][c], src);
          let ds = subgroupShuffle(dp[r][c], src);
          for (var sl = 0u; sl < SLOTS; sl++) {
            dv_acc[r][sl] = fma(p, gg[sl], dv_acc[r][sl]);
            dk_acc[r][sl] = fma(ds, qq[sl], dk_acc[r][sl]);
          }
        }
      }
    }
  }
  for (var r = 0u; r < KV_ROWS; r++) {
    let j = col0 + r;
    if (j >= params.lk) { break; }
    let dk_row = k_base + j * params.k_sl;
    let dv_row = v_base + j * params.v_sl;
    for (var sl = 0u; sl < SLOTS; sl++) {
      let d = lane + sl * LANES;
      if (d < HEAD_DIM) {
        dk[dk_row + d] = dk_acc[r][sl] * params.scale;
        dv[dv_row + d] = dv_acc[r][sl];
      }
    }
  }
}

// dQ_i = scale * sum_j dS_ij k_j.
@compute @workgroup_size(LANES)
fn attention_bwd_dq(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let b = wg.z;
  let h = wg.y;
  let row0 = wg.x * Q_ROWS;
  let q_base = b * params.q_sb + h * params.q_sh;
  let k_base = b * params.k_sb + h * params.k_sh;
  let v_base = b * params.v_sb + h * params.v_sh;
  let o_base = b * params.o_sb + h * params.o_sh;
  let kend = key_end(b);
  var kstop = kend;
  if (CAUSAL) {
    let last = i32(min(row0 + Q_ROWS, params.lq)) - 1;
    kstop = u32(clamp(last + params.causal_offset + 1, 0, i32(kend)));
  }
  // This lane's rows' (lse, delta), read before any lane overwrites them with dQ: every dQ value
  // written below depends on them through the shuffles.
  var q_row: array<u32, Q_ROWS / LANES>;
  var o_row: array<u32, Q_ROWS / LANES>;
  var lse_lane: array<f32, Q_ROWS / LANES>;
  var delta_lane: array<f32, Q_ROWS / LANES>;
  for (var g = 0u; g < Q_ROWS / LANES; g++) {
    let row = min(row0 + g * LANES + lane, params.lq - 1u);
    q_row[g] = q_base + row * params.q_sl;
    o_row[g] = o_base + row * params.o_sl;
    lse_lane[g] = dq[q_row[g]];
    delta_lane[g] = dq[q_row[g] + 1u];
  }
  var dim: array<u32, SLOTS>;
  for (var sl = 0u; sl < SLOTS; sl++) { dim[sl] = min(lane + sl * LANES, HEAD_DIM - 1u); }

  var dq_acc: array<array<f32, SLOTS>, Q_ROWS>;
  for (var j0 = 0u; j0 < kstop; j0 += (LANES * Q_COLS)) {
    var k_row: array<u32, Q_COLS>;
    var v_row: array<u32, Q_COLS>;
    for (var c = 0u; c < Q_COLS; c++) {
      let j = min(j0 + lane + c * LANES, params.lk - 1u);
      k_row[c] = k_base + j * params.k_sl;
      v_row[c] = v_base + j * params.v_sl;
    }
    var s: array<array<f32, Q_COLS>, Q_ROWS>;
    var dp: array<array<f32, Q_COLS>, Q_ROWS>;
    for (var r = 0u; r < Q_ROWS; r++) { for (var c = 0u; c < Q_COLS; c++) { s[r][c] = 0.0; dp[r][c] = 0.0; } }
    for (var d = 0u; d < HEAD_DIM; d++) {
      var q_lane: array<f32, Q_ROWS / LANES>;
      var g_lane: array<f32, Q_ROWS / LANES>;
      for (var g = 0u; g < Q_ROWS / LANES; g++) { q_lane[g] = q[q_row[g] + d]; g_lane[g] = d_out[o_row[g] + d]; }
      var kv: array<f32, Q_COLS>;
      var vv: array<f32, Q_COLS>;
      for (var c = 0u; c < Q_COLS; c++) { kv[c] = k[k_row[c] + d]; vv[c] = v[v_row[c] + d]; }
      for (var r = 0u; r < Q_ROWS; r++) {
        let qr = subgroupShuffle(q_lane[r / LANES], r % LANES);
        let gr = subgroupShuffle(g_lane[r / LANES], r % LANES);
        for (var c = 0u; c < Q_COLS; c++) {
          s[r][c] = fma(qr, kv[c], s[r][c]);
          dp[r][c] = fma(gr, vv[c], dp[r][c]);
        }
      }
    }
    for (var r = 0u; r < Q_ROWS; r++) {
      let lse_r = subgroupShuffle(lse_lane[r / LANES], r % LANES);
      let delta_r = subgroupShuffle(delta_lane[r / LANES], r % LANES);
      for (var c = 0u; c < Q_COLS; c++) {
        let p = select(0.0, exp(s[r][c] * params.scale - lse_r), visible(row0 + r, j0 + lane + c * LANES, kend));
        s[r][c] = p * (dp[r][c] - delta_r);
      }
    }
    // Key j0 + c * LANES + src has its dS in lane src, slot c.
    for (var c = 0u; c < Q_COLS; c++) {
      for (var src = 0u; src < LANES; src++) {
        let j = min(j0 + c * LANES + src, params.lk - 1u);
        let k_at = k_base + j * params.k_sl;
        var kk: array<f32, SLOTS>;
        for (var sl = 0u; sl < SLOTS; sl++) { kk[sl] = k[k_at + dim[sl]]; }
        for (var r = 0u; r < Q_ROWS; r++) {
          let ds = subgroupShuffle(s[r][c], src);
          for (var sl = 0u; sl < SLOTS; sl++) { dq_acc[r][sl] = fma(ds, kk[sl], dq_acc[r][sl]); }
        }
      }
    }
  }
  for (var r = 0u; r < Q_ROWS; r++) {
    let i = row0 + r;
    if (i >= params.lq) { break; }
    let q_at = q_base + i * params.q_sl;
    for (var sl = 0u; sl < SLOTS; sl++) {
      let d = lane + sl * LANES;
      if (d < HEAD_DIM) { dq[q_at + d] = dq_acc[r][sl] * params.scale; }
    }
  }
}

// lab: bwd=prep/64,dkdv/8,dq/8 v7 without subgroups: owned rows read per lane (8 uniform gathers), P and dS handed over through workgroup memory with 2 barriers per step; 8 owned x 64 streamed rows per step
// Interface as shaders/attention.wgsl (backward only). Head dims <= 64.

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
const ROWS: u32 = 8u;            // owned rows per workgroup (keys in dK/dV, queries in dQ)
const COLS: u32 = 8u;            // streamed rows per lane per step, LANES apart
const BLOCK: u32 = LANES * COLS; // streamed rows per step
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

// P (or dS in dQ) and dS of the current step, [owned row][streamed row], for the accumulation lanes.
var<workgroup> p_tile: array<f32, ROWS * BLOCK>;
var<workgroup> ds_tile: array<f32, ROWS * BLOCK>;

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
fn attention_bwd_dkdv(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  // Through countOneBits, which LLVM cannot rematerialise after a barrier (else the lane index
  // is recomputed with integer divisions at every use).
  let lane = countOneBits((1u << lid) - 1u);
  let b = wg.z;
  let h = wg.y;
  let col0 = wg.x * ROWS;
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
  var k_row: array<u32, ROWS>;
  var v_row: array<u32, ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    let key = min(col0 + r, params.lk - 1u);
    k_row[r] = k_base + key * params.k_sl;
    v_row[r] = v_base + key * params.v_sl;
  }
  var dim: array<u32, SLOTS>;
  for (var sl = 0u; sl < SLOTS; sl++) { dim[sl] = min(lane + sl * LANES, HEAD_DIM - 1u); }

  var dk_acc: array<array<f32, SLOTS>, ROWS>;
  var dv_acc: array<array<f32, SLOTS>, ROWS>;
  for (var i0 = qstart; i0 < qstop; i0 += BLOCK) {
    var q_row: array<u32, COLS>;
    var o_row: array<u32, COLS>;
    for (var c = 0u; c < COLS; c++) {
      let i = min(i0 + lane + c * LANES, params.lq - 1u);
      q_row[c] = q_base + i * params.q_sl;
      o_row[c] = o_base + i * params.o_sl;
    }
    var s: array<array<f32, COLS>, ROWS>;
    var dp: array<array<f32, COLS>, ROWS>;
    for (var r = 0u; r < ROWS; r++) { for (var c = 0u; c < COLS; c++) { s[r][c] = 0.0; dp[r][c] = 0.0; } }
    for (var d = 0u; d < HEAD_DIM; d++) {
      var qv: array<f32, COLS>;
      var gv: array<f32, COLS>;
      for (var c = 0u; c < COLS; c++) { qv[c] = q[q_row[c] + d]; gv[c] = d_out[o_row[c] + d]; }
      for (var r = 0u; r < ROWS; r++) {
        let kr = k[k_row[r] + d];
        let vr = v[v_row[r] + d];
        for (var c = 0u; c < COLS; c++) {
          s[r][c] = fma(kr, qv[c], s[r][c]);
          dp[r][c] = fma(vr, gv[c], dp[r][c]);
        }
      }
    }
    // P and dS of this lane's queries; (lse, delta) sit in elements 0, 1 of each dq row.
    for (var c = 0u; c < COLS; c++) {
      let i = i0 + lane + c * LANES;
      let lse_i = stats[q_row[c]];
      let delta_i = stats[q_row[c] + 1u];
      for (var r = 0u; r < ROWS; r++) {
        let p = select(0.0, exp(s[r][c] * params.scale - lse_i), visible(i, col0 + r, kend));
        p_tile[r * BLOCK + c * LANES + lane] = p;
        ds_tile[r * BLOCK + c * LANES + lane] = p * (dp[r][c] - delta_i);
      }
    }
    workgroupBarrier();
    for (var t = 0u; t < min(BLOCK, qstop - i0); t++) {
      {
        let i = i0 + t;
        let q_at = q_base + i * params.q_sl;
        let o_at = o_base + i * params.o_sl;
        var qq: array<f32, SLOTS>;
        var gg: array<f32, SLOTS>;
        for (var sl = 0u; sl < SLOTS; sl++) { qq[sl] = q[q_at + dim[sl]]; gg[sl] = d_out[o_at + dim[sl]]; }
        for (var r = 0u; r < ROWS; r++) {
          let p = p_tile[r * BLOCK + t];
          let ds = ds_tile[r * BLOCK + t];
          for (var sl = 0u; sl < SLOTS; sl++) {
            dv_acc[r][sl] = fma(p, gg[sl], dv_acc[r][sl]);
            dk_acc[r][sl] = fma(ds, qq[sl], dk_acc[r][sl]);
          }
        }
      }
    }
    workgroupBarrier();  // the tiles are consumed before the next step writes them
  }
  for (var r = 0u; r < ROWS; r++) {
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
fn attention_bwd_dq(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let lane = countOneBits((1u << lid) - 1u);  // as in attention_bwd_dkdv
  let b = wg.z;
  let h = wg.y;
  let row0 = wg.x * ROWS;
  let q_base = b * params.q_sb + h * params.q_sh;
  let k_base = b * params.k_sb + h * params.k_sh;
  let v_base = b * params.v_sb + h * params.v_sh;
  let o_base = b * params.o_sb + h * params.o_sh;
  let kend = key_end(b);
  var kstop = kend;
  if (CAUSAL) {
    let last = i32(min(row0 + ROWS, params.lq)) - 1;
    kstop = u32(clamp(last + params.causal_offset + 1, 0, i32(kend)));
  }
  var q_row: array<u32, ROWS>;
  var o_row: array<u32, ROWS>;
  var lse_r: array<f32, ROWS>;
  var delta_r: array<f32, ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    let row = min(row0 + r, params.lq - 1u);
    q_row[r] = q_base + row * params.q_sl;
    o_row[r] = o_base + row * params.o_sl;
    lse_r[r] = dq[q_row[r]];
    delta_r[r] = dq[q_row[r] + 1u];
  }
  // Every lane has read the (lse, delta) scratch before any overwrites it with dQ.
  storageBarrier();
  var dim: array<u32, SLOTS>;
  for (var sl = 0u; sl < SLOTS; sl++) { dim[sl] = min(lane + sl * LANES, HEAD_DIM - 1u); }

  var dq_acc: array<array<f32, SLOTS>, ROWS>;
  for (var j0 = 0u; j0 < kstop; j0 += BLOCK) {
    var k_row: array<u32, COLS>;
    var v_row: array<u32, COLS>;
    for (var c = 0u; c < COLS; c++) {
      let j = min(j0 + lane + c * LANES, params.lk - 1u);
      k_row[c] = k_base + j * params.k_sl;
      v_row[c] = v_base + j * params.v_sl;
    }
    var s: array<array<f32, COLS>, ROWS>;
    var dp: array<array<f32, COLS>, ROWS>;
    for (var r = 0u; r < ROWS; r++) { for (var c = 0u; c < COLS; c++) { s[r][c] = 0.0; dp[r][c] = 0.0; } }
    for (var d = 0u; d < HEAD_DIM; d++) {
      var kv: array<f32, COLS>;
      var vv: array<f32, COLS>;
      for (var c = 0u; c < COLS; c++) { kv[c] = k[k_row[c] + d]; vv[c] = v[v_row[c] + d]; }
      for (var r = 0u; r < ROWS; r++) {
        let qr = q[q_row[r] + d];
        let gr = d_out[o_row[r] + d];
        for (var c = 0u; c < COLS; c++) {
          s[r][c] = fma(qr, kv[c], s[r][c]);
          dp[r][c] = fma(gr, vv[c], dp[r][c]);
        }
      }
    }
    for (var r = 0u; r < ROWS; r++) {
      for (var c = 0u; c < COLS; c++) {
        let p = select(0.0, exp(s[r][c] * params.scale - lse_r[r]), visible(row0 + r, j0 + lane + c * LANES, kend));
        ds_tile[r * BLOCK + c * LANES + lane] = p * (dp[r][c] - delta_r[r]);
      }
    }
    workgroupBarrier();
    for (var t = 0u; t < min(BLOCK, kstop - j0); t++) {
      {
        let j = j0 + t;
        let k_at = k_base + j * params.k_sl;
        var kk: array<f32, SLOTS>;
        for (var sl = 0u; sl < SLOTS; sl++) { kk[sl] = k[k_at + dim[sl]]; }
        for (var r = 0u; r < ROWS; r++) {
          let ds = ds_tile[r * BLOCK + t];
          for (var sl = 0u; sl < SLOTS; sl++) { dq_acc[r][sl] = fma(ds, kk[sl], dq_acc[r][sl]); }
        }
      }
    }
    workgroupBarrier();  // the tile is consumed before the next step writes it
  }
  for (var r = 0u; r < ROWS; r++) {
    let i = row0 + r;
    if (i >= params.lq) { break; }
    let q_at = q_base + i * params.q_sl;
    for (var sl = 0u; sl < SLOTS; sl++) {
      let d = lane + sl * LANES;
      if (d < HEAD_DIM) { dq[q_at + d] = dq_acc[r][sl] * params.scale; }
    }
  }
}

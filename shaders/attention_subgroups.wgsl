enable subgroups;

// Fused scaled-dot-product attention (flash-attention style) and its backward.
//
//   out[b,h,i,:] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h,j,:] + mask) v[b,h,j,:]
//   lse[b,h,i]   = log sum_j exp(scale * q . k + mask)
//
// Key j is masked for query i when j >= klen[b] (HAS_KLEN) or, with CAUSAL, when
// j > i + causal_offset. Fully masked rows give out = 0 and lse = NEG_MAX (standing for
// log 0 = -inf: WGSL may assume no infinities exist). The Lq x Lk score matrix never reaches
// global memory: the forward streams key blocks with an online softmax, the backward recomputes
// P = exp(S - lse) from the saved lse.
//
// Every tensor is addressed through (batch, head, row) element strides with the head dimension
// contiguous, so one kernel reads head-major [B, H, L, D] and token-major [B, L, H*D] (what the
// projections produce) without transposes. Gradients share their input's strides (dq: q's,
// dk: k's, dv: v's, d_out: out's). f32 throughout.
//
// This is the subgroup variant, for devices whose subgroups have at least 8 lanes (the host
// checks GPUAdapterInfo.subgroupMinSize); shaders/attention.wgsl is the plain one, with the same
// bindings and results. Work split (measured in bench/lab/attention, RESULTS.md there): a
// workgroup is LANES = 8 invocations, one subgroup, that own a few rows (queries in the forward
// and in dQ, keys in dK/dV) of one (batch, head) and stream the other side's rows in steps of
// LANES * COLS. Each step is two register-blocked products read straight from global memory:
// scores (owned rows x the streamed rows lane, lane + 8, ... of each lane) over the head dims,
// then the accumulation (owned rows x the head dims lane, lane + 8, ... of each lane) over the
// streamed rows. In between, subgroupShuffle hands every score to every lane in registers, and
// each load of the owned rows fetches 8 of them at once for shuffles to share. No workgroup
// memory and no barriers: on lavapipe, where a workgroup's invocations are SIMD lanes of one CPU
// thread, barriers split the shader into coroutines, which made a plain variant of this design
// take 5x longer to compile. No float atomics: attention_bwd_dkdv is parallel over key blocks,
// attention_bwd_dq over query blocks.
//
// Backward order: attention_bwd_prep writes each query row's (lse, delta = dOut . out) into the
// first two elements of that row of dq, used as scratch (head dim >= 2; the 8-storage-buffer
// limit leaves no binding for them); attention_bwd_dkdv reads them as `stats`; attention_bwd_dq
// reads its own rows' pair first, then overwrites them.

// #include "lib/attention.wgsl"

const LANES: u32 = 8u;
// Head dims per lane in the accumulations: SLOTS of at most MAX_SLOTS (head dims <= 128).
const MAX_SLOTS: u32 = 16u;
override SLOTS: u32 = (HEAD_DIM + LANES - 1u) / LANES;

// Owned rows per workgroup (*_ROWS) and streamed rows per lane per step (*_COLS), per entry
// point; the host's copy is in src/kernels/attention.ts. Each lane holds ROWS x COLS scores
// and ROWS x SLOTS accumulators (twice both in dK/dV).
const FWD_ROWS: u32 = 16u;
const FWD_COLS: u32 = 4u;
const KV_ROWS: u32 = 8u;
const KV_COLS: u32 = 8u;
const Q_ROWS: u32 = 16u;
const Q_COLS: u32 = 4u;
// Owned rows a lane loads itself: rows lane, lane + 8, ...
const FWD_LOADS: u32 = FWD_ROWS / LANES;
const KV_LOADS: u32 = KV_ROWS / LANES;
const Q_LOADS: u32 = Q_ROWS / LANES;

struct Lane { @builtin(subgroup_invocation_id) id: u32 }
fn lane_index(lane: Lane) -> u32 { return lane.id; }
fn own_row(n: u32, lane: u32) -> u32 { return n * LANES + lane; }

// x[r] becomes its maximum (sum) over the lanes, in every lane, for every forward row r.
fn lanes_max(x: ptr<function, array<f32, FWD_ROWS>>, lane: u32) {
  for (var r = 0u; r < FWD_ROWS; r++) { (*x)[r] = subgroupMax((*x)[r]); }
}
fn lanes_sum(x: ptr<function, array<f32, FWD_ROWS>>, lane: u32) {
  for (var r = 0u; r < FWD_ROWS; r++) { (*x)[r] = subgroupAdd((*x)[r]); }
}

// Keys of batch b that exist: lk, or klen[b] when shorter.
fn key_end(b: u32) -> u32 {
  if (HAS_KLEN) { return min(params.lk, klen[b]); }
  return params.lk;
}

// One past the last key any of the query rows [row0, row0 + rows) may see.
fn key_stop(row0: u32, rows: u32, kend: u32) -> u32 {
  if (!CAUSAL) { return kend; }
  let last = i32(min(row0 + rows, params.lq)) - 1;
  return u32(clamp(last + params.causal_offset + 1, 0, i32(kend)));
}

// The head dims a lane accumulates, clamped for loads (results past HEAD_DIM are not stored).
fn lane_dims(lane: u32) -> array<u32, MAX_SLOTS> {
  var dim: array<u32, MAX_SLOTS>;
  for (var sl = 0u; sl < SLOTS; sl++) { dim[sl] = min(lane + sl * LANES, HEAD_DIM - 1u); }
  return dim;
}

@compute @workgroup_size(LANES)
fn attention_fwd(@builtin(workgroup_id) wg: vec3u, inv: Lane) {
  let lane = lane_index(inv);
  let b = wg.z;
  let h = wg.y;
  let row0 = wg.x * FWD_ROWS;
  let q_base = b * params.q_sb + h * params.q_sh;
  let k_base = b * params.k_sb + h * params.k_sh;
  let v_base = b * params.v_sb + h * params.v_sh;
  let kend = key_end(b);
  let kstop = key_stop(row0, FWD_ROWS, kend);
  // Rows and keys past the end are clamped to the last (computed, never stored), so the inner
  // loops have no bounds checks.
  var q_row: array<u32, FWD_LOADS>;
  for (var n = 0u; n < FWD_LOADS; n++) { q_row[n] = q_base + min(row0 + own_row(n, lane), params.lq - 1u) * params.q_sl; }
  let dim = lane_dims(lane);

  var m: array<f32, FWD_ROWS>;  // running row maxima (equal in all lanes)
  var l: array<f32, FWD_ROWS>;  // this lane's part of the running sums of exp(score - m)
  var acc: array<array<f32, MAX_SLOTS>, FWD_ROWS>;
  for (var r = 0u; r < FWD_ROWS; r++) { m[r] = NEG_MAX; }
  for (var j0 = 0u; j0 < kstop; j0 += FWD_COLS * LANES) {
    var k_row: array<u32, FWD_COLS>;
    for (var c = 0u; c < FWD_COLS; c++) { k_row[c] = k_base + min(j0 + c * LANES + lane, params.lk - 1u) * params.k_sl; }
    // Zeroed explicitly: Tint/lavapipe did not re-zero a bare declaration in each iteration.
    var s: array<array<f32, FWD_COLS>, FWD_ROWS>;
    for (var r = 0u; r < FWD_ROWS; r++) { for (var c = 0u; c < FWD_COLS; c++) { s[r][c] = 0.0; } }
    for (var d = 0u; d < HEAD_DIM; d++) {
      var kv: array<f32, FWD_COLS>;
      for (var c = 0u; c < FWD_COLS; c++) { kv[c] = k[k_row[c] + d]; }
      var qv: array<f32, FWD_LOADS>;
      for (var n = 0u; n < FWD_LOADS; n++) { qv[n] = q[q_row[n] + d]; }
      for (var r = 0u; r < FWD_ROWS; r++) {
        let x = subgroupShuffle(qv[r / LANES], r % LANES);
        for (var c = 0u; c < FWD_COLS; c++) { s[r][c] = fma(x, kv[c], s[r][c]); }
      }
    }
    var step_max: array<f32, FWD_ROWS>;
    for (var r = 0u; r < FWD_ROWS; r++) {
      step_max[r] = NEG_MAX;
      for (var c = 0u; c < FWD_COLS; c++) {
        let x = select(NEG_MAX, s[r][c] * params.scale, visible(row0 + r, j0 + c * LANES + lane, kend));
        s[r][c] = x;
        step_max[r] = max(step_max[r], x);
      }
    }
    lanes_max(&step_max, lane);
    for (var r = 0u; r < FWD_ROWS; r++) {
      let m_new = max(m[r], step_max[r]);
      let alpha = exp(m[r] - m_new);
      m[r] = m_new;
      l[r] *= alpha;
      for (var sl = 0u; sl < SLOTS; sl++) { acc[r][sl] *= alpha; }
      for (var c = 0u; c < FWD_COLS; c++) {
        let p = select(0.0, exp(s[r][c] - m_new), s[r][c] > NEG_MAX);
        l[r] += p;
        s[r][c] = p;
      }
    }
    // Key j0 + c * LANES + n has its probabilities in lane n, slot c.
    for (var c = 0u; c < FWD_COLS; c++) {
      for (var n = 0u; n < LANES; n++) {
        // Clamped to the last valid key, not the last row: rows past the key length may hold
        // anything (e.g. a reused KV-cache buffer), and 0 * NaN would poison the sum.
        let v_row = v_base + min(j0 + c * LANES + n, max(kend, 1u) - 1u) * params.v_sl;
        var vv: array<f32, MAX_SLOTS>;
        for (var sl = 0u; sl < SLOTS; sl++) { vv[sl] = v[v_row + dim[sl]]; }
        for (var r = 0u; r < FWD_ROWS; r++) {
          let p = subgroupShuffle(s[r][c], n);
          for (var sl = 0u; sl < SLOTS; sl++) { acc[r][sl] = fma(p, vv[sl], acc[r][sl]); }
        }
      }
    }
  }
  // The row sums are split over the lanes.
  var total = l;
  lanes_sum(&total, lane);
  for (var r = 0u; r < FWD_ROWS; r++) {
    let i = row0 + r;
    if (i >= params.lq) { break; }
    let inv_total = select(0.0, 1.0 / total[r], total[r] > 0.0);
    let o_row = b * params.o_sb + h * params.o_sh + i * params.o_sl;
    for (var sl = 0u; sl < SLOTS; sl++) {
      let d = lane + sl * LANES;
      if (d < HEAD_DIM) { out[o_row + d] = acc[r][sl] * inv_total; }
    }
    if (lane == 0u) { lse[(b * params.heads + h) * params.lq + i] = select(NEG_MAX, m[r] + log(total[r]), total[r] > 0.0); }
  }
}

// dV_j = sum_i P_ij dOut_i;  dK_j = scale * sum_i dS_ij q_i;  dS_ij = P_ij (dOut_i . v_j - delta_i).
// A workgroup owns KV_ROWS keys and streams the queries that may see them.
@compute @workgroup_size(LANES)
fn attention_bwd_dkdv(@builtin(workgroup_id) wg: vec3u, inv: Lane) {
  let lane = lane_index(inv);
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
  var k_row: array<u32, KV_LOADS>;
  var v_row: array<u32, KV_LOADS>;
  for (var n = 0u; n < KV_LOADS; n++) {
    let j = min(col0 + own_row(n, lane), params.lk - 1u);
    k_row[n] = k_base + j * params.k_sl;
    v_row[n] = v_base + j * params.v_sl;
  }
  let dim = lane_dims(lane);

  var dk_acc: array<array<f32, MAX_SLOTS>, KV_ROWS>;
  var dv_acc: array<array<f32, MAX_SLOTS>, KV_ROWS>;
  for (var i0 = qstart; i0 < qstop; i0 += KV_COLS * LANES) {
    var q_row: array<u32, KV_COLS>;
    var o_row: array<u32, KV_COLS>;
    for (var c = 0u; c < KV_COLS; c++) {
      let i = min(i0 + c * LANES + lane, params.lq - 1u);
      q_row[c] = q_base + i * params.q_sl;
      o_row[c] = o_base + i * params.o_sl;
    }
    var s: array<array<f32, KV_COLS>, KV_ROWS>;
    var dp: array<array<f32, KV_COLS>, KV_ROWS>;
    for (var r = 0u; r < KV_ROWS; r++) { for (var c = 0u; c < KV_COLS; c++) { s[r][c] = 0.0; dp[r][c] = 0.0; } }
    for (var d = 0u; d < HEAD_DIM; d++) {
      var qv: array<f32, KV_COLS>;
      var gv: array<f32, KV_COLS>;
      for (var c = 0u; c < KV_COLS; c++) { qv[c] = q[q_row[c] + d]; gv[c] = d_out[o_row[c] + d]; }
      var kv: array<f32, KV_LOADS>;
      var vv: array<f32, KV_LOADS>;
      for (var n = 0u; n < KV_LOADS; n++) { kv[n] = k[k_row[n] + d]; vv[n] = v[v_row[n] + d]; }
      for (var r = 0u; r < KV_ROWS; r++) {
        let kr = subgroupShuffle(kv[r / LANES], r % LANES);
        let vr = subgroupShuffle(vv[r / LANES], r % LANES);
        for (var c = 0u; c < KV_COLS; c++) {
          s[r][c] = fma(kr, qv[c], s[r][c]);
          dp[r][c] = fma(vr, gv[c], dp[r][c]);
        }
      }
    }
    // P and dS of this lane's queries.
    for (var c = 0u; c < KV_COLS; c++) {
      let i = i0 + c * LANES + lane;
      let lse_i = stats[q_row[c]];
      let delta_i = stats[q_row[c] + 1u];
      for (var r = 0u; r < KV_ROWS; r++) {
        let p = select(0.0, exp(s[r][c] * params.scale - lse_i), visible(i, col0 + r, kend));
        s[r][c] = p;
        dp[r][c] = p * (dp[r][c] - delta_i);
      }
    }
    // Query i0 + c * LANES + n has its P and dS in lane n, slot c.
    for (var c = 0u; c < KV_COLS; c++) {
      for (var n = 0u; n < LANES; n++) {
        let i = min(i0 + c * LANES + n, params.lq - 1u);
        let q_at = q_base + i * params.q_sl;
        let o_at = o_base + i * params.o_sl;
        var qq: array<f32, MAX_SLOTS>;
        var gg: array<f32, MAX_SLOTS>;
        for (var sl = 0u; sl < SLOTS; sl++) { qq[sl] = q[q_at + dim[sl]]; gg[sl] = d_out[o_at + dim[sl]]; }
        for (var r = 0u; r < KV_ROWS; r++) {
          let p = subgroupShuffle(s[r][c], n);
          let ds = subgroupShuffle(dp[r][c], n);
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

// dQ_i = scale * sum_j dS_ij k_j. A workgroup owns Q_ROWS queries and streams the keys they see.
@compute @workgroup_size(LANES)
fn attention_bwd_dq(@builtin(workgroup_id) wg: vec3u, inv: Lane) {
  let lane = lane_index(inv);
  let b = wg.z;
  let h = wg.y;
  let row0 = wg.x * Q_ROWS;
  let q_base = b * params.q_sb + h * params.q_sh;
  let k_base = b * params.k_sb + h * params.k_sh;
  let v_base = b * params.v_sb + h * params.v_sh;
  let o_base = b * params.o_sb + h * params.o_sh;
  let kend = key_end(b);
  let kstop = key_stop(row0, Q_ROWS, kend);
  var q_row: array<u32, Q_LOADS>;
  var o_row: array<u32, Q_LOADS>;
  var lse_n: array<f32, Q_LOADS>;
  var delta_n: array<f32, Q_LOADS>;
  for (var n = 0u; n < Q_LOADS; n++) {
    let i = min(row0 + own_row(n, lane), params.lq - 1u);
    q_row[n] = q_base + i * params.q_sl;
    o_row[n] = o_base + i * params.o_sl;
    lse_n[n] = dq[q_row[n]];
    delta_n[n] = dq[q_row[n] + 1u];
  }
  // The (lse, delta) scratch is read by every lane before any overwrites it with dQ.
  storageBarrier();
  var lse_r: array<f32, Q_ROWS>;
  var delta_r: array<f32, Q_ROWS>;
  for (var r = 0u; r < Q_ROWS; r++) {
    lse_r[r] = subgroupShuffle(lse_n[r / LANES], r % LANES);
    delta_r[r] = subgroupShuffle(delta_n[r / LANES], r % LANES);
  }
  let dim = lane_dims(lane);

  var dq_acc: array<array<f32, MAX_SLOTS>, Q_ROWS>;
  for (var j0 = 0u; j0 < kstop; j0 += Q_COLS * LANES) {
    var k_row: array<u32, Q_COLS>;
    var v_row: array<u32, Q_COLS>;
    for (var c = 0u; c < Q_COLS; c++) {
      let j = min(j0 + c * LANES + lane, params.lk - 1u);
      k_row[c] = k_base + j * params.k_sl;
      v_row[c] = v_base + j * params.v_sl;
    }
    var s: array<array<f32, Q_COLS>, Q_ROWS>;
    var dp: array<array<f32, Q_COLS>, Q_ROWS>;
    for (var r = 0u; r < Q_ROWS; r++) { for (var c = 0u; c < Q_COLS; c++) { s[r][c] = 0.0; dp[r][c] = 0.0; } }
    for (var d = 0u; d < HEAD_DIM; d++) {
      var kv: array<f32, Q_COLS>;
      var vv: array<f32, Q_COLS>;
      for (var c = 0u; c < Q_COLS; c++) { kv[c] = k[k_row[c] + d]; vv[c] = v[v_row[c] + d]; }
      var qv: array<f32, Q_LOADS>;
      var gv: array<f32, Q_LOADS>;
      for (var n = 0u; n < Q_LOADS; n++) { qv[n] = q[q_row[n] + d]; gv[n] = d_out[o_row[n] + d]; }
      for (var r = 0u; r < Q_ROWS; r++) {
        let qr = subgroupShuffle(qv[r / LANES], r % LANES);
        let gr = subgroupShuffle(gv[r / LANES], r % LANES);
        for (var c = 0u; c < Q_COLS; c++) {
          s[r][c] = fma(qr, kv[c], s[r][c]);
          dp[r][c] = fma(gr, vv[c], dp[r][c]);
        }
      }
    }
    for (var r = 0u; r < Q_ROWS; r++) {
      for (var c = 0u; c < Q_COLS; c++) {
        let p = select(0.0, exp(s[r][c] * params.scale - lse_r[r]), visible(row0 + r, j0 + c * LANES + lane, kend));
        s[r][c] = p * (dp[r][c] - delta_r[r]);
      }
    }
    // Key j0 + c * LANES + n has its dS in lane n, slot c.
    for (var c = 0u; c < Q_COLS; c++) {
      for (var n = 0u; n < LANES; n++) {
        let k_at = k_base + min(j0 + c * LANES + n, params.lk - 1u) * params.k_sl;
        var kk: array<f32, MAX_SLOTS>;
        for (var sl = 0u; sl < SLOTS; sl++) { kk[sl] = k[k_at + dim[sl]]; }
        for (var r = 0u; r < Q_ROWS; r++) {
          let ds = subgroupShuffle(s[r][c], n);
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

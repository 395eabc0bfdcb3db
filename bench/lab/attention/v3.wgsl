enable subgroups;
// lab: fwd=8 subgroups (8-lane workgroup = one subgroup), 8 rows x 64 keys per step like v2, but no workgroup memory or barriers: each q gather fetches 8 rows (subgroupShuffle hands them out), subgroupMax for row maxima, P handed to the P.V lanes by subgroupShuffle
// Interface as shaders/attention.wgsl (forward only). Head dims <= 64. Needs subgroups of >= 8 lanes.

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
const ROWS: u32 = 8u;            // query rows per workgroup
const KEYS: u32 = 8u;            // keys per lane per step, LANES apart
const BLOCK: u32 = LANES * KEYS; // keys per step
const SLOTS: u32 = 8u;           // head dims per lane in P.V, LANES apart
const NEG_MAX: f32 = -0x1.fffffep+127f;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> klen: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;

fn visible(i: u32, j: u32, kend: u32) -> bool {
  return j < kend && (!CAUSAL || i32(j) <= i32(i) + params.causal_offset);
}

@compute @workgroup_size(LANES)
fn attention_fwd(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let b = wg.z;
  let h = wg.y;
  let row0 = wg.x * ROWS;
  let q_base = b * params.q_sb + h * params.q_sh;
  let k_base = b * params.k_sb + h * params.k_sh;
  let v_base = b * params.v_sb + h * params.v_sh;
  var kend = params.lk;
  if (HAS_KLEN) { kend = min(kend, klen[b]); }
  var kstop = kend;
  if (CAUSAL) {
    let last = i32(min(row0 + ROWS, params.lq)) - 1;
    kstop = u32(clamp(last + params.causal_offset + 1, 0, i32(kend)));
  }
  // This lane's query row for the q gathers (clamped: computed, never stored).
  let q_row = q_base + min(row0 + lane, params.lq - 1u) * params.q_sl;
  var dim: array<u32, SLOTS>;
  for (var sl = 0u; sl < SLOTS; sl++) { dim[sl] = min(lane + sl * LANES, HEAD_DIM - 1u); }

  var m: array<f32, ROWS>;      // running row maxima (equal in all lanes)
  var l: array<f32, ROWS>;      // this lane's part of the running sums of exp(score - m)
  var acc: array<array<f32, SLOTS>, ROWS>;
  for (var r = 0u; r < ROWS; r++) { m[r] = NEG_MAX; }
  for (var j0 = 0u; j0 < kstop; j0 += BLOCK) {
    var k_row: array<u32, KEYS>;
    for (var c = 0u; c < KEYS; c++) { k_row[c] = k_base + min(j0 + lane + c * LANES, params.lk - 1u) * params.k_sl; }
    var s: array<array<f32, KEYS>, ROWS>;
    for (var r = 0u; r < ROWS; r++) { for (var c = 0u; c < KEYS; c++) { s[r][c] = 0.0; } }
    for (var d = 0u; d < HEAD_DIM; d++) {
      var kv: array<f32, KEYS>;
      for (var c = 0u; c < KEYS; c++) { kv[c] = k[k_row[c] + d]; }
      let q_lane = q[q_row + d];
      for (var r = 0u; r < ROWS; r++) {
        let qv = subgroupShuffle(q_lane, r);
        for (var c = 0u; c < KEYS; c++) { s[r][c] = fma(qv, kv[c], s[r][c]); }
      }
    }
    for (var r = 0u; r < ROWS; r++) {
      var mx = NEG_MAX;
      for (var c = 0u; c < KEYS; c++) {
        let x = select(NEG_MAX, s[r][c] * params.scale, visible(row0 + r, j0 + lane + c * LANES, kend));
        s[r][c] = x;
        mx = max(mx, x);
      }
      mx = max(m[r], subgroupMax(mx));
      let alpha = exp(m[r] - mx);
      m[r] = mx;
      l[r] *= alpha;
      for (var sl = 0u; sl < SLOTS; sl++) { acc[r][sl] *= alpha; }
      for (var c = 0u; c < KEYS; c++) {
        let p = select(0.0, exp(s[r][c] - mx), s[r][c] > NEG_MAX);
        l[r] += p;
        s[r][c] = p;
      }
    }
    // Key j0 + c * LANES + src has its probabilities in lane src, slot c.
    for (var c = 0u; c < KEYS; c++) {
      for (var src = 0u; src < LANES; src++) {
        let j = min(j0 + c * LANES + src, params.lk - 1u);
        let v_row = v_base + j * params.v_sl;
        var vv: array<f32, SLOTS>;
        for (var sl = 0u; sl < SLOTS; sl++) { vv[sl] = v[v_row + dim[sl]]; }
        for (var r = 0u; r < ROWS; r++) {
          let p = subgroupShuffle(s[r][c], src);
          for (var sl = 0u; sl < SLOTS; sl++) { acc[r][sl] = fma(p, vv[sl], acc[r][sl]); }
        }
      }
    }
  }
  for (var r = 0u; r < ROWS; r++) {
    let i = row0 + r;
    let total = subgroupAdd(l[r]);
    if (i >= params.lq) { break; }
    let inv = select(0.0, 1.0 / total, total > 0.0);
    let o_row = b * params.o_sb + h * params.o_sh + i * params.o_sl;
    for (var sl = 0u; sl < SLOTS; sl++) {
      let d = lane + sl * LANES;
      if (d < HEAD_DIM) { out[o_row + d] = acc[r][sl] * inv; }
    }
    if (lane == 0u) { lse[(b * params.heads + h) * params.lq + i] = select(NEG_MAX, m[r] + log(total), total > 0.0); }
  }
}

// What shaders/attention.wgsl (plain) and shaders/attention_subgroups.wgsl share: the uniform
// struct, the override constants of the problem, the bindings (the host binds both variants
// alike), the mask test and the backward's first pass. Pulled in with
// `// #include "lib/attention.wgsl"` (scripts/bundle-shaders.mjs).

struct Params {
  heads: u32,
  lq: u32,
  lk: u32,
  scale: f32,
  // With CAUSAL, query i sees key j only if j <= i + causal_offset (lk - lq aligns the last
  // query with the last key, as a decoder with cached keys needs).
  causal_offset: i32,
  q_sb: u32, q_sh: u32, q_sl: u32,
  k_sb: u32, k_sh: u32, k_sl: u32,
  v_sb: u32, v_sh: u32, v_sl: u32,
  o_sb: u32, o_sh: u32, o_sl: u32,
}

override HEAD_DIM: u32 = 64u;
override CAUSAL: bool = false;
override HAS_KLEN: bool = false;
const NEG_MAX: f32 = -0x1.fffffep+127f;  // -3.4028235e38, the most negative f32

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> klen: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
@group(0) @binding(7) var<storage, read> d_out: array<f32>;
@group(0) @binding(8) var<storage, read_write> dq: array<f32>;
@group(0) @binding(9) var<storage, read_write> dk: array<f32>;
@group(0) @binding(10) var<storage, read_write> dv: array<f32>;
// dq's buffer seen read-only by attention_bwd_dkdv: (lse, delta) at elements 0, 1 of each row.
@group(0) @binding(11) var<storage, read> stats: array<f32>;
@group(0) @binding(12) var<storage, read> saved_out: array<f32>;
@group(0) @binding(13) var<storage, read> saved_lse: array<f32>;

fn visible(i: u32, j: u32, kend: u32) -> bool {
  return i < params.lq && j < kend && (!CAUSAL || i32(j) <= i32(i) + params.causal_offset);
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

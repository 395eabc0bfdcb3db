// Workgroup reductions shared by reduce.wgsl, layernorm.wgsl, softmax.wgsl and losses.wgsl
// (pulled in with `// #include "lib/reduction.wgsl"`, resolved by scripts/bundle-shaders.mjs).
// A subgroup path and a plain shared-memory tree: kernel.ts keeps the `// #if subgroups` half when
// the variant enables subgroups and the `// #else` half otherwise.
// Entry points take the workgroup id as a separate parameter, not inside Invocation: uniformity
// analysis treats a struct parameter as non-uniform as a whole, and barriers need a uniform row.
const WG: u32 = 256u;
// Identity of max: the most negative finite f32 (WGSL has no infinity literal).
const NEG_MAX: f32 = -3.4028234e38;

// #if subgroups
struct Invocation {
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sg_lane: u32,
  @builtin(subgroup_size) sg_size: u32,
}

var<workgroup> red_slots: array<vec2f, WG>;

// Sum of v over the workgroup, returned to every invocation. Each subgroup's first lane parks the
// subgroup's sum in its own slot (the other lanes park 0), so nothing assumes how subgroups map
// onto local_invocation_index; then every subgroup adds up all slots in the same order.
fn wg_sum2(v: vec2f, inv: Invocation) -> vec2f {
  let s = subgroupAdd(v);
  red_slots[inv.lid] = select(vec2f(0.0), s, inv.sg_lane == 0u);
  workgroupBarrier();
  var t = vec2f(0.0);
  for (var i = 0u; i < WG; i += inv.sg_size) { t += red_slots[i + inv.sg_lane]; }
  workgroupBarrier();
  return subgroupAdd(t);
}

fn wg_max(v: f32, inv: Invocation) -> f32 {
  let m = subgroupMax(v);
  red_slots[inv.lid].x = select(NEG_MAX, m, inv.sg_lane == 0u);
  workgroupBarrier();
  var t = NEG_MAX;
  for (var i = 0u; i < WG; i += inv.sg_size) { t = max(t, red_slots[i + inv.sg_lane].x); }
  workgroupBarrier();
  return subgroupMax(t);
}
// #else
struct Invocation {
  @builtin(local_invocation_index) lid: u32,
}

var<workgroup> red_slots: array<vec2f, WG>;

// Sum of v over the workgroup by a shared-memory tree, returned to every invocation.
fn wg_sum2(v: vec2f, inv: Invocation) -> vec2f {
  red_slots[inv.lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (inv.lid < s) { red_slots[inv.lid] += red_slots[inv.lid + s]; }
    workgroupBarrier();
  }
  let t = red_slots[0];
  workgroupBarrier();
  return t;
}

fn wg_max(v: f32, inv: Invocation) -> f32 {
  red_slots[inv.lid].x = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (inv.lid < s) { red_slots[inv.lid].x = max(red_slots[inv.lid].x, red_slots[inv.lid + s].x); }
    workgroupBarrier();
  }
  let t = red_slots[0].x;
  workgroupBarrier();
  return t;
}
// #endif

fn wg_sum(v: f32, inv: Invocation) -> f32 {
  return wg_sum2(vec2f(v, 0.0), inv).x;
}

// Row index of a workgroup when the rows are spread over an x/y grid of groups_x columns.
fn row_of(wg: vec3u, groups_x: u32) -> u32 {
  return wg.y * groups_x + wg.x;
}

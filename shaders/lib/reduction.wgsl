// Workgroup reductions and row helpers shared by reduce.wgsl, layernorm.wgsl, softmax.wgsl and
// losses.wgsl (pulled in with `// #include "lib/reduction.wgsl"`, resolved by
// scripts/bundle-shaders.mjs). A subgroup path and a plain shared-memory tree: kernel.ts keeps the
// `// #if subgroups` half when the variant enables subgroups and the `// #else` half otherwise.
// Entry points take the workgroup id as a separate parameter, not inside Invocation: uniformity
// analysis treats a struct parameter as non-uniform as a whole, and barriers need a uniform row.
// Row kernels run small workgroups (bench/lab/rows/RESULTS.md): WG = the adapter's subgroup size
// (src/kernels/reduce.ts rowLaunch), so on lavapipe a workgroup is one SIMD vector and, with
// WG_IS_SUBGROUP, a reduction is a single subgroup operation without workgroup memory or barriers.

// Invocations per workgroup of every entry point using these reductions; whole-tensor reductions
// keep 256, row kernels set it per device.
override WG: u32 = 256u;
// Set by the host where WG <= the adapter's subgroupMinSize, so a workgroup is one subgroup.
override WG_IS_SUBGROUP: bool = false;
// Identity of max: the most negative finite f32 (WGSL has no infinity literal).
const NEG_MAX: f32 = -3.4028234e38;

// Element type of row data in storage: f32, or vec4f (the host rewrites this alias) for rows of a
// multiple of 4 columns; vec4 access costs lavapipe one bounds check per 4 elements.
alias V = f32;
// Elements per V: |V(1)|^2 is 1 for f32 and 4 for vec4f.
const V_WIDTH: u32 = u32(length(V(1.0)) * length(V(1.0)));
// dot(vec4f(v), HSUM_WEIGHTS) is v for a scalar (vec4f(v) splats it) and the component sum of a vec4.
const HSUM_WEIGHTS = select(vec4f(1.0), vec4f(1.0, 0.0, 0.0, 0.0), V_WIDTH == 1u);

// Sum of the elements of v.
fn hsum(v: V) -> f32 {
  return dot(vec4f(v), HSUM_WEIGHTS);
}

// Largest element of v.
fn hmax(v: V) -> f32 {
  let a = vec4f(v);
  return max(max(a.x, a.y), max(a.z, a.w));
}

// #if subgroups
struct Invocation {
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sg_lane: u32,
  @builtin(subgroup_size) sg_size: u32,
}

var<workgroup> red_slots: array<vec2f, WG>;

// Sum of v over the workgroup, returned to every invocation. With several subgroups, each
// subgroup's first lane parks the subgroup's sum in its own slot (the other lanes park 0), so
// nothing assumes how subgroups map onto local_invocation_index; then every subgroup adds up all
// slots in the same order.
fn wg_sum2(v: vec2f, inv: Invocation) -> vec2f {
  let s = subgroupAdd(v);
  if (WG_IS_SUBGROUP) { return s; }
  red_slots[inv.lid] = select(vec2f(0.0), s, inv.sg_lane == 0u);
  workgroupBarrier();
  var t = vec2f(0.0);
  for (var i = 0u; i < WG; i += inv.sg_size) { t += red_slots[i + inv.sg_lane]; }
  workgroupBarrier();
  return subgroupAdd(t);
}

fn wg_max(v: f32, inv: Invocation) -> f32 {
  let m = subgroupMax(v);
  if (WG_IS_SUBGROUP) { return m; }
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

// Sum of v over the workgroup by a shared-memory tree (WG a power of two), returned to every
// invocation.
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

// ---- Row mean and variance in one read (Welford per invocation and V component, merged with
// Chan's formula: mean = sum(n_i mu_i) / N, M2 = sum(M2_i + n_i (mu_i - mean)^2)). Unlike
// E[x^2] - E[x]^2 this keeps its precision for rows far from 0.
struct Welford { n: f32, mean: V, m2: V }

fn welford_add(w: Welford, v: V) -> Welford {
  let n = w.n + 1.0;
  let d = v - w.mean;
  let mean = w.mean + d / n;
  return Welford(n, mean, w.m2 + d * (v - mean));
}

// (mean, biased variance) of `count` elements from every invocation's Welford state.
fn wg_mean_var(w: Welford, count: f32, inv: Invocation) -> vec2f {
  let mean = wg_sum(w.n * hsum(w.mean), inv) / count;
  let dm = w.mean - mean;
  return vec2f(mean, wg_sum(hsum(w.m2 + w.n * dm * dm), inv) / count);
}

// ---- Online softmax statistics: (running max m, sum of exp(v - m)), merged without a second
// read. Blocks of four V rescale the running sum once per block (lavapipe evaluates both sides of
// a per-element branch, so a branchy update costs two exp per element).

// (m, s) after adding the elements of a, b, c and d.
fn max_sum4(ms: vec2f, a: V, b: V, c: V, d: V) -> vec2f {
  let m = max(ms.x, hmax(max(max(a, b), max(c, d))));
  let e = (exp(a - m) + exp(b - m)) + (exp(c - m) + exp(d - m));
  return vec2f(m, ms.y * exp(ms.x - m) + hsum(e));
}

// (m, s) after adding the elements of a.
fn max_sum1(ms: vec2f, a: V) -> vec2f {
  let m = max(ms.x, hmax(a));
  return vec2f(m, ms.y * exp(ms.x - m) + hsum(exp(a - m)));
}

// The workgroup's (max, sum of exp(v - max)) from every invocation's (m, s).
fn wg_max_sum(ms: vec2f, inv: Invocation) -> vec2f {
  let m = wg_max(ms.x, inv);
  return vec2f(m, wg_sum(ms.y * exp(ms.x - m), inv));
}

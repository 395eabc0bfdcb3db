// Embedding lookup: out[n, :] = table[ids[n], :], and its gradient, the scatter-add
// dtable[v, :] = sum of dy[n, :] over the positions n with ids[n] == v.
// Ids outside [0, V) read as a zero row and receive no gradient (the host cannot see GPU ids;
// validateIds in src/kernels/embedding.ts checks host-side ids when wanted).
// Id is i32, or u32 in the variant for u32 ids; the table's storage type S is f32, or f16 in the
// variant the host builds when shader-f16 exists. Outputs and gradients are f32.
//
// With QUANT the table is fake-quantized per row as it is read: table[v, c] becomes
// fake_quant(table[v, c], scale[v], qmax) (lib/fake_quant.wgsl, as the matmul's operand loads),
// so a tied token embedding looks up the very rows its fake-quantized logits projection uses and
// int8 inference dequantizes (int8_embedding in int8.wgsl). The backward then applies the
// straight-through estimator to the gradient it scatters: each sum passes where
// fake_quant_passes, else 0. The mask is a function of (table, scale) alone, so masking this
// contribution equals masking the summed gradient of a table the logits also use. With max-scaled
// scales (rowScales: max|row| / qmax) |table / scale| <= qmax up to f32 rounding that round()
// absorbs, so the mask is all ones there; it matters for scales that clip.

// #include "lib/fake_quant.wgsl"

alias S = f32;
alias Id = i32;

struct Params {
  // Positions (ids), vocabulary rows, columns.
  N: u32, V: u32, C: u32,
  // embedding_backward: 1 adds into dtable instead of overwriting the rows it owns.
  accumulate: u32,
  // 2^(bits-1) - 1 of the fake quantization (read only with QUANT).
  qmax: f32,
}

override QUANT: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> ids: array<Id>;
@group(0) @binding(2) var<storage, read> table: array<S>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dtable: array<f32>;
// Fake-quant scale per table row (read only with QUANT).
@group(0) @binding(6) var<storage, read> scale: array<f32>;

// The id at position n as a vocabulary row, or V when out of range. i32() of a u32 reinterprets
// its bits, so huge u32 ids come out negative and are rejected too.
fn row_of(n: u32) -> u32 {
  let id = i32(ids[n]);
  return select(params.V, u32(id), id >= 0 && id < i32(params.V));
}

// Grid: (ceil(C/64), positions folded into y and z as y + z * num_workgroups.y).
@compute @workgroup_size(64)
fn embedding(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = gid.x;
  let n = wg.y + wg.z * nwg.y;
  if (c >= params.C || n >= params.N) { return; }
  let row = row_of(n);
  var v = 0.0;
  if (row < params.V) {
    v = f32(table[row * params.C + c]);
    if (QUANT) { v = fake_quant(v, scale[row], params.qmax); }
  }
  out[n * params.C + c] = v;
}

// Deterministic scatter-add without atomics: the first position holding an id owns that
// vocabulary row and sums dy over all positions with the same id in ascending order; the other
// positions do nothing. O(N^2) id comparisons per column, cheap for N up to a few thousand
// tokens; rows no position owns are left alone (the host zeroes dtable unless accumulating).
@compute @workgroup_size(64)
fn embedding_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = gid.x;
  let n = wg.y + wg.z * nwg.y;
  if (c >= params.C || n >= params.N) { return; }
  let row = row_of(n);
  if (row >= params.V) { return; }
  for (var m = 0u; m < n; m++) {
    if (row_of(m) == row) { return; }
  }
  var acc = 0.0;
  for (var m = n; m < params.N; m++) {
    if (row_of(m) == row) { acc += dy[m * params.C + c]; }
  }
  let idx = row * params.C + c;
  if (QUANT && !fake_quant_passes(f32(table[idx]), scale[row], params.qmax)) { acc = 0.0; }
  if (params.accumulate != 0u) { acc += dtable[idx]; }
  dtable[idx] = acc;
}

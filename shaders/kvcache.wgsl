// Row moves for decoding with key/value caches (forward only, exact copies):
//
//   copy_rows:        dst[s, dst_start + r, :] = src[s, src_start + r, :]            (r < count)
//   gather_sequences: dst[g, s, r, :]          = src[g, parents[s], r, :]            (r < count)
//
// copy_rows writes a step's new key/value rows into the cache at the decoding position (a
// uniform, so a recorded step only changes that value between replays), and picks the last
// position of a prefill. gather_sequences reorders every layer's cache after a beam-search step.
// Tensors are [sequences, rows, width] (copy_rows; src and dst may have different row counts)
// or [groups, sequences, rows, width] (gather_sequences, groups = layers), f32.

struct Params {
  groups: u32,
  seqs: u32,
  width: u32,
  // Rows moved per sequence.
  count: u32,
  // Rows per sequence in src and dst.
  src_rows: u32,
  dst_rows: u32,
  src_start: u32,
  dst_start: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read> parents: array<u32>;

// Grid: (ceil(width / 64), moved rows folded into y and z as y + z * num_workgroups.y).
fn moved_row(wg: vec3u, nwg: vec3u) -> u32 {
  return wg.y + wg.z * nwg.y;
}

@compute @workgroup_size(64)
fn copy_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = gid.x;
  let n = moved_row(wg, nwg);
  if (c >= params.width || n >= params.seqs * params.count) { return; }
  let s = n / params.count;
  let r = n % params.count;
  let src_at = (s * params.src_rows + params.src_start + r) * params.width + c;
  let dst_at = (s * params.dst_rows + params.dst_start + r) * params.width + c;
  dst[dst_at] = src[src_at];
}

// Parents outside [0, seqs) are rejected on the host (the kernel cannot report them). The grid
// covers every row of src so that a recorded reorder changes only `count` between replays;
// rows past it return at once.
@compute @workgroup_size(64)
fn gather_sequences(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = gid.x;
  let n = moved_row(wg, nwg);
  let rows = params.src_rows;
  if (c >= params.width || n >= params.groups * params.seqs * rows) { return; }
  let r = n % rows;
  if (r >= params.count) { return; }
  let s = (n / rows) % params.seqs;
  let g = n / (rows * params.seqs);
  let p = parents[s];
  let src_at = ((g * params.seqs + p) * rows + r) * params.width + c;
  let dst_at = ((g * params.seqs + s) * rows + r) * params.width + c;
  dst[dst_at] = src[src_at];
}

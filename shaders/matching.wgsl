// Layer matching of the distillation step (docs/method.md, "Dynamic matching"), on the GPU so a
// step needs no read-back between the distance matrix and the hidden-state loss:
//   match_layers: the teacher layer of every student layer from the distance matrix D [LS, LT]
//     (losses.wgsl distance_partial/finish), as src/distill/matching.ts matchLayers does it on
//     the CPU (its reference): fixed map, monotonic dynamic programming (optionally within a
//     window around the fixed map), or per-layer argmin; the last layer optionally pinned; ties
//     to the lexicographically smallest map.
//   gather_layers: out[i, :] = states[layer_map[i], :], the teacher states each student layer learns
//     from (the teacher is frozen: no backward).
// Maps are 0-based teacher layer indices here (matching.ts's are 1-based).

struct MatchParams {
  ls: u32, lt: u32,
  // 0 fixed, 1 monotonic (dynamic; window = the window), 2 greedy.
  strategy: u32,
  window: u32,
  pin_last: u32,
  // 0 leaves the map as it is (the map is recomputed every K steps).
  update: u32,
}

// At most 32 x 32 layers (Whisper large has 32).
const MAX_LAYERS: u32 = 32u;
// Stands for +infinity: no allowed map through this cell. Distances are means of squares, far below.
const IMPOSSIBLE: f32 = 3.4e38;

@group(0) @binding(0) var<uniform> m_params: MatchParams;
@group(0) @binding(1) var<storage, read> dist: array<f32>;
// [ls] 0-based teacher layers, then one status word: 0 when this run chose the map, 1 when D held
// a non-finite value or no map met the constraints (the previous map was kept).
@group(0) @binding(2) var<storage, read_write> layer_map: array<u32>;

var<private> best: array<f32, 1024>;

// round((r + 1) * lt / ls) - 1 with halves up, in integers (matching.ts fixedLayerMap, 0-based).
fn fixed_of(r: u32) -> u32 {
  return (2u * (r + 1u) * m_params.lt + m_params.ls) / (2u * m_params.ls) - 1u;
}

fn allowed(r: u32, c: u32) -> bool {
  let ls = m_params.ls;
  let lt = m_params.lt;
  if (m_params.pin_last != 0u && r == ls - 1u && c != lt - 1u) { return false; }
  let centre = i32(fixed_of(r));
  return u32(abs(i32(c) - centre)) <= m_params.window;
}

fn finite(x: f32) -> bool {
  // NaN fails both comparisons; infinities exceed the largest finite f32.
  return abs(x) <= 3.4028234e38;
}

@compute @workgroup_size(1)
fn match_layers() {
  let ls = m_params.ls;
  let lt = m_params.lt;
  if (m_params.update == 0u) { return; }
  for (var k = 0u; k < ls * lt; k++) {
    if (!finite(dist[k])) { layer_map[ls] = 1u; return; }
  }
  if (m_params.strategy == 0u) {
    for (var r = 0u; r < ls; r++) { layer_map[r] = fixed_of(r); }
    layer_map[ls] = 0u;
    return;
  }
  if (m_params.strategy == 2u) {
    for (var r = 0u; r < ls; r++) {
      var arg = 0u;
      for (var c = 1u; c < lt; c++) { if (dist[r * lt + c] < dist[r * lt + arg]) { arg = c; } }
      if (m_params.pin_last != 0u && r == ls - 1u) { arg = lt - 1u; }
      layer_map[r] = arg;
    }
    layer_map[ls] = 0u;
    return;
  }
  // best[r, c]: least cost of rows r..ls-1 given row r takes column c; a backward pass of suffix
  // optima, then a forward pass taking the first optimal column after the previous row's.
  for (var rr = 0u; rr < ls; rr++) {
    let r = ls - 1u - rr;
    var suffix_min = select(IMPOSSIBLE, 0.0, r == ls - 1u);
    for (var cc = 0u; cc < lt; cc++) {
      let c = lt - 1u - cc;
      best[r * lt + c] = IMPOSSIBLE;
      if (allowed(r, c) && suffix_min < IMPOSSIBLE) { best[r * lt + c] = dist[r * lt + c] + suffix_min; }
      if (r < ls - 1u) { suffix_min = min(suffix_min, best[(r + 1u) * lt + c]); }
    }
  }
  var chosen: array<u32, MAX_LAYERS>;
  var first_col = 0u;
  for (var r = 0u; r < ls; r++) {
    var arg = lt;
    for (var c = first_col; c < lt; c++) {
      if (best[r * lt + c] < select(IMPOSSIBLE, best[r * lt + arg], arg < lt)) { arg = c; }
    }
    if (arg == lt) { layer_map[ls] = 1u; return; }
    chosen[r] = arg;
    first_col = arg + 1u;
  }
  for (var r = 0u; r < ls; r++) { layer_map[r] = chosen[r]; }
  layer_map[ls] = 0u;
}

struct GatherParams {
  // Student layers (rows of the map), elements per layer state.
  layers: u32, elements: u32,
}

@group(0) @binding(0) var<uniform> g_params: GatherParams;
@group(0) @binding(1) var<storage, read> g_map: array<u32>;
@group(0) @binding(2) var<storage, read> states: array<f32>;
@group(0) @binding(3) var<storage, read_write> gathered: array<f32>;

// Grid (x, layers): invocations stride over the layer's elements, so any size fits the x limit.
@compute @workgroup_size(256)
fn gather_layers(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(workgroup_id) wg: vec3u) {
  let i = wg.y;
  let n = g_params.elements;
  let src = g_map[i] * n;
  for (var e = gid.x; e < n; e += 256u * nwg.x) { gathered[i * n + e] = states[src + e]; }
}

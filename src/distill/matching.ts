import { ConfigError, DqwError, ShapeError } from '../errors.js';

// Which teacher layer each student layer learns from (docs/method.md, "Dynamic matching").
//
// Layer numbering follows method.md: hidden states h^0..h^L with h^0 the embeddings, and layers
// 1..L matched. A distance matrix therefore has one row per student layer 1..L_S and one column
// per teacher layer 1..L_T: row r is student layer r+1, column c is teacher layer c+1 (the
// embeddings are never matched). Maps are returned as 1-based teacher layer numbers:
// map[r] = m(r+1). Hugging Face's `model.encoder.layers.k` produces hidden state k+1.
//
// Hand-written rather than taken from npm: the matcher is a ~30-line dynamic program over at most
// 32x32 entries with a tie rule of its own, and no assignment library offers the monotonic form.

/** No assignment satisfies the constraints (too few teacher layers, window too narrow), or D is unusable. */
export class LayerMatchingError extends DqwError {}

/**
 * A student x teacher distance matrix: rows as arrays (`number[][]`), or row-major values with
 * their dimensions (e.g. the f32 read back from the `distanceMatrix` kernel's [L_S, L_T] output).
 */
export type LayerDistances =
  | readonly (readonly number[])[]
  | { readonly studentLayers: number; readonly teacherLayers: number; readonly values: ArrayLike<number> };

/** How the map is chosen; see docs/method.md. */
export type LayerMatchingStrategy = 'fixed' | 'dynamic' | 'window' | 'greedy';

/** Options of {@link matchLayers}. */
export interface LayerMatchingOptions {
  strategy: LayerMatchingStrategy;
  /** For 'window': student layer i may take teacher layers within ±window of {@link fixedLayerMap}'s m(i). Default 1. */
  window?: number;
  /** Pin the last student layer to the last teacher layer ('dynamic', 'window', 'greedy'; 'fixed' always does). Default true. */
  pinLast?: boolean;
}

/** A chosen map and its total distance. */
export interface LayerMatch {
  /** teacherLayers[r] = m(r+1): the 1-based teacher layer that student layer r+1 learns from. */
  readonly teacherLayers: number[];
  /** Σ_i D[i, m(i)], summed in student-layer order. */
  readonly cost: number;
}

/** A dense row-major float64 copy of the distances, validated. */
interface DenseDistances {
  ls: number;
  lt: number;
  d: Float64Array;
}

function dense(distances: LayerDistances): DenseDistances {
  let ls: number;
  let lt: number;
  let d: Float64Array;
  if (Array.isArray(distances)) {
    const rows = distances as readonly (readonly number[])[];
    ls = rows.length;
    lt = ls > 0 ? rows[0]!.length : 0;
    d = new Float64Array(ls * lt);
    rows.forEach((row, r) => {
      if (row.length !== lt) throw new ShapeError(`layer distances: row ${r} has ${row.length} entries, row 0 has ${lt}`);
      d.set(row, r * lt);
    });
  } else {
    const flat = distances as Exclude<LayerDistances, readonly (readonly number[])[]>;
    ls = flat.studentLayers;
    lt = flat.teacherLayers;
    if (!Number.isInteger(ls) || !Number.isInteger(lt) || ls < 0 || lt < 0) {
      throw new ShapeError(`layer distances: studentLayers ${ls} and teacherLayers ${lt} must be non-negative integers`);
    }
    if (flat.values.length !== ls * lt) {
      throw new ShapeError(`layer distances: ${flat.values.length} values, expected studentLayers x teacherLayers = ${ls} x ${lt} = ${ls * lt}`);
    }
    d = Float64Array.from(flat.values);
  }
  if (ls === 0 || lt === 0) throw new ShapeError(`layer distances: empty matrix (${ls} student x ${lt} teacher layers)`);
  for (let k = 0; k < d.length; k++) {
    if (!Number.isFinite(d[k]!)) {
      throw new LayerMatchingError(`layer distances: D[student ${Math.floor(k / lt) + 1}, teacher ${(k % lt) + 1}] is ${d[k]}; distances must be finite (a diverged batch?)`);
    }
  }
  return { ls, lt, d };
}

function checkLayerCounts(studentLayers: number, teacherLayers: number): void {
  if (!Number.isInteger(studentLayers) || !Number.isInteger(teacherLayers) || studentLayers < 1 || teacherLayers < 1) {
    throw new ShapeError(`layer matching: layer counts must be positive integers, got ${studentLayers} student and ${teacherLayers} teacher layers`);
  }
  if (studentLayers > teacherLayers) {
    throw new LayerMatchingError(
      `layer matching: ${studentLayers} student layers cannot map strictly increasingly into ${teacherLayers} teacher layers (needs student layers <= teacher layers)`,
    );
  }
}

/**
 * The fixed baseline map m(i) = round(i·L_T/L_S) for i = 1..L_S (halves round up, as Math.round),
 * 1-based; strictly increasing with m(L_S) = L_T whenever L_S <= L_T.
 */
export function fixedLayerMap(studentLayers: number, teacherLayers: number): number[] {
  checkLayerCounts(studentLayers, teacherLayers);
  return Array.from({ length: studentLayers }, (_, r) => Math.round(((r + 1) * teacherLayers) / studentLayers));
}

/** Σ_i D[i, m(i)] for a 1-based map, summed in student-layer order. */
export function layerMapCost(distances: LayerDistances, teacherLayers: readonly number[]): number {
  const { ls, lt, d } = dense(distances);
  if (teacherLayers.length !== ls) throw new ShapeError(`layer map has ${teacherLayers.length} entries, the distances have ${ls} student layers`);
  let cost = 0;
  teacherLayers.forEach((m, r) => {
    if (!Number.isInteger(m) || m < 1 || m > lt) throw new ShapeError(`layer map: student layer ${r + 1} -> ${m}, expected a teacher layer in 1..${lt}`);
    cost += d[r * lt + m - 1]!;
  });
  return cost;
}

/**
 * The strictly increasing map minimising Σ D[i, m(i)] over teacher layers allowed[r][c] (true =
 * allowed), by dynamic programming. Ties go to the lexicographically smallest map (earliest layers
 * take the shallowest teacher layers), found by a backward pass of suffix optima followed by a
 * forward pass that takes the first optimal column at each row.
 */
function monotonicMap(dd: DenseDistances, allowed: (r: number, c: number) => boolean, what: string): number[] {
  const { ls, lt, d } = dd;
  // best[r*lt + c]: least cost of rows r..ls-1 given row r takes column c (Infinity when impossible).
  const best = new Float64Array(ls * lt).fill(Infinity);
  for (let r = ls - 1; r >= 0; r--) {
    // Walking c downwards keeps the suffix minimum of row r+1 over columns > c.
    let suffixMin = r === ls - 1 ? 0 : Infinity;
    for (let c = lt - 1; c >= 0; c--) {
      if (allowed(r, c) && suffixMin < Infinity) best[r * lt + c] = d[r * lt + c]! + suffixMin;
      if (r < ls - 1) suffixMin = Math.min(suffixMin, best[(r + 1) * lt + c]!);
    }
  }
  const map: number[] = [];
  let from = 0;
  for (let r = 0; r < ls; r++) {
    let arg = -1;
    for (let c = from; c < lt; c++) if (best[r * lt + c]! < (arg < 0 ? Infinity : best[r * lt + arg]!)) arg = c;
    if (arg < 0) throw new LayerMatchingError(`${what}: no strictly increasing map of ${ls} student layers into ${lt} teacher layers satisfies the constraints`);
    map.push(arg + 1);
    from = arg + 1;
  }
  return map;
}

/**
 * Choose the teacher layer of every student layer from the distances D (L_S x L_T; see
 * {@link LayerDistances} for the numbering):
 * - 'fixed': {@link fixedLayerMap}, D only gives the cost;
 * - 'dynamic': the strictly increasing map minimising Σ D[i, m(i)] (dynamic programming);
 * - 'window': as 'dynamic' with each m(i) within ±window of the fixed map's m(i);
 * - 'greedy': m(i) = argmin_j D[i, j] per layer, order not enforced.
 * With pinLast (default) the last student layer takes the last teacher layer. Ties go to the
 * lexicographically smallest map (greedy: the smallest j). Throws LayerMatchingError when no map
 * satisfies the constraints (for 'fixed', 'dynamic' and 'window': more student than teacher
 * layers; a window is never infeasible otherwise, as it always holds the fixed map) or D holds a
 * non-finite value; ConfigError for a bad option.
 */
export function matchLayers(distances: LayerDistances, opts: LayerMatchingOptions): LayerMatch {
  const dd = dense(distances);
  const { ls, lt, d } = dd;
  const pinLast = opts.pinLast ?? true;
  const last = (r: number, c: number): boolean => !pinLast || r < ls - 1 || c === lt - 1;
  let map: number[];
  switch (opts.strategy) {
    case 'fixed':
      map = fixedLayerMap(ls, lt);
      break;
    case 'dynamic':
      checkLayerCounts(ls, lt);
      map = monotonicMap(dd, last, 'dynamic layer matching');
      break;
    case 'window': {
      const w = opts.window ?? 1;
      if (!Number.isInteger(w) || w < 0) throw new ConfigError(`layer matching: window must be a non-negative integer, got ${w}`);
      const centre = fixedLayerMap(ls, lt);
      map = monotonicMap(dd, (r, c) => last(r, c) && Math.abs(c + 1 - centre[r]!) <= w, `window (±${w}) layer matching`);
      break;
    }
    case 'greedy':
      map = [];
      for (let r = 0; r < ls; r++) {
        let arg = 0;
        for (let c = 1; c < lt; c++) if (d[r * lt + c]! < d[r * lt + arg]!) arg = c;
        map.push(pinLast && r === ls - 1 ? lt : arg + 1);
      }
      break;
    default:
      throw new ConfigError(`layer matching: unknown strategy "${String((opts as { strategy: unknown }).strategy)}", expected fixed, dynamic, window or greedy`);
  }
  return { teacherLayers: map, cost: layerMapCost({ studentLayers: ls, teacherLayers: lt, values: d }, map) };
}

/** "1→3 2→6 3→9 4→12": a map for logs (student layer → teacher layer, 1-based). */
export function formatLayerMap(teacherLayers: readonly number[]): string {
  return teacherLayers.map((m, r) => `${r + 1}→${m}`).join(' ');
}

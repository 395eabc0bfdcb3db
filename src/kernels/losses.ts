import { ShapeError } from '../errors.js';
import type { Gpu, Recorder } from '../gpu/gpu.js';
import { expectDType, expectShape, numel, type DType, type Tensor } from '../gpu/tensor.js';
import { reductionVariant, rowLaunch, rowsAndCols } from './reduce.js';

/** PyTorch's default ignore index for cross-entropy targets. */
export const IGNORE_INDEX = -100;
/** LayerNorm epsilon of the distance matrix's optional normalisation (Whisper's). */
const DISTANCE_LN_EPS = 1e-5;
/** Rows one workgroup of mse_rows covers (MSE_ROWS in losses.wgsl). */
const MSE_ROWS = 4;
/** Layer pairs one distance_partial workgroup covers (TI x TJ in losses.wgsl). */
const TILE_I = 4;
const TILE_J = 8;
/** Elements of each layer one distance_partial workgroup reads (about 16 per invocation). */
const DISTANCE_CHUNK_ELEMENTS = 4096;
const NO_INDEX = 0xffffffff;

/**
 * Which rows of a loss count: row r is ignored where ids[r] == ignoreIndex. ids: i32 with the
 * rows' leading shape, e.g. the targets (ignoreIndex -100, the default) or a 0/1 padding mask
 * (ignoreIndex 0).
 */
export interface RowMask {
  ids: Tensor;
  ignoreIndex?: number;
}

/** Where to reduce per-row losses to their mean over valid rows (see maskedMean). */
export interface LossMeanOptions {
  /** f32 tensor receiving the scalar at `index` (default 0). */
  out: Tensor;
  index?: number;
  /** Also write the number of valid rows to out[countIndex]. */
  countIndex?: number;
  /** Multiply the mean by this (a loss weight such as alpha or beta; default 1). */
  weight?: number;
  /** Add into out[index] instead of overwriting it (one total loss from several terms). */
  accumulate?: boolean;
}

interface FusedGradOptions {
  /** Multiplies the gradient (a loss weight, or 1/micro-batches; default 1). */
  gradScale?: number;
  /** Add the gradient into its tensor instead of overwriting it (several losses, one gradient). */
  accumulate?: boolean;
  /** Also reduce the per-row losses to one scalar (a masked_mean dispatch after this one). */
  mean?: LossMeanOptions;
  label?: string;
}

const placeholders = new WeakMap<Gpu, Map<string, Tensor>>();

/**
 * A one-element tensor bound where an entry point declares a binding the call does not use
 * (a binding referenced anywhere in an entry point must be bound). One per Gpu, dtype and slot,
 * so two placeholders in one dispatch never alias a writable buffer.
 */
function placeholder(rec: Recorder, dtype: DType, slot: string): Tensor {
  let byGpu = placeholders.get(rec.gpu);
  if (!byGpu) placeholders.set(rec.gpu, (byGpu = new Map()));
  const key = `${dtype}:${slot}`;
  let t = byGpu.get(key);
  if (!t) byGpu.set(key, (t = rec.gpu.empty([1], dtype, `unused ${slot}`)));
  return t;
}

function whatOf(name: string, label: string | undefined): string {
  return `${name}${label ? ` (${label})` : ''}`;
}

function checkMask(mask: RowMask, rowShape: readonly number[], what: string): void {
  expectDType(mask.ids, ['i32'], what);
  expectShape(mask.ids, rowShape, what);
  checkInt32(mask.ignoreIndex ?? IGNORE_INDEX, 'ignoreIndex', what);
}

function checkInt32(v: number, name: string, what: string): void {
  if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) throw new ShapeError(`${what}: ${name} must be a 32-bit integer, got ${v}`);
}

function checkIndex(out: Tensor, index: number, name: string, what: string): void {
  if (!Number.isInteger(index) || index < 0 || index >= numel(out.shape)) {
    throw new ShapeError(`${what}: ${name} ${index} is outside tensor "${out.label}" of shape [${out.shape.join(', ')}]`);
  }
}

/** Shared part of the three fused row losses: shapes, then one workgroup per row. */
function rowLossDispatch(
  rec: Recorder,
  what: string,
  entry: 'cross_entropy' | 'kl_divergence' | 'mse_rows',
  x: Tensor,
  rowLoss: Tensor,
  mask: RowMask | undefined,
  tensors: Record<string, Tensor | undefined>,
  grads: { grad?: Tensor; gradB?: Tensor },
  opts: FusedGradOptions & { tau?: number },
  work: { flops: number; bytes: number },
): void {
  const { rows, cols } = rowsAndCols(x, what);
  const rowShape = x.shape.slice(0, -1);
  expectDType(x, ['f32'], what);
  for (const t of Object.values(tensors)) {
    if (!t) continue;
    expectDType(t, ['f32'], what);
    expectShape(t, x.shape, what);
  }
  expectDType(rowLoss, ['f32'], what);
  expectShape(rowLoss, rowShape, what);
  if (mask) checkMask(mask, rowShape, what);
  for (const g of [grads.grad, grads.gradB]) {
    if (!g) continue;
    expectDType(g, ['f32'], what);
    expectShape(g, x.shape, what);
  }
  // mse_rows covers MSE_ROWS rows per workgroup, the other row entries one.
  const launch = rowLaunch(rec, rows, cols, { rowsPerWorkgroup: entry === 'mse_rows' ? MSE_ROWS : 1 });
  const n = rows * cols;
  const bound: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(tensors)) if (t) bound[name] = t;
  rec.dispatch(
    {
      shader: 'losses',
      entry,
      variant: launch.variant,
      constants: { ...launch.constants, HAS_MASK: mask ? 1 : 0, WRITE_GRAD: grads.grad ? 1 : 0, ...(entry === 'mse_rows' ? { WRITE_GRAD_B: grads.gradB ? 1 : 0 } : {}) },
    },
    {
      tensors: {
        ...bound,
        ids: mask?.ids ?? placeholder(rec, 'i32', 'ids'),
        row_loss: rowLoss,
        grad: grads.grad ?? placeholder(rec, 'f32', 'grad'),
        ...(entry === 'mse_rows' ? { grad_b: grads.gradB ?? placeholder(rec, 'f32', 'grad_b') } : {}),
      },
      uniforms: {
        rows,
        cols,
        groups_x: launch.groups_x,
        ignore_index: mask?.ignoreIndex ?? IGNORE_INDEX,
        grad_scale: opts.gradScale ?? 1,
        accumulate: opts.accumulate ? 1 : 0,
        tau: opts.tau ?? 1,
      },
      sizes: {
        ...Object.fromEntries(Object.keys(bound).map((k) => [k, n])),
        ids: mask ? rows : 0,
        row_loss: rows,
        grad: grads.grad ? n : 0,
      },
      workgroups: launch.workgroups,
      flops: work.flops,
      // Each workgroup also counts the valid rows; those reads of the small mask hit the cache.
      bytes: work.bytes,
    },
    opts.label,
  );
  if (opts.mean) maskedMean(rec, rowLoss, opts.mean.out, { ...opts.mean, mask, label: opts.label });
}

/**
 * Cross-entropy with an ignore index, forward and gradient in one pass over the logits:
 * rowLoss[r] = logsumexp(logits[r]) - logits[r, targets[r]] (0 for ignored rows) and, with
 * `grad`, grad[r] = (softmax(logits[r]) - onehot(targets[r])) * gradScale / n_valid (0 for ignored
 * rows), n_valid = the number of rows whose target is not `ignoreIndex`; the gradient of the mean
 * loss. logits: [..., V] f32; targets: [...] i32; rowLoss: [...] f32; grad: like logits.
 * A target outside [0, V) other than ignoreIndex makes its row's loss NaN. `mean` also writes
 * the mean over valid rows (PyTorch's reduction='mean') into one scalar.
 */
export function crossEntropy(
  rec: Recorder,
  logits: Tensor,
  targets: Tensor,
  rowLoss: Tensor,
  opts: FusedGradOptions & { grad?: Tensor; ignoreIndex?: number } = {},
): void {
  const { rows, cols } = rowsAndCols(logits, whatOf('crossEntropy', opts.label));
  const n = rows * cols;
  rowLossDispatch(
    rec,
    whatOf('crossEntropy', opts.label),
    'cross_entropy',
    logits,
    rowLoss,
    { ids: targets, ignoreIndex: opts.ignoreIndex ?? IGNORE_INDEX },
    { logits },
    { grad: opts.grad },
    opts,
    // Online max/sum (compare, exp, multiply-add); then exp, subtract, scale per element.
    { flops: n * (opts.grad ? 9 : 5), bytes: 4 * (n * (opts.grad ? 3 : 1) + 2 * rows) },
  );
}

/**
 * KL(teacher || student) on temperature-softened distributions, forward and gradient fused:
 * rowLoss[r] = tau^2 * sum_v p_T (log p_T - log p_S), p = softmax(logits / tau), and with `grad`
 * grad[r] = tau * (p_S - p_T) * gradScale / n_valid, the gradient of the mean over valid rows
 * w.r.t. the student logits. Masked rows get loss 0 and gradient 0. student, teacher, grad:
 * [..., V] f32; rowLoss: [...] f32; mask.ids: [...] i32 (all rows valid without a mask).
 */
export function klDivergence(
  rec: Recorder,
  student: Tensor,
  teacher: Tensor,
  rowLoss: Tensor,
  opts: FusedGradOptions & { tau?: number; mask?: RowMask; grad?: Tensor } = {},
): void {
  const what = whatOf('klDivergence', opts.label);
  const tau = opts.tau ?? 1;
  if (!(tau > 0)) throw new ShapeError(`${what}: temperature must be positive, got ${tau}`);
  const { rows, cols } = rowsAndCols(student, what);
  const n = rows * cols;
  rowLossDispatch(rec, what, 'kl_divergence', student, rowLoss, opts.mask, { logits: student, teacher }, { grad: opts.grad }, opts, {
    flops: n * (opts.grad ? 24 : 19),
    bytes: 4 * (n * (opts.grad ? 5 : 4) + rows),
  });
}

/**
 * KL(teacher || student) against a teacher cached as its top-k logits per row (the teacher
 * cache, docs/teacher-cache.md), p_S = softmax(student[r] / tau) over the whole row, without
 * storing probabilities. Without `teacherLogsumexp` the teacher is renormalised over its top k:
 * q = softmax(topkValues[r] / tau), rowLoss[r] = tau^2 * sum_j q_j (log q_j - log p_S[id_j]).
 * With `teacherLogsumexp` ([...] f32: the teacher's logsumexp of logits / tau over the whole
 * vocabulary) the k entries keep their probabilities p_j = exp(v_j / tau - lse) and the rest of
 * the teacher's mass R = 1 - sum p_j is one bucket against the student's rest 1 - S_K:
 * rowLoss[r] = tau^2 * (sum_j p_j (log p_j - log p_S[id_j]) + R log(R / (1 - S_K))). With
 * `grad`, grad[r] = tau * (p_S - q) * gradScale / n_valid, q the teacher's probabilities at the
 * ids and, outside them, 0 (renormalised) or p_S R / (1 - S_K) (tail). Masked rows get loss 0
 * and gradient 0. student, grad: [..., V] f32; topkValues: [..., k] f32; topkIds: [..., k] i32,
 * distinct per row (an id outside [0, V) makes the row's loss NaN); rowLoss: [...] f32. With
 * k = V and every id once both forms equal klDivergence.
 */
export function topkKlDivergence(
  rec: Recorder,
  student: Tensor,
  topkValues: Tensor,
  topkIds: Tensor,
  rowLoss: Tensor,
  opts: FusedGradOptions & { tau?: number; mask?: RowMask; grad?: Tensor; teacherLogsumexp?: Tensor } = {},
): void {
  const what = whatOf('topkKlDivergence', opts.label);
  const tau = opts.tau ?? 1;
  if (!(tau > 0)) throw new ShapeError(`${what}: temperature must be positive, got ${tau}`);
  const { rows, cols } = rowsAndCols(student, what);
  const rowShape = student.shape.slice(0, -1);
  const k = topkValues.shape[topkValues.shape.length - 1] ?? 0;
  if (k < 1 || k > cols) throw new ShapeError(`${what}: top-k values "${topkValues.label}" [${topkValues.shape.join(', ')}] must hold 1..${cols} entries per row`);
  expectDType(student, ['f32'], what);
  expectDType(topkValues, ['f32'], what);
  expectDType(topkIds, ['i32'], what);
  expectShape(topkValues, [...rowShape, k], what);
  expectShape(topkIds, [...rowShape, k], what);
  expectDType(rowLoss, ['f32'], what);
  expectShape(rowLoss, rowShape, what);
  if (opts.mask) checkMask(opts.mask, rowShape, what);
  if (opts.grad) {
    expectDType(opts.grad, ['f32'], what);
    expectShape(opts.grad, student.shape, what);
  }
  const lse = opts.teacherLogsumexp;
  if (lse) {
    expectDType(lse, ['f32'], what);
    expectShape(lse, rowShape, what);
  }
  const launch = rowLaunch(rec, rows, cols);
  const n = rows * cols;
  rec.dispatch(
    { shader: 'losses', entry: 'topk_kl_divergence', variant: launch.variant, constants: { ...launch.constants, HAS_MASK: opts.mask ? 1 : 0, WRITE_GRAD: opts.grad ? 1 : 0, TAIL: lse ? 1 : 0 } },
    {
      tensors: {
        logits: student,
        topk_values: topkValues,
        topk_ids: topkIds,
        topk_lse: lse ?? placeholder(rec, 'f32', 'topk_lse'),
        ids: opts.mask?.ids ?? placeholder(rec, 'i32', 'ids'),
        row_loss: rowLoss,
        grad: opts.grad ?? placeholder(rec, 'f32', 'grad'),
      },
      uniforms: {
        rows,
        cols,
        groups_x: launch.groups_x,
        ignore_index: opts.mask?.ignoreIndex ?? IGNORE_INDEX,
        grad_scale: opts.gradScale ?? 1,
        accumulate: opts.accumulate ? 1 : 0,
        tau,
        k,
      },
      sizes: { logits: n, topk_values: rows * k, topk_ids: rows * k, topk_lse: lse ? rows : 0, ids: opts.mask ? rows : 0, row_loss: rows, grad: opts.grad ? n : 0 },
      workgroups: launch.workgroups,
      // Student: online max/sum, then exp and scale per element; teacher: the same over k.
      flops: n * (opts.grad ? 9 : 5) + 12 * rows * k,
      bytes: 4 * (n * (opts.grad ? 3 : 1) + 2 * rows * k + rows),
    },
    opts.label,
  );
  if (opts.mean) maskedMean(rec, rowLoss, opts.mean.out, { ...opts.mean, mask: opts.mask, label: opts.label });
}

/**
 * Hidden-state MSE, forward and gradients fused: rowLoss[r] = mean_c (a[r, c] - b[r, c])^2 (0 for
 * masked rows), so maskedMean gives mean((a - b)^2) over valid rows and channels. With gradA,
 * gradA = 2 (a - b) * gradScale / (n_valid * C); with gradB, gradB = -that (for b on a learned
 * projection's path); masked rows get 0. a, b, gradA, gradB: [..., C] f32; rowLoss: [...] f32.
 */
export function mseLoss(
  rec: Recorder,
  a: Tensor,
  b: Tensor,
  rowLoss: Tensor,
  opts: FusedGradOptions & { mask?: RowMask; gradA?: Tensor; gradB?: Tensor } = {},
): void {
  const what = whatOf('mseLoss', opts.label);
  const { rows, cols } = rowsAndCols(a, what);
  const n = rows * cols;
  const grads = (opts.gradA ? 1 : 0) + (opts.gradB ? 1 : 0);
  rowLossDispatch(rec, what, 'mse_rows', a, rowLoss, opts.mask, { mse_a: a, mse_b: b }, { grad: opts.gradA, gradB: opts.gradB }, opts, {
    flops: n * (3 + 2 * grads),
    bytes: 4 * (n * (2 + grads * (opts.accumulate ? 2 : 1)) + rows),
  });
}

/**
 * out[index] (+)= weight * (sum of rowLoss over valid rows) / n_valid, 0 when no row is valid;
 * with countIndex, out[countIndex] = n_valid. rowLoss: [...] f32; mask.ids: the same shape, i32
 * (all rows valid without a mask); out: f32, any shape. One workgroup.
 */
export function maskedMean(
  rec: Recorder,
  rowLoss: Tensor,
  out: Tensor,
  opts: Omit<LossMeanOptions, 'out'> & { mask?: RowMask; label?: string } = {},
): void {
  const what = whatOf('maskedMean', opts.label);
  const rows = numel(rowLoss.shape);
  expectDType(rowLoss, ['f32'], what);
  expectDType(out, ['f32'], what);
  if (opts.mask) checkMask(opts.mask, rowLoss.shape, what);
  const index = opts.index ?? 0;
  checkIndex(out, index, 'index', what);
  if (opts.countIndex !== undefined) checkIndex(out, opts.countIndex, 'countIndex', what);
  rec.dispatch(
    { shader: 'losses', entry: 'masked_mean', ...reductionVariant(rec), constants: { HAS_MASK: opts.mask ? 1 : 0 } },
    {
      tensors: { row_in: rowLoss, ids: opts.mask?.ids ?? placeholder(rec, 'i32', 'ids'), out },
      uniforms: {
        rows,
        ignore_index: opts.mask?.ignoreIndex ?? IGNORE_INDEX,
        out_index: index,
        count_index: opts.countIndex ?? NO_INDEX,
        weight: opts.weight ?? 1,
        accumulate: opts.accumulate ? 1 : 0,
      },
      sizes: { row_in: rows, ids: opts.mask ? rows : 0 },
      workgroups: [1],
      flops: 2 * rows,
      bytes: 4 * (2 * rows + 2),
    },
    opts.label ? `${opts.label} mean` : 'mean',
  );
}

/** Scratch tensors distanceMatrix needs: `partials` always, `stats` with layerNorm. */
export interface DistanceWorkspace {
  partials: Tensor;
  stats?: Tensor;
}

interface DistanceLayout {
  rows: number;
  cols: number;
  rowsPerChunk: number;
  chunks: number;
  tilesI: number;
  tilesJ: number;
}

function distanceLayout(ls: number, lt: number, rows: number, cols: number): DistanceLayout {
  const rowsPerChunk = Math.max(1, Math.floor(DISTANCE_CHUNK_ELEMENTS / cols));
  return { rows, cols, rowsPerChunk, chunks: Math.ceil(rows / rowsPerChunk), tilesI: Math.ceil(ls / TILE_I), tilesJ: Math.ceil(lt / TILE_J) };
}

/**
 * Element counts of the f32 workspace of distanceMatrix for student [ls, ...rows, C] and teacher
 * [lt, ...rows, C] (rows = product of the middle dims): partials, and stats when layerNorm.
 */
export function distanceWorkspaceSizes(ls: number, lt: number, rows: number, cols: number, layerNorm: boolean): { partials: number; stats: number } {
  const l = distanceLayout(ls, lt, rows, cols);
  return { partials: l.chunks * l.tilesI * l.tilesJ * TILE_I * TILE_J, stats: layerNorm ? 2 * (ls + lt) * rows : 0 };
}

/**
 * The dynamic-matching distance matrix: out[i, j] = mean over valid rows r and channels c of
 * (student[i, r, c] - teacher[j, r, c])^2 for every student layer i and teacher layer j (0 when no
 * row is valid). With layerNorm, each row of both sides is first normalised to zero mean and unit
 * variance (LayerNorm without affine, eps 1e-5). student: [LS, ..., C] f32 (the projected student
 * states); teacher: [LT, ..., C] f32 with the same middle dims; out: [LS, LT] f32; mask.ids: the
 * middle dims, i32. workspace: f32 tensors of at least distanceWorkspaceSizes(...) elements,
 * overwritten. Every element is read once per tile of 4 student x 8 teacher layers.
 */
export function distanceMatrix(
  rec: Recorder,
  student: Tensor,
  teacher: Tensor,
  out: Tensor,
  workspace: DistanceWorkspace,
  opts: { mask?: RowMask; layerNorm?: boolean; label?: string } = {},
): void {
  const what = whatOf('distanceMatrix', opts.label);
  if (student.shape.length < 3) throw new ShapeError(`${what}: student states "${student.label}" must be [layers, ..., C], has shape [${student.shape.join(', ')}]`);
  const ls = student.shape[0]!;
  const lt = teacher.shape[0]!;
  const rowShape = student.shape.slice(1, -1);
  const cols = student.shape[student.shape.length - 1]!;
  const rows = numel(rowShape);
  expectShape(teacher, [lt, ...rowShape, cols], what);
  expectShape(out, [ls, lt], what);
  for (const t of [student, teacher, out, workspace.partials]) expectDType(t, ['f32'], what);
  if (ls === 0 || lt === 0 || rows === 0 || cols === 0) throw new ShapeError(`${what}: empty states "${student.label}" [${student.shape.join(', ')}] / "${teacher.label}" [${teacher.shape.join(', ')}]`);
  if (opts.mask) checkMask(opts.mask, rowShape, what);
  const layerNorm = opts.layerNorm ?? false;
  const need = distanceWorkspaceSizes(ls, lt, rows, cols, layerNorm);
  if (numel(workspace.partials.shape) < need.partials) {
    throw new ShapeError(`${what}: workspace "${workspace.partials.label}" has ${numel(workspace.partials.shape)} elements, needs ${need.partials}`);
  }
  const stats = workspace.stats;
  if (layerNorm) {
    if (!stats) throw new ShapeError(`${what}: layerNorm needs workspace.stats (${need.stats} f32 elements)`);
    expectDType(stats, ['f32'], what);
    if (numel(stats.shape) < need.stats) throw new ShapeError(`${what}: workspace "${stats.label}" has ${numel(stats.shape)} elements, needs ${need.stats}`);
    for (const [x, layers, first] of [
      [student, ls, 0],
      [teacher, lt, ls * rows],
    ] as const) {
      const launch = rowLaunch(rec, layers * rows, cols);
      rec.dispatch(
        { shader: 'losses', entry: 'row_stats', variant: launch.variant, constants: launch.constants },
        {
          tensors: { stats_x: x, stats_out: stats },
          uniforms: { count: layers * rows, cols, groups_x: launch.groups_x, first, eps: DISTANCE_LN_EPS },
          sizes: { stats_x: layers * rows * cols, stats_out: 2 * (first + layers * rows) },
          workgroups: launch.workgroups,
          flops: 4 * layers * rows * cols,
          bytes: 4 * (layers * rows * cols + 2 * layers * rows),
        },
        opts.label ? `${opts.label} row stats` : 'row stats',
      );
    }
  }
  const l = distanceLayout(ls, lt, rows, cols);
  const uniforms = {
    rows,
    cols,
    ls,
    lt,
    rows_per_chunk: l.rowsPerChunk,
    chunks: l.chunks,
    tiles_j: l.tilesJ,
    ignore_index: opts.mask?.ignoreIndex ?? IGNORE_INDEX,
  };
  const constants = { HAS_MASK: opts.mask ? 1 : 0, LAYER_NORM: layerNorm ? 1 : 0 };
  const ids = opts.mask?.ids ?? placeholder(rec, 'i32', 'ids');
  const n = rows * cols;
  rec.dispatch(
    { shader: 'losses', entry: 'distance_partial', ...reductionVariant(rec), constants },
    {
      // Without layerNorm the stats binding is never read; the student states stand in.
      tensors: { student, teacher_h: teacher, ids, dist_stats: stats && layerNorm ? stats : student, partials: workspace.partials },
      uniforms,
      sizes: { student: ls * n, teacher_h: lt * n, partials: need.partials, dist_stats: need.stats },
      workgroups: [l.chunks, l.tilesI * l.tilesJ],
      flops: 3 * ls * lt * n + (layerNorm ? 2 * (ls * l.tilesJ + lt * l.tilesI) * n : 0),
      bytes: 4 * ((ls * l.tilesJ + lt * l.tilesI) * n + need.partials),
    },
    opts.label,
  );
  rec.dispatch(
    { shader: 'losses', entry: 'distance_finish', constants: { HAS_MASK: opts.mask ? 1 : 0 } },
    {
      tensors: { partials: workspace.partials, ids, dist: out },
      uniforms,
      sizes: { partials: need.partials, dist: ls * lt },
      workgroups: [Math.ceil((ls * lt) / 64)],
      flops: ls * lt * l.chunks,
      bytes: 4 * (need.partials + ls * lt + (opts.mask ? ls * lt * rows : 0)),
    },
    opts.label ? `${opts.label} finish` : 'finish',
  );
}

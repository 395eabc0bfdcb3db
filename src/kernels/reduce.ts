import { ShapeError } from '../errors.js';
import type { Gpu, Recorder } from '../gpu/gpu.js';
import type { ShaderVariant } from '../gpu/kernel.js';
import { expectDType, expectShape, numel, type Tensor } from '../gpu/tensor.js';

/** Invocations per workgroup of the whole-tensor reductions (partial_sum, final_sum, col_sum). */
export const REDUCE_WORKGROUP = 256;
/** Row workgroup size where the adapter does not report its subgroup sizes. */
const DEFAULT_ROW_LANES = 32;
/** Largest row workgroup; a smaller workgroup than the subgroup still lies within one subgroup. */
const MAX_ROW_LANES = 64;
/** Most partial sums one tensor contributes; bounds the final pass and keeps big tensors parallel. */
const MAX_PARTIALS_PER_TENSOR = 1024;
/** Elements each invocation of partial_sum adds at least, so small tensors use few workgroups. */
const MIN_ELEMENTS_PER_INVOCATION = 4;

/** The subgroup variant of a reduction shader where the device has subgroups, else the plain one. */
export function reductionVariant(rec: Recorder): { variant?: ShaderVariant } {
  return rec.gpu.features.subgroups ? { variant: { enable: ['subgroups'] } } : {};
}

/** How the row kernels run on a device: invocations per workgroup, and whether that is one subgroup. */
export interface RowLanes {
  lanes: number;
  oneSubgroup: boolean;
}

/**
 * Invocations per workgroup of the row kernels (layer norm, softmax, the row losses, rowSum and
 * rowMax): the adapter's smallest subgroup size, at most 64 (lavapipe: 8, one SIMD vector; GPUs:
 * a warp or wave per row). With subgroups such a workgroup is one subgroup, so a row reduction is
 * a single subgroup operation without workgroup memory or barriers; on lavapipe this made layer
 * norm ~25x faster than 256-invocation workgroups (bench/lab/rows/RESULTS.md). Without reported
 * subgroup sizes the row kernels use 32 invocations and the multi-subgroup reduction.
 */
export function rowLanes(gpu: Gpu): RowLanes {
  const minSize = gpu.subgroupMinSize;
  // Subgroup sizes are powers of two; the plain tree needs one too.
  const lanes = minSize !== undefined ? 2 ** Math.floor(Math.log2(Math.min(minSize, MAX_ROW_LANES))) : DEFAULT_ROW_LANES;
  return { lanes, oneSubgroup: gpu.workgroupIsOneSubgroup(lanes) };
}

/** What a row-kernel dispatch needs besides its bindings; spread into the KernelSpec and args. */
export interface RowLaunch {
  variant: ShaderVariant;
  constants: Record<string, number>;
  workgroups: [number, number];
  groups_x: number;
}

/**
 * Launch of a row kernel over `rows` rows of `cols` columns, `rowsPerWorkgroup` rows per
 * workgroup: rowLanes invocations, the subgroup variant where available, and for shaders written
 * over `alias V` (vectorize) vec4f storage when rows are a multiple of 4 columns.
 */
export function rowLaunch(rec: Recorder, rows: number, cols: number, opts: { rowsPerWorkgroup?: number; vectorize?: boolean } = {}): RowLaunch {
  const { lanes, oneSubgroup } = rowLanes(rec.gpu);
  const grid = rowGrid(rec, Math.ceil(rows / (opts.rowsPerWorkgroup ?? 1)));
  const variant: ShaderVariant = {
    ...(rec.gpu.features.subgroups ? { enable: ['subgroups'] } : {}),
    ...(opts.vectorize && cols % 4 === 0 ? { aliases: { V: 'vec4f' } } : {}),
  };
  return { variant, constants: { WG: lanes, WG_IS_SUBGROUP: oneSubgroup ? 1 : 0 }, ...grid };
}

/** An x/y grid of one workgroup per row that stays within the per-dimension limit. */
export function rowGrid(rec: Recorder, rows: number): { workgroups: [number, number]; groups_x: number } {
  const groupsX = Math.max(1, Math.min(rows, rec.gpu.limits.maxComputeWorkgroupsPerDimension));
  return { workgroups: [groupsX, Math.ceil(rows / groupsX)], groups_x: groupsX };
}

/** Split a tensor's last dim off: [...lead, cols] -> rows = prod(lead). */
export function rowsAndCols(t: Tensor, what: string): { rows: number; cols: number } {
  const cols = t.shape[t.shape.length - 1];
  if (cols === undefined || cols === 0) throw new ShapeError(`${what}: tensor "${t.label}" needs a non-empty last dim, has shape [${t.shape.join(', ')}]`);
  return { rows: numel(t.shape) / cols, cols };
}

/** Partial sums partial_sum writes for a tensor of n elements (workgroups of its dispatch). */
export function partialCount(n: number): number {
  return Math.min(MAX_PARTIALS_PER_TENSOR, Math.ceil(n / (REDUCE_WORKGROUP * MIN_ELEMENTS_PER_INVOCATION)));
}

/** Elements the partials tensor of `sum` / `sumSquares` must hold for these tensors. */
export function partialsSize(tensors: readonly Tensor[]): number {
  return Math.max(1, tensors.reduce((s, t) => s + partialCount(numel(t.shape)), 0));
}

export interface ScalarReduceOptions {
  /** Add into out[index] instead of overwriting it. */
  accumulate?: boolean;
  /** Element of `out` to write (default 0). */
  index?: number;
  label?: string;
}

function sumInto(rec: Recorder, what: string, tensors: readonly Tensor[], partials: Tensor, out: Tensor, square: boolean, opts: ScalarReduceOptions): void {
  const index = opts.index ?? 0;
  for (const t of tensors) expectDType(t, ['f32'], what);
  expectDType(partials, ['f32'], what);
  expectDType(out, ['f32'], what);
  const need = partialsSize(tensors);
  if (numel(partials.shape) < need) throw new ShapeError(`${what}: partials tensor "${partials.label}" has ${numel(partials.shape)} elements, needs ${need}`);
  if (!Number.isInteger(index) || index < 0 || index >= numel(out.shape)) {
    throw new ShapeError(`${what}: index ${index} is outside tensor "${out.label}" of shape [${out.shape.join(', ')}]`);
  }
  const variant = reductionVariant(rec);
  let slot = 0;
  for (const t of tensors) {
    const n = numel(t.shape);
    const groups = partialCount(n);
    if (groups === 0) continue;
    rec.dispatch(
      { shader: 'reduce', entry: 'partial_sum', ...variant, constants: { SQUARE: square ? 1 : 0 } },
      {
        tensors: { x: t, out: partials },
        uniforms: { n, chunk: Math.ceil(n / groups), slot0: slot },
        sizes: { x: n, out: slot + groups },
        workgroups: [groups],
        flops: n * (square ? 2 : 1),
        bytes: (n + groups) * 4,
      },
      opts.label ? `${opts.label} (${t.label})` : t.label,
    );
    slot += groups;
  }
  rec.dispatch(
    { shader: 'reduce', entry: 'final_sum', ...variant },
    {
      tensors: { x: partials, out },
      uniforms: { count: slot, slot0: 0, out_index: index, accumulate: opts.accumulate ? 1 : 0 },
      sizes: { x: slot, out: index + 1 },
      workgroups: [1],
      flops: slot,
      bytes: (slot + (opts.accumulate ? 2 : 1)) * 4,
    },
    opts.label,
  );
}

/**
 * out[index] (+)= sum of all elements of x (f32, any shape), in two passes without atomics:
 * per-workgroup partials into `partials` (f32, at least partialsSize([x]) elements, contents
 * overwritten), then one workgroup adds them up.
 */
export function sum(rec: Recorder, x: Tensor, partials: Tensor, out: Tensor, opts: ScalarReduceOptions = {}): void {
  sumInto(rec, `sum${opts.label ? ` (${opts.label})` : ''}`, [x], partials, out, false, opts);
}

/**
 * out[index] (+)= sum over all `tensors` of the sum of their squared elements: the square of the
 * global L2 norm used for gradient clipping. Every tensor writes its partial sums into its own
 * slot range of `partials` (f32, at least partialsSize(tensors) elements, contents overwritten)
 * and one final pass reduces them all, so many tensors cost one extra dispatch in total.
 */
export function sumSquares(rec: Recorder, tensors: readonly Tensor[], partials: Tensor, out: Tensor, opts: ScalarReduceOptions = {}): void {
  sumInto(rec, `sumSquares${opts.label ? ` (${opts.label})` : ''}`, tensors, partials, out, true, opts);
}

function rowReduce(rec: Recorder, what: string, x: Tensor, out: Tensor, max: boolean, label: string | undefined): void {
  const { rows, cols } = rowsAndCols(x, what);
  expectDType(x, ['f32'], what);
  expectDType(out, ['f32'], what);
  expectShape(out, x.shape.slice(0, -1), what);
  const launch = rowLaunch(rec, rows, cols, { vectorize: true });
  rec.dispatch(
    { shader: 'reduce', entry: 'row_reduce', variant: launch.variant, constants: { ...launch.constants, ROW_MAX: max ? 1 : 0 } },
    {
      tensors: { rows_in: x, out },
      uniforms: { rows, cols, groups_x: launch.groups_x },
      sizes: { rows_in: rows * cols, out: rows },
      workgroups: launch.workgroups,
      flops: rows * cols,
      bytes: (rows * cols + rows) * 4,
    },
    label,
  );
}

/** out[...lead] = sum of x[...lead, :] over the last dim. x: [...lead, C] f32; out: [...lead] f32. */
export function rowSum(rec: Recorder, x: Tensor, out: Tensor, opts: { label?: string } = {}): void {
  rowReduce(rec, `rowSum${opts.label ? ` (${opts.label})` : ''}`, x, out, false, opts.label);
}

/** out[...lead] = max of x[...lead, :] over the last dim. x: [...lead, C] f32; out: [...lead] f32. */
export function rowMax(rec: Recorder, x: Tensor, out: Tensor, opts: { label?: string } = {}): void {
  rowReduce(rec, `rowMax${opts.label ? ` (${opts.label})` : ''}`, x, out, true, opts.label);
}

/** out[c] (+)= sum over all leading dims of x[..., c]. x: [..., C] f32; out: [C] f32. */
export function colSum(rec: Recorder, x: Tensor, out: Tensor, opts: { accumulate?: boolean; label?: string } = {}): void {
  const what = `colSum${opts.label ? ` (${opts.label})` : ''}`;
  const { rows, cols } = rowsAndCols(x, what);
  expectDType(x, ['f32'], what);
  expectDType(out, ['f32'], what);
  expectShape(out, [cols], what);
  rec.dispatch(
    { shader: 'reduce', entry: 'col_sum', ...reductionVariant(rec) },
    {
      tensors: { x, out },
      uniforms: { rows, cols, accumulate: opts.accumulate ? 1 : 0 },
      sizes: { x: rows * cols, out: cols },
      workgroups: [Math.ceil(cols / 64)],
      flops: rows * cols,
      bytes: (rows * cols + cols * (opts.accumulate ? 2 : 1)) * 4,
    },
    opts.label,
  );
}

import { ShapeError } from '../errors.js';
import type { Recorder } from '../gpu/gpu.js';
import { expectDType, expectShape, numel, type Tensor } from '../gpu/tensor.js';
import { rowLaunch, rowsAndCols } from './reduce.js';

/** Whisper's LayerNorm epsilon. */
export const LAYERNORM_EPS = 1e-5;
/** Rows one workgroup of every LayerNorm kernel covers (ROWS in layernorm.wgsl). */
const LAYERNORM_ROWS = 4;

/** gamma and beta of an affine LayerNorm, each [C] f32. */
export interface LayerNormAffine {
  gamma: Tensor;
  beta: Tensor;
}

/** Per-row statistics the forward saves for the backward: mean and 1/sqrt(var + eps). */
export interface LayerNormStats {
  mean: Tensor;
  rstd: Tensor;
}

function checkRows(what: string, x: Tensor, stats: LayerNormStats, gamma: Tensor | null, tensors: readonly (Tensor | undefined)[]) {
  const { rows, cols } = rowsAndCols(x, what);
  for (const t of [x, stats.mean, stats.rstd, gamma ?? x, ...tensors]) if (t) expectDType(t, ['f32'], what);
  expectShape(stats.mean, x.shape.slice(0, -1), what);
  expectShape(stats.rstd, x.shape.slice(0, -1), what);
  if (gamma) expectShape(gamma, [cols], what);
  return { rows, cols };
}

/**
 * LayerNorm over the last dim: y = (x - mean) / sqrt(var + eps) (* gamma + beta).
 * x, y: [..., C] f32 (different buffers); affine: gamma and beta [C], or null for none (the
 * hidden-state loss normalises without them); stats.mean, stats.rstd: [...] f32, written for
 * layerNormBackward. One small workgroup per 4 rows (rowLaunch; vec4 access when C is a multiple
 * of 4), reading x twice (Welford statistics, then the output).
 */
export function layerNorm(
  rec: Recorder,
  x: Tensor,
  affine: LayerNormAffine | null,
  out: { y: Tensor } & LayerNormStats,
  opts: { eps?: number; label?: string } = {},
): void {
  const what = `layerNorm${opts.label ? ` (${opts.label})` : ''}`;
  const { rows, cols } = checkRows(what, x, out, affine?.gamma ?? null, [out.y, affine?.beta]);
  expectShape(out.y, x.shape, what);
  if (affine) expectShape(affine.beta, [cols], what);
  const launch = rowLaunch(rec, rows, cols, { rowsPerWorkgroup: LAYERNORM_ROWS, vectorize: true });
  const n = rows * cols;
  rec.dispatch(
    { shader: 'layernorm', entry: 'layernorm_forward', variant: launch.variant, constants: { ...launch.constants, AFFINE: affine ? 1 : 0 } },
    {
      tensors: { x, gamma: affine?.gamma ?? x, beta: affine?.beta ?? x, y: out.y, mean: out.mean, rstd: out.rstd },
      uniforms: { rows, cols, eps: opts.eps ?? LAYERNORM_EPS, groups_x: launch.groups_x },
      sizes: { x: n, gamma: affine ? cols : 0, beta: affine ? cols : 0, y: n, mean: rows, rstd: rows },
      workgroups: launch.workgroups,
      flops: (affine ? 8 : 6) * n,
      // x read twice, y written; gamma and beta once per 4 rows.
      bytes: (3 * n + 2 * rows + (affine ? (2 * n) / LAYERNORM_ROWS : 0)) * 4,
    },
    opts.label,
  );
}

/** Shape of the f32 workspace layerNormBackward needs for dgamma/dbeta: [2, chunks, C]. */
export function layerNormWorkspaceShape(rows: number, cols: number): [number, number, number] {
  return [2, Math.ceil(rows / LAYERNORM_ROWS), cols];
}

/**
 * Gradients of y = layerNorm(x) given dy, using the forward's saved stats:
 * - grads.dx [..., C]: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy (* gamma);
 * - grads.dgamma, grads.dbeta [C] (affine only, both or neither): sums over rows of dy * xhat and
 *   dy, in two passes through grads.workspace (f32, shape layerNormWorkspaceShape(rows, C),
 *   contents overwritten) instead of float atomics.
 * gamma: [C] as in the forward, or null without affine. With `accumulate` every gradient is added
 * into its tensor instead of overwriting it (residual streams, gradient accumulation).
 */
export function layerNormBackward(
  rec: Recorder,
  x: Tensor,
  gamma: Tensor | null,
  stats: LayerNormStats,
  dy: Tensor,
  grads: { dx?: Tensor; dgamma?: Tensor; dbeta?: Tensor; workspace?: Tensor },
  opts: { accumulate?: boolean; label?: string } = {},
): void {
  const what = `layerNormBackward${opts.label ? ` (${opts.label})` : ''}`;
  const { rows, cols } = checkRows(what, x, stats, gamma, [dy, grads.dx, grads.dgamma, grads.dbeta, grads.workspace]);
  expectShape(dy, x.shape, what);
  if (grads.dx) expectShape(grads.dx, x.shape, what);
  const n = rows * cols;
  const accumulate = opts.accumulate ? 1 : 0;
  const label = opts.label ? `${opts.label} backward` : 'backward';
  if (grads.dx) {
    const launch = rowLaunch(rec, rows, cols, { rowsPerWorkgroup: LAYERNORM_ROWS, vectorize: true });
    rec.dispatch(
      { shader: 'layernorm', entry: 'layernorm_backward_dx', variant: launch.variant, constants: { ...launch.constants, AFFINE: gamma ? 1 : 0 } },
      {
        tensors: { x, gamma: gamma ?? x, dy, mean_in: stats.mean, rstd_in: stats.rstd, dx: grads.dx },
        uniforms: { rows, cols, groups_x: launch.groups_x, accumulate },
        sizes: { x: n, gamma: gamma ? cols : 0, dy: n, mean_in: rows, rstd_in: rows, dx: n },
        workgroups: launch.workgroups,
        flops: (gamma ? 14 : 12) * n,
        bytes: ((5 + accumulate) * n + 2 * rows + (gamma ? (2 * n) / LAYERNORM_ROWS : 0)) * 4,
      },
      label,
    );
  }
  const { dgamma, dbeta, workspace } = grads;
  if (!dgamma && !dbeta) return;
  if (!gamma) throw new ShapeError(`${what}: dgamma/dbeta were asked for a LayerNorm without affine parameters`);
  if (!dgamma || !dbeta) throw new ShapeError(`${what}: give both dgamma and dbeta (they come from one pass), got only ${dgamma ? `"${dgamma.label}"` : `"${dbeta!.label}"`}`);
  if (!workspace) throw new ShapeError(`${what}: dgamma/dbeta need a workspace tensor of shape [${layerNormWorkspaceShape(rows, cols).join(', ')}]`);
  expectShape(dgamma, [cols], what);
  expectShape(dbeta, [cols], what);
  const shape = layerNormWorkspaceShape(rows, cols);
  if (numel(workspace.shape) < numel(shape)) {
    throw new ShapeError(`${what}: workspace "${workspace.label}" has ${numel(workspace.shape)} elements, needs ${numel(shape)} ([${shape.join(', ')}])`);
  }
  const chunks = shape[1];
  const launch = rowLaunch(rec, rows, cols, { rowsPerWorkgroup: LAYERNORM_ROWS, vectorize: true });
  rec.dispatch(
    { shader: 'layernorm', entry: 'layernorm_param_grad_partial', variant: launch.variant, constants: launch.constants },
    {
      tensors: { x, dy, mean_in: stats.mean, rstd_in: stats.rstd, partials: workspace },
      uniforms: { rows, cols, groups_x: launch.groups_x, chunks },
      sizes: { x: n, dy: n, mean_in: rows, rstd_in: rows, partials: 2 * chunks * cols },
      workgroups: launch.workgroups,
      flops: 5 * n,
      bytes: (2 * n + 2 * rows + 2 * chunks * cols) * 4,
    },
    label,
  );
  rec.dispatch(
    // No reductions here: only the storage type (V) follows the partial pass.
    { shader: 'layernorm', entry: 'layernorm_param_grad_final', ...(launch.variant.aliases ? { variant: { aliases: launch.variant.aliases } } : {}) },
    {
      tensors: { partials_in: workspace, dgamma, dbeta },
      uniforms: { cols, chunks, accumulate },
      sizes: { partials_in: 2 * chunks * cols, dgamma: cols, dbeta: cols },
      workgroups: [Math.ceil(cols / (64 * (launch.variant.aliases ? 4 : 1)))],
      flops: 2 * chunks * cols,
      bytes: (2 * chunks * cols + 2 * cols * (1 + accumulate)) * 4,
    },
    label,
  );
}

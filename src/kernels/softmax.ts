import type { Recorder } from '../gpu/gpu.js';
import { expectDType, expectShape, type Tensor } from '../gpu/tensor.js';
import { rowLaunch, rowsAndCols } from './reduce.js';

/**
 * y = softmax(x) over the last dim (max-subtracted, so large logits do not overflow).
 * x: [..., C] f32; y: same shape, f32, a different buffer from x. One small workgroup per row
 * (rowLaunch; vec4 access when C is a multiple of 4); rows of any length.
 */
export function softmax(rec: Recorder, x: Tensor, y: Tensor, opts: { label?: string } = {}): void {
  const what = `softmax${opts.label ? ` (${opts.label})` : ''}`;
  const { rows, cols } = rowsAndCols(x, what);
  expectDType(x, ['f32'], what);
  expectDType(y, ['f32'], what);
  expectShape(y, x.shape, what);
  const launch = rowLaunch(rec, rows, cols, { vectorize: true });
  const n = rows * cols;
  rec.dispatch(
    { shader: 'softmax', entry: 'softmax_forward', variant: launch.variant, constants: launch.constants },
    {
      tensors: { x, y },
      uniforms: { rows, cols, groups_x: launch.groups_x },
      sizes: { x: n, y: n },
      workgroups: launch.workgroups,
      // Online max/sum (compare, exp, multiply-add), then exp, subtract and scale per element.
      flops: 8 * n,
      bytes: 3 * n * 4,
    },
    opts.label,
  );
}

/**
 * dx = y * (dy - sum(dy * y)) over the last dim: the gradient of softmax given its output y.
 * y, dy, dx: [..., C] f32, same shape; dx a different buffer from y and dy.
 */
export function softmaxBackward(rec: Recorder, y: Tensor, dy: Tensor, dx: Tensor, opts: { label?: string } = {}): void {
  const what = `softmaxBackward${opts.label ? ` (${opts.label})` : ''}`;
  const { rows, cols } = rowsAndCols(y, what);
  for (const t of [y, dy, dx]) expectDType(t, ['f32'], what);
  expectShape(dy, y.shape, what);
  expectShape(dx, y.shape, what);
  const launch = rowLaunch(rec, rows, cols, { vectorize: true });
  const n = rows * cols;
  rec.dispatch(
    { shader: 'softmax', entry: 'softmax_backward', variant: launch.variant, constants: launch.constants },
    {
      tensors: { y_in: y, dy, dx },
      uniforms: { rows, cols, groups_x: launch.groups_x },
      sizes: { y_in: n, dy: n, dx: n },
      workgroups: launch.workgroups,
      flops: 4 * n,
      bytes: 5 * n * 4,
    },
    opts.label ? `${opts.label} backward` : 'backward',
  );
}

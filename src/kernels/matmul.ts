import { ShapeError } from '../errors.js';
import type { Recorder } from '../gpu/gpu.js';
import { expectDType, expectShape, numel, type Tensor } from '../gpu/tensor.js';

export interface MatmulOptions {
  /** A is stored [batch?, K, M] instead of [batch?, M, K]. */
  transA?: boolean;
  /** B is stored [batch?, N, K] instead of [batch?, K, N]. */
  transB?: boolean;
  /** Bias of length N added to every row. */
  bias?: Tensor;
  /** Apply exact (erf) GELU after the bias, as Whisper's MLP does. */
  gelu?: boolean;
  /** Add the product into `out` instead of overwriting it. */
  accumulate?: boolean;
  label?: string;
}

/** Matrix dimensions of a 2-D or 3-D operand: [batch, rows, cols], batch 0 meaning "no batch dim". */
function dims(t: Tensor, what: string): [number, number, number] {
  if (t.shape.length === 2) return [0, t.shape[0]!, t.shape[1]!];
  if (t.shape.length === 3) return [t.shape[0]!, t.shape[1]!, t.shape[2]!];
  throw new ShapeError(`${what}: tensor "${t.label}" must be 2-D or 3-D, has shape [${t.shape.join(', ')}]`);
}

/**
 * out[b] = op(a[b]) @ op(b[b]) (+ bias) (-> GELU).
 * a: [B?, M, K] (transA: [B?, K, M]); b: [B?, K, N] (transB: [B?, N, K]); out: [B, M, N] or [M, N].
 * A 2-D operand is broadcast over the batch. a, b and bias are f32, or f16 when the device has
 * shader-f16 (all three then share the dtype); out is f32.
 */
export function matmul(rec: Recorder, a: Tensor, b: Tensor, out: Tensor, opts: MatmulOptions = {}): void {
  const what = `matmul${opts.label ? ` (${opts.label})` : ''}`;
  const [ba, ar, ac] = dims(a, what);
  const [bb, br, bc] = dims(b, what);
  const [M, K] = opts.transA ? [ac, ar] : [ar, ac];
  const [Kb, N] = opts.transB ? [bc, br] : [br, bc];
  if (K !== Kb) throw new ShapeError(`${what}: inner dimensions differ: "${a.label}" gives K=${K}, "${b.label}" gives K=${Kb}`);
  if (ba && bb && ba !== bb) throw new ShapeError(`${what}: batch sizes differ: "${a.label}" ${ba}, "${b.label}" ${bb}`);
  const batch = Math.max(ba, bb, 1);
  expectShape(out, ba || bb ? [batch, M, N] : [M, N], what);
  expectDType(a, ['f32', 'f16'], what);
  expectDType(b, [a.dtype], what);
  expectDType(out, ['f32'], what);
  if (opts.bias) {
    expectShape(opts.bias, [N], what);
    expectDType(opts.bias, [a.dtype], what);
  }
  const f16 = a.dtype === 'f16';
  rec.dispatch(
    {
      shader: 'matmul',
      entry: 'matmul',
      ...(f16 ? { variant: { enable: ['f16'], aliases: { S: 'f16' } } } : {}),
      constants: { TRANS_A: opts.transA ? 1 : 0, TRANS_B: opts.transB ? 1 : 0, HAS_BIAS: opts.bias ? 1 : 0, GELU: opts.gelu ? 1 : 0 },
    },
    {
      // Without a bias the binding still exists in the WGSL; `a` stands in and is never read.
      tensors: { a, b, bias: opts.bias ?? a, c: out },
      uniforms: {
        M,
        N,
        K,
        batch,
        stride_a: ba ? M * K : 0,
        stride_b: bb ? K * N : 0,
        stride_c: M * N,
        accumulate: opts.accumulate ? 1 : 0,
      },
      sizes: { a: numel(a.shape), b: numel(b.shape), c: batch * M * N },
      workgroups: [Math.ceil(N / 64), Math.ceil(M / 64), batch],
      flops: 2 * batch * M * N * K,
      bytes: (numel(a.shape) + numel(b.shape)) * (f16 ? 2 : 4) + batch * M * N * 4 * (opts.accumulate ? 2 : 1),
    },
    opts.label,
  );
}

/** gradBias[n] (+)= sum over all leading dims of gradOut[..., n]. */
export function biasGrad(rec: Recorder, gradOut: Tensor, gradBias: Tensor, opts: { accumulate?: boolean; label?: string } = {}): void {
  const cols = gradOut.shape[gradOut.shape.length - 1] ?? 0;
  const rows = numel(gradOut.shape) / Math.max(cols, 1);
  expectShape(gradBias, [cols], 'biasGrad');
  expectDType(gradOut, ['f32'], 'biasGrad');
  expectDType(gradBias, ['f32'], 'biasGrad');
  rec.dispatch(
    { shader: 'matmul', entry: 'bias_grad' },
    {
      tensors: { grad_out: gradOut, grad_bias: gradBias },
      uniforms: { rows, cols, accumulate: opts.accumulate ? 1 : 0 },
      sizes: { grad_out: rows * cols, grad_bias: cols },
      workgroups: [Math.ceil(cols / 64)],
      flops: rows * cols,
      bytes: (rows * cols + cols) * 4,
    },
    opts.label,
  );
}

/**
 * Gradients of out = op(a) @ op(b) for 2-D a and b (a linear layer, batch flattened into rows):
 * gradA = gradOut @ op(b)^T and gradB = op(a)^T @ gradOut, each written in its operand's storage
 * layout, so the same tiled kernel serves forward and backward.
 */
export function matmulBackward(
  rec: Recorder,
  a: Tensor,
  b: Tensor,
  gradOut: Tensor,
  grads: { a?: Tensor; b?: Tensor },
  opts: { transA?: boolean; transB?: boolean; accumulate?: boolean; label?: string } = {},
): void {
  const acc = opts.accumulate ?? false;
  const label = opts.label ? `${opts.label} backward` : 'backward';
  if (grads.a) {
    // op(a) = gradOut @ op(b)^T; stored a is op(a), or op(a)^T = op(b) @ gradOut^T.
    if (opts.transA) matmul(rec, b, gradOut, grads.a, { transA: !!opts.transB, transB: true, accumulate: acc, label });
    else matmul(rec, gradOut, b, grads.a, { transB: !opts.transB, accumulate: acc, label });
  }
  if (grads.b) {
    // op(b) = op(a)^T @ gradOut; stored b is op(b), or op(b)^T = gradOut^T @ op(a).
    if (opts.transB) matmul(rec, gradOut, a, grads.b, { transA: true, transB: !!opts.transA, accumulate: acc, label });
    else matmul(rec, a, gradOut, grads.b, { transA: !opts.transA, accumulate: acc, label });
  }
}

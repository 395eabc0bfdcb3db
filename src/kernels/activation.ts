import { ShapeError } from '../errors.js';
import type { Recorder } from '../gpu/gpu.js';
import { expectDType, expectShape, numel, type Tensor } from '../gpu/tensor.js';

const WORKGROUP = 256;
const MAX_WORKGROUPS = 65535;

/** Workgroups for `n` invocations of 256, folded into a 2-D grid past 65535 (the WGSL flattens it back). */
export function elementwiseGrid(n: number): [number, number] {
  const groups = Math.ceil(n / WORKGROUP);
  if (groups <= MAX_WORKGROUPS) return [groups, 1];
  return [MAX_WORKGROUPS, Math.ceil(groups / MAX_WORKGROUPS)];
}

/** Elements of `small` repeated over the leading dims of `big`; throws unless `small`'s shape is a suffix of `big`'s. */
function broadcastPeriod(big: Tensor, small: Tensor, what: string): number {
  const lead = big.shape.length - small.shape.length;
  if (lead < 0 || small.shape.some((d, i) => d !== big.shape[lead + i])) {
    throw new ShapeError(
      `${what}: tensor "${small.label}" [${small.shape.join(', ')}] cannot broadcast to "${big.label}" [${big.shape.join(', ')}]: its shape must be a suffix of it`,
    );
  }
  return numel(small.shape);
}

/**
 * Dispatch one activation.wgsl entry over `n` f32 elements; the `broadcast` binding is read at
 * i % period. The vec4 form is used when `n` and the period are multiples of 4, the scalar form otherwise.
 */
function dispatchElementwise(
  rec: Recorder,
  entry: 'gelu' | 'gelu_backward' | 'add' | 'axpy',
  tensors: Record<string, Tensor>,
  n: number,
  broadcast: { binding: string; period: number } | null,
  extra: { alpha?: number; accumulate?: boolean; flops: number; bytes: number; label?: string },
): void {
  const period = broadcast?.period ?? n;
  const lanes = n % 4 === 0 && period % 4 === 0 ? 4 : 1;
  const sizes: Record<string, number> = {};
  for (const name of Object.keys(tensors)) sizes[name] = name === broadcast?.binding ? period : n;
  rec.dispatch(
    { shader: 'activation', entry, ...(lanes === 1 ? { variant: { aliases: { V: 'f32' } } } : {}) },
    {
      tensors,
      uniforms: { n: n / lanes, period: Math.max(period, 1) / lanes, alpha: extra.alpha ?? 0, accumulate: extra.accumulate ? 1 : 0 },
      sizes,
      workgroups: elementwiseGrid(n / lanes),
      flops: extra.flops,
      bytes: extra.bytes,
    },
    extra.label,
  );
}

function expectF32(what: string, ...ts: Tensor[]): void {
  for (const t of ts) expectDType(t, ['f32'], what);
}

/**
 * out = GELU(x) = x * Phi(x), the exact erf form of PyTorch's nn.GELU() used by Whisper.
 * x and out: f32, same shape. For training, run the producing matmul/conv without its fused GELU
 * flag, keep its output as the pre-activation x for geluBackward, and call this.
 */
export function gelu(rec: Recorder, x: Tensor, out: Tensor, opts: { label?: string } = {}): void {
  const what = `gelu${opts.label ? ` (${opts.label})` : ''}`;
  expectShape(out, x.shape, what);
  expectF32(what, x, out);
  const n = numel(x.shape);
  // Per element: ~14 for the erf polynomial, exp counted as one, ~6 around it.
  dispatchElementwise(rec, 'gelu', { x, y: out }, n, null, { flops: 20 * n, bytes: 8 * n, label: opts.label });
}

/**
 * gradIn (+)= gradOut * GELU'(x), GELU'(x) = Phi(x) + x * phi(x). x is the saved pre-activation.
 * All f32 and the same shape; `accumulate` adds into gradIn instead of overwriting it.
 */
export function geluBackward(rec: Recorder, x: Tensor, gradOut: Tensor, gradIn: Tensor, opts: { accumulate?: boolean; label?: string } = {}): void {
  const what = `geluBackward${opts.label ? ` (${opts.label})` : ''}`;
  expectShape(gradOut, x.shape, what);
  expectShape(gradIn, x.shape, what);
  expectF32(what, x, gradOut, gradIn);
  const n = numel(x.shape);
  dispatchElementwise(rec, 'gelu_backward', { x, dy: gradOut, dx: gradIn }, n, null, {
    accumulate: opts.accumulate,
    flops: 26 * n,
    bytes: (opts.accumulate ? 16 : 12) * n,
    label: opts.label,
  });
}

/**
 * out = a + b, where b's shape is a suffix of a's and b repeats over a's leading dims: a residual
 * add (same shapes), a bias [C] over [rows, C], or positional embeddings [T, C] over [B, T, C].
 * All f32; out has a's shape and must not alias a or b.
 */
export function add(rec: Recorder, a: Tensor, b: Tensor, out: Tensor, opts: { label?: string } = {}): void {
  const what = `add${opts.label ? ` (${opts.label})` : ''}`;
  const period = broadcastPeriod(a, b, what);
  expectShape(out, a.shape, what);
  expectF32(what, a, b, out);
  const n = numel(a.shape);
  dispatchElementwise(rec, 'add', { x: a, b, y: out }, n, { binding: 'b', period }, { flops: n, bytes: 8 * n + 4 * period, label: opts.label });
}

/**
 * y += alpha * x in place, where x's shape is a suffix of y's and x repeats over y's leading dims
 * (gradient accumulation with a scale, or adding a broadcast bias in place). f32; x must not alias y.
 */
export function axpy(rec: Recorder, y: Tensor, x: Tensor, alpha: number, opts: { label?: string } = {}): void {
  const what = `axpy${opts.label ? ` (${opts.label})` : ''}`;
  const period = broadcastPeriod(y, x, what);
  expectF32(what, x, y);
  const n = numel(y.shape);
  dispatchElementwise(rec, 'axpy', { x, y }, n, { binding: 'x', period }, { alpha, flops: 2 * n, bytes: 8 * n + 4 * period, label: opts.label });
}

/** y += x in place (residual accumulation); x's shape is y's or a suffix of it. See axpy. */
export function addInPlace(rec: Recorder, y: Tensor, x: Tensor, opts: { label?: string } = {}): void {
  axpy(rec, y, x, 1, opts);
}

import { ShapeError } from '../errors.js';
import type { Recorder } from '../gpu/gpu.js';
import { expectDType, expectShape, numel, type Tensor } from '../gpu/tensor.js';

export interface Conv1dOptions {
  /** 1 (Whisper's conv1) or 2 (conv2). Default 1. */
  stride?: number;
  /**
   * The output (and, in backward, gradOut) is [B, Tout, Cout] instead of [B, Cout, Tout]:
   * Whisper's permute(0, 2, 1) after conv2, written directly.
   */
  tokenMajor?: boolean;
  label?: string;
}

/** Output length of the kernel-3, padding-1 convolution: floor((T + 2 - 3) / stride) + 1. */
export function conv1dOutLength(T: number, stride: number): number {
  return Math.floor((T - 1) / stride) + 1;
}

// Output tile of one workgroup (shaders/conv1d.wgsl): ROWS channels x COLS positions.
const ROWS = 8;
const COLS = 64;

interface ConvDims {
  B: number;
  Cin: number;
  Cout: number;
  T: number;
  Tout: number;
  stride: number;
}

/** Check x [B, Cin, T] and weight [Cout, Cin, 3] (f32) and the stride; return the sizes. */
function convDims(x: Tensor, weight: Tensor, opts: Conv1dOptions, what: string): ConvDims {
  const stride = opts.stride ?? 1;
  if (stride !== 1 && stride !== 2) throw new ShapeError(`${what}: stride must be 1 or 2, got ${stride}`);
  if (x.shape.length !== 3) throw new ShapeError(`${what}: input "${x.label}" must be [B, Cin, T], has shape [${x.shape.join(', ')}]`);
  const [B, Cin, T] = x.shape as [number, number, number];
  if (weight.shape.length !== 3 || weight.shape[1] !== Cin || weight.shape[2] !== 3) {
    throw new ShapeError(`${what}: weight "${weight.label}" must be [Cout, ${Cin}, 3] for input "${x.label}" [${x.shape.join(', ')}], has shape [${weight.shape.join(', ')}]`);
  }
  if (T < 1) throw new ShapeError(`${what}: input "${x.label}" has no time steps`);
  expectDType(x, ['f32'], what);
  expectDType(weight, ['f32'], what);
  return { B, Cin, Cout: weight.shape[0]!, T, Tout: conv1dOutLength(T, stride), stride };
}

function outShape(d: ConvDims, tokenMajor: boolean | undefined): number[] {
  return tokenMajor ? [d.B, d.Tout, d.Cout] : [d.B, d.Cout, d.Tout];
}

function uniforms(d: ConvDims, accumulate: boolean | undefined): Record<string, number> {
  return { B: d.B, Cin: d.Cin, Cout: d.Cout, T: d.T, Tout: d.Tout, stride: d.stride, accumulate: accumulate ? 1 : 0 };
}

/**
 * out = conv1d(x, weight) + bias (-> exact GELU), PyTorch Conv1d with kernel 3 and padding 1.
 * x: [B, Cin, T]; weight: [Cout, Cin, 3]; bias: [Cout]; out: [B, Cout, Tout], or [B, Tout, Cout]
 * with `tokenMajor`; Tout = conv1dOutLength(T, stride). All f32. `gelu` fuses Whisper's GELU for
 * inference; for training run without it and apply activation.ts `gelu`, keeping this output as
 * the pre-activation that `geluBackward` needs.
 */
export function conv1d(rec: Recorder, x: Tensor, weight: Tensor, bias: Tensor, out: Tensor, opts: Conv1dOptions & { gelu?: boolean } = {}): void {
  const what = `conv1d${opts.label ? ` (${opts.label})` : ''}`;
  const d = convDims(x, weight, opts, what);
  expectShape(bias, [d.Cout], what);
  expectShape(out, outShape(d, opts.tokenMajor), what);
  expectDType(bias, ['f32'], what);
  expectDType(out, ['f32'], what);
  const outN = d.B * d.Cout * d.Tout;
  rec.dispatch(
    { shader: 'conv1d', entry: 'conv1d', constants: { TOKEN_MAJOR: opts.tokenMajor ? 1 : 0, GELU: opts.gelu ? 1 : 0 } },
    {
      tensors: { lhs: weight, rhs: x, bias, out },
      uniforms: uniforms(d, false),
      sizes: { lhs: d.Cout * d.Cin * 3, rhs: d.B * d.Cin * d.T, bias: d.Cout, out: outN },
      workgroups: [Math.ceil(d.Tout / COLS), Math.ceil(d.Cout / ROWS), d.B],
      flops: 2 * outN * d.Cin * 3 + outN,
      bytes: 4 * (numel(x.shape) + numel(weight.shape) + d.Cout + outN),
    },
    opts.label,
  );
}

/**
 * Gradients of conv1d (without the fused GELU; apply geluBackward first). x: [B, Cin, T] and
 * weight: [Cout, Cin, 3] as in the forward; gradOut in the forward output's layout. Writes, when
 * given, grads.x [B, Cin, T], and grads.weight [Cout, Cin, 3] together with grads.bias [Cout]
 * (one kernel computes both). `accumulate` adds into the gradients instead of overwriting them.
 * Deterministic: every gradient element is one invocation's reduction, no atomics.
 */
export function conv1dBackward(
  rec: Recorder,
  x: Tensor,
  weight: Tensor,
  gradOut: Tensor,
  grads: { x?: Tensor; weight?: Tensor; bias?: Tensor },
  opts: Conv1dOptions & { accumulate?: boolean } = {},
): void {
  const what = `conv1dBackward${opts.label ? ` (${opts.label})` : ''}`;
  const d = convDims(x, weight, opts, what);
  expectShape(gradOut, outShape(d, opts.tokenMajor), what);
  expectDType(gradOut, ['f32'], what);
  const constants = { TOKEN_MAJOR: opts.tokenMajor ? 1 : 0 };
  const outN = d.B * d.Cout * d.Tout;
  const label = opts.label ? `${opts.label} backward` : undefined;
  if (grads.x) {
    expectShape(grads.x, x.shape, what);
    expectDType(grads.x, ['f32'], what);
    const n = numel(x.shape);
    rec.dispatch(
      { shader: 'conv1d', entry: 'conv1d_grad_x', constants },
      {
        tensors: { lhs: weight, rhs: gradOut, dx: grads.x },
        uniforms: uniforms(d, opts.accumulate),
        sizes: { lhs: d.Cout * d.Cin * 3, rhs: outN, dx: n },
        workgroups: [Math.ceil(d.T / COLS), Math.ceil(d.Cin / ROWS), d.B],
        // Useful multiply-adds only: with stride 2 the kernel also skips the taps that miss.
        flops: 2 * outN * d.Cin * 3,
        bytes: 4 * (outN + numel(weight.shape) + n * (opts.accumulate ? 2 : 1)),
      },
      label,
    );
  }
  if (grads.weight || grads.bias) {
    if (!grads.weight || !grads.bias) {
      throw new ShapeError(`${what}: the weight and bias gradients are computed together; give both (got only "${(grads.weight ?? grads.bias)!.label}")`);
    }
    expectShape(grads.weight, weight.shape, what);
    expectShape(grads.bias, [d.Cout], what);
    expectDType(grads.weight, ['f32'], what);
    expectDType(grads.bias, ['f32'], what);
    const KW = d.Cin * 3;
    rec.dispatch(
      { shader: 'conv1d', entry: 'conv1d_grad_w', constants },
      {
        tensors: { lhs: gradOut, rhs: x, dw: grads.weight, db: grads.bias },
        uniforms: uniforms(d, opts.accumulate),
        sizes: { lhs: outN, rhs: numel(x.shape), dw: d.Cout * KW, db: d.Cout },
        workgroups: [Math.ceil((KW + 1) / COLS), Math.ceil(d.Cout / ROWS), 1],
        flops: 2 * outN * (KW + 1),
        bytes: 4 * (outN + numel(x.shape) + (d.Cout * KW + d.Cout) * (opts.accumulate ? 2 : 1)),
      },
      label,
    );
  }
}

import { ShapeError } from '../errors.js';
import type { Recorder } from '../gpu/gpu.js';
import { expectDType, expectShape, numel, type Tensor } from '../gpu/tensor.js';

/** Invocations per workgroup of adamw_step (WG in adamw.wgsl). */
const WORKGROUP = 256;

/** One parameter tensor and its optimizer state; all four f32 with the same shape. */
export interface AdamWParam {
  param: Tensor;
  grad: Tensor;
  /** First moment (PyTorch's exp_avg), zero-initialised before step 1. */
  expAvg: Tensor;
  /** Second moment (exp_avg_sq), zero-initialised before step 1. */
  expAvgSq: Tensor;
  /** This tensor's weight decay, overriding the step's (e.g. 0 for biases and LayerNorm). */
  weightDecay?: number;
  /** Multiplies the step's learning rate for this tensor (a parameter group of its own, as torch's param_groups); default 1. */
  lrScale?: number;
}

export interface AdamWOptions {
  lr: number;
  /** The step number t after incrementing, 1 on the first step (bias correction). */
  step: number;
  /** Defaults as torch.optim.AdamW: 0.9, 0.999, 1e-8, 0.01. */
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Gradients are multiplied by this before anything else (1/micro-batches when accumulating). */
  gradScale?: number;
  /**
   * Clip by the global norm as torch.nn.utils.clip_grad_norm_(max_norm) on the scaled gradients:
   * sumSquares[index] (f32, on the GPU, default index 0) holds the sum of squares of all the
   * unscaled gradients, e.g. from reduce's sumSquares over the same tensors.
   */
  clip?: { sumSquares: Tensor; maxNorm: number; index?: number };
  /** Largest byte size one binding may have; the device limit by default (smaller for tests). */
  maxBindingBytes?: number;
  label?: string;
  /**
   * Record the dispatches but update nothing (every invocation exits): a step of gradient
   * accumulation between updates, in a Program recorded once.
   */
  idle?: boolean;
}

/**
 * Contiguous [start, start + count) element ranges covering n f32 elements, each at most
 * maxBindingBytes long, every start a multiple of alignBytes / 4 so that each range can be bound
 * at its own offset.
 */
export function bindingRanges(n: number, maxBindingBytes: number, alignBytes: number): { start: number; count: number }[] {
  const align = Math.max(1, alignBytes / 4);
  const most = Math.floor(maxBindingBytes / 4 / align) * align;
  if (most < 1) throw new ShapeError(`bindingRanges: a binding of ${maxBindingBytes} bytes cannot hold one aligned range (alignment ${alignBytes} bytes)`);
  const out: { start: number; count: number }[] = [];
  for (let start = 0; start < n; start += most) out.push({ start, count: Math.min(most, n - start) });
  return out;
}

function slice(t: Tensor, start: number, count: number): Tensor {
  return { buffer: t.buffer, offset: t.offset + 4 * start, dtype: t.dtype, shape: [count], label: `${t.label}[${start}:${start + count}]` };
}

/**
 * One AdamW step over a list of parameter tensors, matching torch.optim.AdamW (amsgrad and
 * maximize off) including its clip_grad_norm_ before the step:
 *   g = grad * gradScale * min(1, maxNorm / (|gradScale| sqrt(sumSquares) + 1e-6))  (clip only)
 *   param *= 1 - lr * wd;  m = lerp(m, g, 1 - beta1);  v = beta2 v + (1 - beta2) g^2
 *   param -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * param, expAvg and expAvgSq are updated in place; grad is read only. One dispatch per tensor,
 * and a tensor larger than one binding may hold is stepped in several aligned slices, so the
 * whole model (Whisper tiny: 39M parameters) goes in one call without readback.
 */
export function adamwStep(rec: Recorder, params: readonly AdamWParam[], opts: AdamWOptions): void {
  const what = `adamwStep${opts.label ? ` (${opts.label})` : ''}`;
  const beta1 = opts.beta1 ?? 0.9;
  const beta2 = opts.beta2 ?? 0.999;
  const eps = opts.eps ?? 1e-8;
  const step = opts.step;
  if (!Number.isInteger(step) || step < 1) throw new ShapeError(`${what}: step must be a positive integer (1 on the first step), got ${step}`);
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) throw new ShapeError(`${what}: betas must lie in [0, 1), got ${beta1}, ${beta2}`);
  const clip = opts.clip;
  if (clip) {
    expectDType(clip.sumSquares, ['f32'], what);
    const index = clip.index ?? 0;
    if (!Number.isInteger(index) || index < 0 || index >= numel(clip.sumSquares.shape)) {
      throw new ShapeError(`${what}: clip index ${index} is outside tensor "${clip.sumSquares.label}" of shape [${clip.sumSquares.shape.join(', ')}]`);
    }
    if (!(clip.maxNorm > 0)) throw new ShapeError(`${what}: maxNorm must be positive, got ${clip.maxNorm}`);
  }
  for (const p of params) {
    for (const t of [p.param, p.grad, p.expAvg, p.expAvgSq]) {
      expectDType(t, ['f32'], what);
      expectShape(t, p.param.shape, what);
    }
  }
  const limits = rec.gpu.limits;
  const maxBytes = Math.min(opts.maxBindingBytes ?? Infinity, limits.maxStorageBufferBindingSize);
  const maxWg = limits.maxComputeWorkgroupsPerDimension;
  // Scalars PyTorch computes in Python floats, here in float64 likewise.
  const bias2Sqrt = Math.sqrt(1 - beta2 ** step);
  for (const p of params) {
    const n = numel(p.param.shape);
    const lr = opts.lr * (p.lrScale ?? 1);
    const stepSize = lr / (1 - beta1 ** step);
    const decay = 1 - lr * (p.weightDecay ?? opts.weightDecay ?? 0.01);
    for (const { start, count } of bindingRanges(n, maxBytes, limits.minStorageBufferOffsetAlignment)) {
      const whole = count === n;
      const view = (t: Tensor) => (whole ? t : slice(t, start, count));
      const groups = Math.ceil(count / WORKGROUP);
      const groupsX = Math.min(groups, maxWg);
      const grad = view(p.grad);
      rec.dispatch(
        { shader: 'adamw', entry: 'adamw_step', constants: { CLIP: clip ? 1 : 0 } },
        {
          // Without clipping the norm binding is never read; the (read-only) gradient stands in.
          tensors: { param: view(p.param), grad, exp_avg: view(p.expAvg), exp_avg_sq: view(p.expAvgSq), grad_sumsq: clip?.sumSquares ?? grad },
          uniforms: {
            n: opts.idle ? 0 : count,
            groups_x: groupsX,
            norm_index: clip?.index ?? 0,
            one_minus_beta1: 1 - beta1,
            beta2,
            one_minus_beta2: 1 - beta2,
            eps,
            decay,
            step_size: stepSize,
            bias_correction2_sqrt: bias2Sqrt,
            grad_scale: opts.gradScale ?? 1,
            max_norm: clip?.maxNorm ?? 0,
          },
          sizes: { param: count, grad: count, exp_avg: count, exp_avg_sq: count },
          workgroups: [groupsX, Math.ceil(groups / groupsX)],
          flops: 18 * count,
          // Reads param, grad, m, v; writes param, m, v.
          bytes: 7 * 4 * count,
        },
        whole ? p.param.label : `${p.param.label} [${start}, ${start + count})`,
      );
    }
  }
}

import { ShapeError } from '../errors.js';
import type { Gpu, Recorder } from '../gpu/gpu.js';
import { expectDType, expectShape, numel, type Tensor } from '../gpu/tensor.js';

/**
 * Symmetric fake quantization of one matmul operand, applied as it is loaded:
 * x -> clamp(round(x / s), -qmax, qmax) * s with qmax = 2^(bits-1) - 1, round half to even,
 * s = scale[stored row] (one entry per stored row of each batch entry of a batched operand).
 * For a weight stored [out, in] (transB) the stored rows are the output channels.
 */
export interface FakeQuant {
  /** f32 [rows] (rows of the operand as stored, times its batch when batched). */
  scale: Tensor;
  /** 8 (default) or 4; any 2..16 works. */
  bits?: number;
}

/** 2^(bits-1) - 1, the largest quantized magnitude. */
export function quantMax(bits = 8): number {
  if (!Number.isInteger(bits) || bits < 2 || bits > 16) throw new RangeError(`fake quantization needs 2..16 bits, got ${bits}`);
  return 2 ** (bits - 1) - 1;
}

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
  /** Fake-quantize A as it is loaded (per-token activation quantization). */
  quantA?: FakeQuant;
  /** Fake-quantize B as it is loaded (per-output-channel weight quantization). */
  quantB?: FakeQuant;
  label?: string;
}

/** A matmul kernel (file and entry) and the output tile one of its workgroups computes (its R and 8 * C). */
interface MatmulVariant {
  shader: 'matmul' | 'matmul_subgroups';
  entry: 'matmul' | 'matmul_rows';
  tileRows: number;
  tileCols: number;
}

/** Rows up to which `matmul_rows` (one row per workgroup) beats the tiled kernels: a decoding step's. */
export const MATMUL_ROWS_MAX_M = 2;

/**
 * For M <= MATMUL_ROWS_MAX_M the one-row kernel (a decoding step: the tiled kernels would
 * compute 8 or 32 rows per workgroup, the clamped ones for nothing); else the subgroup kernel
 * (about 2x faster on lavapipe, bench/lab/matmul/RESULTS.md) where the device has subgroups of at
 * least 8 lanes, which it needs for its 8-invocation workgroup to be one subgroup; else the plain
 * one.
 */
function pickVariant(gpu: Gpu, M: number): MatmulVariant {
  if (M <= MATMUL_ROWS_MAX_M) return { shader: 'matmul', entry: 'matmul_rows', tileRows: 1, tileCols: 64 };
  if (gpu.workgroupIsOneSubgroup(8)) return { shader: 'matmul_subgroups', entry: 'matmul', tileRows: 32, tileCols: 32 };
  return { shader: 'matmul', entry: 'matmul', tileRows: 8, tileCols: 64 };
}

const unusedScales = new WeakMap<Gpu, Tensor>();
/**
 * Each Gpu's stand-in for the scale bindings of a dispatch without fake quantization (the
 * bindings exist in the WGSL either way and must hold f32, which the other operands may not).
 * Never read; shared by the kernels with fused fake quantization (matmul, embedding).
 */
export function unusedScale(gpu: Gpu): Tensor {
  let t = unusedScales.get(gpu);
  if (!t) {
    t = gpu.upload([0], [1], 'f32', 'unused scale');
    unusedScales.set(gpu, t);
  }
  return t;
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
  const checkQuant = (q: FakeQuant | undefined, t: Tensor, batched: number, rows: number) => {
    if (!q) return;
    expectShape(q.scale, [Math.max(batched, 1) * rows], `${what}: scales of "${t.label}"`);
    expectDType(q.scale, ['f32'], what);
  };
  checkQuant(opts.quantA, a, ba, ar);
  checkQuant(opts.quantB, b, bb, br);
  const f16 = a.dtype === 'f16';
  const unused = unusedScale(rec.gpu);
  const variant = pickVariant(rec.gpu, M);
  rec.dispatch(
    {
      shader: variant.shader,
      entry: variant.entry,
      ...(f16 ? { variant: { enable: ['f16'], aliases: { S: 'f16' } } } : {}),
      constants: {
        TRANS_A: opts.transA ? 1 : 0,
        TRANS_B: opts.transB ? 1 : 0,
        HAS_BIAS: opts.bias ? 1 : 0,
        GELU: opts.gelu ? 1 : 0,
        QUANT_A: opts.quantA ? 1 : 0,
        QUANT_B: opts.quantB ? 1 : 0,
      },
    },
    {
      // Without a bias or scales the bindings still exist in the WGSL; stand-ins are never read.
      tensors: { a, b, bias: opts.bias ?? a, c: out, scale_a: opts.quantA?.scale ?? unused, scale_b: opts.quantB?.scale ?? unused },
      uniforms: {
        M,
        N,
        K,
        batch,
        stride_a: ba ? M * K : 0,
        stride_b: bb ? K * N : 0,
        stride_c: M * N,
        accumulate: opts.accumulate ? 1 : 0,
        qmax_a: opts.quantA ? quantMax(opts.quantA.bits) : 0,
        qmax_b: opts.quantB ? quantMax(opts.quantB.bits) : 0,
      },
      sizes: { a: numel(a.shape), b: numel(b.shape), c: batch * M * N },
      workgroups: [Math.ceil(N / variant.tileCols), Math.ceil(M / variant.tileRows), batch],
      // Useful work: the product, plus 4 operations (divide, round, clamp, multiply) per
      // fake-quantized operand element (the kernel redoes them per tile; that is not counted).
      flops: 2 * batch * M * N * K + 4 * ((opts.quantA ? numel(a.shape) : 0) + (opts.quantB ? numel(b.shape) : 0)),
      bytes:
        (numel(a.shape) + numel(b.shape)) * (f16 ? 2 : 4) +
        batch * M * N * 4 * (opts.accumulate ? 2 : 1) +
        4 * ((opts.quantA ? numel(opts.quantA.scale.shape) : 0) + (opts.quantB ? numel(opts.quantB.scale.shape) : 0)),
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
 * With quantA / quantB (the forward's fake quantization) the products use the fake-quantized
 * operands as the straight-through estimator prescribes: gradA = gradOut @ op(b_hat)^T and
 * gradB = op(a_hat)^T @ gradOut, i.e. the gradient w.r.t. b_hat; apply `fakeQuantGrad` to it for
 * the clamp mask (and the learnable-scale gradient).
 */
export function matmulBackward(
  rec: Recorder,
  a: Tensor,
  b: Tensor,
  gradOut: Tensor,
  grads: { a?: Tensor; b?: Tensor },
  opts: { transA?: boolean; transB?: boolean; accumulate?: boolean; quantA?: FakeQuant; quantB?: FakeQuant; label?: string } = {},
): void {
  const acc = opts.accumulate ?? false;
  const label = opts.label ? `${opts.label} backward` : 'backward';
  const { quantA, quantB } = opts;
  if (grads.a) {
    // op(a) = gradOut @ op(b)^T; stored a is op(a), or op(a)^T = op(b) @ gradOut^T.
    if (opts.transA) matmul(rec, b, gradOut, grads.a, { transA: !!opts.transB, transB: true, accumulate: acc, quantA: quantB, label });
    else matmul(rec, gradOut, b, grads.a, { transB: !opts.transB, accumulate: acc, quantB, label });
  }
  if (grads.b) {
    // op(b) = op(a)^T @ gradOut; stored b is op(b), or op(b)^T = gradOut^T @ op(a).
    if (opts.transB) matmul(rec, gradOut, a, grads.b, { transA: true, transB: !!opts.transA, accumulate: acc, quantB: quantA, label });
    else matmul(rec, a, gradOut, grads.b, { transA: !opts.transA, accumulate: acc, quantA, label });
  }
}

/** Rows x cols of a tensor whose last dim is the row length; rows over x and y of the grid. */
function quantGeometry(x: Tensor, what: string): { rows: number; cols: number; workgroups: [number, number] } {
  const cols = x.shape[x.shape.length - 1] ?? 0;
  if (x.shape.length < 2 || cols === 0) throw new ShapeError(`${what}: tensor "${x.label}" must be at least 2-D with a non-empty last dim, has shape [${x.shape.join(', ')}]`);
  const rows = numel(x.shape) / cols;
  const wx = Math.min(rows, 65535);
  return { rows, cols, workgroups: [wx, Math.ceil(rows / wx)] };
}

/**
 * scale[r] = max|x[r, :]| / qmax for every row r of x (all leading dims flattened): the
 * per-output-channel weight scales of a weight stored [out, in], or per-token activation
 * scales. An all-zero row gets scale 1 (its fake-quantized values are 0 either way), so no
 * division by zero follows. x: f32 [..., cols]; scale: f32 [rows].
 */
export function rowScales(rec: Recorder, x: Tensor, scale: Tensor, opts: { bits?: number; label?: string } = {}): void {
  const what = `rowScales${opts.label ? ` (${opts.label})` : ''}`;
  const { rows, cols, workgroups } = quantGeometry(x, what);
  expectShape(scale, [rows], what);
  expectDType(x, ['f32'], what);
  expectDType(scale, ['f32'], what);
  rec.dispatch(
    { shader: 'matmul', entry: 'row_scales' },
    {
      tensors: { q_x: x, q_scale_out: scale },
      uniforms: { rows, cols, qmax: quantMax(opts.bits), lsq_factor: 0, accumulate: 0 },
      sizes: { q_x: rows * cols, q_scale_out: rows },
      workgroups,
      flops: 2 * rows * cols,
      bytes: 4 * (rows * cols + rows),
    },
    opts.label,
  );
}

/**
 * Backward of w_hat = fake_quant(w, scale) (per stored row of w, as in `FakeQuant`), given
 * gradW = dL/dw_hat (from matmulBackward with quantB). In place, gradW becomes dL/dw by the
 * straight-through estimator: unchanged where |w / s| <= qmax, 0 where the clamp saturated.
 * With `gradScale`, first writes (or adds, with accumulateScale) the LSQ gradient of the
 * learnable scales (Esser et al. 2020), with v = w / s:
 *   gradScale[r] = lsqFactor * sum_k gradW[r, k] * (round(v) - v if |v| <= qmax, else sign(v) * qmax)
 * lsqFactor is LSQ's gradient scale g (the paper uses 1 / sqrt(cols * qmax)); default 1, the
 * plain gradient. Rows with s <= 0 get zero gradient. gradW must hold this step's dL/dw_hat
 * only (the scale gradient reads it before the mask). w, gradW: f32 [..., cols]; scale,
 * gradScale: f32 [rows].
 */
export function fakeQuantGrad(
  rec: Recorder,
  w: Tensor,
  scale: Tensor,
  gradW: Tensor,
  opts: { bits?: number; gradScale?: Tensor; lsqFactor?: number; accumulateScale?: boolean; label?: string } = {},
): void {
  const what = `fakeQuantGrad${opts.label ? ` (${opts.label})` : ''}`;
  const { rows, cols, workgroups } = quantGeometry(w, what);
  expectShape(gradW, w.shape, what);
  expectShape(scale, [rows], what);
  for (const t of [w, scale, gradW, ...(opts.gradScale ? [opts.gradScale] : [])]) expectDType(t, ['f32'], what);
  const uniforms = { rows, cols, qmax: quantMax(opts.bits), lsq_factor: opts.lsqFactor ?? 1, accumulate: opts.accumulateScale ? 1 : 0 };
  if (opts.gradScale) {
    expectShape(opts.gradScale, [rows], what);
    rec.dispatch(
      { shader: 'matmul', entry: 'lsq_scale_grad' },
      {
        tensors: { q_x: w, q_scale: scale, q_grad_x_in: gradW, q_grad_scale: opts.gradScale },
        uniforms,
        sizes: { q_x: rows * cols, q_scale: rows, q_grad_x_in: rows * cols, q_grad_scale: rows },
        workgroups,
        flops: 6 * rows * cols,
        bytes: 4 * (2 * rows * cols + 2 * rows),
      },
      opts.label,
    );
  }
  rec.dispatch(
    { shader: 'matmul', entry: 'ste_mask' },
    {
      tensors: { q_x: w, q_scale: scale, q_grad_x: gradW },
      uniforms,
      sizes: { q_x: rows * cols, q_scale: rows, q_grad_x: rows * cols },
      workgroups,
      flops: 2 * rows * cols,
      bytes: 4 * (3 * rows * cols + rows),
    },
    opts.label,
  );
}

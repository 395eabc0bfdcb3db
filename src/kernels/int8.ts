import { ShapeError } from '../errors.js';
import type { Gpu, Recorder } from '../gpu/gpu.js';
import type { KernelSpec } from '../gpu/kernel.js';
import { expectDType, expectShape, numel, type Tensor } from '../gpu/tensor.js';
import { MATMUL_ROWS_MAX_M, quantMax } from './matmul.js';

// Int8 inference (shaders/int8.wgsl). Quantization is per row, symmetric, exactly as the
// fake quantization of the training matmul (shaders/matmul.wgsl):
//   scale[r] = max|x[r, :]| / qmax (1 for an all-zero row), q = clamp(round(x / scale), -qmax, qmax),
// qmax = 2^(bits-1) - 1, round half to even, all in f32. Rows are the output channels of a weight
// stored [out, in] (Whisper's Linear layout) and the tokens of the activations (always 8 bits).
// Quantized rows are packed 4 per u32 along K, element k+0 in bits 0-7 (dot4I8Packed's layout),
// K zero-padded to a multiple of 4. bits = 4 uses the same int8 lanes with values in [-7, 7]:
// one byte per weight, as much GPU memory as int8 (a quarter of f32, twice the nibble-packed
// minimum), traded for a single matmul path that dot4I8Packed runs directly.

/** Largest K whose i32 accumulator cannot overflow: 127 * 127 * K < 2^31. */
export const int8MaxK = Math.floor((2 ** 31 - 1) / (127 * 127));

/** Packed u32 words per row of K int8 values. */
export function packedWords(K: number): number {
  return Math.ceil(K / 4);
}

/** A row-quantized matrix [rows, K] on the GPU. */
export interface Int8Matrix {
  /** u32 [rows, ceil(K / 4)]: 4 signed bytes per word, element k+0 in the low byte. */
  packed: Tensor;
  /** f32 [rows]: dequantized value = scale[r] * q[r, k]. */
  scales: Tensor;
  /** Row length K before padding. */
  cols: number;
}

/**
 * Quantize a weight on the host: W f32 [N, K] row-major (Whisper [out, in]) to per-channel int8.
 * Returns packed u32 [N * ceil(K/4)] (layout as `Int8Matrix.packed`) and scales f32 [N]. The
 * arithmetic is f32 rounded exactly as shaders/int8.wgsl (and the fake quantization) do it, so
 * this equals `quantizeRows` on the GPU bit for bit. With `scales` given (e.g. learned LSQ
 * scales) they are used instead of max|W_c| / qmax; a channel whose scale is <= 0 becomes 0.
 */
export function packInt8Weights(
  w: Float32Array,
  N: number,
  K: number,
  bits = 8,
  scales?: Float32Array,
): { packed: Uint32Array; scales: Float32Array } {
  if (w.length !== N * K) throw new ShapeError(`packInt8Weights: ${w.length} values for [${N}, ${K}]`);
  if (scales && scales.length !== N) throw new ShapeError(`packInt8Weights: ${scales.length} scales for ${N} channels`);
  const qmax = quantMax(bits);
  const words = packedWords(K);
  const packed = new Uint32Array(N * words);
  const outScales = scales ? Float32Array.from(scales) : new Float32Array(N);
  for (let n = 0; n < N; n++) {
    const row = w.subarray(n * K, (n + 1) * K);
    if (!scales) {
      let m = 0;
      for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(row[k]!));
      outScales[n] = m > 0 ? Math.fround(m / qmax) : 1;
    }
    const s = outScales[n]!;
    if (!(s > 0)) continue;
    for (let k = 0; k < K; k++) {
      const q = Math.min(qmax, Math.max(-qmax, roundHalfEven(Math.fround(row[k]! / s))));
      packed[n * words + (k >> 2)]! |= (q & 0xff) << (8 * (k & 3));
    }
  }
  return { packed, scales: outScales };
}

/** The quantized values of a packed [rows, K] matrix, Int8Array [rows * K] (padding dropped). */
export function unpackInt8(packed: Uint32Array, rows: number, K: number): Int8Array {
  const words = packedWords(K);
  if (packed.length !== rows * words) throw new ShapeError(`unpackInt8: ${packed.length} words for [${rows}, ${K}] (${rows * words} expected)`);
  const out = new Int8Array(rows * K);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < K; k++) out[r * K + k] = (packed[r * words + (k >> 2)]! << (24 - 8 * (k & 3))) >> 24;
  }
  return out;
}

/** Round half to even, as WGSL round() does. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Rows (all leading dims flattened) and row length of a tensor [..., cols]. */
function rowsOf(t: Tensor, what: string): [number, number] {
  const cols = t.shape[t.shape.length - 1] ?? 0;
  if (t.shape.length < 2 || cols === 0) throw new ShapeError(`${what}: tensor "${t.label}" must be at least 2-D with a non-empty last dim, has shape [${t.shape.join(', ')}]`);
  return [numel(t.shape) / cols, cols];
}

/**
 * Quantize the rows of x f32 [..., K] (leading dims flattened to rows) and pack them:
 * q.packed u32 [rows, ceil(K/4)], q.scales f32 [rows]. Computes scale = max|row| / qmax (1 for
 * an all-zero row) and writes it, or with `givenScales` reads q.scales (e.g. learned scales) and
 * writes only the packed words. Serves both export of a trained weight (per output channel,
 * bits 8 or 4) and per-token activation quantization before `int8Matmul` (bits 8).
 */
export function quantizeRows(rec: Recorder, x: Tensor, q: Int8Matrix, opts: { bits?: number; givenScales?: boolean; label?: string } = {}): void {
  const what = `quantizeRows${opts.label ? ` (${opts.label})` : ''}`;
  const [rows, cols] = rowsOf(x, what);
  if (q.cols !== cols) throw new ShapeError(`${what}: "${q.packed.label}" holds rows of ${q.cols} values, "${x.label}" has ${cols}`);
  const words = packedWords(cols);
  expectDType(x, ['f32'], what);
  expectShape(q.packed, [rows, words], what);
  expectDType(q.packed, ['u32'], what);
  expectShape(q.scales, [rows], what);
  expectDType(q.scales, ['f32'], what);
  const wx = Math.min(rows, rec.gpu.limits.maxComputeWorkgroupsPerDimension);
  const scaleBinding = opts.givenScales ? 'q_scale_in' : 'q_scale_out';
  rec.dispatch(
    { shader: 'int8', entry: opts.givenScales ? 'quantize_rows_given_scales' : 'quantize_rows' },
    {
      tensors: { q_x: x, q_packed: q.packed, [scaleBinding]: q.scales },
      uniforms: { rows, cols, words, qmax: quantMax(opts.bits) },
      sizes: { q_x: rows * cols, q_packed: rows * words, [scaleBinding]: rows },
      workgroups: [wx, Math.ceil(rows / wx)],
      // |x| and max per element (when computing scales), then divide, round, clamp, pack.
      flops: (opts.givenScales ? 4 : 6) * rows * cols,
      bytes: 4 * (rows * cols + rows * words + rows),
    },
    opts.label,
  );
}

/** Whether `rows` output rows run the one-row kernel (a decoding step's few rows; see matmul's). */
const oneRowKernel = (rows: number | undefined) => rows !== undefined && rows <= MATMUL_ROWS_MAX_M;

/**
 * The kernel of `int8Matmul` for `rows` output rows (the tiled one when not given), in the
 * variant of {@link int8DotPath} or as `dot4` says: false forces the core-WGSL fallback, true
 * dot4I8Packed, throwing where the device lacks it.
 */
export function int8MatmulSpec(gpu: Gpu, opts: { bias?: boolean; gelu?: boolean; dot4?: boolean; rows?: number } = {}): KernelSpec {
  if (opts.dot4 && !gpu.features.dot4I8Packed) throw new Error('int8Matmul: dot4I8Packed was asked for, but this device lacks the WGSL language feature packed_4x8_integer_dot_product');
  return {
    shader: 'int8',
    entry: oneRowKernel(opts.rows) ? 'int8_matmul_rows' : 'int8_matmul',
    ...((opts.dot4 ?? int8DotPath(gpu) === 'dot4I8Packed') ? { variant: { requires: ['packed_4x8_integer_dot_product'] } } : {}),
    constants: { HAS_BIAS: opts.bias ? 1 : 0, GELU: opts.gelu ? 1 : 0 },
  };
}

/**
 * Int8 linear layer: out[m, n] = x.scales[m] * w.scales[n] * sum_k xq[m, k] * wq[n, k]
 * (+ bias[n]) (-> exact GELU, Whisper's fc1), the integer sum exact in i32, then f32. This is the
 * fake-quant forward x_hat @ W_hat^T + bias up to f32 rounding of the final scaling.
 * x: rows-quantized activations [M, K] (from `quantizeRows`); w: weight [N, K] quantized per
 * output channel; bias f32 [N]; out f32 [..., N] with M rows in all. Runs the dot product of
 * `int8DotPath` (`dot4` overrides, see `int8MatmulSpec`); both give bit-identical results.
 */
export function int8Matmul(
  rec: Recorder,
  x: Int8Matrix,
  w: Int8Matrix,
  out: Tensor,
  opts: { bias?: Tensor; gelu?: boolean; dot4?: boolean; label?: string } = {},
): void {
  const what = `int8Matmul${opts.label ? ` (${opts.label})` : ''}`;
  if (x.cols !== w.cols) throw new ShapeError(`${what}: inner dimensions differ: "${x.packed.label}" has K=${x.cols}, "${w.packed.label}" has K=${w.cols}`);
  const K = x.cols;
  if (K > int8MaxK) throw new ShapeError(`${what}: K=${K} could overflow the i32 accumulator (at most ${int8MaxK})`);
  const words = packedWords(K);
  const M = x.scales.shape[0] ?? 0;
  const N = w.scales.shape[0] ?? 0;
  for (const q of [x, w]) {
    expectDType(q.packed, ['u32'], what);
    expectDType(q.scales, ['f32'], what);
    if (q.scales.shape.length !== 1) throw new ShapeError(`${what}: scales "${q.scales.label}" must be 1-D, has shape [${q.scales.shape.join(', ')}]`);
    expectShape(q.packed, [q.scales.shape[0]!, words], what);
  }
  const [outRows, outCols] = rowsOf(out, what);
  if (outRows !== M || outCols !== N) throw new ShapeError(`${what}: tensor "${out.label}" has shape [${out.shape.join(', ')}], expected ${M} rows of ${N}`);
  expectDType(out, ['f32'], what);
  if (opts.bias) {
    expectShape(opts.bias, [N], what);
    expectDType(opts.bias, ['f32'], what);
  }
  rec.dispatch(
    int8MatmulSpec(rec.gpu, { bias: !!opts.bias, gelu: opts.gelu, dot4: opts.dot4, rows: M }),
    {
      // Without a bias the binding still exists in the WGSL; the stand-in is never read.
      tensors: { x_packed: x.packed, x_scale: x.scales, w_packed: w.packed, w_scale: w.scales, bias: opts.bias ?? w.scales, y: out },
      uniforms: { M, N, words },
      sizes: { x_packed: M * words, x_scale: M, w_packed: N * words, w_scale: N, bias: N, y: M * N },
      workgroups: [Math.ceil(N / 64), oneRowKernel(M) ? M : Math.ceil(M / 8)],
      // Integer multiply-adds counted as flops.
      flops: 2 * M * N * K,
      bytes: 4 * ((M + N) * words + M + N + M * N + (opts.bias ? N : 0)),
    },
    opts.label,
  );
}

/**
 * Embedding lookup in a row-quantized table: out[..., c] = max(table.scales[id], 0) *
 * q[id, c], the dequantized row (f32, exactly `dequantizeWeight`'s value), so a quantized tied
 * token embedding serves the lookup without a float copy. ids: i32, any shape; table: [V, C]
 * rows; out f32 [...ids.shape, C]. Ids outside [0, V) give zero rows (see `validateIds`).
 */
export function int8Embedding(rec: Recorder, ids: Tensor, table: Int8Matrix, out: Tensor, opts: { label?: string } = {}): void {
  const what = `int8Embedding${opts.label ? ` (${opts.label})` : ''}`;
  const C = table.cols;
  const words = packedWords(C);
  const V = table.scales.shape[0] ?? 0;
  expectDType(ids, ['i32'], what);
  expectDType(table.packed, ['u32'], what);
  expectShape(table.packed, [V, words], what);
  expectDType(table.scales, ['f32'], what);
  expectShape(table.scales, [V], what);
  expectDType(out, ['f32'], what);
  expectShape(out, [...ids.shape, C], what);
  const N = numel(ids.shape);
  const y = Math.min(N, rec.gpu.limits.maxComputeWorkgroupsPerDimension);
  rec.dispatch(
    { shader: 'int8', entry: 'int8_embedding' },
    {
      tensors: { e_ids: ids, e_packed: table.packed, e_scale: table.scales, e_out: out },
      uniforms: { N, V, C, words },
      sizes: { e_ids: N, e_packed: V * words, e_scale: V, e_out: N * C },
      workgroups: [Math.ceil(C / 64), y, y === 0 ? 0 : Math.ceil(N / y)],
      flops: N * C,
      bytes: 4 * (N + N * words + N + N * C),
    },
    opts.label,
  );
}

/**
 * Whether this adapter's dot4I8Packed is slower than the core-WGSL fallback, so that the fallback
 * runs by default. Measured (same shapes, same process, 2026-12-07): lavapipe (Mesa 25, llvmpipe)
 * 40 vs 23 ms for 256x384 @ (1536x384)^T, and in `npm run bench` 188 vs 129 ms for enc fc1 and
 * 1745 vs 1018 ms for the logits; SwiftShader (Chromium) 242 vs 266 ms, so there dot4 stays.
 */
export function dot4SlowerThanFallback(gpu: Gpu): boolean {
  return /llvmpipe/i.test(`${gpu.adapter.description} ${gpu.adapter.device}`);
}

/**
 * The dot product `int8Matmul` runs on this device unless a call says otherwise: as `gpu.int8Dot`
 * asks; by default ('auto') dot4I8Packed where the device has it and it is not slower there
 * ({@link dot4SlowerThanFallback}), else the core-WGSL byte arithmetic. Both give bit-identical
 * results.
 */
export function int8DotPath(gpu: Gpu): 'dot4I8Packed' | 'core-wgsl' {
  if (!gpu.features.dot4I8Packed || gpu.int8Dot === 'core-wgsl') return 'core-wgsl';
  return gpu.int8Dot === 'dot4I8Packed' || !dot4SlowerThanFallback(gpu) ? 'dot4I8Packed' : 'core-wgsl';
}

/** How {@link int8DotPath} reads in a model's runtime line, with the reason for the fallback. */
export function int8DotDescription(gpu: Gpu): string {
  if (int8DotPath(gpu) === 'dot4I8Packed') return 'dot4I8Packed';
  return gpu.features.dot4I8Packed ? 'core-WGSL fallback, faster than dot4I8Packed on this adapter' : 'core-WGSL fallback, no dot4I8Packed';
}

import { ConfigError, ShapeError } from '../errors.js';
import { packInt8Weights, packedWords, unpackInt8 } from '../kernels/int8.js';
import { whisperParameters, type WhisperConfig } from '../model/config.js';

// Per-output-channel symmetric weight quantization on the CPU, the exact values the engine's
// fake quantization trains with (shaders/matmul.wgsl fake_quant, row_scales) and its int8 kernels
// run (shaders/int8.wgsl): in f32, scale[c] = max|W[c, :]| / qmax (1 for an all-zero row),
// q = clamp(round(W / scale), -qmax, qmax) with WGSL's round half to even, qmax = 2^(bits-1) - 1.
// The arithmetic is kernels/int8.ts's packInt8Weights (the host copy of that rounding), so there is
// one CPU definition of it; dequantized values are fround(q * scale), fake_quant's f32 product.

/** A weight [rows, cols] (Whisper's [out, in]) quantized per row (output channel). */
export interface QuantizedWeight {
  /** q[r * cols + k] in [-qmax, qmax]. */
  readonly q: Int8Array;
  /** f32 [rows]: the value of q is q * scales[r]; a scale <= 0 stands for an all-zero row. */
  readonly scales: Float32Array;
  readonly rows: number;
  readonly cols: number;
  /** 8, or 4 (values in [-7, 7]). */
  readonly bits: number;
}

/** Bit widths the exporters store. */
export type QuantBits = 8 | 4;

function checkBits(bits: number, what: string): asserts bits is QuantBits {
  if (bits !== 8 && bits !== 4) throw new ConfigError(`${what}: bits must be 8 or 4, got ${bits}`);
}

/**
 * Quantize `w` f32 [rows, cols] row-major per row. With `scales` (e.g. learned LSQ scales, one
 * per row) they are used instead of max|row| / qmax. `name` is what errors call the tensor.
 * Throws ShapeError when the sizes disagree, ConfigError for bits other than 8 or 4.
 */
export function quantizeWeight(
  w: Float32Array,
  rows: number,
  cols: number,
  opts: { bits?: number; scales?: Float32Array; name?: string } = {},
): QuantizedWeight {
  const name = opts.name ?? 'weight';
  const bits = opts.bits ?? 8;
  checkBits(bits, `quantizeWeight "${name}"`);
  if (w.length !== rows * cols) throw new ShapeError(`quantizeWeight: tensor "${name}" has ${w.length} values, expected [${rows}, ${cols}]`);
  if (opts.scales && opts.scales.length !== rows) throw new ShapeError(`quantizeWeight: tensor "${name}": ${opts.scales.length} scales given for ${rows} output channels`);
  const { packed, scales } = packInt8Weights(w, rows, cols, bits, opts.scales);
  return { q: unpackInt8(packed, rows, cols), scales, rows, cols, bits };
}

/** The float weight a quantized one stands for: fround(q * scale) per element (0 where scale <= 0), as fake_quant computes it. */
export function dequantizeWeight(qw: QuantizedWeight): Float32Array {
  const out = new Float32Array(qw.rows * qw.cols);
  for (let r = 0; r < qw.rows; r++) {
    const s = Math.max(qw.scales[r]!, 0);
    for (let k = 0; k < qw.cols; k++) out[r * qw.cols + k] = qw.q[r * qw.cols + k]! * s;
  }
  return out;
}

/**
 * The int8 kernels' layout of a quantized weight (kernels/int8.ts `Int8Matrix`): u32
 * [rows, ceil(cols / 4)], 4 signed bytes per word, element k+0 in the low byte, zero padded; and
 * the scales. Upload both for `int8Matmul`.
 */
export function packForInt8Kernels(qw: QuantizedWeight): { packed: Uint32Array; scales: Float32Array } {
  const words = packedWords(qw.cols);
  const packed = new Uint32Array(qw.rows * words);
  for (let r = 0; r < qw.rows; r++) {
    for (let k = 0; k < qw.cols; k++) packed[r * words + (k >> 2)]! |= (qw.q[r * qw.cols + k]! & 0xff) << (8 * (k & 3));
  }
  return { packed, scales: qw.scales };
}

/**
 * 4-bit values two per byte along each row, element 2j in the low nibble, two's complement; a row
 * of odd length ends with a zero high nibble. Bytes [rows, ceil(cols / 2)].
 */
export function packNibbles(qw: QuantizedWeight): Uint8Array {
  const rowBytes = Math.ceil(qw.cols / 2);
  const out = new Uint8Array(qw.rows * rowBytes);
  for (let r = 0; r < qw.rows; r++) {
    for (let k = 0; k < qw.cols; k++) out[r * rowBytes + (k >> 1)]! |= (qw.q[r * qw.cols + k]! & 0xf) << (4 * (k & 1));
  }
  return out;
}

/** Inverse of {@link packNibbles}: Int8Array [rows * cols] with values in [-8, 7]. */
export function unpackNibbles(bytes: Uint8Array, rows: number, cols: number): Int8Array {
  const rowBytes = Math.ceil(cols / 2);
  const out = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) out[r * cols + k] = ((bytes[r * rowBytes + (k >> 1)]! >> (4 * (k & 1))) << 28) >> 28;
  }
  return out;
}

/** One layer that can be quantized: its module name and its weight's name and shape [out, in]. */
export interface QuantizableModule {
  /** Hugging Face module name, e.g. "model.encoder.layers.0.fc1". */
  readonly module: string;
  /** Its weight, e.g. "model.encoder.layers.0.fc1.weight". */
  readonly weight: string;
  readonly shape: readonly [number, number];
}

/**
 * The layers per-channel quantization applies to, in declaration order: every Linear of the
 * attention blocks and MLPs (rows = output channels) and the token embedding (rows = tokens, the
 * output channels of the tied output projection). Convolutions, norms, biases and the positional
 * embeddings stay float.
 */
export function quantizableModules(config: WhisperConfig): QuantizableModule[] {
  return whisperParameters(config)
    .filter((p) => p.shape.length === 2 && !p.name.includes('embed_positions'))
    .map((p) => ({ module: p.name.replace(/\.weight$/, ''), weight: p.name, shape: [p.shape[0]!, p.shape[1]!] as const }));
}

/** Which layers are quantized, and to how many bits. */
export interface QuantizationPlan {
  /** Module names (see {@link quantizableModules}). */
  readonly modules: readonly string[];
  /** 8 (default) or 4, for every module listed that {@link moduleBits} does not name. */
  readonly bits?: number;
  /** Bits of individual listed modules, overriding {@link bits} for them (a mixed int8/int4 plan). */
  readonly moduleBits?: ReadonlyMap<string, number>;
  /** Per-channel scales to use instead of max|W_c| / qmax (learned LSQ scales), by module name. */
  readonly scales?: ReadonlyMap<string, Float32Array>;
}

/** A quantizable module of a plan with the bits it is quantized to. */
export interface PlannedModule extends QuantizableModule {
  readonly bits: QuantBits;
}

/** A plan that quantizes every quantizable module of `config` to `bits`. */
export function fullQuantizationPlan(config: WhisperConfig, bits: QuantBits = 8): QuantizationPlan {
  return { modules: quantizableModules(config).map((m) => m.module), bits };
}

/**
 * The plan's modules resolved against `config`, in declaration order, each with its bits; `bits`
 * is the plan's default. Throws ConfigError naming a module that is not quantizable (or listed
 * twice), a scale map or bits entry for a module not in the plan, and bits other than 8 or 4.
 */
export function resolvePlan(config: WhisperConfig, plan: QuantizationPlan): { modules: PlannedModule[]; bits: QuantBits } {
  const bits = plan.bits ?? 8;
  checkBits(bits, 'quantization plan');
  const all = quantizableModules(config);
  const listed = new Set<string>();
  for (const m of plan.modules) {
    if (listed.has(m)) throw new ConfigError(`quantization plan: module "${m}" is listed twice`);
    if (!all.some((q) => q.module === m)) {
      throw new ConfigError(`quantization plan: "${m}" is not a quantizable module of this Whisper (expected Linear layers or model.decoder.embed_tokens, e.g. "${all[0]?.module}")`);
    }
    listed.add(m);
  }
  for (const [what, map] of [['scales', plan.scales], ['bits', plan.moduleBits]] as const) {
    for (const m of map?.keys() ?? []) {
      if (!listed.has(m)) throw new ConfigError(`quantization plan: ${what} given for "${m}", which the plan does not quantize`);
    }
  }
  for (const [m, b] of plan.moduleBits ?? []) checkBits(b, `quantization plan: module "${m}"`);
  return { modules: all.filter((q) => listed.has(q.module)).map((q) => ({ ...q, bits: (plan.moduleBits?.get(q.module) ?? bits) as QuantBits })), bits };
}

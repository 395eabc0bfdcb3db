/**
 * dq-whisper's quantized Hugging Face checkpoint, quant_method "dq-whisper-int8".
 *
 * A folder laid out as transformers saves a Whisper (`config.json`, `model.safetensors`, tensor
 * names and shapes of WhisperForConditionalGeneration, `proj_out.weight` not stored because it is
 * tied to the token embedding), except for the layers that `config.json` lists as quantized:
 *
 * ```json
 * "quantization_config": {
 *   "quant_method": "dq-whisper-int8",
 *   "bits": 8,
 *   "per_channel": true,
 *   "symmetric": true,
 *   "modules": ["model.encoder.layers.0.self_attn.k_proj", "...", "model.decoder.embed_tokens"],
 *   "module_bits": { "model.decoder.embed_tokens": 4 }
 * }
 * ```
 *
 * `bits` applies to every listed module except those `module_bits` (present only in a mixed
 * int8/int4 checkpoint) gives their own bits.
 *
 * For every listed module M, whose float weight is [out, in] (Linear layers of the attention
 * blocks and MLPs, and the token embedding, whose rows are the output channels of the tied output
 * projection), `model.safetensors` holds instead of `M.weight` F32:
 *
 * | tensor           | dtype | shape                | content                                                         |
 * |------------------|-------|----------------------|-----------------------------------------------------------------|
 * | `M.weight`       | I8    | [out, in]            | bits 8: q in [-127, 127], row-major                             |
 * | `M.weight`       | U8    | [out, ceil(in / 2)]  | bits 4: q in [-7, 7], two per byte, element 2j in the low nibble (two's complement), odd rows end with a 0 nibble |
 * | `M.weight_scale` | F32   | [out]                | one scale per output channel                                    |
 *
 * and the weight is W[o, i] = scale[o] · q[o, i] (rounded to f32; a scale ≤ 0 marks an all-zero
 * channel). Quantization is per output channel and symmetric, in f32: scale[o] = max|W[o, :]| /
 * qmax (qmax = 2^(bits−1) − 1 = 127 or 7; 1 for an all-zero channel) unless learned scales are
 * given, q = clamp(round(W / scale), −qmax, qmax) with round half to even, exactly as the
 * engine's fake quantization (shaders/matmul.wgsl) and int8 kernels (shaders/int8.wgsl) do, so
 * the stored integers are the ones quantization-aware training used. Every other tensor (convs,
 * norms, biases, positional embeddings, layers not listed) is F32, or F16 when asked.
 *
 * transformers has no quantizer named "dq-whisper-int8" and refuses such a folder; dequantize it
 * ({@link dequantizeCheckpoint}) and save a float checkpoint for transformers, or export ggml
 * q8_0 for whisper.cpp.
 * @module
 */
import { CheckpointError, ConfigError } from '../errors.js';
import type { ByteSource, FileChunks, FileOpener } from '../io/byte-source.js';
import { hfConfigText, hfFileNames, requiredOpener } from '../io/huggingface.js';
import { readText, textFile } from '../io/byte-source.js';
import {
  encodeSafetensorsEncoded, readableDtypes, readSafetensorsHeader, readSafetensorsTensor,
  type EncodedTensorToWrite, type SafetensorsEntry, type WritableDtype,
} from '../io/safetensors.js';
import { encodeFromF32 } from '../io/float-codecs.js';
import { checkWhisperInventory, type WhisperCheckpoint } from '../io/whisper-inventory.js';
import { parseWhisperConfig, tiedOutputProjection, whisperParameters, type WhisperConfig } from '../model/config.js';
import { checkWhisperWeights } from '../model/init.js';
import {
  dequantizeWeight, packNibbles, quantizeWeight, resolvePlan, unpackNibbles,
  type PlannedModule, type QuantBits, type QuantizationPlan, type QuantizedWeight,
} from './weights.js';

/** The quant_method this format records in config.json. */
export const int8QuantMethod = 'dq-whisper-int8';

/** `quantization_config` of config.json (see the format description above). */
export interface Int8QuantizationConfig {
  readonly quant_method: typeof int8QuantMethod;
  readonly bits: QuantBits;
  readonly per_channel: true;
  readonly symmetric: true;
  /** Quantized module names, in declaration order. */
  readonly modules: readonly string[];
  /** Modules quantized to other bits than {@link bits}; absent when there are none. */
  readonly module_bits?: Readonly<Record<string, QuantBits>>;
}

/** A Whisper with some layers quantized per output channel. */
export interface QuantizedCheckpoint {
  readonly config: WhisperConfig;
  /** The plan's default bits; each quantized weight carries its own (they differ in a mixed plan). */
  readonly bits: QuantBits;
  /** Float tensors by Hugging Face name: every parameter whose module is not quantized. */
  readonly weights: ReadonlyMap<string, Float32Array>;
  /** Quantized weights by module name (e.g. "model.encoder.layers.0.fc1"), in declaration order. */
  readonly quantized: ReadonlyMap<string, QuantizedWeight>;
}

/**
 * Quantize the plan's modules of `model` (see `resolvePlan` for the checks, ConfigError naming a
 * module); the other tensors are kept as they are (not copied). Throws ShapeError when the weights
 * do not match the config.
 */
export function quantizeCheckpoint(model: WhisperCheckpoint, plan: QuantizationPlan): QuantizedCheckpoint {
  checkWhisperWeights(model.config, model.weights, 'weights to quantize');
  const { modules, bits } = resolvePlan(model.config, plan);
  const weights = new Map(model.weights);
  const quantized = new Map<string, QuantizedWeight>();
  for (const m of modules) {
    quantized.set(m.module, quantizeWeight(model.weights.get(m.weight)!, m.shape[0], m.shape[1], { bits: m.bits, scales: plan.scales?.get(m.module), name: m.weight }));
    weights.delete(m.weight);
  }
  return { config: model.config, bits, weights, quantized };
}

/** The quantized weight stored for parameter `name`, if its module is quantized. */
function quantizedOf(qc: QuantizedCheckpoint, name: string): QuantizedWeight | undefined {
  return name.endsWith('.weight') ? qc.quantized.get(name.slice(0, -'.weight'.length)) : undefined;
}

/** Every weight as float32, quantized ones as scale · q (what the fake-quant forward computes with). */
export function dequantizeCheckpoint(qc: QuantizedCheckpoint): WhisperCheckpoint {
  const weights = new Map<string, Float32Array>();
  for (const p of whisperParameters(qc.config)) {
    const q = quantizedOf(qc, p.name);
    weights.set(p.name, q ? dequantizeWeight(q) : qc.weights.get(p.name)!);
  }
  return { config: qc.config, weights };
}

/** The quantization_config recorded for `qc`. */
export function int8QuantizationConfig(qc: QuantizedCheckpoint): Int8QuantizationConfig {
  const moduleBits = [...qc.quantized].filter(([, q]) => q.bits !== qc.bits).map(([m, q]) => [m, q.bits as QuantBits] as const);
  return {
    quant_method: int8QuantMethod, bits: qc.bits, per_channel: true, symmetric: true, modules: [...qc.quantized.keys()],
    ...(moduleBits.length > 0 && { module_bits: Object.fromEntries(moduleBits) }),
  };
}

/**
 * config.json and model.safetensors of `qc` in the layout described at the top of this file, as
 * chunks for a writer (Node's writeFileAtomic, a browser download). `dtype` is the float tensors'
 * dtype (default F32). Throws CheckpointError naming a tensor that is missing or misshapen.
 */
export function hfInt8CheckpointFiles(qc: QuantizedCheckpoint, opts: { dtype?: WritableDtype } = {}): FileChunks[] {
  const dtype = opts.dtype ?? 'F32';
  const file = hfFileNames.weights;
  const tensors: EncodedTensorToWrite[] = [];
  for (const p of whisperParameters(qc.config)) {
    const q = quantizedOf(qc, p.name);
    if (q) {
      if (q.rows !== p.shape[0] || q.cols !== p.shape[1] || (q.bits !== 8 && q.bits !== 4)) {
        throw new CheckpointError(`${file}: tensor "${p.name}": quantized as [${q.rows}, ${q.cols}] at ${q.bits} bits, expected [${p.shape.join(', ')}] at 8 or 4`, file, p.name);
      }
      tensors.push(
        q.bits === 8
          ? { name: p.name, dtype: 'I8', shape: p.shape, bytes: () => new Uint8Array(q.q.buffer, q.q.byteOffset, q.q.byteLength) }
          : { name: p.name, dtype: 'U8', shape: [q.rows, Math.ceil(q.cols / 2)], bytes: () => packNibbles(q) },
        { name: `${p.name}_scale`, dtype: 'F32', shape: [q.rows], bytes: () => encodeFromF32('f32', q.scales) },
      );
    } else {
      const data = qc.weights.get(p.name);
      const count = p.shape.reduce((n, d) => n * d, 1);
      if (data?.length !== count) {
        throw new CheckpointError(`${file}: tensor "${p.name}" ${data ? `has ${data.length} values` : 'is missing'}, expected [${p.shape.join(', ')}]`, file, p.name);
      }
      tensors.push({ name: p.name, dtype, shape: p.shape, bytes: () => encodeFromF32(dtype === 'F32' ? 'f32' : 'f16', data) });
    }
  }
  const config = { ...qc.config, extra: { ...qc.config.extra, quantization_config: int8QuantizationConfig(qc) } };
  return [textFile(hfFileNames.config, hfConfigText(config)), encodeSafetensorsEncoded(file, tensors)];
}

/** A quantized checkpoint read from files. */
export interface LoadedQuantizedCheckpoint extends QuantizedCheckpoint {
  /** The dtype each float tensor had in its file (F32, F16, BF16). */
  readonly sourceDtypes: ReadonlyMap<string, string>;
  /** safetensors `__metadata__`. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Things that did not stop loading, e.g. a stored proj_out.weight that was ignored. */
  readonly warnings: readonly string[];
  readonly files: readonly string[];
}

function parseQuantizationConfig(value: unknown, config: WhisperConfig, file: string): { bits: QuantBits; modules: PlannedModule[] } {
  const failField = (message: string): never => {
    throw new CheckpointError(`${file}: quantization_config ${message}`, file);
  };
  if (value === undefined) failField(`is missing: not a ${int8QuantMethod} checkpoint (a float checkpoint reads with readHfCheckpoint)`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) failField(`is ${JSON.stringify(value)}, expected an object`);
  const v = value as Record<string, unknown>;
  if (v.quant_method !== int8QuantMethod) failField(`quant_method is ${JSON.stringify(v.quant_method)}, expected "${int8QuantMethod}"`);
  if (v.bits !== 8 && v.bits !== 4) failField(`bits is ${JSON.stringify(v.bits)}, expected 8 or 4`);
  if (v.per_channel !== true) failField(`per_channel is ${JSON.stringify(v.per_channel)}; only per-channel scales (true) are defined`);
  if (v.symmetric !== undefined && v.symmetric !== true) failField(`symmetric is ${JSON.stringify(v.symmetric)}; only symmetric quantization (true) is defined`);
  const modules = v.modules;
  if (!Array.isArray(modules) || !modules.every((m) => typeof m === 'string')) failField(`modules is ${JSON.stringify(modules)?.slice(0, 80)}, expected a list of module names`);
  const moduleBits = v.module_bits ?? {};
  if (typeof moduleBits !== 'object' || moduleBits === null || Array.isArray(moduleBits)) failField(`module_bits is ${JSON.stringify(moduleBits)?.slice(0, 80)}, expected an object of module name to bits`);
  for (const [m, b] of Object.entries(moduleBits as object)) {
    if (b !== 8 && b !== 4) failField(`module_bits "${m}" is ${JSON.stringify(b)}, expected 8 or 4`);
  }
  try {
    return resolvePlan(config, { modules: modules as string[], bits: v.bits as number, moduleBits: new Map(Object.entries(moduleBits as Record<string, number>)) });
  } catch (e) {
    if (e instanceof ConfigError) failField(e.message.replace(/^quantization plan: /, 'modules: '));
    throw e;
  }
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/**
 * Read a dq-whisper-int8 folder (config.json + model.safetensors): the config and its
 * quantization_config are checked, then every header entry (quantized weights of the right dtype
 * and shape with one F32 scale per output channel, float tensors exactly as a Whisper of that
 * config has them), before any data is read; integers outside [-qmax, qmax] and non-finite scales
 * are rejected too. Every error is a CheckpointError naming the file and tensor or field.
 */
export async function readHfInt8Checkpoint(open: FileOpener): Promise<LoadedQuantizedCheckpoint> {
  const opened: ByteSource[] = [];
  const openRequired = requiredOpener(open, opened);
  try {
    const configSource = await openRequired(hfFileNames.config, 'a quantized checkpoint needs its config.json');
    let json: unknown;
    try {
      json = JSON.parse(await readText(configSource));
    } catch (e) {
      throw new CheckpointError(`${configSource.name}: not valid JSON (${(e as Error).message})`, configSource.name);
    }
    const parsed = parseWhisperConfig(json, configSource.name);
    const { quantization_config: quantJson, ...extra } = parsed.extra ?? {};
    const config: WhisperConfig = { ...parsed, extra };
    const { bits: defaultBits, modules } = parseQuantizationConfig(quantJson, config, configSource.name);

    const source = await openRequired(hfFileNames.weights, `${configSource.name} lists ${modules.length} quantized modules, stored in one safetensors file`);
    const file = source.name;
    const header = await readSafetensorsHeader(source);
    const entries = new Map(header.tensors.map((e) => [e.name, e]));
    const fail = (tensor: string, message: string): never => {
      throw new CheckpointError(`${file}: tensor "${tensor}" ${message}`, file, tensor);
    };
    const shapes = new Map(whisperParameters(config).map((p) => [p.name, p.shape]));
    const quantizedEntries = new Map<string, { weight: SafetensorsEntry; scale: SafetensorsEntry; rows: number; cols: number; bits: QuantBits }>();
    for (const { module, weight: name, shape: [rows, cols], bits } of modules) {
      const weight = entries.get(name) ?? fail(name, `is missing (module "${module}" is listed as quantized in ${configSource.name})`);
      const scale = entries.get(`${name}_scale`) ?? fail(`${name}_scale`, `is missing: quantized "${name}" needs F32 [${rows}] scales`);
      const stored = bits === 8 ? { dtype: 'I8', shape: [rows, cols] } : { dtype: 'U8', shape: [rows, Math.ceil(cols / 2)] };
      if (weight.dtype !== stored.dtype) fail(name, `has dtype ${weight.dtype}, expected ${stored.dtype} (${bits}-bit quantized module in ${configSource.name})`);
      if (shapeText(weight.shape) !== shapeText(stored.shape)) fail(name, `has shape ${shapeText(weight.shape)}, expected ${shapeText(stored.shape)} (${bits}-bit values of a [${rows}, ${cols}] weight)`);
      if (scale.dtype !== 'F32') fail(scale.name, `has dtype ${scale.dtype}, expected F32`);
      if (shapeText(scale.shape) !== shapeText([rows])) fail(scale.name, `has shape ${shapeText(scale.shape)}, expected [${rows}] (one scale per output channel of "${name}" [${rows}, ${cols}])`);
      quantizedEntries.set(module, { weight, scale, rows, cols, bits });
    }
    const quantizedWeightNames = new Set(modules.map((m) => m.weight));
    const scaleNames = new Set(modules.map((m) => `${m.weight}_scale`));
    for (const e of header.tensors) {
      if (!quantizedWeightNames.has(e.name) && !scaleNames.has(e.name) && !(e.dtype in readableDtypes)) {
        fail(e.name, `has dtype ${e.dtype}, but ${configSource.name}'s quantization_config does not list its module; float tensors are F32, F16 or BF16`);
      }
    }
    checkWhisperInventory(
      config,
      header.tensors.filter((e) => !scaleNames.has(e.name)).map((e) => ({
        name: e.name, shape: quantizedWeightNames.has(e.name) ? shapes.get(e.name)! : e.shape, dtype: e.dtype, file,
      })),
      configSource.name,
      [...Object.keys(readableDtypes), 'I8', 'U8'],
    );

    const quantized = new Map<string, QuantizedWeight>();
    for (const [module, { weight, scale, rows, cols, bits }] of quantizedEntries) {
      const qmax = 2 ** (bits - 1) - 1;
      const bytes = await source.read(weight.begin, weight.byteLength, new Uint8Array(weight.byteLength));
      const q = bits === 8 ? new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : unpackNibbles(bytes, rows, cols);
      const bad = q.findIndex((v) => v < -qmax || v > qmax);
      if (bad >= 0) fail(weight.name, `holds ${q[bad]} at [${Math.floor(bad / cols)}, ${bad % cols}], outside [-${qmax}, ${qmax}] of ${bits}-bit symmetric quantization`);
      const scales = await readSafetensorsTensor(source, scale);
      const badScale = scales.findIndex((s) => !Number.isFinite(s));
      if (badScale >= 0) fail(scale.name, `holds ${scales[badScale]} for output channel ${badScale}, expected a finite scale`);
      quantized.set(module, { q, scales, rows, cols, bits });
    }
    const weights = new Map<string, Float32Array>();
    const sourceDtypes = new Map<string, string>();
    for (const p of whisperParameters(config)) {
      if (quantizedWeightNames.has(p.name)) continue;
      const entry = entries.get(p.name)!;
      weights.set(p.name, await readSafetensorsTensor(source, entry));
      sourceDtypes.set(p.name, entry.dtype);
    }
    const warnings = entries.has(tiedOutputProjection.name)
      ? [`${file}: "${tiedOutputProjection.name}" is stored but ignored; Whisper ties it to "${tiedOutputProjection.tiedTo}"`]
      : [];
    return { config, bits: defaultBits, weights, quantized, sourceDtypes, metadata: header.metadata, warnings, files: opened.map((s) => s.name) };
  } finally {
    await Promise.all(opened.map((s) => s.close?.()));
  }
}

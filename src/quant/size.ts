import { parameterCount, whisperParameters, type WhisperConfig } from '../model/config.js';
import type { WritableDtype } from '../io/safetensors.js';
import { resolvePlan, type QuantBits, type QuantizationPlan } from './weights.js';

// Sizes as the paper's table reports them: parameters, bytes of weights, and how many times
// smaller than the teacher stored as float32. Bytes are the tensor data of the dq-whisper-int8
// safetensors file (src/quant/hf-int8.ts): quantized weights at bits/8 bytes per value (4-bit
// rows padded to whole bytes) plus one f32 scale per output channel, other tensors at the float
// dtype's size. The file adds only its JSON header and config.json (tens of kB) to this.

/** One row of a size table. */
export interface SizeRow {
  readonly label: string;
  /** Parameters (the tied output projection counted once; scales are not parameters). */
  readonly parameters: number;
  /** Bytes of tensor data. */
  readonly bytes: number;
  /** Teacher's float32 bytes / these bytes: how many times smaller. */
  readonly compression: number;
}

/** A model to size: its config, the quantization plan (none: all float) and the float tensors' dtype. */
export interface SizedModel {
  readonly label: string;
  readonly config: WhisperConfig;
  readonly plan?: QuantizationPlan;
  /** Dtype of the tensors not quantized; default F32. */
  readonly floatDtype?: WritableDtype;
}

/** Bytes of a weight [rows, cols] quantized to `bits` as hf-int8.ts stores it: whole bytes per row, plus one f32 scale per row. */
export function quantizedWeightBytes(shape: readonly [number, number], bits: QuantBits): number {
  return shape[0] * (Math.ceil((shape[1] * bits) / 8) + 4);
}

/** Bytes of tensor data of `model` stored as hf-int8.ts writes it (see the note above). */
export function checkpointBytes(model: Omit<SizedModel, 'label'>): number {
  const floatBytes = model.floatDtype === 'F16' ? 2 : 4;
  const quantized = new Map<string, number>();
  if (model.plan) {
    for (const m of resolvePlan(model.config, model.plan).modules) quantized.set(m.weight, quantizedWeightBytes(m.shape, m.bits));
  }
  return whisperParameters(model.config).reduce((n, p) => n + (quantized.get(p.name) ?? floatBytes * p.shape.reduce((a, b) => a * b, 1)), 0);
}

/**
 * Parameters, bytes and compression against `teacher` stored as float32, one row per model
 * (first row: the teacher itself, so the table reads as the paper's).
 */
export function sizeTable(teacher: SizedModel, models: readonly SizedModel[]): SizeRow[] {
  const teacherBytes = 4 * parameterCount(teacher.config);
  return [teacher, ...models].map((m) => {
    const bytes = checkpointBytes(m);
    return { label: m.label, parameters: parameterCount(m.config), bytes, compression: teacherBytes / bytes };
  });
}

/** A size table as Markdown: parameters in millions, MB (10^6 bytes), compression to two decimals. */
export function formatSizeTable(rows: readonly SizeRow[]): string {
  const lines = ['| model | parameters | MB | × smaller than teacher f32 |', '|---|---:|---:|---:|'];
  for (const r of rows) lines.push(`| ${r.label} | ${(r.parameters / 1e6).toFixed(2)} M | ${(r.bytes / 1e6).toFixed(2)} | ${r.compression.toFixed(2)} |`);
  return `${lines.join('\n')}\n`;
}

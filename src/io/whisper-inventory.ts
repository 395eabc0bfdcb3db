import { CheckpointError } from '../errors.js';
import { tiedOutputProjection, whisperParameters, type WhisperConfig } from '../model/config.js';

/** A tensor as a checkpoint's header describes it, before any data is read. */
export interface StoredTensor {
  /** Hugging Face name (ggml names are mapped before the check). */
  readonly name: string;
  /** PyTorch-order shape. */
  readonly shape: readonly number[];
  /** The dtype as the file calls it (F32, F16, BF16, f32, f16, ...). */
  readonly dtype: string;
  /** File that holds it. */
  readonly file: string;
}

/** A model in memory: its config and float32 weights keyed by Hugging Face name. */
export interface WhisperCheckpoint {
  readonly config: WhisperConfig;
  /** Every tensor of {@link whisperParameters}; `proj_out.weight` is tied and never included. */
  readonly weights: Map<string, Float32Array>;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

// Where each config field shows in the weights, so a disagreement is reported as such rather than
// as dozens of wrong shapes.
const configWitnesses: ReadonlyArray<{ field: keyof WhisperConfig; tensor: string; dim: number }> = [
  { field: 'd_model', tensor: 'model.encoder.conv1.bias', dim: 0 },
  { field: 'num_mel_bins', tensor: 'model.encoder.conv1.weight', dim: 1 },
  { field: 'vocab_size', tensor: 'model.decoder.embed_tokens.weight', dim: 0 },
  { field: 'max_source_positions', tensor: 'model.encoder.embed_positions.weight', dim: 0 },
  { field: 'max_target_positions', tensor: 'model.decoder.embed_positions.weight', dim: 0 },
  { field: 'encoder_ffn_dim', tensor: 'model.encoder.layers.0.fc1.weight', dim: 0 },
  { field: 'decoder_ffn_dim', tensor: 'model.decoder.layers.0.fc1.weight', dim: 0 },
];

function configDisagreements(config: WhisperConfig, stored: ReadonlyMap<string, StoredTensor>, configSource: string): { text: string; tensor?: string }[] {
  const lines: { text: string; tensor?: string }[] = [];
  for (const { field, tensor, dim } of configWitnesses) {
    const t = stored.get(tensor);
    const found = t?.shape[dim];
    if (found !== undefined && found !== config[field]) {
      lines.push({ text: `${configSource} says ${field} ${String(config[field])} but the weights have ${found} (${t!.file}: "${tensor}" ${shapeText(t!.shape)})`, tensor });
    }
  }
  for (const [side, field] of [['encoder', 'encoder_layers'], ['decoder', 'decoder_layers']] as const) {
    const pattern = new RegExp(`^model\\.${side}\\.layers\\.(\\d+)\\.`);
    let layers = 0;
    for (const name of stored.keys()) {
      const m = pattern.exec(name);
      if (m) layers = Math.max(layers, Number(m[1]) + 1);
    }
    if (layers !== config[field]) lines.push({ text: `${configSource} says ${field} ${config[field]} but the weights have ${layers} ${side} layers` });
  }
  return lines;
}

/**
 * Check, before reading any data, that the tensors a checkpoint declares are exactly those of a
 * Whisper with `config`: none missing or unexpected, each of the expected shape and of a dtype in
 * `readableDtypes`. `proj_out.weight` may be present with the token embedding's shape. Throws one
 * CheckpointError listing every problem, config/weights disagreements (d_model, layers, vocab,
 * ...) first, each naming the file and tensor.
 */
export function checkWhisperInventory(
  config: WhisperConfig,
  tensors: readonly StoredTensor[],
  configSource: string,
  readableDtypes: readonly string[],
): void {
  const stored = new Map<string, StoredTensor>();
  const problems: { text: string; file: string; tensor?: string }[] = [];
  for (const t of tensors) {
    const other = stored.get(t.name);
    if (other) problems.push({ text: `tensor "${t.name}" is stored twice (${other.file} and ${t.file})`, file: t.file, tensor: t.name });
    stored.set(t.name, t);
  }
  for (const d of configDisagreements(config, stored, configSource)) problems.push({ ...d, file: configSource });
  const expected = new Map(whisperParameters(config).map((p) => [p.name, p.shape] as const));
  expected.set(tiedOutputProjection.name, expected.get(tiedOutputProjection.tiedTo)!);
  for (const [name, shape] of expected) {
    const t = stored.get(name);
    if (t === undefined) {
      if (name !== tiedOutputProjection.name) {
        problems.push({ text: `missing tensor "${name}" (expected shape ${shapeText(shape)})`, file: configSource, tensor: name });
      }
    } else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      problems.push({ text: `${t.file}: tensor "${name}" has shape ${shapeText(t.shape)}, expected ${shapeText(shape)}`, file: t.file, tensor: name });
    }
  }
  for (const t of stored.values()) {
    if (!expected.has(t.name)) problems.push({ text: `${t.file}: unexpected tensor "${t.name}" ${shapeText(t.shape)}`, file: t.file, tensor: t.name });
    else if (!readableDtypes.includes(t.dtype)) {
      problems.push({ text: `${t.file}: tensor "${t.name}" has dtype ${t.dtype}, expected one of ${readableDtypes.join(', ')}`, file: t.file, tensor: t.name });
    }
  }
  if (problems.length === 0) return;
  const shown = problems.slice(0, 16).map((p) => p.text);
  if (problems.length > shown.length) shown.push(`... and ${problems.length - shown.length} more`);
  const first = problems.find((p) => p.tensor !== undefined) ?? problems[0]!;
  throw new CheckpointError(
    `${first.file}: ${problems.length} problem(s) loading a Whisper checkpoint (config from ${configSource}: d_model ${config.d_model}, ` +
      `${config.encoder_layers}+${config.decoder_layers} layers, vocab ${config.vocab_size}):\n  ${shown.join('\n  ')}`,
    first.file,
    first.tensor,
  );
}

/**
 * Compare a stored `proj_out.weight` with the token embedding it is tied to. Returns a warning
 * when they differ (dq-whisper, like transformers, always uses the embedding), else undefined.
 */
export function tiedProjectionWarning(file: string, projection: Float32Array, embedding: Float32Array): string | undefined {
  let differing = 0;
  let worst = 0;
  for (let i = 0; i < embedding.length; i++) {
    const d = Math.abs(projection[i]! - embedding[i]!);
    if (!(d === 0)) {
      differing++;
      worst = Math.max(worst, Number.isNaN(d) ? Infinity : d);
    }
  }
  if (differing === 0) return undefined;
  return `${file}: "${tiedOutputProjection.name}" differs from "${tiedOutputProjection.tiedTo}" in ${differing} of ${embedding.length} values (max |diff| ${worst}); ` +
    'Whisper ties them, so the token embedding is used and proj_out.weight is ignored';
}

import { ConfigError } from '../errors.js';

/**
 * Whisper's architecture hyper-parameters, with Hugging Face `config.json` field names so a config
 * moves between dq-whisper and transformers unchanged. Fields transformers keeps that do not
 * change the computation (dropout, spec-augment, ...) are carried in `extra` and written back.
 */
export interface WhisperConfig {
  vocab_size: number;
  num_mel_bins: number;
  d_model: number;
  encoder_layers: number;
  encoder_attention_heads: number;
  encoder_ffn_dim: number;
  decoder_layers: number;
  decoder_attention_heads: number;
  decoder_ffn_dim: number;
  /** Encoder positions = mel frames / 2; 1500 for 30 s. Smaller values give a shorter audio context. */
  max_source_positions: number;
  /** Decoder positions (text context); 448 in every released model. */
  max_target_positions: number;
  decoder_start_token_id: number;
  eos_token_id: number;
  pad_token_id: number;
  bos_token_id: number;
  /** Other config.json fields, kept so a round trip through dq-whisper loses nothing. */
  extra?: Record<string, unknown>;
}

/** Released model sizes. `.en` models use the English-only vocabulary (51,864 tokens). */
export type WhisperPreset =
  | 'tiny' | 'tiny.en' | 'base' | 'base.en' | 'small' | 'small.en' | 'medium' | 'medium.en'
  | 'large-v1' | 'large-v2' | 'large-v3' | 'large-v3-turbo';

interface Shape { d: number; layers: number; heads: number; decoderLayers?: number }

const sizes: Record<string, Shape> = {
  tiny: { d: 384, layers: 4, heads: 6 },
  base: { d: 512, layers: 6, heads: 8 },
  small: { d: 768, layers: 12, heads: 12 },
  medium: { d: 1024, layers: 24, heads: 16 },
  large: { d: 1280, layers: 32, heads: 20 },
  turbo: { d: 1280, layers: 32, heads: 20, decoderLayers: 4 },
};

/** All preset names, in size order. */
export const whisperPresets: readonly WhisperPreset[] = [
  'tiny', 'tiny.en', 'base', 'base.en', 'small', 'small.en', 'medium', 'medium.en',
  'large-v1', 'large-v2', 'large-v3', 'large-v3-turbo',
];

/** The configuration of a released Whisper model, as in its Hugging Face config.json. */
export function presetConfig(name: WhisperPreset): WhisperConfig {
  if (!whisperPresets.includes(name)) {
    throw new ConfigError(`unknown Whisper preset "${name}"; expected one of ${whisperPresets.join(', ')}`);
  }
  const englishOnly = name.endsWith('.en');
  const v3 = name.startsWith('large-v3');
  const shape = sizes[name === 'large-v3-turbo' ? 'turbo' : name.replace(/\.en$/, '').replace(/-v\d$/, '')]!;
  // Token ids shift by one in the English-only vocabulary (no <|nocaptions|> gap) and by one more
  // language token (yue) in v3; these are the values in the released config.json files.
  const vocab = englishOnly ? 51864 : v3 ? 51866 : 51865;
  const eot = englishOnly ? 50256 : 50257;
  return {
    vocab_size: vocab,
    num_mel_bins: v3 ? 128 : 80,
    d_model: shape.d,
    encoder_layers: shape.layers,
    encoder_attention_heads: shape.heads,
    encoder_ffn_dim: 4 * shape.d,
    decoder_layers: shape.decoderLayers ?? shape.layers,
    decoder_attention_heads: shape.heads,
    decoder_ffn_dim: 4 * shape.d,
    max_source_positions: 1500,
    max_target_positions: 448,
    decoder_start_token_id: eot + 1,
    eos_token_id: eot,
    pad_token_id: eot,
    bos_token_id: eot,
  };
}

const requiredFields = [
  'vocab_size', 'num_mel_bins', 'd_model', 'encoder_layers', 'encoder_attention_heads', 'encoder_ffn_dim',
  'decoder_layers', 'decoder_attention_heads', 'decoder_ffn_dim', 'max_source_positions', 'max_target_positions',
] as const;

const tokenFields = ['decoder_start_token_id', 'eos_token_id', 'pad_token_id', 'bos_token_id'] as const;

/**
 * Parse and check a Hugging Face Whisper `config.json` object. `source` names the file in errors.
 * Throws ConfigError naming the field when one is missing, not a positive integer, or inconsistent
 * (d_model not divisible by the heads, token ids outside the vocabulary).
 */
export function parseWhisperConfig(json: unknown, source = 'config.json'): WhisperConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError(`${source}: expected a JSON object`);
  }
  const obj = json as Record<string, unknown>;
  if (obj.model_type !== undefined && obj.model_type !== 'whisper') {
    throw new ConfigError(`${source}: model_type is "${String(obj.model_type)}", expected "whisper"`);
  }
  if (obj.activation_function !== undefined && obj.activation_function !== 'gelu') {
    throw new ConfigError(`${source}: activation_function is "${String(obj.activation_function)}"; only "gelu" (Whisper's) is supported`);
  }
  if (obj.scale_embedding === true) {
    throw new ConfigError(`${source}: scale_embedding is true; Whisper checkpoints use false and dq-whisper implements only that`);
  }
  const defaults = presetConfig('tiny');
  const config: Record<string, unknown> = {};
  for (const field of requiredFields) {
    const v = obj[field];
    if (v === undefined) throw new ConfigError(`${source}: missing field "${field}"`);
    config[field] = v;
  }
  for (const field of tokenFields) config[field] = obj[field] ?? defaults[field];
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) if (!(k in config)) extra[k] = v;
  const parsed = { ...(config as unknown as WhisperConfig), extra };
  validateWhisperConfig(parsed, source);
  return parsed;
}

/** Check a configuration's invariants; `source` names where it came from in errors. */
export function validateWhisperConfig(c: WhisperConfig, source = 'config'): void {
  for (const field of [...requiredFields, ...tokenFields]) {
    const v = c[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < (tokenFields.includes(field as never) ? 0 : 1)) {
      throw new ConfigError(`${source}: field "${field}" is ${JSON.stringify(v)}, expected a ${tokenFields.includes(field as never) ? 'non-negative' : 'positive'} integer`);
    }
  }
  for (const [heads, name] of [[c.encoder_attention_heads, 'encoder_attention_heads'], [c.decoder_attention_heads, 'decoder_attention_heads']] as const) {
    if (c.d_model % heads !== 0) {
      throw new ConfigError(`${source}: d_model ${c.d_model} is not divisible by ${name} ${heads}`);
    }
  }
  for (const field of tokenFields) {
    if (c[field] >= c.vocab_size) {
      throw new ConfigError(`${source}: ${field} ${c[field]} is outside the vocabulary of ${c.vocab_size} tokens`);
    }
  }
}

/** The config.json object for `c`, with the fields transformers needs to load it. */
export function whisperConfigJson(c: WhisperConfig): Record<string, unknown> {
  const { extra, ...fields } = c;
  return {
    architectures: ['WhisperForConditionalGeneration'],
    model_type: 'whisper',
    activation_function: 'gelu',
    scale_embedding: false,
    is_encoder_decoder: true,
    ...extra,
    ...fields,
    // Derived from the layers, never carried over: a config cut from another (a student from its
    // teacher) would otherwise keep the teacher's count in `extra`.
    num_hidden_layers: c.encoder_layers,
  };
}

/** Mel frames of the encoder input: two per encoder position (conv2 has stride 2). */
export function melFrames(c: WhisperConfig): number {
  return 2 * c.max_source_positions;
}

/** One parameter tensor: Hugging Face name and shape (PyTorch layout: Linear weight is [out, in]). */
export interface ParameterSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

function attentionSpecs(prefix: string, d: number): ParameterSpec[] {
  // Whisper's k projection has no bias; q, v and out have one.
  return [
    { name: `${prefix}.k_proj.weight`, shape: [d, d] },
    { name: `${prefix}.v_proj.weight`, shape: [d, d] },
    { name: `${prefix}.v_proj.bias`, shape: [d] },
    { name: `${prefix}.q_proj.weight`, shape: [d, d] },
    { name: `${prefix}.q_proj.bias`, shape: [d] },
    { name: `${prefix}.out_proj.weight`, shape: [d, d] },
    { name: `${prefix}.out_proj.bias`, shape: [d] },
  ];
}

function norm(name: string, d: number): ParameterSpec[] {
  return [{ name: `${name}.weight`, shape: [d] }, { name: `${name}.bias`, shape: [d] }];
}

function mlp(prefix: string, d: number, ffn: number): ParameterSpec[] {
  return [
    { name: `${prefix}.fc1.weight`, shape: [ffn, d] },
    { name: `${prefix}.fc1.bias`, shape: [ffn] },
    { name: `${prefix}.fc2.weight`, shape: [d, ffn] },
    { name: `${prefix}.fc2.bias`, shape: [d] },
  ];
}

/**
 * Every parameter of WhisperForConditionalGeneration in the order transformers declares them,
 * with their Hugging Face names. `proj_out.weight` is tied to `model.decoder.embed_tokens.weight`
 * and so not listed (transformers does not save it either).
 */
export function whisperParameters(c: WhisperConfig): ParameterSpec[] {
  const d = c.d_model;
  const specs: ParameterSpec[] = [
    { name: 'model.encoder.conv1.weight', shape: [d, c.num_mel_bins, 3] },
    { name: 'model.encoder.conv1.bias', shape: [d] },
    { name: 'model.encoder.conv2.weight', shape: [d, d, 3] },
    { name: 'model.encoder.conv2.bias', shape: [d] },
    { name: 'model.encoder.embed_positions.weight', shape: [c.max_source_positions, d] },
  ];
  for (let i = 0; i < c.encoder_layers; i++) {
    const p = `model.encoder.layers.${i}`;
    specs.push(...attentionSpecs(`${p}.self_attn`, d), ...norm(`${p}.self_attn_layer_norm`, d), ...mlp(p, d, c.encoder_ffn_dim), ...norm(`${p}.final_layer_norm`, d));
  }
  specs.push(...norm('model.encoder.layer_norm', d));
  specs.push(
    { name: 'model.decoder.embed_tokens.weight', shape: [c.vocab_size, d] },
    { name: 'model.decoder.embed_positions.weight', shape: [c.max_target_positions, d] },
  );
  for (let i = 0; i < c.decoder_layers; i++) {
    const p = `model.decoder.layers.${i}`;
    specs.push(
      ...attentionSpecs(`${p}.self_attn`, d), ...norm(`${p}.self_attn_layer_norm`, d),
      ...attentionSpecs(`${p}.encoder_attn`, d), ...norm(`${p}.encoder_attn_layer_norm`, d),
      ...mlp(p, d, c.decoder_ffn_dim), ...norm(`${p}.final_layer_norm`, d),
    );
  }
  specs.push(...norm('model.decoder.layer_norm', d));
  return specs;
}

/** Name of the output projection, tied to the token embedding. */
export const tiedOutputProjection = { name: 'proj_out.weight', tiedTo: 'model.decoder.embed_tokens.weight' } as const;

/** Total parameter count (tied output projection counted once). */
export function parameterCount(c: WhisperConfig): number {
  return whisperParameters(c).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * Whisper's fixed sinusoidal encoder positions (whisper/model.py `sinusoids`): row t is
 * [sin(t·inc_0..), cos(t·inc_0..)] with inc_i = exp(-ln(10000)·i/(d/2−1)). Checkpoints store them
 * as `model.encoder.embed_positions.weight`; this builds them for new models.
 */
export function sinusoidalPositions(length: number, channels: number): Float32Array {
  if (channels % 2 !== 0) throw new ConfigError(`sinusoidal positions need an even channel count, got ${channels}`);
  const half = channels / 2;
  const logIncrement = Math.log(10000) / (half - 1);
  const out = new Float32Array(length * channels);
  for (let t = 0; t < length; t++) {
    for (let i = 0; i < half; i++) {
      const angle = t * Math.exp(-logIncrement * i);
      out[t * channels + i] = Math.sin(angle);
      out[t * channels + half + i] = Math.cos(angle);
    }
  }
  return out;
}

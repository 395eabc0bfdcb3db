import { CheckpointError } from '../errors.js';
import { validateWhisperConfig, whisperParameters, type WhisperConfig } from '../model/config.js';
import { checkWhisperWeights } from '../model/init.js';
import { SequentialReader, type ByteSource, type FileChunks } from './byte-source.js';
import { decodeToF32, encodeFromF32 } from './float-codecs.js';
import { decodeQ8_0, encodeQ8_0, q8_0BlockValues, q8_0ByteLength } from '../quant/q8_0.js';
import type { LoadedCheckpoint, ProgressCallback } from './huggingface.js';
import { checkWhisperInventory, type WhisperCheckpoint } from './whisper-inventory.js';

// whisper.cpp's legacy ggml model file, as its models/convert-pt-to-ggml.py and
// convert-h5-to-ggml.py write it and whisper.cpp's whisper_model_load reads it, all int32 and
// float32 little-endian:
//   magic 0x67676d6c ("ggml"), 11 hparams (GgmlHparams order), mel filters (n_mel, n_fft,
//   n_mel·n_fft f32), vocabulary (count, then per token: byte length, bytes), then tensors until
//   end of file: n_dims, name length, type, ne[0..n_dims) (ggml order: fastest dimension first,
//   the reverse of PyTorch's shape), name, raw data with no padding.

/** The ggml magic, "ggml" as a little-endian int32. */
export const ggmlMagic = 0x67676d6c;

/** whisper.cpp's hyper-parameters, in file order. */
export interface GgmlHparams {
  n_vocab: number;
  n_audio_ctx: number;
  n_audio_state: number;
  n_audio_head: number;
  n_audio_layer: number;
  n_text_ctx: number;
  n_text_state: number;
  n_text_head: number;
  n_text_layer: number;
  n_mels: number;
  /** 0: all f32; 1: f16 matrices (whisper.cpp's "mostly f16"); quantized types are ≥ 2. */
  ftype: number;
}

const hparamOrder = [
  'n_vocab', 'n_audio_ctx', 'n_audio_state', 'n_audio_head', 'n_audio_layer',
  'n_text_ctx', 'n_text_state', 'n_text_head', 'n_text_layer', 'n_mels', 'ftype',
] as const satisfies readonly (keyof GgmlHparams)[];

/** The log-mel filterbank stored in the file: n_mel rows of n_fft (201 for Whisper's 400-point FFT) weights. */
export interface GgmlMelFilters {
  readonly n_mel: number;
  readonly n_fft: number;
  readonly data: Float32Array;
}

/** Tensor storage types this module reads and writes (q8_0: ggml's 8-bit blocks, see src/quant/q8_0.ts). */
export type GgmlTensorType = 'f32' | 'f16' | 'q8_0';

/** How one tensor type is stored: its ggml type id, byte size and conversion from/to float32. */
interface GgmlTensorCodec {
  readonly id: number;
  /** Values per block along ne[0]; ne[0] must be a multiple (1 for plain floats). */
  readonly block: number;
  byteLength(count: number): number;
  encode(values: Float32Array): Uint8Array;
  decode(bytes: Uint8Array, out: Float32Array): void;
}

const ggmlTensorCodecs: Readonly<Record<GgmlTensorType, GgmlTensorCodec>> = {
  f32: { id: 0, block: 1, byteLength: (n) => 4 * n, encode: (v) => encodeFromF32('f32', v), decode: (b, out) => decodeToF32('f32', b, out) },
  f16: { id: 1, block: 1, byteLength: (n) => 2 * n, encode: (v) => encodeFromF32('f16', v), decode: (b, out) => decodeToF32('f16', b, out) },
  q8_0: { id: 8, block: q8_0BlockValues, byteLength: q8_0ByteLength, encode: encodeQ8_0, decode: decodeQ8_0 },
};

/** Throws CheckpointError (naming the file and tensor) when ne[0] is not a whole number of the type's blocks. */
function checkBlocks(file: string, name: string, ne: readonly number[], type: GgmlTensorType): void {
  const block = ggmlTensorCodecs[type].block;
  if (ne[0]! % block !== 0) fail(file, `is ${type} with ne[0] = ${ne[0]}, which must be a multiple of the ${block}-value ${type} block`, name);
}

// ggml's type ids (ggml.h enum ggml_type), so a file with other types gets a clear message.
const ggmlTypeNames: Readonly<Record<number, string>> = {
  0: 'f32', 1: 'f16', 2: 'q4_0', 3: 'q4_1', 6: 'q5_0', 7: 'q5_1', 8: 'q8_0', 9: 'q8_1', 10: 'q2_k', 11: 'q3_k', 12: 'q4_k', 13: 'q5_k', 14: 'q6_k', 15: 'q8_k',
};

function codecOfId(id: number): GgmlTensorType | undefined {
  return (Object.keys(ggmlTensorCodecs) as GgmlTensorType[]).find((t) => ggmlTensorCodecs[t].id === id);
}

/** One tensor of a ggml file as its header describes it. */
export interface GgmlTensorEntry {
  /** whisper.cpp name, e.g. "encoder.blocks.0.attn.query.weight". */
  readonly name: string;
  /** ggml dimensions, fastest first (PyTorch shape reversed). */
  readonly ne: readonly number[];
  readonly type: GgmlTensorType;
  /** File offset of the data. */
  readonly dataOffset: number;
  readonly byteLength: number;
}

/** Everything in a ggml file but the tensor data. */
export interface GgmlHeader {
  readonly hparams: GgmlHparams;
  readonly melFilters: GgmlMelFilters;
  /** Token byte strings in id order (whisper.cpp fills ids past these with its special tokens). */
  readonly vocab: readonly Uint8Array[];
  readonly tensors: readonly GgmlTensorEntry[];
}

function fail(file: string, message: string, tensor?: string): never {
  throw new CheckpointError(`${file}: ${tensor === undefined ? '' : `tensor "${tensor}": `}${message}`, file, tensor);
}

// Sanity bounds that keep a corrupt count from allocating gigabytes before the end-of-file check.
const maxTokenBytes = 1 << 16;
const maxNameBytes = 1 << 12;
const maxDims = 4;

/**
 * Read a ggml file's hparams, mel filters, vocabulary and tensor headers, skipping tensor data.
 * Throws CheckpointError for a wrong magic (GGUF is named as such), non-positive hparams,
 * truncation anywhere (counts or data running past the end), tensor types other than f32/f16/q8_0
 * (and q8_0 rows that are not whole blocks),
 * and duplicate tensor names.
 */
export async function readGgmlHeader(source: ByteSource): Promise<GgmlHeader> {
  const file = source.name;
  const r = new SequentialReader(source);
  await r.ensure(4 + 4 * hparamOrder.length);
  const magic = r.i32() >>> 0;
  if (magic !== ggmlMagic) {
    const gguf = magic === 0x46554747;
    fail(file, `magic 0x${magic.toString(16)} is not whisper.cpp's ggml magic 0x${ggmlMagic.toString(16)}` +
      (gguf ? ' (this is a GGUF file, which whisper.cpp does not use for Whisper models)' : ''));
  }
  const hparams = {} as GgmlHparams;
  for (const key of hparamOrder) {
    const v = r.i32();
    if (key === 'ftype' ? v < 0 : v <= 0) fail(file, `hparam ${key} is ${v}, expected a ${key === 'ftype' ? 'non-negative' : 'positive'} integer`);
    hparams[key] = v;
  }
  await r.ensure(8);
  const nMel = r.i32();
  const nFft = r.i32();
  if (nMel < 0 || nFft < 0) fail(file, `mel filters are ${nMel}x${nFft}, expected non-negative dimensions`);
  await r.ensure(4 * nMel * nFft);
  const melFilters = { n_mel: nMel, n_fft: nFft, data: r.f32s(nMel * nFft) };
  await r.ensure(4);
  const vocabCount = r.i32();
  if (vocabCount < 0 || vocabCount > hparams.n_vocab) fail(file, `vocabulary has ${vocabCount} tokens, expected 0..n_vocab (${hparams.n_vocab})`);
  const vocab: Uint8Array[] = [];
  for (let i = 0; i < vocabCount; i++) {
    await r.ensure(4);
    const length = r.i32();
    if (length < 0 || length > maxTokenBytes) fail(file, `token ${i} has byte length ${length} at offset ${r.position - 4}, expected 0..${maxTokenBytes}`);
    await r.ensure(length);
    vocab.push(r.bytes(length));
  }
  const tensors: GgmlTensorEntry[] = [];
  const seen = new Set<string>();
  while (r.position < source.size) {
    await r.ensure(12);
    const nDims = r.i32();
    const nameLength = r.i32();
    const typeId = r.i32();
    const at = r.position - 12;
    if (nDims < 1 || nDims > maxDims || nameLength < 1 || nameLength > maxNameBytes) {
      fail(file, `tensor header at offset ${at} has n_dims ${nDims} and name length ${nameLength}, expected 1..${maxDims} and 1..${maxNameBytes}`);
    }
    await r.ensure(4 * nDims + nameLength);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(r.i32());
    const name = new TextDecoder().decode(r.bytes(nameLength));
    if (ne.some((n) => n < 1)) fail(file, `dimensions [${ne.join(', ')}] must be positive`, name);
    const type = codecOfId(typeId);
    if (type === undefined) {
      fail(file, `type ${ggmlTypeNames[typeId] ?? `id ${typeId}`} is not supported; expected ${Object.keys(ggmlTensorCodecs).join(', ')}`, name);
    }
    checkBlocks(file, name, ne, type);
    if (seen.has(name)) fail(file, 'appears twice', name);
    seen.add(name);
    const byteLength = ggmlTensorCodecs[type].byteLength(ne.reduce((n, d) => n * d, 1));
    if (r.position + byteLength > source.size) {
      fail(file, `data of ${byteLength} bytes at offset ${r.position} runs past the end of the file (${source.size} bytes): the file is truncated`, name);
    }
    tensors.push({ name, ne, type, dataOffset: r.position, byteLength });
    r.skip(byteLength);
  }
  return { hparams, melFilters, vocab, tensors };
}

/** Read one tensor's data (its byte range only) as float32. */
export async function readGgmlTensor(source: ByteSource, entry: GgmlTensorEntry): Promise<Float32Array> {
  const out = new Float32Array(entry.ne.reduce((n, d) => n * d, 1));
  const target = entry.type === 'f32' ? new Uint8Array(out.buffer) : new Uint8Array(entry.byteLength);
  const bytes = await source.read(entry.dataOffset, entry.byteLength, target);
  if (entry.type !== 'f32') ggmlTensorCodecs[entry.type].decode(bytes, out);
  return out;
}

/** One tensor to write to a ggml file. */
export interface GgmlTensorToWrite {
  readonly name: string;
  /** ggml dimensions, fastest first. */
  readonly ne: readonly number[];
  readonly type: GgmlTensorType;
  readonly data: Float32Array;
}

/** The content of a ggml file, for {@link encodeGgml}. */
export interface GgmlContent {
  readonly hparams: GgmlHparams;
  readonly melFilters: GgmlMelFilters;
  readonly vocab: readonly Uint8Array[];
  readonly tensors: readonly GgmlTensorToWrite[];
}

/**
 * A ggml file as chunks, byte for byte as whisper.cpp's converters lay it out: given the header,
 * filters and vocabulary read from a file, the bytes before the tensors are identical.
 */
export function encodeGgml(name: string, content: GgmlContent): FileChunks {
  const { hparams, melFilters, vocab, tensors } = content;
  if (melFilters.data.length !== melFilters.n_mel * melFilters.n_fft) {
    fail(name, `mel filters hold ${melFilters.data.length} values, expected n_mel ${melFilters.n_mel} × n_fft ${melFilters.n_fft}`);
  }
  if (vocab.length > hparams.n_vocab) fail(name, `vocabulary has ${vocab.length} tokens, more than n_vocab ${hparams.n_vocab}`);
  const vocabBytes = vocab.reduce((n, t) => n + 4 + t.byteLength, 4);
  const head = new Uint8Array(4 * (1 + hparamOrder.length) + 8 + 4 * melFilters.data.length + vocabBytes);
  const view = new DataView(head.buffer);
  let at = 0;
  const i32 = (v: number) => {
    view.setInt32(at, v, true);
    at += 4;
  };
  i32(ggmlMagic);
  for (const key of hparamOrder) i32(hparams[key]);
  i32(melFilters.n_mel);
  i32(melFilters.n_fft);
  for (const v of melFilters.data) {
    view.setFloat32(at, v, true);
    at += 4;
  }
  i32(vocab.length);
  for (const token of vocab) {
    i32(token.byteLength);
    head.set(token, at);
    at += token.byteLength;
  }
  const encoder = new TextEncoder();
  const tensorHeads = tensors.map((t) => {
    if (t.data.length !== t.ne.reduce((n, d) => n * d, 1)) fail(name, `has ${t.data.length} values, expected ${t.ne.join('×')}`, t.name);
    checkBlocks(name, t.name, t.ne, t.type);
    const nameBytes = encoder.encode(t.name);
    const th = new Uint8Array(12 + 4 * t.ne.length + nameBytes.byteLength);
    const tv = new DataView(th.buffer);
    tv.setInt32(0, t.ne.length, true);
    tv.setInt32(4, nameBytes.byteLength, true);
    tv.setInt32(8, ggmlTensorCodecs[t.type].id, true);
    t.ne.forEach((n, d) => tv.setInt32(12 + 4 * d, n, true));
    th.set(nameBytes, 12 + 4 * t.ne.length);
    return th;
  });
  const byteLength = tensors.reduce((n, t, i) => n + tensorHeads[i]!.byteLength + ggmlTensorCodecs[t.type].byteLength(t.data.length), head.byteLength);
  return {
    name,
    byteLength,
    *chunks() {
      yield head;
      for (const [i, t] of tensors.entries()) {
        yield tensorHeads[i]!;
        yield ggmlTensorCodecs[t.type].encode(t.data);
      }
    },
  };
}

// ---- Whisper tensors: Hugging Face names and shapes <-> whisper.cpp's ----

// Inside a block: HF suffix -> whisper.cpp suffix (convert-h5-to-ggml.py's conv_map). The decoder's
// self_attn is "attn" and encoder_attn is "cross_attn", as in OpenAI's checkpoints.
const blockParts: ReadonlyArray<readonly [string, string]> = [
  ['self_attn.q_proj', 'attn.query'], ['self_attn.k_proj', 'attn.key'], ['self_attn.v_proj', 'attn.value'], ['self_attn.out_proj', 'attn.out'],
  ['self_attn_layer_norm', 'attn_ln'],
  ['encoder_attn.q_proj', 'cross_attn.query'], ['encoder_attn.k_proj', 'cross_attn.key'], ['encoder_attn.v_proj', 'cross_attn.value'],
  ['encoder_attn.out_proj', 'cross_attn.out'], ['encoder_attn_layer_norm', 'cross_attn_ln'],
  ['fc1', 'mlp.0'], ['fc2', 'mlp.2'], ['final_layer_norm', 'mlp_ln'],
];

const topLevel: ReadonlyArray<readonly [string, string]> = [
  ['model.encoder.conv1.weight', 'encoder.conv1.weight'], ['model.encoder.conv1.bias', 'encoder.conv1.bias'],
  ['model.encoder.conv2.weight', 'encoder.conv2.weight'], ['model.encoder.conv2.bias', 'encoder.conv2.bias'],
  ['model.encoder.embed_positions.weight', 'encoder.positional_embedding'],
  ['model.encoder.layer_norm.weight', 'encoder.ln_post.weight'], ['model.encoder.layer_norm.bias', 'encoder.ln_post.bias'],
  ['model.decoder.embed_tokens.weight', 'decoder.token_embedding.weight'],
  ['model.decoder.embed_positions.weight', 'decoder.positional_embedding'],
  ['model.decoder.layer_norm.weight', 'decoder.ln.weight'], ['model.decoder.layer_norm.bias', 'decoder.ln.bias'],
];
const hfToGgmlTop = new Map(topLevel);
const ggmlToHfTop = new Map(topLevel.map(([hf, gg]) => [gg, hf]));
const hfBlock = /^model\.(encoder|decoder)\.layers\.(\d+)\.(.+)\.(weight|bias)$/;
const ggmlBlock = /^(encoder|decoder)\.blocks\.(\d+)\.(.+)\.(weight|bias)$/;

/** whisper.cpp's name of a Hugging Face Whisper tensor, e.g. model.encoder.layers.0.self_attn.q_proj.weight → encoder.blocks.0.attn.query.weight. */
export function hfToGgmlName(hfName: string): string | undefined {
  const top = hfToGgmlTop.get(hfName);
  if (top) return top;
  const m = hfBlock.exec(hfName);
  const part = m && blockParts.find(([hf]) => hf === m[3]);
  return part ? `${m[1]}.blocks.${m[2]}.${part[1]}.${m[4]}` : undefined;
}

/** The Hugging Face name of a whisper.cpp tensor name; undefined when it is not one of Whisper's. */
export function ggmlToHfName(ggmlName: string): string | undefined {
  const top = ggmlToHfTop.get(ggmlName);
  if (top) return top;
  const m = ggmlBlock.exec(ggmlName);
  const part = m && blockParts.find(([, gg]) => gg === m[3]);
  return part ? `model.${m[1]}.layers.${m[2]}.${part[0]}.${m[4]}` : undefined;
}

// The converters reshape conv biases from [d] to [d, 1] (whisper.cpp adds them to [frames, d] conv output).
const convBiases = new Set(['encoder.conv1.bias', 'encoder.conv2.bias']);

/** ggml dimensions of a tensor with this whisper.cpp name and PyTorch shape. */
export function ggmlDims(ggmlName: string, shape: readonly number[]): number[] {
  const torchShape = convBiases.has(ggmlName) ? [...shape, 1] : shape;
  return [...torchShape].reverse();
}

/** The PyTorch shape of a ggml tensor (inverse of {@link ggmlDims}). */
export function torchShapeOfGgml(ggmlName: string, ne: readonly number[]): number[] {
  const shape = [...ne].reverse();
  return convBiases.has(ggmlName) && shape.length === 2 && shape[1] === 1 ? [shape[0]!] : shape;
}

/** File-level type of a whisper.cpp model: all f32, f16 matrices, or q8_0 matrices. */
export type GgmlFileType = 'f32' | 'f16' | 'q8_0';

// ggml's GGML_FTYPE_MOSTLY_Q8_0 is 7; quantized files store ftype + 1000 * GGML_QNT_VERSION (2),
// as whisper.cpp's quantize tool writes and whisper_model_load splits again.
const ftypeIds: Readonly<Record<GgmlFileType, number>> = { f32: 0, f16: 1, q8_0: 7 + 1000 * 2 };

/**
 * Storage type of one tensor in a file of type `fileType`, as the converters choose it: in f16
 * files, vectors (n_dims < 2), the conv biases and both positional embeddings stay f32 (whisper.cpp
 * creates them as f32 tensors and checks their byte size), everything else is f16. In q8_0 files,
 * as whisper.cpp's quantize tool leaves them, the same tensors stay f32, the other 2-D tensors
 * (linear weights, token embedding) are q8_0 and the 3-D conv weights stay f16.
 */
export function ggmlTensorType(ggmlName: string, nDims: number, fileType: GgmlFileType): GgmlTensorType {
  if (fileType === 'f32') return 'f32';
  const keptF32 = nDims < 2 || convBiases.has(ggmlName) || ggmlName === 'encoder.positional_embedding' || ggmlName === 'decoder.positional_embedding';
  if (keptF32) return 'f32';
  return fileType === 'q8_0' && nDims === 2 ? 'q8_0' : 'f16';
}

// whisper.cpp derives its special tokens from n_vocab: multilingual vocabularies (>= 51865) put
// <|endoftext|> at 50257, English-only ones (51864) at 50256, and <|startoftranscript|> next.
const englishOnlyVocab = 51864;
function whisperCppEndOfText(nVocab: number): number {
  return nVocab > englishOnlyVocab ? 50257 : 50256;
}

/**
 * The Hugging Face config of a whisper.cpp model. ggml stores no FFN width: `ffnDims` comes from
 * the mlp.0 tensors (whisper.cpp itself assumes 4·n_state). Token ids follow whisper.cpp's layout.
 */
export function configFromGgmlHparams(h: GgmlHparams, ffnDims: { encoder: number; decoder: number }, file = 'ggml hparams'): WhisperConfig {
  if (h.n_audio_state !== h.n_text_state) {
    fail(file, `n_audio_state ${h.n_audio_state} differs from n_text_state ${h.n_text_state}; Whisper (and Hugging Face's d_model) has one width`);
  }
  if (h.n_vocab < englishOnlyVocab) {
    fail(file, `n_vocab ${h.n_vocab} is smaller than whisper.cpp's token layout allows (>= ${englishOnlyVocab})`);
  }
  const eot = whisperCppEndOfText(h.n_vocab);
  const config: WhisperConfig = {
    vocab_size: h.n_vocab,
    num_mel_bins: h.n_mels,
    d_model: h.n_audio_state,
    encoder_layers: h.n_audio_layer,
    encoder_attention_heads: h.n_audio_head,
    encoder_ffn_dim: ffnDims.encoder,
    decoder_layers: h.n_text_layer,
    decoder_attention_heads: h.n_text_head,
    decoder_ffn_dim: ffnDims.decoder,
    max_source_positions: h.n_audio_ctx,
    max_target_positions: h.n_text_ctx,
    decoder_start_token_id: eot + 1,
    eos_token_id: eot,
    pad_token_id: eot,
    bos_token_id: eot,
  };
  validateWhisperConfig(config, file);
  return config;
}

/**
 * whisper.cpp's hparams for a config. Throws CheckpointError (naming `file`) for what whisper.cpp
 * cannot represent: FFN width other than 4·d_model, a vocabulary below 51,864 tokens, or special
 * token ids other than those whisper.cpp derives from the vocabulary size.
 */
export function ggmlHparamsOf(config: WhisperConfig, fileType: GgmlFileType, file = 'ggml file'): GgmlHparams {
  const d = config.d_model;
  for (const field of ['encoder_ffn_dim', 'decoder_ffn_dim'] as const) {
    if (config[field] !== 4 * d) fail(file, `${field} is ${config[field]}; whisper.cpp builds its MLPs as 4·d_model (${4 * d})`);
  }
  if (config.vocab_size < englishOnlyVocab) fail(file, `vocab_size ${config.vocab_size} is below the ${englishOnlyVocab} tokens whisper.cpp's token layout needs`);
  const eot = whisperCppEndOfText(config.vocab_size);
  if (config.eos_token_id !== eot || config.decoder_start_token_id !== eot + 1) {
    fail(file, `eos_token_id ${config.eos_token_id} / decoder_start_token_id ${config.decoder_start_token_id} differ from whisper.cpp's ${eot} / ${eot + 1} for a vocabulary of ${config.vocab_size}`);
  }
  return {
    n_vocab: config.vocab_size,
    n_audio_ctx: config.max_source_positions,
    n_audio_state: d,
    n_audio_head: config.encoder_attention_heads,
    n_audio_layer: config.encoder_layers,
    n_text_ctx: config.max_target_positions,
    n_text_state: d,
    n_text_head: config.decoder_attention_heads,
    n_text_layer: config.decoder_layers,
    n_mels: config.num_mel_bins,
    ftype: ftypeIds[fileType],
  };
}

/** Options of {@link ggmlCheckpointFile}. */
export interface GgmlWriteOptions {
  /** 'f16' (whisper.cpp's usual files), 'f32', or 'q8_0' (as whisper.cpp's quantize tool makes them). */
  fileType: GgmlFileType;
  /** The log-mel filterbank whisper.cpp will use: num_mel_bins rows (e.g. from another ggml file, or Whisper's mel_filters.npz). */
  melFilters: GgmlMelFilters;
  /** Token byte strings in id order, e.g. {@link ggmlVocabFromTiktoken} of Whisper's .tiktoken file. */
  vocab: readonly Uint8Array[];
}

/**
 * A whisper.cpp model file of `model`: whisper.cpp's tensor names and dims order, conv biases as
 * [d, 1], and in f16 files the tensors the converters keep f32 (see {@link ggmlTensorType}).
 * Throws ShapeError when the weights do not match the config, CheckpointError for what whisper.cpp
 * cannot represent (see {@link ggmlHparamsOf}) or filters that do not match num_mel_bins.
 */
export function ggmlCheckpointFile(name: string, model: WhisperCheckpoint, opts: GgmlWriteOptions): FileChunks {
  checkWhisperWeights(model.config, model.weights, 'weights to save');
  const hparams = ggmlHparamsOf(model.config, opts.fileType, name);
  if (opts.melFilters.n_mel !== model.config.num_mel_bins) {
    fail(name, `mel filters have ${opts.melFilters.n_mel} rows, expected num_mel_bins ${model.config.num_mel_bins}`);
  }
  const tensors = whisperParameters(model.config).map((p): GgmlTensorToWrite => {
    const ggmlName = hfToGgmlName(p.name)!;
    const ne = ggmlDims(ggmlName, p.shape);
    return { name: ggmlName, ne, type: ggmlTensorType(ggmlName, ne.length, opts.fileType), data: model.weights.get(p.name)! };
  });
  return encodeGgml(name, { hparams, melFilters: opts.melFilters, vocab: opts.vocab, tensors });
}

/** A Whisper read from a ggml file, with the file's own filters and vocabulary (to write it back). */
export interface LoadedGgmlCheckpoint extends LoadedCheckpoint {
  readonly ggml: Omit<GgmlHeader, 'tensors'>;
}

/**
 * Read a whisper.cpp model: header, then (after every tensor header has been mapped to its
 * Hugging Face name and checked against the hparams) each tensor's data, widened to float32.
 * Progress counts bytes of tensor data. Throws CheckpointError for unknown tensor names, missing
 * or misshapen tensors and anything {@link readGgmlHeader} rejects.
 */
export async function readGgmlCheckpoint(source: ByteSource, opts: { onProgress?: ProgressCallback } = {}): Promise<LoadedGgmlCheckpoint> {
  const header = await readGgmlHeader(source);
  const located = new Map<string, GgmlTensorEntry>();
  for (const entry of header.tensors) {
    const hfName = ggmlToHfName(entry.name);
    if (!hfName) fail(source.name, 'is not a whisper.cpp Whisper tensor name', entry.name);
    located.set(hfName, entry);
  }
  const ffnOf = (side: 'encoder' | 'decoder') => located.get(`model.${side}.layers.0.fc1.weight`)?.ne[1] ?? 4 * header.hparams.n_audio_state;
  const config = configFromGgmlHparams(header.hparams, { encoder: ffnOf('encoder'), decoder: ffnOf('decoder') }, `${source.name} hparams`);
  checkWhisperInventory(
    config,
    [...located].map(([hfName, e]) => ({ name: hfName, shape: torchShapeOfGgml(e.name, e.ne), dtype: e.type, file: source.name })),
    source.name,
    Object.keys(ggmlTensorCodecs),
  );
  const names = whisperParameters(config).map((p) => p.name);
  const total = names.reduce((n, name) => n + located.get(name)!.byteLength, 0);
  let done = 0;
  const weights = new Map<string, Float32Array>();
  const sourceDtypes = new Map<string, string>();
  for (const name of names) {
    const entry = located.get(name)!;
    weights.set(name, await readGgmlTensor(source, entry));
    sourceDtypes.set(name, entry.type);
    done += entry.byteLength;
    opts.onProgress?.(done, total, name);
  }
  const { tensors: _tensors, ...ggml } = header;
  return { config, weights, sourceDtypes, metadata: {}, warnings: [], files: [source.name], ggml };
}

/**
 * Token byte strings in rank order from a `.tiktoken` file (base64 token, space, rank per line),
 * as whisper.cpp's convert-pt-to-ggml.py reads Whisper's multilingual.tiktoken / gpt2.tiktoken.
 * Throws CheckpointError (naming `file`) for malformed lines or ranks that are not 0..n-1 in order.
 */
export function ggmlVocabFromTiktoken(text: string, file = 'tiktoken file'): Uint8Array[] {
  const tokens: Uint8Array[] = [];
  for (const [lineIndex, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    const parts = line.trim().split(/\s+/);
    const rank = Number(parts[1]);
    if (parts.length !== 2 || rank !== tokens.length) {
      fail(file, `line ${lineIndex + 1} is "${line.slice(0, 60)}", expected "<base64> ${tokens.length}"`);
    }
    // Python's b64decode accepts "=" for the empty token; atob needs the padding stripped first.
    let binary: string;
    try {
      binary = atob(parts[0]!.replace(/=+$/, ''));
    } catch {
      fail(file, `line ${lineIndex + 1}: "${parts[0]!.slice(0, 60)}" is not base64`);
    }
    tokens.push(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
  }
  return tokens;
}

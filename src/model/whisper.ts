// Whisper (OpenAI's model.py, Hugging Face's WhisperForConditionalGeneration) built on the graph:
// conv stem with GELU and fixed sinusoidal positions, pre-LN encoder blocks, decoder blocks with
// causal self-attention and cross-attention, final LayerNorms, logits tied to the token embedding.
import { ShapeError } from '../errors.js';
import type { Gpu } from '../gpu/gpu.js';
import type { Tensor } from '../gpu/tensor.js';
import { backward } from '../graph/autodiff.js';
import { compileGraph, type CompiledGraph, type CompileOptions } from '../graph/compile.js';
import { Graph, type GraphTensor } from '../graph/graph.js';
import { crossEntropyLoss } from '../graph/losses.js';
import { add, attention, conv1d, embedding, fakeQuantScales, int8Embedding, int8Linear, layerNorm, linear, type QuantizedGraphWeight } from '../graph/ops.js';
import { adamw, type AdamWOpOptions } from '../graph/optim.js';
import type { Int8Matrix } from '../kernels/int8.js';
import type { QuantizedCheckpoint } from '../quant/hf-int8.js';
import { packForInt8Kernels } from '../quant/weights.js';
import { melFrames, tiedOutputProjection, whisperParameters, type WhisperConfig } from './config.js';
import { checkWhisperWeights } from './init.js';

/** The encoder's sinusoidal positions: a fixed table, never trained (as in Whisper and transformers). */
export const FROZEN_ENCODER_POSITIONS = 'model.encoder.embed_positions.weight';
/** The tied token embedding (also the logits' projection). */
export const TOKEN_EMBEDDING = 'model.decoder.embed_tokens.weight';

/**
 * Whisper's parameters as GPU tensors, keyed by Hugging Face name: all f32 (`upload`), or with
 * the weights of some layers quantized per output channel in the int8 kernels' layout
 * (`uploadQuantized`), which the layers then run on (WhisperBlocks picks by the weight).
 */
export class WhisperWeights {
  private constructor(
    readonly gpu: Gpu,
    readonly config: WhisperConfig,
    private readonly tensors: ReadonlyMap<string, Tensor>,
    private readonly int8: ReadonlyMap<string, Int8Matrix> = new Map(),
    /** Bits of each quantized weight by name (8, or 4 held in int8 lanes; a mixed plan has both). */
    readonly quantizedBits: ReadonlyMap<string, number> = new Map(),
  ) {}

  /**
   * Upload weights keyed by Hugging Face name (as `initWhisperWeights` or a checkpoint reader
   * give them). A `proj_out.weight` entry is ignored: the logits use the token embedding.
   * Throws ShapeError listing missing or wrongly sized tensors; `source` names them in it.
   */
  static upload(gpu: Gpu, config: WhisperConfig, weights: ReadonlyMap<string, Float32Array>, source = 'weights'): WhisperWeights {
    checkWhisperWeights(config, weights, source);
    const tensors = new Map<string, Tensor>();
    for (const p of whisperParameters(config)) tensors.set(p.name, gpu.upload(weights.get(p.name)!, p.shape, 'f32', p.name));
    return new WhisperWeights(gpu, config, tensors);
  }

  /**
   * Upload a checkpoint whose listed modules are quantized (quantizeCheckpoint, or an int8 export
   * read by readHfInt8Checkpoint): each quantized weight as packed int8 rows and per-channel
   * scales (a scale <= 0, an all-zero channel, is stored as 0), every other tensor as f32.
   * Throws ShapeError naming `source` and a tensor that is missing or misshapen.
   */
  static uploadQuantized(gpu: Gpu, checkpoint: QuantizedCheckpoint, source = 'weights'): WhisperWeights {
    const { config } = checkpoint;
    const tensors = new Map<string, Tensor>();
    const int8 = new Map<string, Int8Matrix>();
    const bits = new Map<string, number>();
    for (const p of whisperParameters(config)) {
      const q = p.name.endsWith('.weight') ? checkpoint.quantized.get(p.name.slice(0, -'.weight'.length)) : undefined;
      if (q) {
        if (q.rows !== p.shape[0] || q.cols !== p.shape[1]) throw new ShapeError(`${source}: quantized tensor "${p.name}" is [${q.rows}, ${q.cols}], expected [${p.shape.join(', ')}]`);
        const { packed, scales } = packForInt8Kernels(q);
        int8.set(p.name, {
          packed: gpu.upload(packed, [q.rows, packed.length / q.rows], 'u32', `${p.name} int8`),
          scales: gpu.upload(Float32Array.from(scales, (s) => Math.max(s, 0)), [q.rows], 'f32', `${p.name} scales`),
          cols: q.cols,
        });
        bits.set(p.name, q.bits);
        continue;
      }
      const data = checkpoint.weights.get(p.name);
      const count = p.shape.reduce((n, d) => n * d, 1);
      if (data?.length !== count) throw new ShapeError(`${source}: tensor "${p.name}" ${data ? `has ${data.length} values` : 'is missing'}, expected [${p.shape.join(', ')}]`);
      tensors.set(p.name, gpu.upload(data, p.shape, 'f32', p.name));
    }
    return new WhisperWeights(gpu, config, tensors, int8, bits);
  }

  /** The GPU tensor of a float parameter (ShapeError for a quantized one: see `quantized`). */
  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (t) return t;
    if (this.int8.has(name)) throw new ShapeError(`Whisper parameter "${name}" is quantized (int8); it has no f32 tensor`);
    throw new ShapeError(`Whisper has no parameter "${name}"${name === tiedOutputProjection.name ? ` (it is tied to "${tiedOutputProjection.tiedTo}")` : ''}`);
  }

  /** The int8 form of weight `name` (e.g. "model.encoder.layers.0.fc1.weight"), or undefined when it is f32. */
  quantized(name: string): Int8Matrix | undefined {
    return this.int8.get(name);
  }

  /** Names of the float parameters, in transformers' order (quantized weights are not among them). */
  get names(): string[] {
    return [...this.tensors.keys()];
  }

  /** Names of the quantized weights, in transformers' order. */
  get quantizedNames(): string[] {
    return [...this.int8.keys()];
  }

  /** Read every float parameter back (e.g. to save a checkpoint), keyed by Hugging Face name; quantized weights are not included. */
  async download(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [name, t] of this.tensors) out.set(name, await this.gpu.readF32(t));
    return out;
  }

  /** Return the parameters' buffers to the pool. */
  destroy(): void {
    this.gpu.free(...this.tensors.values(), ...[...this.int8.values()].flatMap((q) => [q.packed, q.scales]));
  }
}

/** Sizes a Whisper graph is built for. */
export interface WhisperShape {
  batch: number;
  /** Decoder positions per sequence (at most max_target_positions). */
  tokens: number;
  /**
   * Sequences are right-padded to `tokens`: a u32 [batch] input `tokenLengths` masks the padded
   * keys of the decoder self-attention (transformers' decoder attention mask).
   */
  padded?: boolean;
}

/** Which hidden states to keep readable after a run (indices as transformers' hidden_states). */
export interface WhisperKeep {
  encoderHidden?: readonly number[] | 'all';
  decoderHidden?: readonly number[] | 'all';
  encoderOut?: boolean;
  logits?: boolean;
}

export interface WhisperGraphOptions {
  /** Parameters that get gradients: true for all but the encoder positions, or a predicate on the name. Default false. */
  trainable?: boolean | ((name: string) => boolean);
  /** Outputs to keep after the run (teacher mode); everything else is freed after its last use. */
  keep?: WhisperKeep;
  /**
   * Fake-quantize these linear layers' weights per output channel (scales from each step's
   * weights; straight-through estimator in the backward). Receives the weight's name. With
   * `activations`, the layer's input is fake-quantized per token to 8 bits too (straight-through
   * backward): the float simulation of the int8 kernels that quantized weights run on.
   */
  quantize?: (weightName: string) => { bits?: number; activations?: boolean } | null;
  /**
   * Fixed or learnable fake-quant scales (f32 [out], on this graph) of a Linear weight that
   * `quantize` selects, instead of per-step max|W_c| / qmax; null keeps those. A trainable
   * tensor gets LSQ's gradient (graph/ops `linear`). Not asked for the tied token embedding,
   * whose lookup has no LSQ gradient: it keeps max scaling.
   */
  weightScale?: (weightName: string) => GraphTensor | null;
  /**
   * Take these encoder outputs instead of building an encoder: a student that keeps its
   * teacher's (frozen) encoder cross-attends to the teacher's output.
   */
  encoder?: { out: GraphTensor; hidden: GraphTensor[] };
  /** Reuse inputs of another Whisper in the same graph (a teacher and a student see one batch). */
  inputs?: Partial<WhisperInputs>;
  /** Prefix of node labels, e.g. 'teacher' or 'student'. */
  label?: string;
}

/** The host-written inputs of a Whisper graph. */
export interface WhisperInputs {
  /** f32 [batch, num_mel_bins, 2 * max_source_positions] log-mel features. */
  mel: GraphTensor;
  /** i32 [batch, tokens] decoder input ids. */
  tokens: GraphTensor;
  /** u32 [batch] valid tokens per sequence (only with `padded`). */
  tokenLengths: GraphTensor | null;
}

/**
 * Write a batch's log-mel, decoder tokens and (padded shapes) token lengths into a compiled graph's
 * Whisper inputs; `what` names the graph in the error for missing token lengths.
 */
export function writeWhisperInputs(
  c: CompiledGraph,
  inputs: WhisperInputs,
  batch: { mel: Float32Array; tokens: Int32Array; tokenLengths?: Uint32Array },
  what: string,
): void {
  c.write(inputs.mel, batch.mel);
  c.write(inputs.tokens, batch.tokens);
  if (inputs.tokenLengths) {
    if (!batch.tokenLengths) throw new ShapeError(`${what}: the shape is padded, so the batch needs tokenLengths`);
    c.write(inputs.tokenLengths, batch.tokenLengths);
  }
}

/** A Whisper built on a graph: its inputs, bound parameters and outputs. */
export interface WhisperGraph {
  inputs: WhisperInputs;
  params: ReadonlyMap<string, GraphTensor>;
  /** encoder_layers + 1 states [batch, max_source_positions, d]: the embedding, each block's output, and (last) the output after the final LayerNorm. */
  encoderHidden: GraphTensor[];
  /** [batch, max_source_positions, d], after the encoder's final LayerNorm. */
  encoderOut: GraphTensor;
  /** decoder_layers + 1 states [batch, tokens, d], as encoderHidden. */
  decoderHidden: GraphTensor[];
  /** [batch, tokens, vocab_size]. */
  logits: GraphTensor;
}

/** Options of the Whisper building blocks (see WhisperGraphOptions). */
export type WhisperBlockOptions = Pick<WhisperGraphOptions, 'trainable' | 'quantize' | 'weightScale' | 'label'>;

/**
 * How a decoder block attends, given its projections (token-major [batch, tokens, d]): the
 * plain graph attends over the block's own keys and the encoder output; the KV-cache inference
 * graphs (model/inference.ts) over cached rows.
 */
export interface DecoderAttention {
  /** Self-attention of block `layer` from its q, k, v projections; returns the heads' output before out_proj. */
  self(layer: number, q: GraphTensor, k: GraphTensor, v: GraphTensor): GraphTensor;
  /** Cross-attention of block `layer` from its q projection; returns the heads' output before out_proj. */
  cross(layer: number, q: GraphTensor): GraphTensor;
}

/**
 * The layers of Whisper on a graph, parameters bound by Hugging Face name on first use: the
 * pieces buildWhisper assembles, shared with the KV-cache inference graphs so that both run
 * the very same ops.
 */
export class WhisperBlocks {
  readonly config: WhisperConfig;
  /** Parameters bound so far, by name. */
  readonly params = new Map<string, GraphTensor>();
  private readonly prefix: string;
  /** Fake-quant scales by weight name, computed once per graph: the tied token embedding's serve both its lookup and the logits. */
  private readonly weightScales = new Map<string, GraphTensor>();

  constructor(
    readonly g: Graph,
    private readonly weights: WhisperWeights | WhisperConfig,
    private readonly opts: WhisperBlockOptions = {},
  ) {
    this.config = weights instanceof WhisperWeights ? weights.config : weights;
    this.prefix = opts.label ? `${opts.label} ` : '';
  }

  /** The quantized weight `name` bound on the graph, or null when it is a float parameter (or the blocks are shape-only). */
  quantizedParam(name: string): QuantizedGraphWeight | null {
    const q = this.weights instanceof WhisperWeights ? this.weights.quantized(name) : undefined;
    if (!q) return null;
    return { packed: this.g.external(q.packed), scales: this.g.external(q.scales), cols: q.cols };
  }

  /** The graph tensor of a float parameter (an external bound once; shape-only when built from a config). */
  param(name: string): GraphTensor {
    let p = this.params.get(name);
    if (p) return p;
    const w = this.weights;
    const t = w instanceof WhisperWeights ? w.get(name) : { shape: this.shapeOf(name), dtype: 'f32' as const, label: name };
    const trainable = typeof this.opts.trainable === 'function' ? this.opts.trainable(name) : (this.opts.trainable ?? false) && name !== FROZEN_ENCODER_POSITIONS;
    p = this.g.external(t, { trainable });
    this.params.set(name, p);
    return p;
  }

  /**
   * x @ W^T (+ b) (-> GELU) with parameters `${name}.weight` / `.bias`: on the int8 kernels when
   * the weight is quantized, else in f32, fake-quantized when asked.
   */
  dense(x: GraphTensor, name: string, o: { bias?: boolean; gelu?: boolean; label: string }): GraphTensor {
    const bias = o.bias === false ? null : this.param(`${name}.bias`);
    const label = this.prefix + o.label;
    const int8 = this.quantizedParam(`${name}.weight`);
    if (int8) return int8Linear(this.g, x, int8, bias, { gelu: o.gelu, label });
    const w = this.param(`${name}.weight`);
    const q = this.opts.quantize?.(`${name}.weight`);
    return linear(this.g, x, w, bias, {
      gelu: o.gelu,
      quant: this.weightQuant(`${name}.weight`),
      quantInput: q?.activations ? { scale: fakeQuantScales(this.g, x, 8, `${label} input scales`) } : undefined,
      label,
    });
  }

  /**
   * The fake quantization of float weight `name` when `quantize` selects it: the `weightScale`
   * given for it, else per-row scales from this step's weight (per output channel; per token
   * for the embedding), one tensor per weight however many ops use it.
   */
  private weightQuant(name: string): { scale: GraphTensor; bits?: number } | undefined {
    const q = this.opts.quantize?.(name);
    if (!q) return undefined;
    let scale = this.weightScales.get(name);
    if (!scale) {
      const given = name === TOKEN_EMBEDDING ? null : this.opts.weightScale?.(name);
      scale = given ?? fakeQuantScales(this.g, this.param(name), q.bits);
      this.weightScales.set(name, scale);
    }
    return { scale, bits: q.bits };
  }

  norm(x: GraphTensor, name: string, label: string): GraphTensor {
    return layerNorm(this.g, x, this.param(`${name}.weight`), this.param(`${name}.bias`), { label: this.prefix + label });
  }

  /** q, k, v projections of x for the attention `${name}` (k_proj has no bias). */
  qkv(x: GraphTensor, name: string, label: string): { q: GraphTensor; k: GraphTensor; v: GraphTensor } {
    return {
      q: this.dense(x, `${name}.q_proj`, { label: `${label} q` }),
      k: this.dense(x, `${name}.k_proj`, { bias: false, label: `${label} k` }),
      v: this.dense(x, `${name}.v_proj`, { label: `${label} v` }),
    };
  }

  /** Multi-head attention with the decoder's head count (the encoder has its own, see encoder). */
  attend(q: GraphTensor, k: GraphTensor, v: GraphTensor, label: string, o: { causal?: boolean; keyLengths?: GraphTensor | null; heads?: number } = {}): GraphTensor {
    return attention(this.g, q, k, v, { heads: o.heads ?? this.config.decoder_attention_heads, causal: o.causal, keyLengths: o.keyLengths ?? undefined, label: this.prefix + label });
  }

  mlp(x: GraphTensor, name: string, label: string): GraphTensor {
    return this.dense(this.dense(x, `${name}.fc1`, { gelu: true, label: `${label} fc1` }), `${name}.fc2`, { label: `${label} fc2` });
  }

  /**
   * The encoder on mel [batch, num_mel_bins, 2 * max_source_positions]: GELU(conv1),
   * GELU(conv2, stride 2) token-major, + sinusoidal positions, pre-LN blocks, final LayerNorm.
   * `hidden` as WhisperGraph.encoderHidden; `out` [batch, max_source_positions, d].
   */
  encoder(mel: GraphTensor): { hidden: GraphTensor[]; out: GraphTensor } {
    const { g, config: c, prefix } = this;
    const P = (name: string) => this.param(name);
    const conv1 = conv1d(g, mel, P('model.encoder.conv1.weight'), P('model.encoder.conv1.bias'), { gelu: true, label: `${prefix}conv1` });
    const conv2 = conv1d(g, conv1, P('model.encoder.conv2.weight'), P('model.encoder.conv2.bias'), { stride: 2, tokenMajor: true, gelu: true, label: `${prefix}conv2` });
    if (conv2.shape[1] !== c.max_source_positions) throw new ShapeError(`buildWhisper: conv2 gives ${conv2.shape[1]} positions, max_source_positions is ${c.max_source_positions}`);
    let x = add(g, conv2, P(FROZEN_ENCODER_POSITIONS), { label: `${prefix}encoder positions` });
    const hidden: GraphTensor[] = [];
    for (let l = 0; l < c.encoder_layers; l++) {
      hidden.push(x);
      const p = `model.encoder.layers.${l}`;
      const a = this.norm(x, `${p}.self_attn_layer_norm`, `enc${l} ln1`);
      const { q, k, v } = this.qkv(a, `${p}.self_attn`, `enc${l} self-attn`);
      const heads = this.attend(q, k, v, `enc${l} self-attn`, { heads: c.encoder_attention_heads });
      x = add(g, x, this.dense(heads, `${p}.self_attn.out_proj`, { label: `enc${l} self-attn out` }), { label: `${prefix}enc${l} residual1` });
      x = add(g, x, this.mlp(this.norm(x, `${p}.final_layer_norm`, `enc${l} ln2`), p, `enc${l}`), { label: `${prefix}enc${l} residual2` });
    }
    const out = this.norm(x, 'model.encoder.layer_norm', 'encoder ln');
    hidden.push(out);
    return { hidden, out };
  }

  /**
   * The decoder blocks on embedded tokens y0 [batch, tokens, d] (token + position embeddings),
   * attending as `attend` says; `hidden` as WhisperGraph.decoderHidden (the last entry is after
   * the final LayerNorm).
   */
  decoder(y0: GraphTensor, attend: DecoderAttention): { hidden: GraphTensor[] } {
    const { g, config: c, prefix } = this;
    let y = y0;
    const hidden: GraphTensor[] = [];
    for (let l = 0; l < c.decoder_layers; l++) {
      hidden.push(y);
      const p = `model.decoder.layers.${l}`;
      const a = this.norm(y, `${p}.self_attn_layer_norm`, `dec${l} ln1`);
      const { q, k, v } = this.qkv(a, `${p}.self_attn`, `dec${l} self-attn`);
      const selfHeads = attend.self(l, q, k, v);
      y = add(g, y, this.dense(selfHeads, `${p}.self_attn.out_proj`, { label: `dec${l} self-attn out` }), { label: `${prefix}dec${l} residual1` });
      const b = this.norm(y, `${p}.encoder_attn_layer_norm`, `dec${l} ln2`);
      const crossHeads = attend.cross(l, this.dense(b, `${p}.encoder_attn.q_proj`, { label: `dec${l} cross-attn q` }));
      y = add(g, y, this.dense(crossHeads, `${p}.encoder_attn.out_proj`, { label: `dec${l} cross-attn out` }), { label: `${prefix}dec${l} residual2` });
      y = add(g, y, this.mlp(this.norm(y, `${p}.final_layer_norm`, `dec${l} ln3`), p, `dec${l}`), { label: `${prefix}dec${l} residual3` });
    }
    hidden.push(this.norm(y, 'model.decoder.layer_norm', 'decoder ln'));
    return { hidden };
  }

  /** Cross-attention keys and values of block `layer` from the encoder output (k_proj has no bias). */
  crossKeysValues(encoderOut: GraphTensor, layer: number): { k: GraphTensor; v: GraphTensor } {
    const p = `model.decoder.layers.${layer}.encoder_attn`;
    return {
      k: this.dense(encoderOut, `${p}.k_proj`, { bias: false, label: `dec${layer} cross-attn k` }),
      v: this.dense(encoderOut, `${p}.v_proj`, { label: `dec${layer} cross-attn v` }),
    };
  }

  /**
   * Token embedding of ids [batch, tokens] (i32); rows dequantized when the embedding is
   * quantized, fake-quantized per token (with the logits' scales) when `quantize` selects it.
   */
  embedTokens(ids: GraphTensor): GraphTensor {
    const name = TOKEN_EMBEDDING;
    const label = `${this.prefix}token embedding`;
    const int8 = this.quantizedParam(name);
    return int8 ? int8Embedding(this.g, ids, int8, { label }) : embedding(this.g, ids, this.param(name), { quant: this.weightQuant(name), label });
  }

  /** Logits [..., vocab_size] of final decoder states: the output projection is the token embedding. */
  logits(final: GraphTensor): GraphTensor {
    return this.dense(final, 'model.decoder.embed_tokens', { bias: false, label: 'logits' });
  }

  private shapeOf(name: string): readonly number[] {
    const spec = whisperParameters(this.config).find((p) => p.name === name);
    if (!spec) throw new ShapeError(`Whisper has no parameter "${name}"`);
    return spec.shape;
  }
}

/**
 * Add a Whisper forward to `g`: inputs (unless given), parameters bound from `weights`, encoder
 * and decoder. With `trainable`, gradients flow to the trainable parameters when `backward` is
 * called on a loss of the outputs. Given a config instead of weights, the parameters are
 * shape-only: the graph can be planned (planGraph) but not compiled.
 */
export function buildWhisper(g: Graph, weights: WhisperWeights | WhisperConfig, shape: WhisperShape, opts: WhisperGraphOptions = {}): WhisperGraph {
  const c = weights instanceof WhisperWeights ? weights.config : weights;
  const d = c.d_model;
  const { batch: B, tokens: T } = shape;
  if (!Number.isInteger(B) || B < 1) throw new ShapeError(`buildWhisper: batch must be a positive integer, got ${B}`);
  if (!Number.isInteger(T) || T < 1 || T > c.max_target_positions) throw new ShapeError(`buildWhisper: tokens must be 1..${c.max_target_positions} (max_target_positions), got ${T}`);
  const prefix = opts.label ? `${opts.label} ` : '';
  const blocks = new WhisperBlocks(g, weights, opts);
  // Bind every float parameter up front, in transformers' order (the optimizer walks them so).
  for (const spec of whisperParameters(c)) if (!blocks.quantizedParam(spec.name)) blocks.param(spec.name);

  const inputs: WhisperInputs = {
    mel: opts.inputs?.mel ?? g.input([B, c.num_mel_bins, melFrames(c)], 'f32', 'mel'),
    tokens: opts.inputs?.tokens ?? g.input([B, T], 'i32', 'tokens'),
    tokenLengths: shape.padded ? (opts.inputs?.tokenLengths ?? g.input([B], 'u32', 'token lengths')) : null,
  };
  const expectInput = (t: GraphTensor, s: readonly number[], what: string) => {
    if (t.shape.length !== s.length || t.shape.some((x, i) => x !== s[i])) throw new ShapeError(`buildWhisper: ${what} ${t} should be [${s.join(', ')}]`);
  };
  expectInput(inputs.mel, [B, c.num_mel_bins, melFrames(c)], 'mel');
  expectInput(inputs.tokens, [B, T], 'tokens');

  const encoder = opts.encoder ?? blocks.encoder(inputs.mel);
  // Decoder: token embedding + the first T learned positions.
  const positions = g.view(blocks.param('model.decoder.embed_positions.weight'), [T, d], 0, `${prefix}decoder positions [0, ${T})`);
  const y0 = add(g, blocks.embedTokens(inputs.tokens), positions, { label: `${prefix}decoder positions` });
  const decoder = blocks.decoder(y0, {
    self: (l, q, k, v) => blocks.attend(q, k, v, `dec${l} self-attn`, { causal: true, keyLengths: inputs.tokenLengths }),
    cross: (l, q) => {
      const { k, v } = blocks.crossKeysValues(encoder.out, l);
      return blocks.attend(q, k, v, `dec${l} cross-attn`);
    },
  });
  const encoderHidden = encoder.hidden;
  const encoderOut = encoder.out;
  const decoderHidden = decoder.hidden;
  const logits = blocks.logits(decoderHidden[decoderHidden.length - 1]!);

  const keep = opts.keep ?? {};
  const pick = (states: GraphTensor[], which: readonly number[] | 'all' | undefined, what: string) => {
    for (const i of which === 'all' ? states.keys() : (which ?? [])) {
      const s = states[i];
      if (!s) throw new ShapeError(`buildWhisper: keep.${what} index ${i} is outside 0..${states.length - 1}`);
      g.keep(s);
    }
  };
  pick(encoderHidden, keep.encoderHidden, 'encoderHidden');
  pick(decoderHidden, keep.decoderHidden, 'decoderHidden');
  if (keep.encoderOut) g.keep(encoderOut);
  if (keep.logits) g.keep(logits);
  return { inputs, params: blocks.params, encoderHidden, encoderOut, decoderHidden, logits };
}

/** Options of a cross-entropy training step. */
export interface WhisperTrainingOptions extends Omit<AdamWOpOptions, 'noDecay'> {
  /** Parameters to train (default all but the encoder positions). */
  trainable?: (name: string) => boolean;
  /** Label id left out of the loss (default -100). */
  ignoreIndex?: number;
  /** Compile options (plan limits). */
  compile?: CompileOptions;
}

/** A compiled cross-entropy training step: forward, loss, backward and AdamW in one submit. */
export interface WhisperTrainingStep {
  step: CompiledGraph;
  model: WhisperGraph;
  /** i32 [batch, tokens] targets (ignoreIndex where no loss is wanted). */
  labels: GraphTensor;
  /** Mean cross-entropy of the last run (persistent f32 [1]). */
  loss: GraphTensor;
  /** Squared global gradient norm before clipping, when maxGradNorm was given. */
  gradNormSquared: GraphTensor | null;
  /** Parameter -> gradient. */
  grads: ReadonlyMap<GraphTensor, GraphTensor>;
}

/**
 * Build and compile one training step of Whisper on cross-entropy: forward, fused loss and its
 * gradient, backward, and an AdamW update (biases and LayerNorm without weight decay), all in
 * one Program. Write the batch with `step.write(model.inputs.mel, ...)` etc., then
 * `step.run({ step: n, lr })`; read the loss with `step.readScalars([loss])` when wanted.
 */
export async function compileWhisperTrainingStep(gpu: Gpu, weights: WhisperWeights, shape: WhisperShape, opts: WhisperTrainingOptions): Promise<WhisperTrainingStep> {
  const g = new Graph();
  const model = buildWhisper(g, weights, shape, { trainable: opts.trainable ?? true });
  const labels = g.input([shape.batch, shape.tokens], 'i32', 'labels');
  const loss = crossEntropyLoss(g, model.logits, labels, { ignoreIndex: opts.ignoreIndex, label: 'cross-entropy' });
  const grads = backward(g, [loss]);
  const noDecay = (p: GraphTensor) => p.label.endsWith('.bias') || /layer_norm\.weight$/.test(p.label);
  const { gradNormSquared } = adamw(g, grads, { ...opts, noDecay });
  const step = await compileGraph(gpu, g, opts.compile);
  return { step, model, labels, loss, gradNormSquared, grads };
}

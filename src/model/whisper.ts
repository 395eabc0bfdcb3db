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
import { add, attention, conv1d, embedding, fakeQuantScales, layerNorm, linear } from '../graph/ops.js';
import { adamw, type AdamWOpOptions } from '../graph/optim.js';
import { melFrames, tiedOutputProjection, whisperParameters, type WhisperConfig } from './config.js';
import { checkWhisperWeights } from './init.js';

/** The encoder's sinusoidal positions: a fixed table, never trained (as in Whisper and transformers). */
export const FROZEN_ENCODER_POSITIONS = 'model.encoder.embed_positions.weight';

/** Whisper's parameters as GPU tensors, keyed by Hugging Face name. */
export class WhisperWeights {
  private constructor(
    readonly gpu: Gpu,
    readonly config: WhisperConfig,
    private readonly tensors: ReadonlyMap<string, Tensor>,
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

  /** The GPU tensor of a parameter. */
  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new ShapeError(`Whisper has no parameter "${name}"${name === tiedOutputProjection.name ? ` (it is tied to "${tiedOutputProjection.tiedTo}")` : ''}`);
    return t;
  }

  /** Parameter names in transformers' order. */
  get names(): string[] {
    return [...this.tensors.keys()];
  }

  /** Read every parameter back (e.g. to save a checkpoint), keyed by Hugging Face name. */
  async download(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [name, t] of this.tensors) out.set(name, await this.gpu.readF32(t));
    return out;
  }

  /** Return the parameters' buffers to the pool. */
  destroy(): void {
    this.gpu.free(...this.tensors.values());
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
   * weights; straight-through estimator in the backward). Receives the weight's name.
   */
  quantize?: (weightName: string) => { bits?: number } | null;
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
  const ctx = c.max_source_positions;
  if (!Number.isInteger(B) || B < 1) throw new ShapeError(`buildWhisper: batch must be a positive integer, got ${B}`);
  if (!Number.isInteger(T) || T < 1 || T > c.max_target_positions) throw new ShapeError(`buildWhisper: tokens must be 1..${c.max_target_positions} (max_target_positions), got ${T}`);
  const prefix = opts.label ? `${opts.label} ` : '';
  const trainable = (name: string) =>
    typeof opts.trainable === 'function' ? opts.trainable(name) : (opts.trainable ?? false) && name !== FROZEN_ENCODER_POSITIONS;
  const params = new Map<string, GraphTensor>();
  for (const spec of whisperParameters(c)) {
    const t = weights instanceof WhisperWeights ? weights.get(spec.name) : { shape: spec.shape, dtype: 'f32' as const, label: spec.name };
    params.set(spec.name, g.external(t, { trainable: trainable(spec.name) }));
  }
  const P = (name: string) => params.get(name)!;

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

  const dense = (x: GraphTensor, name: string, o: { bias?: boolean; gelu?: boolean; label: string }) => {
    const w = P(`${name}.weight`);
    const q = opts.quantize?.(`${name}.weight`);
    return linear(g, x, w, o.bias === false ? null : P(`${name}.bias`), {
      gelu: o.gelu,
      quant: q ? { scale: fakeQuantScales(g, w, q.bits), bits: q.bits } : undefined,
      label: prefix + o.label,
    });
  };
  const norm = (x: GraphTensor, name: string, label: string) => layerNorm(g, x, P(`${name}.weight`), P(`${name}.bias`), { label: prefix + label });
  const mha = (xq: GraphTensor, xkv: GraphTensor, name: string, heads: number, label: string, o: { causal?: boolean; keyLengths?: GraphTensor | null } = {}) => {
    const q = dense(xq, `${name}.q_proj`, { label: `${label} q` });
    const k = dense(xkv, `${name}.k_proj`, { bias: false, label: `${label} k` });
    const v = dense(xkv, `${name}.v_proj`, { label: `${label} v` });
    const a = attention(g, q, k, v, { heads, causal: o.causal, keyLengths: o.keyLengths ?? undefined, label: prefix + label });
    return dense(a, `${name}.out_proj`, { label: `${label} out` });
  };
  const mlp = (x: GraphTensor, name: string, label: string) =>
    dense(dense(x, `${name}.fc1`, { gelu: true, label: `${label} fc1` }), `${name}.fc2`, { label: `${label} fc2` });

  // Encoder: GELU(conv1), GELU(conv2, stride 2) written token-major, + sinusoidal positions.
  const conv1 = conv1d(g, inputs.mel, P('model.encoder.conv1.weight'), P('model.encoder.conv1.bias'), { gelu: true, label: `${prefix}conv1` });
  const conv2 = conv1d(g, conv1, P('model.encoder.conv2.weight'), P('model.encoder.conv2.bias'), { stride: 2, tokenMajor: true, gelu: true, label: `${prefix}conv2` });
  if (conv2.shape[1] !== ctx) throw new ShapeError(`buildWhisper: conv2 gives ${conv2.shape[1]} positions, max_source_positions is ${ctx}`);
  let x = add(g, conv2, P(FROZEN_ENCODER_POSITIONS), { label: `${prefix}encoder positions` });
  const encoderHidden: GraphTensor[] = [];
  for (let l = 0; l < c.encoder_layers; l++) {
    encoderHidden.push(x);
    const p = `model.encoder.layers.${l}`;
    const a = norm(x, `${p}.self_attn_layer_norm`, `enc${l} ln1`);
    x = add(g, x, mha(a, a, `${p}.self_attn`, c.encoder_attention_heads, `enc${l} self-attn`), { label: `${prefix}enc${l} residual1` });
    x = add(g, x, mlp(norm(x, `${p}.final_layer_norm`, `enc${l} ln2`), p, `enc${l}`), { label: `${prefix}enc${l} residual2` });
  }
  const encoderOut = norm(x, 'model.encoder.layer_norm', 'encoder ln');
  encoderHidden.push(encoderOut);

  // Decoder: token embedding + the first T learned positions.
  const positions = g.view(P('model.decoder.embed_positions.weight'), [T, d], 0, `${prefix}decoder positions [0, ${T})`);
  let y = add(g, embedding(g, inputs.tokens, P('model.decoder.embed_tokens.weight'), { label: `${prefix}token embedding` }), positions, { label: `${prefix}decoder positions` });
  const decoderHidden: GraphTensor[] = [];
  for (let l = 0; l < c.decoder_layers; l++) {
    decoderHidden.push(y);
    const p = `model.decoder.layers.${l}`;
    const a = norm(y, `${p}.self_attn_layer_norm`, `dec${l} ln1`);
    y = add(g, y, mha(a, a, `${p}.self_attn`, c.decoder_attention_heads, `dec${l} self-attn`, { causal: true, keyLengths: inputs.tokenLengths }), { label: `${prefix}dec${l} residual1` });
    const b = norm(y, `${p}.encoder_attn_layer_norm`, `dec${l} ln2`);
    y = add(g, y, mha(b, encoderOut, `${p}.encoder_attn`, c.decoder_attention_heads, `dec${l} cross-attn`), { label: `${prefix}dec${l} residual2` });
    y = add(g, y, mlp(norm(y, `${p}.final_layer_norm`, `dec${l} ln3`), p, `dec${l}`), { label: `${prefix}dec${l} residual3` });
  }
  const final = norm(y, 'model.decoder.layer_norm', 'decoder ln');
  decoderHidden.push(final);
  const logits = dense(final, 'model.decoder.embed_tokens', { bias: false, label: 'logits' });

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
  return { inputs, params, encoderHidden, encoderOut, decoderHidden, logits };
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

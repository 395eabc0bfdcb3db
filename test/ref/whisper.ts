// Independent reference Whispers for testing the GPU model: a float64 forward written from OpenAI's
// whisper/model.py (AudioEncoder, TextDecoder, MultiHeadAttention), and a separate TF.js (CPU,
// float32) forward with autodiff for the cross-entropy loss gradients. Both take Hugging Face
// tensor names and layouts (src/model/config.ts whisperParameters). Batch of one.
import type * as TF from '@tensorflow/tfjs-core';
import { whisperParameters, type WhisperConfig } from '../../src/model/config.js';
import { conv1dRef, geluRef } from './elementwise.js';
import { matmulRef } from './matmul.js';
import { layerNormRef, softmaxRef } from './norm.js';
import { tfCpu } from './tf.js';

/** Weights keyed by Hugging Face name; float64 values allowed (finite differences perturb them). */
export type WhisperRefWeights = ReadonlyMap<string, ArrayLike<number>>;

/**
 * Hidden states follow transformers' `output_hidden_states`: `encoderHidden[0]` is the embedding
 * (GELU conv stack + positions) that enters encoder block 0, `encoderHidden[i]` the output of block
 * i−1 for i = 1..L−1, and the last entry (index L) the output of the final LayerNorm — the output of
 * the last block before that LayerNorm is not among them. The decoder likewise: `decoderHidden[0]`
 * = token + position embeddings, ..., `decoderHidden[L]` = after `model.decoder.layer_norm`.
 * Every entry is token-major: [positions, d_model].
 */
export interface WhisperRefOutput {
  /** encoder_layers + 1 states, [max_source_positions, d_model] each; empty when `encoderOut` was given. */
  encoderHidden: Float64Array[];
  /** [max_source_positions, d_model]: the encoder's output (after its final LayerNorm). */
  encoderOut: Float64Array;
  /** decoder_layers + 1 states, [tokens, d_model] each. */
  decoderHidden: Float64Array[];
  /** [tokens, vocab_size]: final decoder states times the (tied) token embedding. */
  logits: Float64Array;
}

const layerNormEps = 1e-5; // nn.LayerNorm's default, used by Whisper and transformers alike

function tensor(w: WhisperRefWeights, name: string): ArrayLike<number> {
  const t = w.get(name);
  if (t === undefined) throw new Error(`whisper reference: missing tensor "${name}"`);
  return t;
}

/** nn.Linear on token-major x [rows, inDim] with weight [outDim, inDim]. */
function linear(x: ArrayLike<number>, rows: number, inDim: number, outDim: number, weight: ArrayLike<number>, bias?: ArrayLike<number>): Float64Array {
  return matmulRef(x, weight, { batch: 1, M: rows, N: outDim, K: inDim, batchA: false, batchB: false }, { transB: true, bias });
}

function layerNorm(w: WhisperRefWeights, name: string, x: Float64Array, rows: number, d: number): Float64Array {
  return layerNormRef(x, rows, d, layerNormEps, { gamma: tensor(w, `${name}.weight`), beta: tensor(w, `${name}.bias`) }).y;
}

/**
 * whisper MultiHeadAttention: q from xq, k and v from xkv (k without bias); q and k each scaled
 * by head_dim^−1/4 before q·kᵀ; causal masks keys after the query (mask = −inf above the diagonal).
 */
function attention(
  w: WhisperRefWeights, prefix: string, heads: number, d: number,
  xq: Float64Array, lq: number, xkv: Float64Array, lk: number, causal: boolean,
): Float64Array {
  const q = linear(xq, lq, d, d, tensor(w, `${prefix}.q_proj.weight`), tensor(w, `${prefix}.q_proj.bias`));
  const k = linear(xkv, lk, d, d, tensor(w, `${prefix}.k_proj.weight`));
  const v = linear(xkv, lk, d, d, tensor(w, `${prefix}.v_proj.weight`), tensor(w, `${prefix}.v_proj.bias`));
  const hd = d / heads;
  const scale = hd ** -0.25;
  const mixed = new Float64Array(lq * d);
  const scores = new Float64Array(lk);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < lq; i++) {
      for (let j = 0; j < lk; j++) {
        let dot = 0;
        for (let e = 0; e < hd; e++) dot += q[i * d + h * hd + e]! * scale * (k[j * d + h * hd + e]! * scale);
        scores[j] = causal && j > i ? -Infinity : dot;
      }
      const p = softmaxRef(scores, 1, lk);
      for (let e = 0; e < hd; e++) {
        let acc = 0;
        for (let j = 0; j < lk; j++) acc += p[j]! * v[j * d + h * hd + e]!;
        mixed[i * d + h * hd + e] = acc;
      }
    }
  }
  return linear(mixed, lq, d, d, tensor(w, `${prefix}.out_proj.weight`), tensor(w, `${prefix}.out_proj.bias`));
}

function mlp(w: WhisperRefWeights, prefix: string, x: Float64Array, rows: number, d: number, ffn: number): Float64Array {
  const hidden = linear(x, rows, d, ffn, tensor(w, `${prefix}.fc1.weight`), tensor(w, `${prefix}.fc1.bias`)).map(geluRef);
  return linear(hidden, rows, ffn, d, tensor(w, `${prefix}.fc2.weight`), tensor(w, `${prefix}.fc2.bias`));
}

function addInto(x: Float64Array, y: ArrayLike<number>): void {
  for (let i = 0; i < x.length; i++) x[i]! += y[i]!;
}

function checkInputs(c: WhisperConfig, mel: ArrayLike<number> | undefined, tokens: readonly number[], what: string): void {
  if (mel !== undefined && mel.length !== c.num_mel_bins * 2 * c.max_source_positions) {
    throw new Error(`${what}: mel has ${mel.length} values, expected [${c.num_mel_bins}, ${2 * c.max_source_positions}]`);
  }
  if (tokens.length < 1 || tokens.length > c.max_target_positions) {
    throw new Error(`${what}: ${tokens.length} tokens, expected 1..${c.max_target_positions}`);
  }
  const bad = tokens.find((t) => !Number.isInteger(t) || t < 0 || t >= c.vocab_size);
  if (bad !== undefined) throw new Error(`${what}: token id ${bad} outside the vocabulary of ${c.vocab_size}`);
}

/**
 * Whisper's forward pass in float64 for one example. `mel` is channel-major [num_mel_bins,
 * 2·max_source_positions]; `tokens` the decoder input ids. With `opts.encoderOut` ([ctx, d]) the
 * encoder is skipped and `mel` is not read (it may be empty). Logits use the token embedding as
 * the output projection (Whisper ties them; a `proj_out.weight` entry is ignored).
 */
export function whisperForwardRef(
  config: WhisperConfig,
  weights: WhisperRefWeights,
  mel: ArrayLike<number>,
  tokens: readonly number[],
  opts: { encoderOut?: ArrayLike<number> } = {},
): WhisperRefOutput {
  const c = config;
  const d = c.d_model;
  const ctx = c.max_source_positions;
  checkInputs(c, opts.encoderOut ? undefined : mel, tokens, 'whisperForwardRef');
  const encoderHidden: Float64Array[] = [];
  let encoderOut: Float64Array;
  if (opts.encoderOut) {
    if (opts.encoderOut.length !== ctx * d) throw new Error(`whisperForwardRef: encoderOut has ${opts.encoderOut.length} values, expected [${ctx}, ${d}]`);
    encoderOut = Float64Array.from(opts.encoderOut);
  } else {
    // AudioEncoder: gelu(conv1(mel)), gelu(conv2(·)) with stride 2, kernel 3, padding 1.
    const frames = 2 * ctx;
    const conv1 = conv1dRef(mel, tensor(weights, 'model.encoder.conv1.weight'), tensor(weights, 'model.encoder.conv1.bias'),
      { B: 1, Cin: c.num_mel_bins, Cout: d, T: frames, stride: 1 }, { gelu: true });
    const x = conv1dRef(conv1, tensor(weights, 'model.encoder.conv2.weight'), tensor(weights, 'model.encoder.conv2.bias'),
      { B: 1, Cin: d, Cout: d, T: frames, stride: 2 }, { gelu: true, tokenMajor: true });
    addInto(x, tensor(weights, 'model.encoder.embed_positions.weight'));
    for (let l = 0; l < c.encoder_layers; l++) {
      encoderHidden.push(x.slice());
      const p = `model.encoder.layers.${l}`;
      const a = layerNorm(weights, `${p}.self_attn_layer_norm`, x, ctx, d);
      addInto(x, attention(weights, `${p}.self_attn`, c.encoder_attention_heads, d, a, ctx, a, ctx, false));
      addInto(x, mlp(weights, p, layerNorm(weights, `${p}.final_layer_norm`, x, ctx, d), ctx, d, c.encoder_ffn_dim));
    }
    encoderOut = layerNorm(weights, 'model.encoder.layer_norm', x, ctx, d);
    encoderHidden.push(encoderOut);
  }

  // TextDecoder: token embedding + learned positions, causal self-attention, cross-attention.
  const T = tokens.length;
  const embedTokens = tensor(weights, 'model.decoder.embed_tokens.weight');
  const positions = tensor(weights, 'model.decoder.embed_positions.weight');
  const y = new Float64Array(T * d);
  for (let t = 0; t < T; t++) {
    for (let e = 0; e < d; e++) y[t * d + e] = embedTokens[tokens[t]! * d + e]! + positions[t * d + e]!;
  }
  const decoderHidden: Float64Array[] = [];
  for (let l = 0; l < c.decoder_layers; l++) {
    decoderHidden.push(y.slice());
    const p = `model.decoder.layers.${l}`;
    const a = layerNorm(weights, `${p}.self_attn_layer_norm`, y, T, d);
    addInto(y, attention(weights, `${p}.self_attn`, c.decoder_attention_heads, d, a, T, a, T, true));
    const b = layerNorm(weights, `${p}.encoder_attn_layer_norm`, y, T, d);
    addInto(y, attention(weights, `${p}.encoder_attn`, c.decoder_attention_heads, d, b, T, encoderOut, ctx, false));
    addInto(y, mlp(weights, p, layerNorm(weights, `${p}.final_layer_norm`, y, T, d), T, d, c.decoder_ffn_dim));
  }
  const final = layerNorm(weights, 'model.decoder.layer_norm', y, T, d);
  decoderHidden.push(final);
  const logits = linear(final, T, d, c.vocab_size, embedTokens);
  return { encoderHidden, encoderOut, decoderHidden, logits };
}

/** Outputs of {@link whisperForwardTf}, as transformers' output_hidden_states (see WhisperRefOutput). */
export interface WhisperTfOutput {
  encoderHidden: TF.Tensor2D[];
  decoderHidden: TF.Tensor2D[];
  /** [tokens, vocab_size]. */
  logits: TF.Tensor2D;
}

/** Options of {@link whisperForwardTf}. */
export interface WhisperTfOptions {
  /**
   * Fake-quantize these weights per output channel (symmetric, scale max|row| / qmax, round half
   * to even) with the straight-through estimator: the gradient passes as if unquantized. The
   * token embedding is quantized per row (token) once, and both its lookup and the tied logits
   * projection use that quantized table, as int8 inference does.
   */
  quantize?: (weightName: string) => number | null;
  /**
   * Learnable scales (f32 [out], a variable of the gradient or a constant) of these quantized
   * weights instead of max|row| / qmax, by LSQ (Esser et al. 2020): forward clamp(round(w / s),
   * ±qmax) * s; the weight's gradient dy where |round(w / s)| <= qmax, else 0; the scale's
   * sum over the row of dy * (round(v) - v inside, clamped round(v) outside), v = w / s, without
   * LSQ's gradient scale g (the GPU's includes it).
   */
  weightScale?: (weightName: string) => TF.Tensor | null;
  /** Fake-quantize these layers' inputs per row (token) to 8 bits, with the straight-through estimator. */
  quantizeInputs?: (weightName: string) => boolean;
  /** Encoder output and hidden states to use instead of running the encoder (a frozen, shared encoder). */
  encoder?: { out: TF.Tensor2D; hidden: TF.Tensor2D[] };
}

/**
 * The Whisper forward on TF.js (batch of one): `param(name)` gives each weight as a tensor (the
 * variables of a gradient, or constants). Written separately from the float64 forward above, from
 * the same source (OpenAI's model.py), so the two check each other.
 */
export function whisperForwardTf(
  tf: typeof TF,
  c: WhisperConfig,
  param: (name: string) => TF.Tensor,
  mel: ArrayLike<number>,
  tokens: readonly number[],
  opts: WhisperTfOptions = {},
): WhisperTfOutput {
  checkInputs(c, opts.encoder ? undefined : mel, tokens, 'whisperForwardTf');
  const T = tokens.length;
  const d = c.d_model;
  const ctx = c.max_source_positions;
  // Additive causal mask: 0 on and below the diagonal, −1e9 above (exp underflows to 0).
  const causalMask = tf.tensor2d(Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? -1e9 : 0)), [T, T]);
  const p = param;
  // Fake quantization with the straight-through estimator: the quantized value forward, the
  // gradient passed unchanged (the clamp never saturates with max-scaled per-row scales).
  const fakeQuant = (qmax: number) =>
    tf.customGrad((...inputs: (TF.Tensor | TF.GradSaveFunc)[]) => {
      const w = inputs[0] as TF.Tensor;
      const scale = tf.div(tf.max(tf.abs(w), 1, true), qmax);
      return { value: tf.mul(tf.clipByValue(tf.round(tf.div(w, scale)), -qmax, qmax), scale), gradFunc: (dy: TF.Tensor) => dy };
    });
  const lsqFakeQuant = (qmax: number) =>
    tf.customGrad((...inputs: (TF.Tensor | TF.GradSaveFunc)[]) => {
      const [w, s, save] = inputs as [TF.Tensor, TF.Tensor, TF.GradSaveFunc];
      save([w, s]);
      const q = (wt: TF.Tensor, st: TF.Tensor) => tf.clipByValue(tf.round(tf.div(wt, tf.reshape(st, [-1, 1]))), -qmax, qmax);
      return {
        value: tf.mul(q(w, s), tf.reshape(s, [-1, 1])),
        gradFunc: (dy: TF.Tensor, saved: TF.Tensor[]) => {
          const [ws, ss] = saved as [TF.Tensor, TF.Tensor];
          const v = tf.div(ws, tf.reshape(ss, [-1, 1]));
          const inside = tf.lessEqual(tf.abs(tf.round(v)), qmax);
          const dScale = tf.where(inside, tf.sub(tf.round(v), v), q(ws, ss));
          return [tf.mul(dy, tf.cast(inside, 'float32')), tf.sum(tf.mul(dy, dScale), 1)];
        },
      };
    });
  const weight = (name: string) => {
    const bits = opts.quantize?.(name);
    if (!bits) return p(name);
    const scale = opts.weightScale?.(name);
    return scale ? lsqFakeQuant(2 ** (bits - 1) - 1)(p(name), scale) : fakeQuant(2 ** (bits - 1) - 1)(p(name));
  };
  const gelu = (x: TF.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.div(x, Math.SQRT2)), 1));
  const dense = (x: TF.Tensor, name: string, bias = true) => {
    const input = opts.quantizeInputs?.(`${name}.weight`) ? fakeQuant(127)(x) : x;
    const y = tf.matMul(input, weight(`${name}.weight`), false, true);
    return bias ? tf.add(y, p(`${name}.bias`)) : y;
  };
  const norm = (x: TF.Tensor, name: string) => {
    const { mean, variance } = tf.moments(x, -1, true);
    const xhat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, layerNormEps)));
    return tf.add(tf.mul(xhat, p(`${name}.weight`)), p(`${name}.bias`)) as TF.Tensor2D;
  };
  // PyTorch Conv1d(k=3, padding=1): pad one frame each side, then a 'valid' NWC convolution
  // with the filter moved from [out, in, k] to TF's [k, in, out].
  const conv = (x: TF.Tensor3D, name: string, stride: number) => {
    const filter = tf.transpose(p(`${name}.weight`), [2, 1, 0]) as TF.Tensor3D;
    return gelu(tf.add(tf.conv1d(tf.pad(x, [[0, 0], [1, 1], [0, 0]]), filter, stride, 'valid'), p(`${name}.bias`))) as TF.Tensor3D;
  };
  const mha = (xq: TF.Tensor, lq: number, xkv: TF.Tensor, lk: number, name: string, heads: number, mask?: TF.Tensor) => {
    const hd = d / heads;
    const split = (x: TF.Tensor, len: number) => tf.transpose(tf.reshape(x, [len, heads, hd]), [1, 0, 2]);
    const q = split(dense(xq, `${name}.q_proj`), lq);
    const k = split(dense(xkv, `${name}.k_proj`, false), lk);
    const v = split(dense(xkv, `${name}.v_proj`), lk);
    const scores = tf.div(tf.matMul(q, k, false, true), Math.sqrt(hd));
    const weights = tf.softmax(mask ? tf.add(scores, mask) : scores);
    return dense(tf.reshape(tf.transpose(tf.matMul(weights, v), [1, 0, 2]), [lq, d]), `${name}.out_proj`);
  };

  let encoderHidden: TF.Tensor2D[];
  let audio: TF.Tensor2D;
  if (opts.encoder) {
    encoderHidden = opts.encoder.hidden;
    audio = opts.encoder.out;
  } else {
    const melFramesFirst = tf.expandDims(tf.transpose(tf.tensor2d(Float32Array.from(mel), [c.num_mel_bins, 2 * ctx])), 0) as TF.Tensor3D;
    const convolved = conv(conv(melFramesFirst, 'model.encoder.conv1', 1), 'model.encoder.conv2', 2);
    let x = tf.add(tf.reshape(convolved, [ctx, d]), p('model.encoder.embed_positions.weight')) as TF.Tensor2D;
    encoderHidden = [x];
    for (let l = 0; l < c.encoder_layers; l++) {
      const name = `model.encoder.layers.${l}`;
      const a = norm(x, `${name}.self_attn_layer_norm`);
      x = tf.add(x, mha(a, ctx, a, ctx, `${name}.self_attn`, c.encoder_attention_heads));
      x = tf.add(x, dense(gelu(dense(norm(x, `${name}.final_layer_norm`), `${name}.fc1`)), `${name}.fc2`));
      if (l < c.encoder_layers - 1) encoderHidden.push(x);
    }
    audio = norm(x, 'model.encoder.layer_norm');
    encoderHidden.push(audio);
  }

  const embedding = weight('model.decoder.embed_tokens.weight');
  let y = tf.add(tf.gather(embedding, tf.tensor1d(tokens as number[], 'int32')), tf.slice(p('model.decoder.embed_positions.weight'), [0, 0], [T, d])) as TF.Tensor2D;
  const decoderHidden = [y];
  for (let l = 0; l < c.decoder_layers; l++) {
    const name = `model.decoder.layers.${l}`;
    const a = norm(y, `${name}.self_attn_layer_norm`);
    y = tf.add(y, mha(a, T, a, T, `${name}.self_attn`, c.decoder_attention_heads, causalMask));
    y = tf.add(y, mha(norm(y, `${name}.encoder_attn_layer_norm`), T, audio, ctx, `${name}.encoder_attn`, c.decoder_attention_heads));
    y = tf.add(y, dense(gelu(dense(norm(y, `${name}.final_layer_norm`), `${name}.fc1`)), `${name}.fc2`));
    if (l < c.decoder_layers - 1) decoderHidden.push(y);
  }
  const final = norm(y, 'model.decoder.layer_norm');
  decoderHidden.push(final);
  return { encoderHidden, decoderHidden, logits: tf.matMul(final, embedding, false, true) as TF.Tensor2D };
}

/** Result of {@link whisperLossGradTf}. */
export interface WhisperTfLossGrad {
  /** Mean cross-entropy over the label positions that are not ignored. */
  loss: number;
  /** d loss / d tensor for every tensor of whisperParameters (encoder positions included, though Whisper keeps them frozen). */
  grads: Map<string, Float32Array>;
  /** [tokens, vocab_size] logits of the TF.js forward. */
  logits: Float32Array;
}

/**
 * {@link whisperForwardTf} with `tf.valueAndGrads` giving the gradient of mean cross-entropy
 * (PyTorch `cross_entropy(ignore_index)` semantics: positions whose label is `ignoreIndex`,
 * default −100, are left out of the mean) w.r.t. every weight. The token embedding gets gradient
 * through both the lookup and the tied output projection.
 */
export async function whisperLossGradTf(
  config: WhisperConfig,
  weights: WhisperRefWeights,
  mel: ArrayLike<number>,
  tokens: readonly number[],
  labels: readonly number[],
  opts: { ignoreIndex?: number } = {},
): Promise<WhisperTfLossGrad> {
  const tf = await tfCpu();
  const c = config;
  const ignoreIndex = opts.ignoreIndex ?? -100;
  if (labels.length !== tokens.length) throw new Error(`whisperLossGradTf: ${labels.length} labels for ${tokens.length} tokens`);
  const kept = labels.map((l) => l !== ignoreIndex);
  const count = kept.filter(Boolean).length;
  if (count === 0) throw new Error('whisperLossGradTf: every label is ignored');
  const badLabel = labels.find((l, i) => kept[i] && !(Number.isInteger(l) && l >= 0 && l < c.vocab_size));
  if (badLabel !== undefined) throw new Error(`whisperLossGradTf: label ${badLabel} outside the vocabulary of ${c.vocab_size}`);

  const specs = whisperParameters(c);
  const T = tokens.length;
  let logits = new Float32Array(0);
  let loss = NaN;
  const grads = new Map<string, Float32Array>();
  tf.tidy(() => {
    const params = specs.map((s) => tf.tensor(Float32Array.from(tensor(weights, s.name)), [...s.shape]));
    const targets = tf.mul(
      tf.oneHot(tf.tensor1d(labels.map((l, i) => (kept[i] ? l : 0)), 'int32'), c.vocab_size),
      tf.tensor2d(kept.map((k) => (k ? 1 : 0)), [T, 1]),
    );
    const lossOf = (...tensors: TF.Tensor[]): TF.Scalar => {
      const z = whisperForwardTf(tf, c, (name) => tensors[specs.findIndex((s) => s.name === name)]!, mel, tokens).logits;
      logits = (z.dataSync() as Float32Array).slice();
      return tf.div(tf.sum(tf.mul(tf.logSoftmax(z), targets)), -count) as TF.Scalar;
    };
    const result = tf.valueAndGrads(lossOf)(params);
    loss = result.value.dataSync()[0]!;
    specs.forEach((s, i) => grads.set(s.name, (result.grads[i]!.dataSync() as Float32Array).slice()));
  });
  return { loss, grads, logits };
}

// A float64 CPU Whisper decoder with key/value caches, written against DecoderBackend the way a
// GPU backend is: per-layer self-attention caches per sequence written at a position, cross-
// attention keys/values computed once per window, beam reordering by copying caches. It stands in
// for a cached backend in the conformance tests (the GPU one plugs into the same helpers).
import { DecodingError } from '../../src/errors.js';
import { checkAudioIndex, checkReorderParents, checkStepTokens, decoderModelInfo, type DecoderBackend, type DecoderModelInfo, type DecoderSession, type EncodedAudio } from '../../src/decode/model.js';
import type { WhisperConfig } from '../../src/model/config.js';
import { geluRef, matmulRef } from '../ref/matmul.js';
import { layerNormRef, softmaxRef } from '../ref/norm.js';
import { whisperForwardRef, type WhisperRefWeights } from '../ref/whisper.js';

type Weights = WhisperRefWeights;

function tensor(w: Weights, name: string): ArrayLike<number> {
  const t = w.get(name);
  if (!t) throw new Error(`missing tensor ${name}`);
  return t;
}

function linear(w: Weights, prefix: string, x: ArrayLike<number>, rows: number, inDim: number, outDim: number, bias = true): Float64Array {
  return matmulRef(x, tensor(w, `${prefix}.weight`), { batch: 1, M: rows, N: outDim, K: inDim, batchA: false, batchB: false }, {
    transB: true, bias: bias ? tensor(w, `${prefix}.bias`) : undefined,
  });
}

function norm(w: Weights, prefix: string, x: ArrayLike<number>, d: number): Float64Array {
  return layerNormRef(x, 1, d, 1e-5, { gamma: tensor(w, `${prefix}.weight`), beta: tensor(w, `${prefix}.bias`) }).y;
}

/** Keys and values of one attention, one row per position: [positions][d]. */
interface KeyValues {
  keys: Float64Array[];
  values: Float64Array[];
}

/** One query row attending over cached rows; q and k scaled by head_dim^−1/4 as whisper/model.py. */
function attend(q: Float64Array, kv: KeyValues, heads: number, d: number): Float64Array {
  const hd = d / heads;
  const scale = hd ** -0.25;
  const out = new Float64Array(d);
  const scores = new Float64Array(kv.keys.length);
  for (let h = 0; h < heads; h++) {
    kv.keys.forEach((k, j) => {
      let dot = 0;
      for (let e = 0; e < hd; e++) dot += q[h * hd + e]! * scale * (k[h * hd + e]! * scale);
      scores[j] = dot;
    });
    const p = softmaxRef(scores, 1, kv.keys.length);
    for (let e = 0; e < hd; e++) {
      let acc = 0;
      kv.values.forEach((v, j) => (acc += p[j]! * v[h * hd + e]!));
      out[h * hd + e] = acc;
    }
  }
  return out;
}

class CachedAudio implements EncodedAudio {
  released = false;
  constructor(readonly owner: Float64CachedBackend, readonly cross: KeyValues[][]) {}
  get windows(): number {
    return this.cross.length;
  }
  free(): void {
    this.released = true;
  }
}

class CachedSession implements DecoderSession {
  /** caches[s][layer]: self-attention keys/values of sequence s. */
  private caches: KeyValues[][];
  private position = 0;

  constructor(private readonly backend: Float64CachedBackend, private readonly audio: CachedAudio, private readonly audioIndex: readonly number[]) {
    this.caches = audioIndex.map(() => Array.from({ length: backend.config.decoder_layers }, () => ({ keys: [], values: [] })));
  }

  get sequences(): number {
    return this.audioIndex.length;
  }

  get length(): number {
    return this.position;
  }

  async step(tokens: readonly (readonly number[])[]): Promise<Float32Array> {
    if (this.audio.released) throw new DecodingError('audio freed');
    const n = checkStepTokens(this.backend.info, this.sequences, this.position, tokens);
    const { config: c, weights: w } = this.backend;
    const d = c.d_model;
    const out = new Float32Array(this.sequences * c.vocab_size);
    for (let s = 0; s < this.sequences; s++) {
      let final: Float64Array = new Float64Array(d);
      for (let i = 0; i < n; i++) {
        const position = this.position + i;
        const token = tokens[s]![i]!;
        const x = new Float64Array(d);
        const embed = tensor(w, 'model.decoder.embed_tokens.weight');
        const pos = tensor(w, 'model.decoder.embed_positions.weight');
        for (let e = 0; e < d; e++) x[e] = embed[token * d + e]! + pos[position * d + e]!;
        for (let l = 0; l < c.decoder_layers; l++) {
          const p = `model.decoder.layers.${l}`;
          const a = norm(w, `${p}.self_attn_layer_norm`, x, d);
          const cache = this.caches[s]![l]!;
          cache.keys.push(linear(w, `${p}.self_attn.k_proj`, a, 1, d, d, false));
          cache.values.push(linear(w, `${p}.self_attn.v_proj`, a, 1, d, d));
          const mixed = attend(linear(w, `${p}.self_attn.q_proj`, a, 1, d, d), cache, c.decoder_attention_heads, d);
          addInto(x, linear(w, `${p}.self_attn.out_proj`, mixed, 1, d, d));
          const b = norm(w, `${p}.encoder_attn_layer_norm`, x, d);
          const crossMixed = attend(linear(w, `${p}.encoder_attn.q_proj`, b, 1, d, d), this.audio.cross[this.audioIndex[s]!]![l]!, c.decoder_attention_heads, d);
          addInto(x, linear(w, `${p}.encoder_attn.out_proj`, crossMixed, 1, d, d));
          const hidden = linear(w, `${p}.fc1`, norm(w, `${p}.final_layer_norm`, x, d), 1, d, c.decoder_ffn_dim).map(geluRef);
          addInto(x, linear(w, `${p}.fc2`, hidden, 1, c.decoder_ffn_dim, d));
        }
        final = norm(w, 'model.decoder.layer_norm', x, d);
      }
      const logits = matmulRef(final, tensor(w, 'model.decoder.embed_tokens.weight'), { batch: 1, M: 1, N: c.vocab_size, K: d, batchA: false, batchB: false }, { transB: true });
      out.set(logits, s * c.vocab_size);
    }
    this.position += n;
    return out;
  }

  async reorder(parents: readonly number[]): Promise<void> {
    checkReorderParents(this.sequences, this.audioIndex, parents);
    this.caches = parents.map((p) => this.caches[p]!.map((kv) => ({ keys: [...kv.keys], values: [...kv.values] })));
  }

  free(): void {
    this.caches = [];
  }
}

function addInto(x: Float64Array, y: ArrayLike<number>): void {
  for (let i = 0; i < x.length; i++) x[i]! += y[i]!;
}

/** A KV-cached float64 Whisper decoder behind the DecoderBackend interface. */
export class Float64CachedBackend implements DecoderBackend {
  readonly info: DecoderModelInfo;

  constructor(readonly config: WhisperConfig, readonly weights: Weights) {
    this.info = decoderModelInfo(config);
  }

  async encode(mel: Float32Array, windows: number): Promise<EncodedAudio> {
    const c = this.config;
    const size = this.info.melBins * this.info.windowFrames;
    if (mel.length !== windows * size) throw new DecodingError(`encode: ${mel.length} values for ${windows} windows of ${size}`);
    const cross: KeyValues[][] = [];
    for (let win = 0; win < windows; win++) {
      const { encoderOut } = whisperForwardRef(c, this.weights, mel.subarray(win * size, (win + 1) * size), [c.decoder_start_token_id]);
      const ctx = c.max_source_positions;
      const rows = (m: Float64Array): Float64Array[] => Array.from({ length: ctx }, (_, j) => m.subarray(j * c.d_model, (j + 1) * c.d_model));
      cross.push(Array.from({ length: c.decoder_layers }, (_, l) => {
        const p = `model.decoder.layers.${l}.encoder_attn`;
        return {
          keys: rows(linear(this.weights, `${p}.k_proj`, encoderOut, ctx, c.d_model, c.d_model, false)),
          values: rows(linear(this.weights, `${p}.v_proj`, encoderOut, ctx, c.d_model, c.d_model)),
        };
      }));
    }
    return new CachedAudio(this, cross);
  }

  async startSession(audio: EncodedAudio, audioIndex: readonly number[]): Promise<DecoderSession> {
    if (!(audio instanceof CachedAudio) || audio.owner !== this) throw new DecodingError('audio from another backend');
    checkAudioIndex(audio.windows, audioIndex);
    return new CachedSession(this, audio, audioIndex);
  }
}

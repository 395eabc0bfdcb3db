import { describe, expect, it } from 'vitest';
import { presetConfig, whisperParameters, type WhisperConfig } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { Rng } from '../../src/util/random.js';
import { expectClose, maxAbsDiff, randomArray } from '../helpers.js';
import { crossEntropyRef } from './losses.js';
import { layerNormRef } from './norm.js';
import { whisperForwardRef, whisperLossGradTf } from './whisper.js';

// A Whisper small enough for float64 loops and finite differences: 2+2 layers, 2 heads.
const cfg: WhisperConfig = {
  ...presetConfig('tiny'),
  vocab_size: 120, num_mel_bins: 10, d_model: 32, encoder_layers: 2, encoder_attention_heads: 2, encoder_ffn_dim: 64,
  decoder_layers: 2, decoder_attention_heads: 2, decoder_ffn_dim: 64, max_source_positions: 8, max_target_positions: 12,
  decoder_start_token_id: 119, eos_token_id: 117, pad_token_id: 117, bos_token_id: 117,
};
// std 0.2 (not transformers' 0.02) so every path moves the logits by O(1), and randomizeAll so
// no bias or LayerNorm parameter sits at an exact 0 or 1 that could hide a mistake.
const weights = initWhisperWeights(cfg, 5, { std: 0.2, randomizeAll: true });
const mel = randomArray(cfg.num_mel_bins * 2 * cfg.max_source_positions, 21);
const tokens = [119, 5, 42, 7, 88, 3];
const labels = [5, 42, -100, 88, 3, 117]; // position 2 ignored, as padding would be
const T = tokens.length;
const V = cfg.vocab_size;
const d = cfg.d_model;

function meanLoss(w: ReadonlyMap<string, ArrayLike<number>>, lab: readonly number[]): number {
  return crossEntropyRef(whisperForwardRef(cfg, w, mel, tokens).logits, lab, T, V).mean;
}

function zeroed(names: string[]): Map<string, Float32Array> {
  const w = new Map(weights);
  for (const n of names) w.set(n, new Float32Array(w.get(n)!.length));
  return w;
}

describe('reference Whisper', () => {
  const ref = whisperForwardRef(cfg, weights, mel, tokens);

  it('TF.js (float32) and float64 forwards agree on the logits within 2e-5 + 1e-4·|x|', async () => {
    const tf = await whisperLossGradTf(cfg, weights, mel, tokens, labels);
    expect(ref.logits.length).toBe(T * V);
    // Non-trivial logits: the agreement below means something.
    const spread = Math.max(...ref.logits) - Math.min(...ref.logits);
    expect(spread).toBeGreaterThan(2);
    expectClose(tf.logits, ref.logits, { atol: 2e-5, rtol: 1e-4 }, 'logits');
    console.log(`max |TF.js − float64| logit: ${maxAbsDiff(tf.logits, ref.logits).toExponential(2)} (logit range ${spread.toFixed(2)})`);
  });

  it('TF.js loss is the float64 cross-entropy mean over non-ignored labels (tolerance 1e-5)', async () => {
    const tf = await whisperLossGradTf(cfg, weights, mel, tokens, labels);
    const expected = crossEntropyRef(ref.logits, labels, T, V);
    expect(expected.count).toBe(5);
    expect(Math.abs(tf.loss - expected.mean)).toBeLessThan(1e-5);
    const all = await whisperLossGradTf(cfg, weights, mel, tokens, [5, 42, 7, 88, 3, 117]);
    expect(Math.abs(all.loss - tf.loss)).toBeGreaterThan(1e-3); // the ignored position really was left out
    const sentinel = await whisperLossGradTf(cfg, weights, mel, tokens, labels.map((l) => (l === -100 ? 999 : l)), { ignoreIndex: 999 });
    expect(sentinel.loss).toBe(tf.loss);
  });

  it('returns hidden states in transformers output_hidden_states order', () => {
    expect(ref.encoderHidden).toHaveLength(cfg.encoder_layers + 1);
    expect(ref.decoderHidden).toHaveLength(cfg.decoder_layers + 1);
    expect(ref.encoderHidden[cfg.encoder_layers]).toEqual(ref.encoderOut);
    for (const h of ref.encoderHidden) expect(h.length).toBe(cfg.max_source_positions * d);
    // decoderHidden[0]: token embedding + learned position, nothing else.
    const embed = weights.get('model.decoder.embed_tokens.weight')!;
    const pos = weights.get('model.decoder.embed_positions.weight')!;
    const embedded = tokens.flatMap((id, t) => Array.from({ length: d }, (_, e) => embed[id * d + e]! + pos[t * d + e]!));
    expectClose(ref.decoderHidden[0]!, embedded, { atol: 0, rtol: 1e-15 }, 'decoder embeddings');
    // The last state is after the final LayerNorm, and the logits are it times the token embedding.
    for (const [t, v] of [[0, 0], [3, 77], [5, 119]] as const) {
      let dot = 0;
      for (let e = 0; e < d; e++) dot += ref.decoderHidden[cfg.decoder_layers]![t * d + e]! * embed[v * d + e]!;
      expect(ref.logits[t * V + v]).toBeCloseTo(dot, 12);
    }
  });

  it('state i+1 is the output of block i: a block with zeroed residual branches passes its input through', () => {
    const enc0 = 'model.encoder.layers.0';
    const dec1 = 'model.decoder.layers.1';
    const w = zeroed([
      `${enc0}.self_attn.out_proj.weight`, `${enc0}.self_attn.out_proj.bias`, `${enc0}.fc2.weight`, `${enc0}.fc2.bias`,
      `${dec1}.self_attn.out_proj.weight`, `${dec1}.self_attn.out_proj.bias`, `${dec1}.encoder_attn.out_proj.weight`,
      `${dec1}.encoder_attn.out_proj.bias`, `${dec1}.fc2.weight`, `${dec1}.fc2.bias`,
    ]);
    const out = whisperForwardRef(cfg, w, mel, tokens);
    expect(out.encoderHidden[1]).toEqual(out.encoderHidden[0]);
    expect(maxAbsDiff(out.encoderHidden[2]!, out.encoderHidden[1]!)).toBeGreaterThan(0.1); // block 1 still acts
    // Decoder block 1 is the last: its output (= its input, decoderHidden[1]) goes through the final LayerNorm.
    const normed = layerNormRef(out.decoderHidden[1]!, T, d, 1e-5, {
      gamma: w.get('model.decoder.layer_norm.weight')!, beta: w.get('model.decoder.layer_norm.bias')!,
    }).y;
    expectClose(out.decoderHidden[2]!, normed, { atol: 1e-14, rtol: 1e-12 }, 'final decoder state');
  });

  it('decoder self-attention is causal and cross-attention reads the audio', () => {
    const changedToken = whisperForwardRef(cfg, weights, mel, [...tokens.slice(0, 4), 60, tokens[5]!]);
    expect(changedToken.logits.subarray(0, 4 * V)).toEqual(ref.logits.subarray(0, 4 * V));
    expect(maxAbsDiff(changedToken.logits.subarray(4 * V), ref.logits.subarray(4 * V))).toBeGreaterThan(0.01);
    const otherAudio = whisperForwardRef(cfg, weights, randomArray(mel.length, 22), tokens);
    expect(maxAbsDiff(otherAudio.logits.subarray(0, V), ref.logits.subarray(0, V))).toBeGreaterThan(0.01);
  });

  it('with encoderOut given, skips the encoder and gives the same decoder outputs', () => {
    const out = whisperForwardRef(cfg, weights, new Float64Array(0), tokens, { encoderOut: ref.encoderOut });
    expect(out.encoderHidden).toEqual([]);
    expect(out.logits).toEqual(ref.logits);
    expect(() => whisperForwardRef(cfg, weights, new Float64Array(3), tokens)).toThrow(/mel has 3 values, expected \[10, 16\]/);
    expect(() => whisperForwardRef(cfg, weights, mel, [1, 120])).toThrow(/token id 120 outside/);
  });

  it('TF.js gradients match central finite differences of the float64 loss', async () => {
    const tf = await whisperLossGradTf(cfg, weights, mel, tokens, labels);
    expect([...tf.grads.keys()]).toEqual(whisperParameters(cfg).map((p) => p.name));
    // Decoder positions past the last token take no part.
    const posGrad = tf.grads.get('model.decoder.embed_positions.weight')!;
    expect(posGrad.subarray(T * d).every((g) => g === 0)).toBe(true);

    const checked = [
      'model.encoder.conv1.weight', 'model.encoder.conv2.bias', 'model.encoder.embed_positions.weight',
      'model.encoder.layers.0.self_attn.q_proj.weight', 'model.encoder.layers.0.self_attn.k_proj.weight',
      'model.encoder.layers.1.fc1.weight', 'model.encoder.layer_norm.weight',
      'model.decoder.embed_tokens.weight', 'model.decoder.embed_positions.weight',
      'model.decoder.layers.0.self_attn.v_proj.bias', 'model.decoder.layers.1.encoder_attn.k_proj.weight',
      'model.decoder.layers.1.self_attn_layer_norm.weight', 'model.decoder.layers.1.final_layer_norm.bias',
      'model.decoder.layer_norm.weight',
    ];
    const w64 = new Map([...weights].map(([n, v]) => [n, Float64Array.from(v)]));
    const rng = new Rng(3);
    const eps = 1e-4; // float64: truncation error ~eps², rounding ~1e-16/eps
    let worst = 0;
    for (const name of checked) {
      const g = tf.grads.get(name)!;
      const x = w64.get(name)!;
      const scale = Math.max(...g.map(Math.abs));
      expect(scale, `${name}: gradient is all zero`).toBeGreaterThan(1e-4);
      const largest = g.findIndex((v) => Math.abs(v) === scale);
      const tokenRow = name === 'model.decoder.embed_tokens.weight' ? [42 * d + 7] : []; // looked up and projected
      for (const i of [largest, ...tokenRow, Math.floor(rng.uniform() * g.length), Math.floor(rng.uniform() * g.length)]) {
        const x0 = x[i]!;
        x[i] = x0 + eps;
        const up = meanLoss(w64, labels);
        x[i] = x0 - eps;
        const down = meanLoss(w64, labels);
        x[i] = x0;
        const fd = (up - down) / (2 * eps);
        // float32 autodiff against float64 differences: 2e-5 of the tensor's largest gradient + 1e-3 relative.
        const err = Math.abs(g[i]! - fd);
        worst = Math.max(worst, err / scale);
        expect(err, `${name}[${i}]: TF.js ${g[i]}, finite difference ${fd}`).toBeLessThanOrEqual(2e-5 * scale + 1e-3 * Math.abs(fd));
      }
    }
    console.log(`worst |TF.js − finite difference| / max|grad| over the checked entries: ${worst.toExponential(2)}`);
  });
});

import { describe, expect, it } from 'vitest';
import { ConfigError, ShapeError } from '../../src/errors.js';
import { presetConfig, sinusoidalPositions, whisperParameters, type WhisperConfig } from '../../src/model/config.js';
import { checkWhisperWeights, elementsOf, initWhisperWeights } from '../../src/model/init.js';
import { Rng } from '../../src/util/random.js';
import { erfRef } from '../ref/matmul.js';

const small: WhisperConfig = {
  ...presetConfig('tiny'),
  vocab_size: 300, num_mel_bins: 16, d_model: 64, encoder_layers: 2, encoder_attention_heads: 2, encoder_ffn_dim: 128,
  decoder_layers: 2, decoder_attention_heads: 2, decoder_ffn_dim: 128, max_source_positions: 16, max_target_positions: 32,
  decoder_start_token_id: 299, eos_token_id: 297, pad_token_id: 297, bos_token_id: 297,
};

function moments(x: ArrayLike<number>): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  const mean = s / x.length;
  let q = 0;
  for (let i = 0; i < x.length; i++) q += (x[i]! - mean) ** 2;
  return { mean, std: Math.sqrt(q / x.length) };
}

describe('Rng', () => {
  it('is xoshiro128**: the reference outputs from state [1, 2, 3, 4]', () => {
    // First outputs of Vigna's xoshiro128starstar.c from s = {1, 2, 3, 4}:
    // rotl(2*5, 7)*9 = 11520, then s1 becomes 0 so the second is 0.
    const rng = Rng.fromState({ words: [1, 2, 3, 4], spareNormal: null });
    expect([rng.nextUint32(), rng.nextUint32(), rng.nextUint32()]).toEqual([11520, 0, 5927040]);
  });

  it('uniform() is uniform on [0, 1): moments and Kolmogorov–Smirnov within the 1% critical value', () => {
    const rng = new Rng(7);
    const n = 20000;
    const u = Float64Array.from({ length: n }, () => rng.uniform());
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    u.sort();
    let ks = 0;
    for (let i = 0; i < n; i++) ks = Math.max(ks, Math.abs(u[i]! - (i + 0.5) / n));
    expect(ks).toBeLessThan(1.63 / Math.sqrt(n));
    const { mean, std } = moments(u);
    expect(Math.abs(mean - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(std - Math.sqrt(1 / 12))).toBeLessThan(0.01);
  });

  it('normal() follows N(mean, std²): KS against the normal CDF (erf) within the 1% critical value', () => {
    const rng = new Rng(11);
    const n = 20000;
    const z = rng.fillNormal(new Float64Array(n), 2, 3).sort();
    let ks = 0;
    for (let i = 0; i < n; i++) {
      const cdf = 0.5 * (1 + erfRef((z[i]! - 3) / 2 / Math.SQRT2));
      ks = Math.max(ks, Math.abs(cdf - (i + 0.5) / n));
    }
    expect(ks).toBeLessThan(1.63 / Math.sqrt(n));
    const { mean, std } = moments(z);
    expect(Math.abs(mean - 3)).toBeLessThan(5 * 2 / Math.sqrt(n));
    expect(Math.abs(std / 2 - 1)).toBeLessThan(5 / Math.sqrt(2 * n));
  });

  it('repeats exactly from a saved state, also with a Box–Muller spare pending, through JSON', () => {
    const rng = new Rng(123);
    for (let i = 0; i < 5; i++) rng.normal(); // odd count: the pair's second normal is pending
    const saved = JSON.parse(JSON.stringify(rng.state()));
    expect(saved.spareNormal).not.toBeNull();
    const draw = (r: Rng) => [r.normal(), r.uniform(), r.nextUint32(), r.normal(), r.normal()];
    const first = draw(rng);
    expect(draw(Rng.fromState(saved))).toEqual(first);
    rng.restore(saved);
    expect(draw(rng)).toEqual(first);
  });

  it('fillNormal draws exactly the sequence of normal() calls, whatever the length and pending spare', () => {
    for (const [skip, length] of [[0, 7], [1, 6], [1, 1], [0, 0], [3, 1000]] as const) {
      const a = new Rng(99);
      const b = new Rng(99);
      for (let i = 0; i < skip; i++) [a.normal(), b.normal()];
      const filled = a.fillNormal(new Float64Array(length), 0.7, -2);
      const called = Float64Array.from({ length }, () => b.normal(-2, 0.7));
      expect(filled, `skip ${skip}, length ${length}`).toEqual(called);
      expect(a.state()).toEqual(b.state());
    }
  });

  it('different seeds give different streams, the same seed the same one; large seeds use their high bits', () => {
    const head = (seed: number) => Array.from({ length: 4 }, ((r) => () => r.nextUint32())(new Rng(seed)));
    expect(head(5)).toEqual(head(5));
    expect(head(5)).not.toEqual(head(6));
    expect(head(2 ** 40)).not.toEqual(head(0));
  });

  it('rejects bad seeds and states with ConfigError', () => {
    expect(() => new Rng(-1)).toThrow(ConfigError);
    expect(() => new Rng(1.5)).toThrow(/non-negative safe integer/);
    expect(() => Rng.fromState({ words: [0, 0, 0, 0], spareNormal: null })).toThrow(/not all zero/);
    expect(() => Rng.fromState({ words: [1, 2, 3] as never, spareNormal: null })).toThrow(ConfigError);
    expect(() => Rng.fromState({ words: [1, 2, 3, 4], spareNormal: NaN })).toThrow(/spareNormal/);
  });
});

describe('initWhisperWeights', () => {
  const weights = initWhisperWeights(small, 1);

  it('follows transformers _init_weights: N(0, 0.02²) weights, zero biases, unit LayerNorms, sinusoids, zero padding row', () => {
    checkWhisperWeights(small, weights);
    for (const { name, shape } of whisperParameters(small)) {
      const w = weights.get(name)!;
      expect(w.length, name).toBe(elementsOf(shape));
      if (name === 'model.encoder.embed_positions.weight') {
        expect(w).toEqual(sinusoidalPositions(small.max_source_positions, small.d_model));
      } else if (/layer_norm\.weight$/.test(name)) {
        expect(w.every((v) => v === 1), name).toBe(true);
      } else if (name.endsWith('.bias')) {
        expect(w.every((v) => v === 0), name).toBe(true);
      } else {
        let values: Float32Array = w;
        if (name === 'model.decoder.embed_tokens.weight') {
          const pad = w.subarray(small.pad_token_id * small.d_model, (small.pad_token_id + 1) * small.d_model);
          expect(pad.every((v) => v === 0)).toBe(true);
          values = Float32Array.from([...w.subarray(0, small.pad_token_id * small.d_model), ...w.subarray((small.pad_token_id + 1) * small.d_model)]);
        }
        // Sample moments of n normals: mean within 5 standard errors, std within 5·std/sqrt(2n).
        const { mean, std } = moments(values);
        const n = values.length;
        expect(Math.abs(mean), `${name} mean`).toBeLessThan(5 * 0.02 / Math.sqrt(n));
        expect(Math.abs(std / 0.02 - 1), `${name} std`).toBeLessThan(5 / Math.sqrt(2 * n));
      }
    }
  });

  it('is deterministic for a seed and differs between seeds', () => {
    const again = initWhisperWeights(small, 1);
    const other = initWhisperWeights(small, 2);
    for (const [name, w] of weights) expect(again.get(name), name).toEqual(w);
    expect(other.get('model.encoder.layers.0.fc1.weight')).not.toEqual(weights.get('model.encoder.layers.0.fc1.weight'));
    expect(other.get('model.encoder.embed_positions.weight')).toEqual(weights.get('model.encoder.embed_positions.weight'));
  });

  it('takes std from the option, else from config init_std', () => {
    const fromOption = initWhisperWeights(small, 3, { std: 0.5 }).get('model.decoder.layers.1.fc2.weight')!;
    const fromConfig = initWhisperWeights({ ...small, extra: { init_std: 0.5 } }, 3).get('model.decoder.layers.1.fc2.weight')!;
    expect(fromConfig).toEqual(fromOption);
    expect(Math.abs(moments(fromOption).std / 0.5 - 1)).toBeLessThan(5 / Math.sqrt(2 * fromOption.length));
    expect(() => initWhisperWeights(small, 3, { std: 0 })).toThrow(ConfigError);
  });

  it('randomizeAll draws biases N(0, std²) and LayerNorm weights N(1, std²); only the sinusoids stay fixed', () => {
    const r = initWhisperWeights(small, 4, { std: 0.3, randomizeAll: true });
    checkWhisperWeights(small, r);
    const biases: number[] = [];
    const gammas: number[] = [];
    for (const [name, w] of r) {
      if (name === 'model.encoder.embed_positions.weight') continue;
      if (/layer_norm\.weight$/.test(name)) gammas.push(...w);
      else if (name.endsWith('.bias')) biases.push(...w);
      expect(w.some((v) => v === 0 || v === 1), name).toBe(false);
    }
    const b = moments(biases);
    const g = moments(gammas);
    expect(Math.abs(b.mean)).toBeLessThan(5 * 0.3 / Math.sqrt(biases.length));
    expect(Math.abs(b.std / 0.3 - 1)).toBeLessThan(5 / Math.sqrt(2 * biases.length));
    expect(Math.abs(g.mean - 1)).toBeLessThan(5 * 0.3 / Math.sqrt(gammas.length));
    expect(Math.abs(g.std / 0.3 - 1)).toBeLessThan(5 / Math.sqrt(2 * gammas.length));
  });
});

describe('checkWhisperWeights', () => {
  const good = () => initWhisperWeights(small, 9);

  it('accepts a complete set, with or without the tied proj_out.weight', () => {
    const w = good();
    expect(() => checkWhisperWeights(small, w)).not.toThrow();
    w.set('proj_out.weight', w.get('model.decoder.embed_tokens.weight')!);
    expect(() => checkWhisperWeights(small, w)).not.toThrow();
  });

  it('names a missing tensor, with its shape and the source', () => {
    const w = good();
    w.delete('model.decoder.layers.1.encoder_attn.k_proj.weight');
    expect(() => checkWhisperWeights(small, w, 'student.safetensors')).toThrow(ShapeError);
    expect(() => checkWhisperWeights(small, w, 'student.safetensors')).toThrow(
      /^student\.safetensors: 1 tensor problem.*\n.*missing tensor "model\.decoder\.layers\.1\.encoder_attn\.k_proj\.weight" \[64, 64\]/,
    );
  });

  it('names a wrongly sized tensor with expected and actual element counts', () => {
    const w = good();
    w.set('model.encoder.conv1.weight', new Float32Array(64 * 16 * 2));
    w.set('proj_out.weight', new Float32Array(10));
    expect(() => checkWhisperWeights(small, w)).toThrow(/"model\.encoder\.conv1\.weight" has 2048 elements, expected 3072 for shape \[64, 16, 3\]/);
    expect(() => checkWhisperWeights(small, w)).toThrow(/"proj_out\.weight" has 10 elements, expected 19200/);
  });

  it('names unexpected tensors, e.g. the layers of a deeper model', () => {
    const deeper = initWhisperWeights({ ...small, encoder_layers: 3 }, 9);
    expect(() => checkWhisperWeights(small, deeper)).toThrow(/unexpected tensor "model\.encoder\.layers\.2\.fc1\.weight"/);
    expect(() => checkWhisperWeights(small, deeper)).toThrow(/15 tensor problem/) // 7 attention + 4 MLP + 2×2 LayerNorm tensors;
  });
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import {
  parameterCount, parseWhisperConfig, presetConfig, sinusoidalPositions, whisperConfigJson, whisperParameters,
} from '../../src/model/config.js';

const hfTinyPath = new URL('../../../shared/assets/whisper/hf-whisper-tiny/config.json', import.meta.url);

describe('Whisper config', () => {
  it('the tiny preset equals the released openai/whisper-tiny config.json', () => {
    const released = parseWhisperConfig(JSON.parse(readFileSync(hfTinyPath, 'utf8')), 'hf-whisper-tiny/config.json');
    const { extra, ...fields } = released;
    expect(fields).toEqual(presetConfig('tiny'));
    expect(extra?.suppress_tokens).toBeInstanceOf(Array);
  });

  it('parameter counts equal the published Hugging Face model sizes', () => {
    // num_parameters() of the released checkpoints (tied proj_out counted once).
    expect(parameterCount(presetConfig('tiny'))).toBe(37_760_640);
    expect(parameterCount(presetConfig('base'))).toBe(72_593_920);
    expect(parameterCount(presetConfig('small'))).toBe(241_734_912);
    expect(parameterCount(presetConfig('medium'))).toBe(763_857_920);
    expect(parameterCount(presetConfig('large-v3'))).toBe(1_543_490_560);
    expect(presetConfig('large-v3').num_mel_bins).toBe(128);
    expect(presetConfig('large-v3-turbo').decoder_layers).toBe(4);
    expect(presetConfig('tiny.en').vocab_size).toBe(51864);
  });

  it('lists each tensor once, with k_proj unbiased', () => {
    const names = whisperParameters(presetConfig('tiny')).map((p) => p.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain('model.decoder.layers.3.encoder_attn.q_proj.bias');
    expect(names).not.toContain('model.encoder.layers.0.self_attn.k_proj.bias');
  });

  it('round-trips through config.json, keeping unknown fields', () => {
    const c = parseWhisperConfig({ ...whisperConfigJson(presetConfig('base')), dropout: 0.1 });
    expect(c.extra?.dropout).toBe(0.1);
    expect(parseWhisperConfig(whisperConfigJson(c))).toEqual(c);
  });

  it('names the field that is missing or inconsistent', () => {
    const json = whisperConfigJson(presetConfig('tiny'));
    expect(() => parseWhisperConfig({ ...json, d_model: undefined }, 'x/config.json')).toThrow(/x\/config.json: missing field "d_model"/);
    expect(() => parseWhisperConfig({ ...json, encoder_attention_heads: 5 })).toThrow(/d_model 384 is not divisible by encoder_attention_heads 5/);
    expect(() => parseWhisperConfig({ ...json, vocab_size: 100 })).toThrow(/outside the vocabulary/);
    expect(() => parseWhisperConfig({ ...json, encoder_layers: 1.5 })).toThrow(ConfigError);
    expect(() => parseWhisperConfig({ ...json, model_type: 'bart' })).toThrow(/model_type/);
  });

  it('builds whisper/model.py sinusoids', () => {
    const d = 8;
    const pos = sinusoidalPositions(5, d);
    const inc = Math.log(10000) / (d / 2 - 1);
    for (let t = 0; t < 5; t++) {
      for (let i = 0; i < d / 2; i++) {
        expect(pos[t * d + i]).toBeCloseTo(Math.sin(t * Math.exp(-inc * i)), 6);
        expect(pos[t * d + d / 2 + i]).toBeCloseTo(Math.cos(t * Math.exp(-inc * i)), 6);
      }
    }
  });
});

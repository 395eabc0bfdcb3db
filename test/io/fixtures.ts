import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import type { WhisperCheckpoint } from '../../src/io/whisper-inventory.js';
import { presetConfig, type WhisperConfig } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';

/** shared/assets/whisper beside the repository (CI clones main with shared/ next to it). */
export const whisperAssets = new URL('../../../shared/assets/whisper/', import.meta.url).pathname;

/** A small Whisper for Hugging Face format tests (vocabulary of 300, so files stay tiny). */
export const smallConfig: WhisperConfig = {
  ...presetConfig('tiny'),
  vocab_size: 300, num_mel_bins: 16, d_model: 32, encoder_layers: 2, encoder_attention_heads: 2, encoder_ffn_dim: 64,
  decoder_layers: 2, decoder_attention_heads: 2, decoder_ffn_dim: 48, max_source_positions: 12, max_target_positions: 20,
  decoder_start_token_id: 299, eos_token_id: 297, pad_token_id: 297, bos_token_id: 297,
  extra: { init_std: 0.02, begin_suppress_tokens: [220, 297], forced_decoder_ids: null },
};

/**
 * The smallest Whisper whisper.cpp accepts as a real model: the full multilingual vocabulary
 * (whisper.cpp derives its special tokens from it), 30 s of audio context, but d_model 64.
 */
export const ggmlConfig: WhisperConfig = {
  ...presetConfig('tiny'),
  d_model: 64, encoder_layers: 2, encoder_attention_heads: 2, encoder_ffn_dim: 256,
  decoder_layers: 3, decoder_attention_heads: 2, decoder_ffn_dim: 256,
};

// whisper.cpp's prompt for a multilingual model, no timestamps: sot, <|en|>, <|transcribe|>,
// <|notimestamps|>; the first generated token is predicted at position 3.
const promptLength = 4;

/**
 * A random Whisper whose decoder is programmed to say `words`: every weight is random (seeded),
 * except that the decoder's learned position p is a large multiple of the token embedding of the
 * word to say there (then <|endoftext|>) and the final LayerNorm gain is large, so the logits of
 * the intended token dominate whatever the random layers and the audio add. whisper.cpp can only
 * print this text if it read every tensor under the right name, layout and type.
 */
export function programmedModel(tokens: readonly number[], endOfText: number): WhisperCheckpoint {
  const weights = initWhisperWeights(ggmlConfig, 21, { randomizeAll: true });
  const d = ggmlConfig.d_model;
  const embedding = weights.get('model.decoder.embed_tokens.weight')!;
  const positions = weights.get('model.decoder.embed_positions.weight')!;
  const script = [...tokens, endOfText];
  for (let p = 0; p < ggmlConfig.max_target_positions; p++) {
    const token = script[Math.min(Math.max(p - (promptLength - 1), 0), script.length - 1)]!;
    for (let i = 0; i < d; i++) positions[p * d + i] = 20 * embedding[token * d + i]!;
  }
  weights.get('model.decoder.layer_norm.weight')!.fill(30);
  return { config: ggmlConfig, weights };
}

/** A fresh temporary folder per test file, removed afterwards. */
export function useTempDir(): () => string {
  let dir: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dqw-io-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return () => {
    if (!dir) throw new Error('temp dir not created');
    return dir;
  };
}

/** Bytes of a typed array's own range. */
export function bytesOf(a: Float32Array | Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Asserts two weight maps hold the same names and bit-identical values. */
export function expectSameWeights(actual: ReadonlyMap<string, Float32Array>, expected: ReadonlyMap<string, Float32Array>): void {
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [name, values] of expected) {
    const got = actual.get(name)!;
    if (Buffer.compare(bytesOf(got), bytesOf(values)) !== 0) {
      const i = got.findIndex((v, k) => !Object.is(v, values[k]));
      throw new Error(`tensor "${name}" differs at element ${i}: ${got[i]} vs ${values[i]}`);
    }
  }
}

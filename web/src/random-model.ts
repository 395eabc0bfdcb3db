// The page's "small random model": Whisper's real vocabulary and 80 mel bins (so the tokenizer,
// log-mel and timestamps are the real ones) around a narrow network, 32 wide with 2+2 layers,
// a 3 s audio context (150 positions; long audio takes a window per 3 s) and 32 text positions
// (at most 16 sampled tokens per window), so transcribing runs in seconds even on a CPU WebGPU
// adapter. Its output is gibberish; it exercises the whole pipeline without a model file.
import { initWhisperWeights, presetConfig, type WhisperConfig } from '../../src/index.js';
import type { WhisperCheckpoint } from '../../src/io/whisper-inventory.js';

/** Configuration of the random model. */
export const randomModelConfig: WhisperConfig = {
  ...presetConfig('tiny'),
  d_model: 32,
  encoder_layers: 2,
  encoder_attention_heads: 2,
  encoder_ffn_dim: 128,
  decoder_layers: 2,
  decoder_attention_heads: 2,
  decoder_ffn_dim: 128,
  max_source_positions: 150,
  max_target_positions: 32,
};

/**
 * Initialisation: every tensor random (biases and norms included) with std 0.2, so that the
 * logits depend strongly on the audio and the weights rather than sitting near uniform.
 */
export const randomModelInit = { std: 0.2, randomizeAll: true } as const;

/** The random model of `seed` (the same weights for the same seed, in Node and in browsers). */
export function randomModel(seed: number): WhisperCheckpoint {
  return { config: randomModelConfig, weights: initWhisperWeights(randomModelConfig, seed, randomModelInit) };
}

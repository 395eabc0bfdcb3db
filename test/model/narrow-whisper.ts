import { presetConfig, type WhisperConfig } from '../../src/model/config.js';

/**
 * A narrow Whisper with the real vocabulary and 80 mel bins (so the real tokenizer and filters
 * apply): width 32, 2+2 layers, a 3 s audio context. The CLI and evaluation tests run it on real
 * clips with random weights.
 */
export const narrowWhisperConfig: WhisperConfig = {
  ...presetConfig('tiny'),
  d_model: 32, encoder_layers: 2, encoder_attention_heads: 2, encoder_ffn_dim: 128,
  decoder_layers: 2, decoder_attention_heads: 2, decoder_ffn_dim: 128, max_source_positions: 150, max_target_positions: 32,
};

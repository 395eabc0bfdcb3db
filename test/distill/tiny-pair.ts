// The tiny teacher/student pairs the distillation-step tests compare with their TF.js reference:
// a vocabulary of 120 and a 10-position audio context (20 mel frames), widths 32 and 16, layer
// counts per test.
import { presetConfig, type WhisperConfig } from '../../src/model/config.js';

export const tinyVocabConfig: WhisperConfig = {
  ...presetConfig('tiny'),
  vocab_size: 120, num_mel_bins: 10, max_source_positions: 10, max_target_positions: 12,
  decoder_start_token_id: 119, eos_token_id: 117, pad_token_id: 117, bos_token_id: 117,
};

/** A width-32 teacher and a width-16 student with these encoder = decoder layer counts. */
export function tinyPair(teacherLayers: number, studentLayers: number, teacherFfn = 64): { teacher: WhisperConfig; student: WhisperConfig } {
  const heads = { encoder_attention_heads: 2, decoder_attention_heads: 2 };
  return {
    teacher: { ...tinyVocabConfig, ...heads, d_model: 32, encoder_layers: teacherLayers, decoder_layers: teacherLayers, encoder_ffn_dim: teacherFfn, decoder_ffn_dim: 48 },
    student: { ...tinyVocabConfig, ...heads, d_model: 16, encoder_layers: studentLayers, decoder_layers: studentLayers, encoder_ffn_dim: 32, decoder_ffn_dim: 24 },
  };
}

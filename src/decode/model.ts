import { DecodingError } from '../errors.js';
import type { WhisperConfig } from '../model/config.js';

// The decoding algorithms (greedy, beam search, timestamps, long-form) see a Whisper model only
// through this interface, so the same search code drives the GPU model with KV caches and the
// full-recomputation reference used in tests. Shapes follow OpenAI's whisper/decoding.py: a
// batch of audio windows, each decoded by one or more sequences (beams or best-of samples) that
// advance in lockstep, one token per sequence per step after the initial prompt.

/** What the decoding algorithms need to know of the model. */
export interface DecoderModelInfo {
  /** Length of a logit row (config `vocab_size`). */
  readonly vocabSize: number;
  /** Most tokens a decoder sequence can hold (config `max_target_positions`, OpenAI's n_text_ctx, 448). */
  readonly textContext: number;
  /** Mel bins per frame (config `num_mel_bins`: 80, or 128 for large-v3). */
  readonly melBins: number;
  /** Mel frames of one encoder input window: 2 · audioContext (3000 = 30 s for released models). */
  readonly windowFrames: number;
  /** Encoder output positions per window (config `max_source_positions`, OpenAI's n_audio_ctx, 1500). */
  readonly audioContext: number;
}

/** The decoding geometry of a Whisper configuration. */
export function decoderModelInfo(config: WhisperConfig): DecoderModelInfo {
  return {
    vocabSize: config.vocab_size,
    textContext: config.max_target_positions,
    melBins: config.num_mel_bins,
    windowFrames: 2 * config.max_source_positions,
    audioContext: config.max_source_positions,
  };
}

/**
 * Encoder output of a batch of audio windows, held by the backend (on the GPU for the GPU
 * backend). Shared by every session started on it; free it once no session needs it.
 */
export interface EncodedAudio {
  /** Number of windows encoded. */
  readonly windows: number;
  /** Releases the encoder output (and any cross-attention keys/values derived from it). */
  free(): void;
}

/**
 * A batch of decoder sequences with their self-attention key/value caches. Every sequence holds
 * the same number of tokens (`length`); `step` appends the same number to each.
 */
export interface DecoderSession {
  /** Number of sequences decoded side by side. */
  readonly sequences: number;
  /** Tokens fed to each sequence so far: the cache position the next token is written at. */
  readonly length: number;
  /**
   * Feeds `tokens[s]` to sequence s at positions `length .. length + n − 1` (n ≥ 1, the same for
   * every sequence, `length + n ≤ textContext`) and resolves to the logits at the last fed
   * position of each sequence: row-major [sequences, vocabSize]. The first call feeds the initial
   * prompt; later calls usually one token. The array belongs to the caller.
   */
  step(tokens: readonly (readonly number[])[]): Promise<Float32Array>;
  /**
   * Beam-search reordering (OpenAI's `rearrange_kv_cache`): afterwards sequence s continues
   * from the cached state sequence `parents[s]` had before the call. A parent may be taken by
   * several sequences or by none. Decoding passes only parents that attend to the same audio
   * window as s (beams never move between windows), and skips the call for the identity.
   */
  reorder(parents: readonly number[]): Promise<void>;
  /** Releases the caches. */
  free(): void;
}

/** A Whisper model as the decoding algorithms drive it. */
export interface DecoderBackend {
  readonly info: DecoderModelInfo;
  /**
   * Runs the encoder on `windows` log-mel windows, `mel` holding them one after another, each
   * channel-major [melBins, windowFrames] (OpenAI's layout, already padded or trimmed).
   */
  encode(mel: Float32Array, windows: number): Promise<EncodedAudio>;
  /**
   * Opens a session of `audioIndex.length` sequences with empty self-attention caches; sequence
   * s cross-attends to window `audioIndex[s]` of `audio` (for beam size B over W windows:
   * [0 ×B, 1 ×B, …]). `audio` must outlive the session.
   */
  startSession(audio: EncodedAudio, audioIndex: readonly number[]): Promise<DecoderSession>;
}

/**
 * Checks the arguments of {@link DecoderSession.step} against the session's state, so every
 * backend rejects bad input with the same {@link DecodingError}; returns n, the tokens fed to each sequence.
 */
export function checkStepTokens(info: DecoderModelInfo, sequences: number, length: number, tokens: readonly (readonly number[])[]): number {
  if (tokens.length !== sequences) {
    throw new DecodingError(`step: got tokens for ${tokens.length} sequences, the session has ${sequences}`);
  }
  const n = tokens[0]?.length ?? 0;
  if (n < 1) throw new DecodingError('step: each sequence must be fed at least one token');
  tokens.forEach((row, s) => {
    if (row.length !== n) throw new DecodingError(`step: sequence ${s} is fed ${row.length} tokens, sequence 0 ${n}; all must be fed the same number`);
    for (const id of row) {
      if (!Number.isInteger(id) || id < 0 || id >= info.vocabSize) {
        throw new DecodingError(`step: sequence ${s} token ${id} is outside the vocabulary (0..${info.vocabSize - 1})`);
      }
    }
  });
  if (length + n > info.textContext) {
    throw new DecodingError(`step: ${length} + ${n} tokens exceed the text context of ${info.textContext} positions`);
  }
  return n;
}

/** Checks beam-search parents: one per sequence, each a sequence index of the same audio window. */
export function checkReorderParents(sequences: number, audioIndex: readonly number[], parents: readonly number[]): void {
  if (parents.length !== sequences) {
    throw new DecodingError(`reorder: got ${parents.length} parents, the session has ${sequences} sequences`);
  }
  parents.forEach((p, s) => {
    if (!Number.isInteger(p) || p < 0 || p >= sequences) {
      throw new DecodingError(`reorder: parent ${p} of sequence ${s} is not a sequence index (0..${sequences - 1})`);
    }
    if (audioIndex[p] !== audioIndex[s]) {
      throw new DecodingError(`reorder: sequence ${s} (window ${audioIndex[s]}) cannot continue sequence ${p} of window ${audioIndex[p]}`);
    }
  });
}

/** Checks a session's window of each sequence (for backends' `startSession`). */
export function checkAudioIndex(windows: number, audioIndex: readonly number[]): void {
  if (audioIndex.length < 1) throw new DecodingError('startSession: a session needs at least one sequence');
  audioIndex.forEach((w, s) => {
    if (!Number.isInteger(w) || w < 0 || w >= windows) {
      throw new DecodingError(`startSession: sequence ${s} is given window ${w}, the audio has windows 0..${windows - 1}`);
    }
  });
}

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeAudio } from '../../src/decode/decode.js';
import { GpuDecoderBackend } from '../../src/decode/gpu-backend.js';
import { decoderModelInfo } from '../../src/decode/model.js';
import { RecomputeBackend, type RecomputeModel } from '../../src/decode/recompute.js';
import { DecodingError } from '../../src/errors.js';
import { melFrames, presetConfig, type WhisperConfig } from '../../src/model/config.js';
import { WhisperInference } from '../../src/model/inference.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { WhisperWeights } from '../../src/model/whisper.js';
import { WhisperTokenizer } from '../../src/text/tokenizer.js';
import { expectClose, randomArray, useGpu } from '../helpers.js';
import { whisperForwardRef } from '../ref/whisper.js';
import { WHISPER_ASSETS } from '../text/assets.js';

const gpu = useGpu();

// Whisper's real multilingual vocabulary (so decoding runs its language detection, timestamp
// rules and suppression on real token ids) on a tiny random model: 2+2 layers of width 32,
// 10 audio positions, 16 text positions.
const cfg: WhisperConfig = {
  ...presetConfig('tiny'),
  d_model: 32, encoder_layers: 2, encoder_attention_heads: 2, encoder_ffn_dim: 64,
  decoder_layers: 2, decoder_attention_heads: 2, decoder_ffn_dim: 48, max_source_positions: 10, max_target_positions: 16,
};
const weights = initWhisperWeights(cfg, 21, { std: 0.2, randomizeAll: true });
const tokenizer = WhisperTokenizer.fromTiktoken(readFileSync(`${WHISPER_ASSETS}multilingual.tiktoken`, 'utf8'), { vocabSize: cfg.vocab_size });
const windowFloats = cfg.num_mel_bins * melFrames(cfg);
const mel = randomArray(2 * windowFloats, 31);

/** The float64 reference Whisper as a recomputing backend: the independent yardstick. */
const referenceModel: RecomputeModel<Float64Array> = {
  info: decoderModelInfo(cfg),
  encodeWindow: (m) => whisperForwardRef(cfg, weights, m, [cfg.decoder_start_token_id]).encoderOut,
  lastLogits: (encoderOut, tokens) => {
    const { logits } = whisperForwardRef(cfg, weights, [], tokens, { encoderOut });
    return logits.subarray((tokens.length - 1) * cfg.vocab_size);
  },
};

async function withBackends<T>(fn: (gpuBackend: GpuDecoderBackend, reference: RecomputeBackend<Float64Array>) => Promise<T>): Promise<T> {
  const w = WhisperWeights.upload(gpu(), cfg, weights);
  const backend = new GpuDecoderBackend(new WhisperInference(w));
  try {
    return await fn(backend, new RecomputeBackend(referenceModel));
  } finally {
    backend.destroy();
    w.destroy();
  }
}

describe('GPU decoder backend', () => {
  it('greedy decoding with language detection and timestamps: the tokens of the float64 recomputing backend', async () => {
    await withBackends(async (backend, reference) => {
      const options = { sampleLen: 8 };
      const ours = await decodeAudio(backend, tokenizer, await backend.encode(mel, 2), options);
      const theirs = await decodeAudio(reference, tokenizer, await reference.encode(mel, 2), options);
      expect(ours.map((r) => r.tokens)).toEqual(theirs.map((r) => r.tokens));
      expect(ours.map((r) => r.language)).toEqual(theirs.map((r) => r.language));
      expect(ours[0]!.tokens.length).toBeGreaterThan(0);
      // Log probabilities from float32 logits: within 1e-4 (measured about 1e-6).
      expectClose(ours.map((r) => r.avgLogprob), theirs.map((r) => r.avgLogprob), { atol: 1e-4, rtol: 0 }, 'avgLogprob');
    });
  });

  it('beam search (2 beams per window, reordered caches): the tokens of the float64 recomputing backend', async () => {
    await withBackends(async (backend, reference) => {
      const options = { sampleLen: 8, beamSize: 2, language: 'en', withoutTimestamps: true };
      // Count the reorders that reach the GPU session (decoding skips the identity).
      let reorders = 0;
      const startSession = backend.startSession.bind(backend);
      backend.startSession = async (audio, audioIndex) => {
        const session = await startSession(audio, audioIndex);
        const reorder = session.reorder.bind(session);
        session.reorder = (parents) => (reorders++, reorder(parents));
        return session;
      };
      const ours = await decodeAudio(backend, tokenizer, await backend.encode(mel, 2), options);
      expect(reorders).toBeGreaterThan(0);
      const theirs = await decodeAudio(reference, tokenizer, await reference.encode(mel, 2), options);
      expect(ours.map((r) => r.tokens)).toEqual(theirs.map((r) => r.tokens));
      expectClose(ours.map((r) => r.avgLogprob), theirs.map((r) => r.avgLogprob), { atol: 1e-4, rtol: 0 }, 'avgLogprob');
    });
  });

  it('sequences mapped to windows out of order get their own windows', async () => {
    await withBackends(async (backend, reference) => {
      const audioIndex = [1, 0, 1];
      const ours = await backend.startSession(await backend.encode(mel, 2), audioIndex);
      const theirs = await reference.startSession(await reference.encode(mel, 2), audioIndex);
      const prompt = [[50258, 50259], [50258, 50260], [50258, 50261]];
      const scale = (x: Float32Array) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      let expected = await theirs.step(prompt);
      expectClose(await ours.step(prompt), expected, { atol: 2e-5 * scale(expected), rtol: 0 }, 'prompt logits');
      // Sequences 0 and 2 share window 1: 2 may continue 0; 1 (window 0) may not.
      await expect(ours.reorder([2, 1, 2, 0])).rejects.toThrow(DecodingError);
      await expect(ours.reorder([1, 1, 2])).rejects.toThrow(/sequence 0 \(window 1\) cannot continue sequence 1 of window 0/);
      await ours.reorder([2, 1, 0]);
      await theirs.reorder([2, 1, 0]);
      expected = await theirs.step([[400], [401], [402]]);
      expectClose(await ours.step([[400], [401], [402]]), expected, { atol: 2e-5 * scale(expected), rtol: 0 }, 'logits after reorder');
      await expect(ours.step([[1, 2], [3, 4], [5, 6]].map((t) => t.map((x) => x + cfg.vocab_size)))).rejects.toThrow(DecodingError);
      ours.free();
    });
  });
});

import { describe, expect, it } from 'vitest';
import { GpuDecoderBackend } from '../../src/decode/gpu-backend.js';
import { decoderModelInfo } from '../../src/decode/model.js';
import { RecomputeBackend, type RecomputeModel } from '../../src/decode/recompute.js';
import { DecodingError } from '../../src/errors.js';
import { melFrames, presetConfig, type WhisperConfig } from '../../src/model/config.js';
import { WhisperInference } from '../../src/model/inference.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { WhisperWeights } from '../../src/model/whisper.js';
import { Rng } from '../../src/util/random.js';
import { expectClose, randomArray, useGpu } from '../helpers.js';
import { whisperForwardRef } from '../ref/whisper.js';
import { expectSameStepLogits, expectSameTokens } from './backend-conformance.js';
import { multilingualTokenizer } from './scripted.js';

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
const windowFloats = cfg.num_mel_bins * melFrames(cfg);
const mel = randomArray(2 * windowFloats, 31);

/** The float64 reference Whisper as a recomputing backend: the independent yardstick. */
const referenceModel: RecomputeModel<Float64Array> = {
  info: decoderModelInfo(cfg),
  encodeWindow: (m) => whisperForwardRef(cfg, weights, m, [cfg.decoder_start_token_id]).encoderOut,
  lastLogits: (encoderOut, tokens) => whisperForwardRef(cfg, weights, [], tokens, { encoderOut }).logits.subarray((tokens.length - 1) * cfg.vocab_size),
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

// float32 logits vs float64 through 2+2 blocks: measured <= 6.4e-6
// absolute on lavapipe; 1e-4 + 1e-5 relative still catches any wrong row or position.
const logitTolerance = { atol: 1e-4, rtol: 1e-5 };

describe('GPU decoder backend', () => {
  it('session protocol (prompt, steps, beam reorder, two-token step, second session): the logits of the float64 recomputing backend', async () => {
    await withBackends(async (backend, reference) => {
      const worst = await expectSameStepLogits(backend, reference, mel, 2, logitTolerance);
      console.log(`GPU backend vs float64 recomputation: max logit difference ${worst.toExponential(2)}`);
      expect(worst).toBeGreaterThan(0);
    });
  });

  it('greedy with language detection and timestamps, 2-beam search, best-of-2 sampling: the tokens of the float64 recomputing backend', async () => {
    await withBackends(async (backend, reference) => {
      const results = await expectSameTokens(backend, reference, await multilingualTokenizer(), mel, 2, [
        { sampleLen: 8 },
        { sampleLen: 8, beamSize: 2, language: 'en', withoutTimestamps: true },
        { sampleLen: 8, bestOf: 2, temperature: 0.8, language: 'de', rng: new Rng(3) },
      ]);
      expect(results.every((perWindow) => perWindow.every((r) => r.tokens.length > 0))).toBe(true);
    });
  });

  it('sequences mapped to windows out of order get their own windows', async () => {
    await withBackends(async (backend, reference) => {
      const audioIndex = [1, 0, 1];
      const ours = await backend.startSession(await backend.encode(mel, 2), audioIndex);
      const theirs = await reference.startSession(await reference.encode(mel, 2), audioIndex);
      const prompt = [[50258, 50259], [50258, 50260], [50258, 50261]];
      expectClose(await ours.step(prompt), await theirs.step(prompt), logitTolerance, 'prompt logits');
      // Sequences 0 and 2 share window 1: 2 may continue 0; 1 (window 0) may not.
      await expect(ours.reorder([2, 1, 2, 0])).rejects.toThrow(DecodingError);
      await expect(ours.reorder([1, 1, 2])).rejects.toThrow(/sequence 0 \(window 1\) cannot continue sequence 1 of window 0/);
      await ours.reorder([2, 1, 0]);
      await theirs.reorder([2, 1, 0]);
      const next = [[400], [401], [402]];
      expectClose(await ours.step(next), await theirs.step(next), logitTolerance, 'logits after reorder');
      await expect(ours.step([[cfg.vocab_size], [1], [2]])).rejects.toThrow(DecodingError);
      ours.free();
    });
  });
});

// Real-time factor of transcription on this device: the Whisper tiny preset (random weights, so
// the tokens are fed rather than stopping at <|endoftext|>) on one 30 s window: log-mel of 30 s
// of audio, encoder, the SOT prompt, then 20 greedy tokens with KV caches. The first run compiles
// every program; the figures are of the second.
import { readFileSync } from 'node:fs';
import { LogMelSpectrogram, N_SAMPLES } from '../../src/audio/logmel.js';
import { readMelFilters } from '../../src/audio/mel-filters.js';
import { presetConfig } from '../../src/model/config.js';
import { WhisperInference } from '../../src/model/inference.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { WhisperWeights } from '../../src/model/whisper.js';
import type { BenchReport } from '../types.js';

const TOKENS = 20;
// <|startoftranscript|><|en|><|transcribe|><|notimestamps|> in the multilingual vocabulary.
const SOT_SEQUENCE = [50258, 50259, 50359, 50363];

const argmax = (x: Float32Array) => x.reduce((best, v, i) => (v > x[best]! ? i : best), 0);

const realTimeFactor: BenchReport = {
  name: `transcription real-time factor: tiny preset (random weights), one 30 s window, greedy, ${TOKENS} tokens`,
  async run(gpu) {
    const config = presetConfig('tiny');
    const weights = WhisperWeights.upload(gpu, config, initWhisperWeights(config, 1));
    const inference = new WhisperInference(weights);
    const filterFile = new URL('../../assets/mel_filters.npz', import.meta.url).pathname;
    const logMel = new LogMelSpectrogram(gpu, readMelFilters(readFileSync(filterFile), filterFile).get(config.num_mel_bins)!);
    // A 440 Hz tone with a slow amplitude sweep: any signal serves, the work does not depend on it.
    const audio = Float32Array.from({ length: N_SAMPLES }, (_, i) => 0.3 * Math.sin((2 * Math.PI * 440 * i) / 16000) * Math.sin((Math.PI * i) / N_SAMPLES));
    const transcribeOnce = async () => {
      const t = [performance.now()];
      const mel = await logMel.compute(audio, { length: N_SAMPLES });
      t.push(performance.now());
      const encoded = await inference.encode(mel, 1);
      t.push(performance.now());
      const session = await inference.startSession(encoded);
      let logits = await session.step([SOT_SEQUENCE]);
      t.push(performance.now());
      for (let i = 0; i < TOKENS; i++) logits = await session.step([[argmax(logits)]]);
      t.push(performance.now());
      session.free();
      encoded.free();
      return { logMel: t[1]! - t[0]!, encode: t[2]! - t[1]!, prompt: t[3]! - t[2]!, steps: t[4]! - t[3]!, total: t[4]! - t[0]! };
    };
    try {
      const cold = await transcribeOnce();
      const warm = await transcribeOnce();
      const rtf = warm.total / 30_000;
      return {
        lines: [
          `first run (compiling every program): ${(cold.total / 1000).toFixed(2)} s`,
          `log-mel ${warm.logMel.toFixed(0)} ms, encoder ${warm.encode.toFixed(0)} ms, SOT prompt ${warm.prompt.toFixed(0)} ms, ${TOKENS} steps ${warm.steps.toFixed(0)} ms (${(warm.steps / TOKENS).toFixed(1)} ms/token)`,
          `total ${(warm.total / 1000).toFixed(2)} s for 30 s of audio: real-time factor ${rtf.toFixed(3)}`,
        ],
        values: { coldMs: cold.total, logMelMs: warm.logMel, encodeMs: warm.encode, promptMs: warm.prompt, stepMs: warm.steps / TOKENS, totalMs: warm.total, realTimeFactor: rtf },
      };
    } finally {
      logMel.destroy();
      inference.destroy();
      weights.destroy();
    }
  },
};

export const reports: BenchReport[] = [realTimeFactor];

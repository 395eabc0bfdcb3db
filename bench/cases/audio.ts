// Whisper's log-mel front end on a 30 s window (480,000 samples at 16 kHz -> [n_mels, 3000]):
// framing, the DFT as a [3000, 400] x [400, 402] matmul, power, the mel matmul, the global max
// and the log/clamp pass, as LogMelSpectrogram.record dispatches them.
import { LogMelSpectrogram, N_FFT, N_FRAMES, N_SAMPLES } from '../../src/audio/logmel.js';
import { N_FREQ_BINS } from '../../src/audio/mel-filters.js';
import type { BenchCase } from '../types.js';

function logMelCase(nMels: number): BenchCase {
  const T = N_FRAMES;
  const dft = 2 * T * N_FFT * 2 * N_FREQ_BINS;
  const mel = 2 * nMels * N_FREQ_BINS * T;
  return {
    family: 'audio',
    name: `log-mel ${nMels} x ${T} of 30 s (${N_SAMPLES} samples)`,
    // Framing (1 multiply per element), the two matmuls, power (3 per bin), both max passes and
    // the log pass (about 6 per output).
    flops: T * N_FFT + dft + 3 * T * N_FREQ_BINS + mel + 2 * nMels * T + 6 * nMels * T,
    // Framing reads audio and window and writes frames; the DFT reads frames and basis and writes
    // the spectrum; power reads it and writes the power; the mel matmul reads power and filters
    // and writes the output, which the max and the log pass then read (and the log pass writes).
    bytes:
      4 *
      (3 * T * N_FFT +
        (T * N_FFT + 2 * N_FREQ_BINS * N_FFT + T * 2 * N_FREQ_BINS) +
        (T * 2 * N_FREQ_BINS + T * N_FREQ_BINS) +
        (T * N_FREQ_BINS + nMels * N_FREQ_BINS + nMels * T) +
        nMels * T +
        2 * nMels * T),
    setup(gpu) {
      // Values do not change the work: noise for the audio, random non-negative filter weights.
      const filters = { nMels, data: Float32Array.from({ length: nMels * N_FREQ_BINS }, () => Math.random() * 0.01) };
      const logMel = new LogMelSpectrogram(gpu, filters);
      const audio = gpu.upload(Float32Array.from({ length: N_SAMPLES }, () => Math.random() - 0.5), [N_SAMPLES], 'f32', 'audio');
      const out = gpu.empty([nMels, T], 'f32', 'log-mel');
      const work = logMel.workspace(T);
      return {
        run: (rec) => logMel.record(rec, audio, out, work),
        dispose() {
          gpu.free(audio, out);
          logMel.freeWorkspace(work);
          logMel.destroy();
        },
      };
    },
  };
}

export const cases: BenchCase[] = [logMelCase(80), logMelCase(128)];

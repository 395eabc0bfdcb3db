import { ShapeError } from '../errors.js';
import type { Gpu, Recorder } from '../gpu/gpu.js';
import { expectDType, expectShape, numel, type Tensor } from '../gpu/tensor.js';
import { matmul } from '../kernels/matmul.js';
import { rowMax } from '../kernels/reduce.js';
import { N_FREQ_BINS, type MelFilters } from './mel-filters.js';

/** Whisper's STFT window and FFT length (25 ms at 16 kHz). */
export const N_FFT = 400;
/** Whisper's STFT hop (10 ms at 16 kHz). */
export const HOP_LENGTH = 160;
/** Whisper's sample rate. */
export const SAMPLE_RATE = 16_000;
/** Samples in one 30 s model input window at 16 kHz. */
export const N_SAMPLES = 30 * SAMPLE_RATE;
/** Mel frames in one 30 s model input window. */
export const N_FRAMES = N_SAMPLES / HOP_LENGTH;

const WORKGROUP = 256;

/**
 * Mel frames of a signal of `length` samples: torch.stft(center=True) gives length / 160 + 1,
 * and Whisper drops the last.
 */
export function logMelFrameCount(length: number): number {
  return Math.floor(length / HOP_LENGTH);
}

/** Scratch tensors of one `LogMelSpectrogram.record` call for a given frame count. */
export interface LogMelWorkspace {
  /** f32 [frames, 400]: windowed frames. */
  frames: Tensor;
  /** f32 [frames, 402]: DFT real parts (bins 0..200) then imaginary parts. */
  spectrum: Tensor;
  /** f32 [frames, 201]: power spectrum. */
  power: Tensor;
  /** f32 [nMels]: per-mel-band maxima. */
  bandMax: Tensor;
  /** f32 [1]: the global maximum. */
  max: Tensor;
}

export interface LogMelOptions {
  /**
   * Length in samples of the signal analysed: the audio zero-padded (or trimmed) to it, as
   * Whisper's pad_or_trim does. Default: the audio's own length. Use N_SAMPLES for the 30 s model
   * input, or the audio length plus N_SAMPLES for Whisper's long-form transcription.
   */
  length?: number;
  label?: string;
}

/** An x/y grid of 256-invocation workgroups covering n elements within the per-dimension limit. */
function flatGrid(rec: Recorder, n: number): { workgroups: [number, number]; groups_x: number } {
  const groups = Math.max(1, Math.ceil(n / WORKGROUP));
  const groupsX = Math.min(groups, rec.gpu.limits.maxComputeWorkgroupsPerDimension);
  return { workgroups: [groupsX, Math.ceil(groups / groupsX)], groups_x: groupsX };
}

/**
 * Whisper's log-mel spectrogram on the GPU, exactly as whisper/audio.py computes it: periodic
 * Hann window of 400, hop 160, STFT with reflect padding of 200 each side (torch.stft
 * center=True), last frame dropped, power spectrum, mel filterbank, log10(max(x, 1e-10)),
 * clamped to (global max - 8), then (x + 4) / 4.
 *
 * Output layout: f32 [nMels, frames], row-major (mel band m of frame t at m * frames + t): the
 * [channels, time] layout Whisper's encoder conv stem reads (OpenAI's model takes mel of shape
 * [batch, n_mels, 3000]).
 *
 * Holds the constant tensors (window, DFT basis, filterbank); call `destroy()` to free them.
 */
export class LogMelSpectrogram {
  readonly nMels: number;
  private readonly hann: Tensor;
  private readonly basis: Tensor;
  private readonly filters: Tensor;

  constructor(
    readonly gpu: Gpu,
    filters: MelFilters,
  ) {
    if (filters.data.length !== filters.nMels * N_FREQ_BINS) {
      throw new ShapeError(`LogMelSpectrogram: mel filterbank of ${filters.nMels} bands has ${filters.data.length} values, expected ${filters.nMels * N_FREQ_BINS}`);
    }
    this.nMels = filters.nMels;
    this.hann = gpu.upload(hannWindow(), [N_FFT], 'f32', 'hann window');
    this.basis = gpu.upload(dftBasis(), [2 * N_FREQ_BINS, N_FFT], 'f32', 'DFT basis');
    this.filters = gpu.upload(filters.data, [filters.nMels, N_FREQ_BINS], 'f32', `mel filters ${filters.nMels}`);
  }

  /** New scratch tensors for `frames` frames (from the Gpu's pool; free with `freeWorkspace`). */
  workspace(frames: number): LogMelWorkspace {
    const g = this.gpu;
    return {
      frames: g.empty([frames, N_FFT], 'f32', 'log-mel frames'),
      spectrum: g.empty([frames, 2 * N_FREQ_BINS], 'f32', 'log-mel spectrum'),
      power: g.empty([frames, N_FREQ_BINS], 'f32', 'log-mel power'),
      bandMax: g.empty([this.nMels], 'f32', 'log-mel band max'),
      max: g.empty([1], 'f32', 'log-mel max'),
    };
  }

  freeWorkspace(work: LogMelWorkspace): void {
    this.gpu.free(work.frames, work.spectrum, work.power, work.bandMax, work.max);
  }

  /**
   * Record the log-mel spectrogram of `audio` (f32 [n] mono 16 kHz samples) into `out`
   * (f32 [nMels, logMelFrameCount(length)]), using `work` (from `workspace(frames)`).
   * @throws ShapeError for tensors of the wrong shape or dtype, or a signal of 200 samples or
   * fewer (reflect padding needs more).
   */
  record(rec: Recorder, audio: Tensor, out: Tensor, work: LogMelWorkspace, opts: LogMelOptions = {}): void {
    const what = `logMel${opts.label ? ` (${opts.label})` : ''}`;
    const n = numel(audio.shape);
    const length = opts.length ?? n;
    if (!Number.isInteger(length) || length <= N_FFT / 2) {
      throw new ShapeError(`${what}: the signal must be longer than ${N_FFT / 2} samples for reflect padding, got length ${length} (audio "${audio.label}" has ${n})`);
    }
    const frames = logMelFrameCount(length);
    expectShape(audio, [n], what);
    expectDType(audio, ['f32'], what);
    expectShape(out, [this.nMels, frames], what);
    expectDType(out, ['f32'], what);
    expectShape(work.frames, [frames, N_FFT], what);
    expectShape(work.spectrum, [frames, 2 * N_FREQ_BINS], what);
    expectShape(work.power, [frames, N_FREQ_BINS], what);
    expectShape(work.bandMax, [this.nMels], what);
    expectShape(work.max, [1], what);
    const label = opts.label;
    const frameGrid = flatGrid(rec, frames * N_FFT);
    rec.dispatch(
      { shader: 'melspec', entry: 'frame_window' },
      {
        tensors: { audio, hann: this.hann, frames: work.frames },
        uniforms: { length, available: Math.min(n, length), frames, groups_x: frameGrid.groups_x },
        sizes: { audio: Math.min(n, length), hann: N_FFT, frames: frames * N_FFT },
        workgroups: frameGrid.workgroups,
        flops: frames * N_FFT,
        bytes: 3 * frames * N_FFT * 4,
      },
      label,
    );
    matmul(rec, work.frames, this.basis, work.spectrum, { transB: true, label: label ? `${label} DFT` : 'log-mel DFT' });
    const powerGrid = flatGrid(rec, frames * N_FREQ_BINS);
    rec.dispatch(
      { shader: 'melspec', entry: 'power_spectrum' },
      {
        tensors: { spectrum: work.spectrum, power: work.power },
        uniforms: { frames, groups_x: powerGrid.groups_x },
        sizes: { spectrum: frames * 2 * N_FREQ_BINS, power: frames * N_FREQ_BINS },
        workgroups: powerGrid.workgroups,
        flops: 3 * frames * N_FREQ_BINS,
        bytes: 3 * frames * N_FREQ_BINS * 4,
      },
      label,
    );
    matmul(rec, this.filters, work.power, out, { transB: true, label: label ? `${label} mel` : 'log-mel filterbank' });
    rowMax(rec, out, work.bandMax, { label: 'log-mel band max' });
    rowMax(rec, { ...work.bandMax, shape: [1, this.nMels] }, work.max, { label: 'log-mel max' });
    const count = this.nMels * frames;
    const normGrid = flatGrid(rec, count);
    rec.dispatch(
      { shader: 'melspec', entry: 'log_normalize' },
      {
        tensors: { mel: out, mel_max: work.max },
        uniforms: { count, groups_x: normGrid.groups_x },
        sizes: { mel: count, mel_max: 1 },
        workgroups: normGrid.workgroups,
        flops: 6 * count,
        bytes: 2 * count * 4,
      },
      label,
    );
  }

  /**
   * Upload `samples` (mono 16 kHz), compute the log-mel spectrogram and read it back:
   * Float32Array [nMels, logMelFrameCount(length)] row-major. For the 30 s model input pass
   * `{ length: N_SAMPLES }` (pads with zeros or trims, as Whisper's pad_or_trim).
   */
  async compute(samples: Float32Array, opts: LogMelOptions = {}): Promise<Float32Array> {
    const length = opts.length ?? samples.length;
    const frames = logMelFrameCount(length);
    // Samples past `length` are never read; upload at least one value so the binding exists.
    const used = samples.subarray(0, Math.min(samples.length, length));
    const audio = this.gpu.upload(used.length ? used : new Float32Array(1), [Math.max(used.length, 1)], 'f32', opts.label ?? 'audio');
    const out = this.gpu.empty([this.nMels, frames], 'f32', 'log-mel');
    const work = this.workspace(frames);
    try {
      await this.gpu.run((rec) => this.record(rec, audio, out, work, { ...opts, length }));
      return await this.gpu.readF32(out);
    } finally {
      this.gpu.free(audio, out);
      this.freeWorkspace(work);
    }
  }

  /**
   * The log-mel of `samples` (mono 16 kHz) followed by one window of silence, with the number of
   * its frames that hold audio: what long-form transcription (`transcribe` in
   * src/decode/transcribe.ts) takes as its mel and `contentFrames`. OpenAI appends 30 s, the
   * window of every released model; transcribe reads no frame past the first window or past the
   * content, so for a model with a shorter window (`windowFrames`, 2 · max_source_positions)
   * appending that window gives the same frames and computes fewer.
   */
  async computeForTranscription(samples: Float32Array, windowFrames = N_FRAMES, label?: string): Promise<{ data: Float32Array; bins: number; frames: number; contentFrames: number }> {
    const data = await this.compute(samples, { length: samples.length + windowFrames * HOP_LENGTH, label });
    const frames = data.length / this.nMels;
    return { data, bins: this.nMels, frames, contentFrames: frames - windowFrames };
  }

  /** Free the window, DFT basis and filterbank tensors. */
  destroy(): void {
    this.gpu.free(this.hann, this.basis, this.filters);
  }
}

/** Periodic Hann window of N_FFT (torch.hann_window default), computed in f64. */
function hannWindow(): Float32Array {
  return Float32Array.from({ length: N_FFT }, (_, k) => 0.5 - 0.5 * Math.cos((2 * Math.PI * k) / N_FFT));
}

/**
 * [2 * 201, 400]: row f < 201 is cos(2 pi f k / 400), row 201 + f is -sin(2 pi f k / 400), so
 * frames @ basis^T gives the real and imaginary parts of the DFT. The angle is reduced mod 400
 * in integers first so every entry is the f64 value rounded once to f32.
 */
function dftBasis(): Float32Array {
  const basis = new Float32Array(2 * N_FREQ_BINS * N_FFT);
  for (let f = 0; f < N_FREQ_BINS; f++) {
    for (let k = 0; k < N_FFT; k++) {
      const angle = (2 * Math.PI * ((f * k) % N_FFT)) / N_FFT;
      basis[f * N_FFT + k] = Math.cos(angle);
      basis[(N_FREQ_BINS + f) * N_FFT + k] = -Math.sin(angle);
    }
  }
  return basis;
}

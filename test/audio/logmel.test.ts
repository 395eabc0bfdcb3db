import { readFileSync } from 'node:fs';
import { WhisperFeatureExtractor } from '@huggingface/transformers';
import { describe, expect, it } from 'vitest';
import { LogMelSpectrogram, logMelFrameCount, N_FRAMES, N_SAMPLES } from '../../src/audio/logmel.js';
import { N_FREQ_BINS, readMelFilters, type MelFilters } from '../../src/audio/mel-filters.js';
import { CheckpointError, ShapeError } from '../../src/errors.js';
import { readAudioFile16k } from '../../src/io/audio-file.js';
import { maxAbsDiff, randomArray, useGpu } from '../helpers.js';
import { logMelRef, powerSpectrumDirect, powerSpectrumFft } from '../ref/logmel.js';
import { SPEECH_SAMPLES, speechClips, WHISPER_ASSETS } from './clips.js';

// Tolerances. GPU (f32, DFT as a matmul) vs the float64 reference: 1e-4 (measured up to 5.6e-5
// on 30 s windows of 10 clips: f32 rounding of the DFT sums in quiet bands near the max - 8 floor,
// where log10 magnifies relative error). transformers.js WhisperFeatureExtractor (its own Hann
// window, FFT and slaney mel filters, not mel_filters.npz) vs either: 1e-3 (measured 1.3e-7 vs
// the reference on the 30 s windows of all 79 clips).
const GPU_TOL = 1e-4;
const HF_TOL = 1e-3;

const filterBanks = readMelFilters(new Uint8Array(readFileSync(`${WHISPER_ASSETS}mel_filters.npz`)));
const mel80 = filterBanks.get(80)!;
const mel128 = filterBanks.get(128)!;
// A fresh config object each: the extractor stores the filterbank it computes into its config.
const preprocessorConfig = () => JSON.parse(readFileSync(`${WHISPER_ASSETS}hf-whisper-tiny/preprocessor_config.json`, 'utf8')) as Record<string, unknown>;
const hf80 = new WhisperFeatureExtractor(preprocessorConfig());
const hf128 = new WhisperFeatureExtractor({ ...preprocessorConfig(), feature_size: 128 });

/**
 * transformers.js features of `samples` as a signal of `length` samples (padded with zeros or
 * trimmed; length <= 30 s as the extractor caps frames at 3000): [nMels, length / 160].
 */
async function hfLogMel(samples: Float32Array, length: number, nMels: 80 | 128): Promise<Float32Array> {
  const { input_features } = await (nMels === 80 ? hf80 : hf128)._call(samples.subarray(0, length), { max_length: length });
  expect(input_features.dims).toEqual([1, nMels, logMelFrameCount(length)]);
  return input_features.data as Float32Array;
}

describe('reference pieces', () => {
  it('the FFT power spectrum equals the DFT definition (relative 1e-10) on random frames', () => {
    for (let seed = 0; seed < 5; seed++) {
      const frame = randomArray(400, seed);
      const direct = powerSpectrumDirect(frame);
      const fast = powerSpectrumFft(frame);
      for (let f = 0; f < 201; f++) expect(Math.abs(fast[f]! - direct[f]!)).toBeLessThanOrEqual(1e-10 * Math.max(direct[f]!, 1e-3));
    }
  });

  it('mel_filters.npz holds mel_80 and mel_128 equal to transformers.js slaney filterbanks (1e-6)', () => {
    expect([...filterBanks.keys()].sort()).toEqual([128, 80]);
    for (const [bank, hf] of [[mel80, hf80], [mel128, hf128]] as const) {
      // transformers.js computes its own, [nMels][201 bins] like ours.
      const theirs = (hf.config as { mel_filters: number[][] }).mel_filters.flat();
      expect(bank.data.length).toBe(bank.nMels * N_FREQ_BINS);
      expect(theirs.length).toBe(bank.nMels * N_FREQ_BINS);
      expect(maxAbsDiff(bank.data, theirs)).toBeLessThan(1e-6);
    }
  });

  it('a damaged .npz is a CheckpointError naming the file', () => {
    const npz = new Uint8Array(readFileSync(`${WHISPER_ASSETS}mel_filters.npz`));
    expect(() => readMelFilters(npz.subarray(0, 1000), 'cut.npz')).toThrow(CheckpointError);
    expect(() => readMelFilters(npz.subarray(0, 1000), 'cut.npz')).toThrow(/cut\.npz: not a readable \.npz/);
  });
});

/** Clips loaded once at 16 kHz mono. */
const clips = speechClips();
const audio16k = new Map<string, Float32Array>();
async function load(clip: string): Promise<Float32Array> {
  let x = audio16k.get(clip);
  if (!x) {
    x = await readAudioFile16k(SPEECH_SAMPLES + clip);
    audio16k.set(clip, x);
  }
  return x;
}

describe('GPU log-mel (shaders/melspec.wgsl) vs the float64 reference and transformers.js', () => {
  const gpu = useGpu();

  // The 30 s model input: a padded short clip, a trimmed long one, a resampled 48 kHz one.
  const windows = ['whisper.cpp/jfk.wav', 'azure_customspeech/en-US/testing_audio.wav', 'reazonspeech/test_ja_1.wav'];
  for (const clip of windows) {
    it(`${clip}: 30 s window [80, 3000] within ${GPU_TOL} of the reference, ${HF_TOL} of transformers.js`, async () => {
      const samples = await load(clip);
      const logMel = new LogMelSpectrogram(gpu(), mel80);
      try {
        const out = await logMel.compute(samples, { length: N_SAMPLES });
        expect(out.length).toBe(80 * N_FRAMES);
        expect(maxAbsDiff(out, logMelRef(samples, mel80.data, 80, N_SAMPLES))).toBeLessThanOrEqual(GPU_TOL);
        expect(maxAbsDiff(out, await hfLogMel(samples, N_SAMPLES, 80))).toBeLessThanOrEqual(HF_TOL);
      } finally {
        logMel.destroy();
      }
    });
  }

  it(`128 mel bands (large-v3) on a whole clip, arbitrary length: within ${GPU_TOL} / ${HF_TOL}`, async () => {
    const samples = await load('speech_recognition/french.aiff');
    const logMel = new LogMelSpectrogram(gpu(), mel128);
    try {
      const out = await logMel.compute(samples);
      expect(out.length).toBe(128 * logMelFrameCount(samples.length));
      expect(maxAbsDiff(out, logMelRef(samples, mel128.data, 128))).toBeLessThanOrEqual(GPU_TOL);
      expect(maxAbsDiff(out, await hfLogMel(samples, samples.length, 128))).toBeLessThanOrEqual(HF_TOL);
    } finally {
      logMel.destroy();
    }
  });

  it('long-form: a 50 s clip plus 30 s of padding (Whisper transcribe) vs the reference', async () => {
    const samples = await load('azure_customspeech/es-ES/testing_audio.wav');
    const length = samples.length + N_SAMPLES;
    const logMel = new LogMelSpectrogram(gpu(), mel80);
    try {
      const out = await logMel.compute(samples, { length });
      expect(out.length).toBe(80 * logMelFrameCount(length));
      expect(maxAbsDiff(out, logMelRef(samples, mel80.data, 80, length))).toBeLessThanOrEqual(GPU_TOL);
    } finally {
      logMel.destroy();
    }
  });

  it('odd lengths: 201 samples (the shortest reflect padding allows), 1234, noise at full scale', async () => {
    const logMel = new LogMelSpectrogram(gpu(), mel80);
    try {
      for (const n of [201, 1234, 16_000 + 77]) {
        const samples = randomArray(n, n);
        const out = await logMel.compute(samples);
        expect(out.length).toBe(80 * Math.floor(n / 160));
        expect(maxAbsDiff(out, logMelRef(samples, mel80.data, 80))).toBeLessThanOrEqual(GPU_TOL);
      }
    } finally {
      logMel.destroy();
    }
  });

  it('rejects signals of 200 samples or fewer, wrong output shapes, and bad filterbanks', () => {
    const g = gpu();
    const logMel = new LogMelSpectrogram(g, mel80);
    const audio = g.upload(randomArray(2000, 1), [2000], 'f32', 'clip');
    const wrongOut = g.empty([80, 13], 'f32', 'mel out');
    const work = logMel.workspace(12);
    try {
      const rec = g.record();
      expect(() => logMel.record(rec, audio, wrongOut, work)).toThrow(ShapeError);
      expect(() => logMel.record(rec, audio, wrongOut, work)).toThrow(/tensor "mel out" has shape \[80, 13\], expected \[80, 12\]/);
      expect(() => logMel.record(rec, audio, wrongOut, work, { length: 200 })).toThrow(/longer than 200 samples.*got length 200 \(audio "clip" has 2000\)/);
      const bad: MelFilters = { nMels: 80, data: new Float32Array(80 * 200) };
      expect(() => new LogMelSpectrogram(g, bad)).toThrow(/80 bands has 16000 values, expected 16080/);
    } finally {
      g.free(audio, wrongOut);
      logMel.freeWorkspace(work);
      logMel.destroy();
    }
  });
});

// Every clip, analysed as its own length (Whisper's log_mel_spectrogram without padding) up to
// 10 s: the first 10 s of longer clips keep the file within its time budget on a shared 2-core
// machine (the 30 s window and long-form are compared above, on the GPU subset).
const CLIP_SECONDS = 10;

describe(`GPU log-mel and float64 reference vs transformers.js on every clip (${clips.length}), same 16 kHz samples`, () => {
  const gpu = useGpu();

  it(`agree within ${HF_TOL}: whole clips up to ${CLIP_SECONDS} s, the first ${CLIP_SECONDS} s of longer ones`, async () => {
    const logMel = new LogMelSpectrogram(gpu(), mel80);
    let worstGpu = 0;
    let worstRef = 0;
    try {
      for (const clip of clips) {
        const samples = await load(clip.audio);
        const length = Math.min(samples.length, CLIP_SECONDS * 16_000);
        const theirs = await hfLogMel(samples, length, 80);
        const gpuDiff = maxAbsDiff(await logMel.compute(samples.subarray(0, length)), theirs);
        const refDiff = maxAbsDiff(logMelRef(samples, mel80.data, 80, length), theirs);
        expect(gpuDiff, `${clip.audio}: GPU`).toBeLessThanOrEqual(HF_TOL);
        expect(refDiff, `${clip.audio}: reference`).toBeLessThanOrEqual(HF_TOL);
        worstGpu = Math.max(worstGpu, gpuDiff);
        worstRef = Math.max(worstRef, refDiff);
      }
    } finally {
      logMel.destroy();
    }
    console.log(`log-mel vs transformers.js over ${clips.length} clips: GPU max |diff| ${worstGpu.toExponential(2)}, float64 reference ${worstRef.toExponential(2)}`);
  });
});

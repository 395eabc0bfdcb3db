import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HOP_LENGTH, LogMelSpectrogram, N_FRAMES, N_SAMPLES } from '../../src/audio/logmel.js';
import { readMelFilters } from '../../src/audio/mel-filters.js';
import { readAudioFile16k } from '../../src/io/audio-file.js';
import { useGpu } from '../helpers.js';
import { SPEECH_SAMPLES, WHISPER_ASSETS } from './clips.js';

const mel80 = readMelFilters(new Uint8Array(readFileSync(`${WHISPER_ASSETS}mel_filters.npz`))).get(80)!;

/** Band b of a row-major [bins, frames] log-mel, frames [0, count). */
const band = (data: Float32Array, frames: number, b: number, count: number) => data.subarray(b * frames, b * frames + count);

describe('LogMelSpectrogram.computeForTranscription', () => {
  const gpu = useGpu();

  it('30 s windows: the log-mel of the audio and 30 s of silence (as OpenAI), content frames = audio / hop', async () => {
    const samples = await readAudioFile16k(`${SPEECH_SAMPLES}cheetah/test_en.wav`);
    const logMel = new LogMelSpectrogram(gpu(), mel80);
    try {
      const padded = await logMel.compute(samples, { length: samples.length + N_SAMPLES });
      const mel = await logMel.computeForTranscription(samples);
      expect(mel.bins).toBe(80);
      expect(mel.contentFrames).toBe(Math.floor(samples.length / HOP_LENGTH));
      expect(mel.frames).toBe(mel.contentFrames + N_FRAMES);
      expect(mel.data).toEqual(padded);
    } finally {
      logMel.destroy();
    }
  });

  it('a 3 s window: the same frames as with 30 s of silence (bit for bit), over the content and one window past it', async () => {
    const samples = await readAudioFile16k(`${SPEECH_SAMPLES}cheetah/test_en.wav`);
    const logMel = new LogMelSpectrogram(gpu(), mel80);
    try {
      const long = await logMel.computeForTranscription(samples);
      const short = await logMel.computeForTranscription(samples, 300, 'test_en');
      expect(short.contentFrames).toBe(long.contentFrames);
      expect(short.frames).toBe(short.contentFrames + 300);
      // Every frame transcribe can read (the first window, and the content) and the silence after.
      for (let b = 0; b < 80; b++) expect(band(short.data, short.frames, b, short.frames)).toEqual(band(long.data, long.frames, b, short.frames));
    } finally {
      logMel.destroy();
    }
  });
});

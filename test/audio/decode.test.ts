import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeAudio, detectAudioFormat } from '../../src/audio/decode.js';
import { loadAudio16k } from '../../src/audio/resample.js';
import { AudioDecodeError } from '../../src/errors.js';
import { readAudioFile } from '../../src/io/audio-file.js';
import { ffmpegDecode, ffmpegDecodeAll, FIXTURES, hasFfmpeg, NO_FFMPEG, SPEECH_SAMPLES, speechClips } from './clips.js';

const clips = speechClips();

/** Lossless sources must match ffmpeg bit for bit (both give int / 2^(bits-1) as f32). */
function expectSameSamples(actual: Float32Array[], reference: Float32Array[], what: string, atol = 0): void {
  expect(actual.length, `${what}: channels`).toBe(reference.length);
  for (const [c, ref] of reference.entries()) {
    const got = actual[c]!;
    expect(got.length, `${what}: channel ${c} length`).toBe(ref.length);
    let worst = 0;
    for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(got[i]! - ref[i]!));
    expect(worst, `${what}: channel ${c} max |difference|`).toBeLessThanOrEqual(atol);
  }
}

describe(`every clip of shared/data/speech-samples (${clips.length}) decodes`, () => {
  it('has the manifest’s rate, channels and duration (within 2 ms), and ffmpeg’s exact samples', async () => {
    expect(clips.length).toBe(79);
    const paths = clips.map((clip) => ({ path: SPEECH_SAMPLES + clip.audio, channels: clip.channels }));
    const byFfmpeg = hasFfmpeg ? ffmpegDecodeAll(paths) : [];
    for (const [i, clip] of clips.entries()) {
      const audio = await readAudioFile(paths[i]!.path);
      expect(audio.sampleRate, clip.audio).toBe(clip.sample_rate);
      expect(audio.channels, clip.audio).toBe(clip.channels);
      expect(Math.abs(audio.samples[0]!.length / audio.sampleRate - clip.seconds), `${clip.audio} duration vs ${clip.seconds} s`).toBeLessThanOrEqual(0.002);
      if (hasFfmpeg) expectSameSamples(audio.samples, byFfmpeg[i]!, clip.audio);
    }
  });
  if (!hasFfmpeg) it.skip(NO_FFMPEG, () => {});
});

// Compressed clips made by fixtures/make-fixtures.sh from the first 3 s of jfk.wav (16 kHz mono).
const jfk = async (): Promise<Float32Array> => (await readAudioFile(`${SPEECH_SAMPLES}whisper.cpp/jfk.wav`)).samples[0]!;

/** SNR in dB of x against ref over their common length, ignoring 2000 samples at each end. */
function snrDb(x: Float32Array, ref: Float32Array): number {
  let signal = 0;
  let noise = 0;
  for (let i = 2000; i < Math.min(x.length, ref.length) - 2000; i++) {
    signal += ref[i]! ** 2;
    noise += (x[i]! - ref[i]!) ** 2;
  }
  return 10 * Math.log10(signal / noise);
}

const fixtures = [
  // name, format, rate, channels, samples per channel, source gain after downmix, minimum SNR (dB)
  // vs the source at 16 kHz (lossy codecs at low bit rates: measured 22.9, 11.9, 20.8 dB), the
  // ffmpeg decoder and the largest difference from it (same libraries, different float paths).
  { file: 'jfk-3s-44k-stereo.mp3', format: 'mp3', rate: 44_100, channels: 2, length: 132_300, gain: 0.75, snr: 18, decoder: undefined, atol: 1e-5 },
  { file: 'jfk-3s.opus', format: 'ogg-opus', rate: 48_000, channels: 1, length: 144_000, gain: 1, snr: 9, decoder: 'libopus', atol: 1e-4 },
  { file: 'jfk-3s-22k.ogg', format: 'ogg-vorbis', rate: 22_050, channels: 1, length: 66_150, gain: 1, snr: 16, decoder: undefined, atol: 1e-5 },
  { file: 'jfk-1s-flac.oga', format: 'ogg-flac', rate: 16_000, channels: 1, length: 16_000, gain: 1, snr: Infinity, decoder: undefined, atol: 0 },
] as const;

describe('compressed formats', () => {
  for (const f of fixtures) {
    const bytes = () => new Uint8Array(readFileSync(FIXTURES + f.file));

    it(`${f.file}: ${f.format}, ${f.rate} Hz, ${f.channels} ch, gapless length, the source speech at 16 kHz`, async () => {
      expect(detectAudioFormat(bytes())).toBe(f.format);
      const audio = await decodeAudio(bytes(), f.file);
      expect(audio.sampleRate).toBe(f.rate);
      expect(audio.channels).toBe(f.channels);
      expect(audio.samples.map((c) => c.length)).toEqual(new Array(f.channels).fill(f.length));
      const source = (await jfk()).subarray(0, Math.round((f.length * 16_000) / f.rate)).map((v) => v * f.gain);
      const mono16k = await loadAudio16k(bytes(), f.file);
      expect(mono16k.length).toBe(source.length);
      if (f.snr === Infinity) expectSameSamples([mono16k], [source], `${f.file} (lossless)`);
      else expect(snrDb(mono16k, source), `${f.file} SNR vs source`).toBeGreaterThan(f.snr);
    });

    it.skipIf(!hasFfmpeg)(`${f.file}: same samples as ffmpeg (within ${f.atol})`, async () => {
      const audio = await decodeAudio(bytes(), f.file);
      expectSameSamples(audio.samples, ffmpegDecode(FIXTURES + f.file, f.channels, f.decoder), f.file, f.atol);
    });

    it(`${f.file} cut to 60%: AudioDecodeError "truncated"`, async () => {
      const whole = bytes();
      await expect(decodeAudio(whole.subarray(0, Math.floor(whole.length * 0.6)), `cut-${f.file}`)).rejects.toThrow(
        new RegExp(`cut-${f.file.replace('.', '\\.')}: truncated`),
      );
    });
  }

  it('the stereo MP3 keeps its channels apart (right = half the left, as encoded)', async () => {
    const [left, right] = (await decodeAudio(new Uint8Array(readFileSync(`${FIXTURES}jfk-3s-44k-stereo.mp3`)))).samples as [Float32Array, Float32Array];
    let lr = 0;
    let ll = 0;
    for (let i = 0; i < left.length; i++) {
      lr += left[i]! * right[i]!;
      ll += left[i]! * left[i]!;
    }
    expect(lr / ll).toBeCloseTo(0.5, 2);
  });

  it('native FLAC cut short: AudioDecodeError naming the file and the sample counts', async () => {
    const whole = new Uint8Array(readFileSync(`${SPEECH_SAMPLES}coqui_tts/LJ001-0002.flac`));
    const error = await decodeAudio(whole.subarray(0, whole.length >> 1), 'LJ001-0002.flac').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AudioDecodeError);
    expect((error as AudioDecodeError).message).toMatch(/LJ001-0002\.flac: truncated FLAC: STREAMINFO declares 41885 samples per channel, only \d+ could be decoded/);
  });
});

import { describe, expect, it } from 'vitest';
import { downmixToMono, resample, WHISPER_SAMPLE_RATE } from '../../src/audio/resample.js';
import { ShapeError } from '../../src/errors.js';
import { randomArray } from '../helpers.js';

// Tones through the 16 kHz resampler (libsamplerate SRC_SINC_BEST_QUALITY). Passband: tones up to
// 7 kHz (87.5% of the 8 kHz output Nyquist) must come out as the analytic 16 kHz sine, same
// amplitude and phase (time-aligned), within 1e-5 of the amplitude (-100 dB; measured 3e-7, i.e.
// f32 rounding). Stopband: tones from 8.1 kHz to the input Nyquist must be removed, not aliased:
// output RMS at least 100 dB below the tone's (libsamplerate documents 97 dB; measured > 140 dB).
// 800 output samples (50 ms) at each end are left out: a 1 s tone starts and stops abruptly.

const AMPLITUDE = 0.5;
const EDGE = 800;

function tone(hz: number, rate: number, n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => AMPLITUDE * Math.sin((2 * Math.PI * hz * i) / rate));
}

describe('resample to 16 kHz', () => {
  for (const rate of [22_050, 44_100, 48_000]) {
    it(`${rate} Hz: passband tones 100 Hz..7 kHz keep amplitude and phase (error <= 1e-5 of amplitude)`, async () => {
      for (const hz of [100, 1000, 4000, 7000]) {
        const out = await resample(tone(hz, rate, rate), rate, WHISPER_SAMPLE_RATE);
        expect(out.length).toBe(WHISPER_SAMPLE_RATE);
        const analytic = tone(hz, WHISPER_SAMPLE_RATE, out.length);
        let worst = 0;
        for (let i = EDGE; i < out.length - EDGE; i++) worst = Math.max(worst, Math.abs(out[i]! - analytic[i]!));
        expect(worst / AMPLITUDE, `${hz} Hz from ${rate} Hz`).toBeLessThan(1e-5);
      }
    });

    it(`${rate} Hz: stopband tones 8.1 kHz..Nyquist are attenuated by >= 100 dB`, async () => {
      for (const hz of [8100, 8500, 10_000, 12_000, 20_000].filter((f) => f < rate / 2)) {
        const out = await resample(tone(hz, rate, rate), rate, WHISPER_SAMPLE_RATE);
        let power = 0;
        for (let i = EDGE; i < out.length - EDGE; i++) power += out[i]! ** 2;
        const attenuationDb = 10 * Math.log10(power / (out.length - 2 * EDGE) / (AMPLITUDE ** 2 / 2));
        expect(attenuationDb, `${hz} Hz from ${rate} Hz`).toBeLessThan(-100);
      }
    });
  }

  it('output length is round(n * 16000 / rate); equal rates return the input; empty stays empty', async () => {
    for (const [n, rate] of [[44_100 * 11, 44_100], [12_345, 22_050], [7, 48_000]] as const) {
      expect((await resample(randomArray(n, n, 0.5), rate, 16_000)).length).toBe(Math.round((n * 16_000) / rate));
    }
    const same = randomArray(100, 1);
    expect(await resample(same, 16_000, 16_000)).toBe(same);
    expect((await resample(new Float32Array(0), 44_100, 16_000)).length).toBe(0);
  });

  it('signals over 1M samples (converted in blocks) stay exact across block joins, and leave no state', async () => {
    const long = tone(1000, 48_000, 48_000 * 25);
    const out = await resample(long, 48_000, WHISPER_SAMPLE_RATE);
    expect(out.length).toBe(16_000 * 25);
    const analytic = tone(1000, WHISPER_SAMPLE_RATE, out.length);
    let worst = 0;
    for (let i = EDGE; i < out.length - EDGE; i++) worst = Math.max(worst, Math.abs(out[i]! - analytic[i]!));
    expect(worst / AMPLITUDE).toBeLessThan(1e-5);
    expect(await resample(long, 48_000, WHISPER_SAMPLE_RATE)).toEqual(out);
  });

  it('upsampling (8 kHz telephone audio) keeps a 1 kHz tone', async () => {
    const out = await resample(tone(1000, 8000, 8000), 8000, WHISPER_SAMPLE_RATE);
    const analytic = tone(1000, WHISPER_SAMPLE_RATE, out.length);
    let worst = 0;
    for (let i = EDGE; i < out.length - EDGE; i++) worst = Math.max(worst, Math.abs(out[i]! - analytic[i]!));
    expect(worst / AMPLITUDE).toBeLessThan(1e-5);
  });

  it('rejects rates that are not positive finite numbers, and extreme ratios', async () => {
    await expect(resample(new Float32Array(10), 0, 16_000)).rejects.toThrow(ShapeError);
    await expect(resample(new Float32Array(10), 44_100, Number.NaN)).rejects.toThrow(/toRate must be a positive number of Hz, got NaN/);
    await expect(resample(new Float32Array(10), 16_000_000, 16_000)).rejects.toThrow(/ratio libsamplerate cannot do/);
  });
});

describe('downmixToMono', () => {
  it('is the mean of the channels at every instant', () => {
    const channels = [randomArray(257, 1), randomArray(257, 2), randomArray(257, 3)];
    const mono = downmixToMono(channels);
    for (let i = 0; i < 257; i++) expect(mono[i]).toBeCloseTo((channels[0]![i]! + channels[1]![i]! + channels[2]![i]!) / 3, 6);
  });

  it('returns a single channel as is, and rejects no channels or unequal lengths', () => {
    const one = randomArray(10, 4);
    expect(downmixToMono([one])).toBe(one);
    expect(() => downmixToMono([])).toThrow(ShapeError);
    expect(() => downmixToMono([new Float32Array(3), new Float32Array(4)])).toThrow(/channel 1 has 4 samples, channel 0 has 3/);
  });
});

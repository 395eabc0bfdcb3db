// libsamplerate is a CommonJS (UMD) bundle whose named exports Node cannot see from ESM; its
// default export is the whole module.
import LibSampleRate from '@alexanderolsen/libsamplerate-js';
import { ShapeError } from '../errors.js';
import { decodeAudio } from './decode.js';
import type { DecodedAudio } from './types.js';

/** Whisper's input sample rate. */
export const WHISPER_SAMPLE_RATE = 16_000;

/**
 * Mono mix of planar channels: the mean of the channels at every instant (as ffmpeg's `-ac 1`
 * does for Whisper). One channel is returned as is (not copied).
 * @throws ShapeError if there are no channels or they differ in length.
 */
export function downmixToMono(channels: readonly Float32Array[]): Float32Array {
  const [first] = channels;
  if (!first) throw new ShapeError('downmixToMono: no channels');
  if (channels.length === 1) return first;
  for (const [i, c] of channels.entries()) {
    if (c.length !== first.length) throw new ShapeError(`downmixToMono: channel ${i} has ${c.length} samples, channel 0 has ${first.length}`);
  }
  const out = new Float32Array(first.length);
  const scale = 1 / channels.length;
  for (let i = 0; i < out.length; i++) {
    let sum = 0;
    for (const c of channels) sum += c[i]!;
    out[i] = sum * scale;
  }
  return out;
}

/**
 * Resample one channel from `fromRate` to `toRate` Hz with libsamplerate's best sinc converter
 * (SRC_SINC_BEST_QUALITY: about 97 dB stopband attenuation, passband to 97% of the lower Nyquist
 * frequency; WebAssembly build). The output is time-aligned with the input (no filter delay) and
 * has exactly round(n * toRate / fromRate) samples (libsamplerate may stop a sample short at the
 * very end; that sample is 0). Equal rates return the input itself.
 * @throws ShapeError for rates that are not positive finite numbers or a ratio outside [1/256, 256].
 */
export async function resample(samples: Float32Array, fromRate: number, toRate: number): Promise<Float32Array> {
  for (const [name, rate] of [['fromRate', fromRate], ['toRate', toRate]] as const) {
    if (!(rate > 0 && Number.isFinite(rate))) throw new ShapeError(`resample: ${name} must be a positive number of Hz, got ${rate}`);
  }
  if (fromRate === toRate) return samples;
  const ratio = toRate / fromRate;
  if (ratio > 256 || ratio < 1 / 256) throw new ShapeError(`resample: ${fromRate} Hz -> ${toRate} Hz is a ratio libsamplerate cannot do (1/256..256)`);
  const length = Math.round(samples.length * ratio);
  if (samples.length === 0) return new Float32Array(0);
  const converter = await LibSampleRate.create(1, fromRate, toRate, { converterType: LibSampleRate.ConverterType.SRC_SINC_BEST_QUALITY });
  try {
    const converted = converter.simple(samples);
    if (converted.length === length) return converted;
    const out = new Float32Array(length);
    out.set(converted.subarray(0, length));
    return out;
  } finally {
    converter.destroy();
  }
}

/** Mono at 16 kHz (mean of channels, then `resample`): what Whisper's front end takes. */
export async function toWhisperInput(audio: DecodedAudio): Promise<Float32Array> {
  return resample(downmixToMono(audio.samples), audio.sampleRate, WHISPER_SAMPLE_RATE);
}

/**
 * Decode an audio file (any format `decodeAudio` reads), downmix to mono and resample to 16 kHz:
 * the samples Whisper's log-mel front end expects, full scale [-1, 1].
 * @param nameHint the file's name, for error messages.
 */
export async function loadAudio16k(bytes: Uint8Array, nameHint?: string): Promise<Float32Array> {
  return toWhisperInput(await decodeAudio(bytes, nameHint));
}

import { spawn } from 'node:child_process';
import { decodeWav } from '../../audio/pcm.js';
import { resample, WHISPER_SAMPLE_RATE } from '../../audio/resample.js';
import { DqwError } from '../../errors.js';
import { Rng } from '../../util/random.js';
import { MissingPackageError } from './debian.js';

// One utterance: espeak-ng speaks a sentence, the audio is resampled to 16 kHz, scaled, given
// white noise at a chosen SNR and written as 16-bit PCM WAV.

/** How one utterance is spoken and degraded; everything random about it, drawn beforehand. */
export interface UtteranceSettings {
  /** espeak-ng voice and variant, as `-v` takes it ("de+m3"). */
  readonly voice: string;
  /** Speaking rate in words per minute (espeak-ng `-s`; its default is 175). */
  readonly rate: number;
  /** Pitch, 0..99 (espeak-ng `-p`; its default is 50). */
  readonly pitch: number;
  /** Peak amplitude of the speech before noise, as a fraction of full scale. */
  readonly peak: number;
  /** Ratio of speech power (over its active frames) to noise power, in dB. */
  readonly snrDb: number;
  /** Seed of the utterance's own noise generator. */
  readonly noiseSeed: number;
}

const ESPEAK_PURPOSE = 'speech synthesis for dqw data synth';

/** Runs `command args` with `input` on stdin; its stdout. ENOENT becomes a {@link MissingPackageError} for espeak-ng. */
export function runEspeak(command: string, args: readonly string[], input = ''): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? new MissingPackageError('espeak-ng', `${ESPEAK_PURPOSE}; ${command} was not found`) : e));
    child.on('close', (code) => {
      if (code === 0) resolve(new Uint8Array(Buffer.concat(out)));
      else reject(new DqwError(`${command} ${args.join(' ')} exited with ${code}: ${Buffer.concat(err).toString('utf8').trim()}`));
    });
    // A child that failed to start closes stdin under us; the error event reports why.
    child.stdin.on('error', () => {});
    child.stdin.end(input, 'utf8');
  });
}

/**
 * espeak-ng's speech for `text` as mono samples at its own rate (22050 Hz).
 * @throws MissingPackageError when `command` does not exist; DqwError when it fails.
 */
export async function espeakSpeech(command: string, text: string, settings: Pick<UtteranceSettings, 'voice' | 'rate' | 'pitch'>): Promise<{ samples: Float32Array; sampleRate: number }> {
  // -b 1: the input is UTF-8. Text goes through stdin, so a sentence starting with "-" is not an option.
  const args = ['-b', '1', '-v', settings.voice, '-s', String(settings.rate), '-p', String(settings.pitch), '--stdout'];
  const wav = await runEspeak(command, args, text);
  // Written to a pipe, espeak-ng cannot seek back to fill in the RIFF and data sizes, and leaves
  // 0x7ffff000 there; size 0 tells the decoder the data runs to the end.
  const view = new DataView(wav.buffer, wav.byteOffset, wav.byteLength);
  if (wav.byteLength >= 44 && String.fromCharCode(...wav.subarray(36, 40)) === 'data') view.setUint32(40, 0, true);
  const decoded = decodeWav(wav, `espeak-ng output for "${text}"`);
  return { samples: decoded.samples[0]!, sampleRate: decoded.sampleRate };
}

/**
 * Mean power of the active part of `samples`: the 20 ms frames whose power is at least 1/1000
 * (-30 dB) of the loudest frame's, so that the silence espeak-ng leaves around speech does not
 * lower it.
 */
export function activePower(samples: Float32Array, sampleRate: number): number {
  const frame = Math.max(1, Math.round(sampleRate * 0.02));
  const powers: number[] = [];
  for (let start = 0; start < samples.length; start += frame) {
    const end = Math.min(samples.length, start + frame);
    let sum = 0;
    for (let i = start; i < end; i++) sum += samples[i]! * samples[i]!;
    powers.push(sum / (end - start));
  }
  const loudest = Math.max(0, ...powers);
  const active = powers.filter((p) => p >= loudest / 1000);
  return active.length === 0 ? 0 : active.reduce((a, b) => a + b, 0) / active.length;
}

/**
 * 16 kHz speech for `text` with `settings` applied, clipped to [-1, 1]: espeak-ng's output
 * resampled, scaled to the peak, plus white Gaussian noise at the SNR.
 */
export async function renderUtterance(command: string, text: string, settings: UtteranceSettings): Promise<Float32Array> {
  const speech = await espeakSpeech(command, text, settings);
  const samples = await resample(speech.samples, speech.sampleRate, WHISPER_SAMPLE_RATE);
  let peak = 0;
  for (const x of samples) peak = Math.max(peak, Math.abs(x));
  if (peak === 0) throw new DqwError(`espeak-ng produced silence for "${text}" (voice ${settings.voice})`);
  const gain = settings.peak / peak;
  for (let i = 0; i < samples.length; i++) samples[i] = samples[i]! * gain;
  const noiseStd = Math.sqrt(activePower(samples, WHISPER_SAMPLE_RATE) / 10 ** (settings.snrDb / 10));
  const noise = new Rng(settings.noiseSeed).fillNormal(new Float32Array(samples.length), noiseStd);
  for (let i = 0; i < samples.length; i++) samples[i] = Math.min(1, Math.max(-1, samples[i]! + noise[i]!));
  return samples;
}

/**
 * A mono 16-bit PCM WAV file of `samples` (in [-1, 1], rounded to the nearest step). Written
 * here: the 44-byte header is a dozen lines, not worth a dependency.
 */
export function encodeWav16(samples: Float32Array, sampleRate: number): Uint8Array {
  const bytes = new Uint8Array(44 + samples.length * 2);
  const view = new DataView(bytes.buffer);
  const ascii = (at: number, s: string) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  ascii(0, 'RIFF');
  view.setUint32(4, 36 + samples.length * 2, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  ascii(36, 'data');
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) view.setInt16(44 + 2 * i, Math.round(Math.min(1, Math.max(-1, samples[i]!)) * 32767), true);
  return bytes;
}

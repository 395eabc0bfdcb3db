import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Whisper assets and the real speech clips shared by the project (see their README.md files). */
export const WHISPER_ASSETS = new URL('../../../shared/assets/whisper/', import.meta.url).pathname;
export const SPEECH_SAMPLES = new URL('../../../shared/data/speech-samples/', import.meta.url).pathname;
export const FIXTURES = new URL('./fixtures/', import.meta.url).pathname;

/** One line of shared/data/speech-samples/manifest.jsonl (the fields the audio tests use). */
export interface Clip {
  audio: string;
  seconds: number;
  sample_rate: number;
  channels: number;
  codec: string;
}

export function speechClips(): Clip[] {
  return readFileSync(`${SPEECH_SAMPLES}manifest.jsonl`, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Clip);
}

/** Whether Debian's ffmpeg CLI is installed (an independent decoder for cross-checks). */
export const hasFfmpeg = spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status === 0;
export const NO_FFMPEG = 'ffmpeg CLI not installed (apt-get install ffmpeg): cross-checks against an independent decoder are skipped';

/** Whether the sox CLI is installed (reads RIFX and 24-bit AIFF-C sowt, which ffmpeg 5.1 misreads). */
export const hasSox = spawnSync('sox', ['--version'], { stdio: 'ignore' }).status === 0;
export const NO_SOX = 'sox CLI not installed (apt-get install sox): cross-checks of the synthetic WAV/AIFF files are skipped';

/** Decode `path` with sox to planar float32 channels (no dither, no resampling, no remixing). */
export function soxDecode(path: string, channels: number): Float32Array[] {
  const r = spawnSync('sox', ['-D', path, '-t', 'f32', '-e', 'floating-point', '-b', '32', '-L', '-'], { maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`sox failed on ${path}: ${r.stderr.toString()}`);
  return deinterleave(new Uint8Array(r.stdout), channels);
}

function deinterleave(bytes: Uint8Array, channels: number): Float32Array[] {
  const interleaved = new Float32Array(bytes.slice().buffer);
  const frames = interleaved.length / channels;
  return Array.from({ length: channels }, (_, c) => Float32Array.from({ length: frames }, (_, i) => interleaved[i * channels + c]!));
}

/**
 * Decode `path` with ffmpeg to planar float32 channels at the file's own rate (no resampling,
 * no remixing); `channels` is the stream's channel count.
 */
export function ffmpegDecode(path: string, channels: number): Float32Array[] {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-i', path, '-map', '0:a:0', '-f', 'f32le', '-c:a', 'pcm_f32le', '-'], { maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`ffmpeg failed on ${path}: ${r.stderr.toString()}`);
  return deinterleave(new Uint8Array(r.stdout), channels);
}

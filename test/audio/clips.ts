import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
  const interleaved = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const frames = interleaved.length / channels;
  const out = Array.from({ length: channels }, () => new Float32Array(frames));
  for (let i = 0, k = 0; i < frames; i++) for (let c = 0; c < channels; c++) out[c]![i] = interleaved[k++]!;
  return out;
}

/**
 * Decode `path` with ffmpeg to planar float32 channels at the file's own rate (no resampling,
 * no remixing); `channels` is the stream's channel count. Opus goes through libopus
 * (`decoder: 'libopus'`): ffmpeg 5.1's own Opus decoder is 2 samples late.
 */
export function ffmpegDecode(path: string, channels: number, decoder?: string): Float32Array[] {
  return ffmpegDecodeAll([{ path, channels, decoder }])[0]!;
}

/**
 * ffmpegDecode of many files in one ffmpeg process (one input and one raw output file per
 * file): starting ffmpeg costs about half a second on a loaded machine.
 */
export function ffmpegDecodeAll(files: readonly { path: string; channels: number; decoder?: string | undefined }[]): Float32Array[][] {
  const dir = mkdtempSync(join(tmpdir(), 'dqw-ffmpeg-'));
  try {
    const inputs = files.flatMap((f) => [...(f.decoder ? ['-c:a', f.decoder] : []), '-i', f.path]);
    const outputs = files.flatMap((_, i) => ['-map', `${i}:a:0`, '-f', 'f32le', '-c:a', 'pcm_f32le', join(dir, `${i}.f32`)]);
    const r = spawnSync('ffmpeg', ['-v', 'error', ...inputs, ...outputs]);
    if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr.toString()}`);
    return files.map((f, i) => deinterleave(new Uint8Array(readFileSync(join(dir, `${i}.f32`))), f.channels));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeAudio, detectAudioFormat } from '../../src/audio/decode.js';
import { AudioDecodeError } from '../../src/errors.js';
import { expectClose, randomArray } from '../helpers.js';
import { hasSox, NO_SOX, soxDecode } from './clips.js';
import { intCode, writeAiff, writeWav, type PcmSpec } from './pcm-writer.js';

// Synthetic WAV/AIFF files in every supported sample layout must decode to exactly the values
// written (integers as code / 2^(bits-1), as Whisper's int16 / 32768; floats rounded to f32), and
// sox must read the same values from the same files (so the test writer follows the formats).
// sox rather than ffmpeg: ffmpeg 5.1 reads RIFX sample data as little-endian and 24-bit AIFF-C
// 'sowt' as 16-bit. sox carries samples as 32-bit integers internally, so it is exact for 8..24-bit
// integer files and within 1e-7 (a few 2^-31 steps after its float conversions) for 32-bit integer
// and float files.

const RATE = 22_050;
const FRAMES = 1001;

/** Two different channels: full-scale extremes first, then uniform noise. */
function stereo(seed: number): Float32Array[] {
  return [0, 1].map((c) => {
    const x = randomArray(FRAMES, seed + c, 0.999);
    x[0] = c ? 0.999_999 : -1;
    x[1] = c ? -1 : 0.999_999;
    return x;
  });
}

/** f64 samples that are not f32 values, for the 64-bit float layouts. */
function stereoF64(seed: number): Float64Array[] {
  return stereo(seed).map((x) => Float64Array.from(x, (v, i) => v + 1e-9 * Math.sin(i)));
}

/** What a decoder must return for samples written as `spec`. */
function expected(channels: ArrayLike<number>[], spec: PcmSpec): Float32Array[] {
  if (spec.kind === 'float') return channels.map((c) => Float32Array.from(c));
  // + 0 turns -0 (a negative value rounded to code 0) into the 0 a decoder returns.
  return channels.map((c) => Float32Array.from(c, (v) => intCode(v, spec.bits) / 2 ** (spec.bits - 1) + 0));
}

function expectExact(actual: Float32Array[], want: Float32Array[], what: string): void {
  expect(actual.length, `${what}: channels`).toBe(want.length);
  for (const [c, w] of want.entries()) {
    const a = actual[c]!;
    expect(a.length, `${what}: channel ${c} length`).toBe(w.length);
    const bad = w.findIndex((v, i) => !Object.is(v, a[i]));
    expect(bad, `${what}: channel ${c} first mismatch at ${bad}: ${a[bad]} vs ${w[bad]}`).toBe(-1);
  }
}

type Variant = { name: string; spec: PcmSpec; bytes: (ch: Float32Array[] | Float64Array[]) => Uint8Array; format: 'wav' | 'aiff' };

const wav = (spec: PcmSpec, opts: { bigEndian?: boolean; extensible?: boolean } = {}): Variant => ({
  name: `WAV ${opts.bigEndian ? 'RIFX' : 'RIFF'}${opts.extensible ? ' extensible' : ''} ${spec.kind} ${spec.bits}-bit`,
  spec,
  bytes: (ch) => writeWav(ch as Float32Array[], RATE, spec, opts),
  format: 'wav',
});
const aiff = (spec: PcmSpec, compression?: 'NONE' | 'sowt' | 'fl32' | 'fl64'): Variant => ({
  name: `${compression ? `AIFF-C ${compression}` : 'AIFF'} ${spec.kind} ${spec.bits}-bit`,
  spec,
  bytes: (ch) => writeAiff(ch as Float32Array[], RATE, spec, compression),
  format: 'aiff',
});

const variants: Variant[] = [
  ...([8, 16, 24, 32] as const).flatMap((bits) => [wav({ kind: 'int', bits }), wav({ kind: 'int', bits }, { bigEndian: true })]),
  wav({ kind: 'float', bits: 32 }),
  wav({ kind: 'float', bits: 32 }, { bigEndian: true }),
  wav({ kind: 'float', bits: 64 }),
  wav({ kind: 'int', bits: 24 }, { extensible: true }),
  wav({ kind: 'float', bits: 32 }, { extensible: true }),
  ...([8, 16, 24, 32] as const).map((bits) => aiff({ kind: 'int', bits })),
  aiff({ kind: 'int', bits: 16 }, 'NONE'),
  aiff({ kind: 'int', bits: 16 }, 'sowt'),
  aiff({ kind: 'int', bits: 24 }, 'sowt'),
  aiff({ kind: 'float', bits: 32 }, 'fl32'),
  aiff({ kind: 'float', bits: 64 }, 'fl64'),
];

const tmp = mkdtempSync(join(tmpdir(), 'dqw-audio-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('WAV and AIFF variants round-trip exactly', () => {
  for (const [i, v] of variants.entries()) {
    const source = v.spec.bits === 64 ? stereoF64(10 * i) : stereo(10 * i);
    const file = v.bytes(source);

    it(`${v.name}: decodes to the written values`, async () => {
      expect(detectAudioFormat(file)).toBe(v.format);
      const audio = await decodeAudio(file, `${v.name}.${v.format}`);
      expect(audio.sampleRate).toBe(RATE);
      expect(audio.channels).toBe(2);
      expectExact(audio.samples, expected(source, v.spec), v.name);
    });

    it.skipIf(!hasSox)(`${v.name}: sox reads the same values from the file`, () => {
      const path = join(tmp, `${i}.${v.format === 'wav' ? 'wav' : 'aiff'}`);
      writeFileSync(path, file);
      const decoded = soxDecode(path, 2);
      const want = expected(source, v.spec);
      if (v.spec.kind === 'int' && v.spec.bits <= 24) expectExact(decoded, want, `sox ${v.name}`);
      else want.forEach((w, c) => expectClose(decoded[c]!, w, { atol: 1e-7, rtol: 0 }, `sox ${v.name} channel ${c}`));
    });
  }
  if (!hasSox) it.skip(NO_SOX, () => {});
});

/** The error decodeAudio throws for `bytes` named `name`; fails the test if it does not throw. */
async function decodeError(bytes: Uint8Array, name: string): Promise<AudioDecodeError> {
  const error: unknown = await decodeAudio(bytes, name).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AudioDecodeError);
  expect((error as AudioDecodeError).file).toBe(name);
  expect((error as AudioDecodeError).message).toContain(name);
  return error as AudioDecodeError;
}

describe('bad input gets an AudioDecodeError naming the file and the problem', () => {
  const mono = [randomArray(500, 7, 0.5)];

  it('WAV cut short inside the data chunk', async () => {
    const whole = writeWav(mono, 16_000, { kind: 'int', bits: 16 });
    const e = await decodeError(whole.subarray(0, whole.length - 101), 'cut.wav');
    expect(e.message).toMatch(/truncated WAV data chunk: 500 frames need 1000 bytes.*has 899/);
  });

  it('WAV cut short before its data chunk', async () => {
    const whole = writeWav(mono, 16_000, { kind: 'int', bits: 16 });
    expect((await decodeError(whole.subarray(0, 40), 'header.wav')).message).toMatch(/no "data" chunk/);
  });

  it('AIFF whose sound data is shorter than COMM declares', async () => {
    const whole = writeAiff(mono, 16_000, { kind: 'int', bits: 24 });
    expect((await decodeError(whole.subarray(0, whole.length - 3), 'cut.aiff')).message).toMatch(/truncated AIFF SSND chunk: 500 frames need 1500 bytes/);
  });

  it('WAV codecs other than PCM and float', async () => {
    const alaw = writeWav(mono, 8000, { kind: 'int', bits: 8 });
    new DataView(alaw.buffer).setUint16(20, 6, true);
    expect((await decodeError(alaw, 'alaw.wav')).message).toMatch(/codec 0x0006 \(A-law\) is not supported/);
  });

  it('AIFF-C compression types other than PCM and float', async () => {
    const ulaw = writeAiff(mono, 8000, { kind: 'int', bits: 16 }, 'NONE');
    const at = new TextDecoder().decode(ulaw).indexOf('NONE');
    ulaw.set([...'ulaw'].map((c) => c.charCodeAt(0)), at);
    expect((await decodeError(ulaw, 'ulaw.aifc')).message).toMatch(/compression "ulaw" with 16-bit samples is not supported/);
  });

  it('WAV block align that does not match the sample size', async () => {
    const odd = writeWav(mono, 16_000, { kind: 'int', bits: 16 });
    new DataView(odd.buffer).setUint16(32, 3, true);
    expect((await decodeError(odd, 'align.wav')).message).toMatch(/block align 3 does not match 1 channels of 16-bit samples/);
  });

  it('empty, unknown and unsupported formats', async () => {
    expect((await decodeError(new Uint8Array(0), 'empty.wav')).message).toMatch(/no audio data \(0 bytes\)/);
    expect((await decodeError(new TextEncoder().encode('hello, this is text'), 'notes.mp3')).message).toMatch(/not a recognised audio format \(first bytes 68 65 6c 6c/);
    const m4a = new Uint8Array(32);
    m4a.set(new TextEncoder().encode('ftypM4A '), 4);
    expect((await decodeError(m4a, 'clip.m4a')).message).toMatch(/MP4\/M4A \(AAC or ALAC\) is not supported/);
    const speex = new Uint8Array(64);
    speex.set(new TextEncoder().encode('OggS'), 0);
    speex[26] = 1;
    speex.set(new TextEncoder().encode('Speex   '), 28);
    expect((await decodeError(speex, 'voice.spx')).message).toMatch(/Ogg stream of Speex is not supported/);
  });

  it('a streamed WAV (data size 0xFFFFFFFF) runs to the end of the file', async () => {
    const streamed = writeWav(mono, 16_000, { kind: 'int', bits: 16 });
    const dataAt = new TextDecoder().decode(streamed).indexOf('data');
    new DataView(streamed.buffer).setUint32(dataAt + 4, 0xffffffff, true);
    const audio = await decodeAudio(streamed, 'streamed.wav');
    expectExact(audio.samples, expected(mono, { kind: 'int', bits: 16 }), 'streamed');
  });
});

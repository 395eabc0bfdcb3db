import { AudioDecodeError } from '../errors.js';
import type { DecodedAudio } from './types.js';

// WAV (RIFF little-endian, RIFX big-endian) and AIFF/AIFF-C parsing, hand-written: these are
// plain chunked containers around PCM, and the npm decoders at hand do not fit. @audio/decode-wav
// has no RIFX and scales positive integers by 1/(2^(b-1) - 1) where Whisper (ffmpeg, soundfile)
// divides by 2^(b-1); wavefile has not been released since 2020; neither says when data is cut
// short. Both containers share one sample reader below.

/** How one PCM sample is stored. */
interface SampleFormat {
  /** 'int': two's complement; 'uint': offset binary (8-bit WAV, AIFF-C 'raw '); 'float': IEEE. */
  kind: 'int' | 'uint' | 'float';
  /** Bytes per sample in the container (a 20-bit sample occupies 3, left-justified). */
  bytes: number;
  littleEndian: boolean;
}

/** A PCM stream found in a container: where its frames are and how they are stored. */
interface PcmLayout {
  sampleRate: number;
  channels: number;
  frames: number;
  /** Byte offset of the first frame. */
  offset: number;
  format: SampleFormat;
}

const fourcc = (b: Uint8Array, at: number): string => String.fromCharCode(b[at]!, b[at + 1]!, b[at + 2]!, b[at + 3]!);

/**
 * Interleaved PCM frames to one Float32Array per channel. Integers of n bytes are divided by
 * 2^(8n-1) (so full scale is [-1, 1) as in Whisper's `int16 / 32768`), offset-binary bytes are
 * (v - 128) / 128, floats are kept as stored (f64 rounded to f32).
 */
function readFrames(bytes: Uint8Array, layout: PcmLayout): Float32Array[] {
  const { channels, frames, offset, format } = layout;
  const out = Array.from({ length: channels }, () => new Float32Array(frames));
  const read = sampleReader(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), format);
  let at = offset;
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < channels; c++, at += format.bytes) out[c]![i] = read(at);
  }
  return out;
}

/** A function reading one sample of `format` at a byte offset of `view`, scaled as readFrames says. */
function sampleReader(view: DataView, format: SampleFormat): (at: number) => number {
  const le = format.littleEndian;
  if (format.kind === 'float') return format.bytes === 4 ? (p) => view.getFloat32(p, le) : (p) => view.getFloat64(p, le);
  if (format.kind === 'uint') return (p) => (view.getUint8(p) - 128) / 128;
  switch (format.bytes) {
    case 1:
      return (p) => view.getInt8(p) / 128;
    case 2:
      return (p) => view.getInt16(p, le) / 32768;
    case 3:
      // The 24 bits go to the top of an int32 (sign included), then / 2^31.
      return le
        ? (p) => ((view.getUint8(p) | (view.getUint8(p + 1) << 8) | (view.getUint8(p + 2) << 16)) << 8) / 2147483648
        : (p) => (((view.getUint8(p) << 16) | (view.getUint8(p + 1) << 8) | view.getUint8(p + 2)) << 8) / 2147483648;
    default:
      return (p) => view.getInt32(p, le) / 2147483648;
  }
}

/** Check that `frames` frames fit in the bytes after `offset`; say how short the file is if not. */
function checkDataFits(bytes: Uint8Array, layout: PcmLayout, file: string, what: string): void {
  const need = layout.frames * layout.channels * layout.format.bytes;
  const have = bytes.byteLength - layout.offset;
  if (need > have) {
    throw new AudioDecodeError(
      `${file}: truncated ${what}: ${layout.frames} frames need ${need} bytes of sample data from byte ${layout.offset}, the file has ${Math.max(have, 0)} (${bytes.byteLength} bytes in all)`,
      file,
    );
  }
}

const wavCodecs: Readonly<Record<number, string>> = {
  0x0002: 'Microsoft ADPCM',
  0x0006: 'A-law',
  0x0007: 'mu-law',
  0x0011: 'IMA ADPCM',
  0x0031: 'GSM 6.10',
  0x0050: 'MPEG',
  0x0055: 'MPEG Layer 3',
};

/**
 * Decode a WAV file: RIFF (little-endian) or RIFX (big-endian), PCM 8-bit unsigned, 16/24/32-bit
 * signed (also inside WAVE_FORMAT_EXTENSIBLE, any valid-bit count in those containers), IEEE float
 * 32/64. A data chunk whose declared size is 0 or 0xFFFFFFFF (written by streaming encoders)
 * runs to the end of the file.
 * @throws AudioDecodeError naming `file` for other codecs, malformed chunks and truncated data.
 */
export function decodeWav(bytes: Uint8Array, file: string): DecodedAudio {
  const riff = fourcc(bytes, 0);
  if (bytes.byteLength < 12 || (riff !== 'RIFF' && riff !== 'RIFX') || fourcc(bytes, 8) !== 'WAVE') {
    throw new AudioDecodeError(`${file}: not a WAV file (expected "RIFF"/"RIFX" ... "WAVE" in the first 12 bytes)`, file);
  }
  const le = riff === 'RIFF';
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let fmt: { tag: number; channels: number; sampleRate: number; blockAlign: number; bits: number } | undefined;
  let at = 12;
  while (at + 8 <= bytes.byteLength) {
    const id = fourcc(bytes, at);
    const size = view.getUint32(at + 4, le);
    const body = at + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + size > bytes.byteLength) throw new AudioDecodeError(`${file}: truncated or malformed WAV "fmt " chunk (${size} bytes at ${at})`, file);
      let tag = view.getUint16(body, le);
      // WAVE_FORMAT_EXTENSIBLE: the codec is the first field of the SubFormat GUID.
      if (tag === 0xfffe) {
        if (size < 40) throw new AudioDecodeError(`${file}: WAVE_FORMAT_EXTENSIBLE "fmt " chunk has ${size} bytes, needs 40`, file);
        tag = view.getUint16(body + 24, le);
      }
      fmt = { tag, channels: view.getUint16(body + 2, le), sampleRate: view.getUint32(body + 4, le), blockAlign: view.getUint16(body + 12, le), bits: view.getUint16(body + 14, le) };
    } else if (id === 'data') {
      if (!fmt) throw new AudioDecodeError(`${file}: WAV "data" chunk at byte ${at} comes before any "fmt " chunk`, file);
      const format = wavSampleFormat(fmt, le, file);
      const available = bytes.byteLength - body;
      const streamed = size === 0 || size === 0xffffffff;
      const frameBytes = fmt.channels * format.bytes;
      const layout: PcmLayout = { sampleRate: fmt.sampleRate, channels: fmt.channels, frames: Math.floor((streamed ? available : size) / frameBytes), offset: body, format };
      checkDataFits(bytes, layout, file, 'WAV data chunk');
      return { sampleRate: fmt.sampleRate, channels: fmt.channels, samples: readFrames(bytes, layout) };
    }
    at = body + size + (size & 1);
  }
  throw new AudioDecodeError(`${file}: WAV file has no ${fmt ? '"data"' : '"fmt " or "data"'} chunk (truncated?)`, file);
}

function wavSampleFormat(fmt: { tag: number; channels: number; sampleRate: number; blockAlign: number; bits: number }, littleEndian: boolean, file: string): SampleFormat {
  const { tag, channels, sampleRate, blockAlign, bits } = fmt;
  if (tag !== 1 && tag !== 3) {
    const name = wavCodecs[tag];
    throw new AudioDecodeError(`${file}: WAV codec 0x${tag.toString(16).padStart(4, '0')}${name ? ` (${name})` : ''} is not supported; only integer PCM and IEEE float are`, file);
  }
  if (channels === 0 || sampleRate === 0) throw new AudioDecodeError(`${file}: WAV "fmt " chunk declares ${channels} channels at ${sampleRate} Hz`, file);
  const bytes = Math.ceil(bits / 8);
  const float = tag === 3;
  if (float ? bits !== 32 && bits !== 64 : bits < 1 || bits > 32) {
    throw new AudioDecodeError(`${file}: WAV ${float ? 'float' : 'integer PCM'} with ${bits} bits per sample is not supported`, file);
  }
  if (blockAlign !== bytes * channels) {
    throw new AudioDecodeError(`${file}: WAV block align ${blockAlign} does not match ${channels} channels of ${bits}-bit samples (${bytes * channels} bytes)`, file);
  }
  return { kind: float ? 'float' : bytes === 1 ? 'uint' : 'int', bytes, littleEndian };
}

/** IEEE 754 80-bit extended float (AIFF's sample rate field), big-endian at `at`. */
function readExtended(view: DataView, at: number): number {
  const signExp = view.getUint16(at);
  const hi = view.getUint32(at + 2);
  const lo = view.getUint32(at + 6);
  const exp = signExp & 0x7fff;
  if (exp === 0 && hi === 0 && lo === 0) return 0;
  const value = (hi * 2 ** 32 + lo) * 2 ** (exp - 16383 - 63);
  return signExp & 0x8000 ? -value : value;
}

const aifcCompressions: Readonly<Record<string, (bits: number) => SampleFormat | undefined>> = {
  NONE: (bits) => ({ kind: 'int', bytes: Math.ceil(bits / 8), littleEndian: false }),
  twos: (bits) => ({ kind: 'int', bytes: Math.ceil(bits / 8), littleEndian: false }),
  sowt: (bits) => ({ kind: 'int', bytes: Math.ceil(bits / 8), littleEndian: true }),
  'raw ': (bits) => (bits === 8 ? { kind: 'uint', bytes: 1, littleEndian: false } : undefined),
  fl32: () => ({ kind: 'float', bytes: 4, littleEndian: false }),
  FL32: () => ({ kind: 'float', bytes: 4, littleEndian: false }),
  fl64: () => ({ kind: 'float', bytes: 8, littleEndian: false }),
  FL64: () => ({ kind: 'float', bytes: 8, littleEndian: false }),
};

/**
 * Decode an AIFF file (big-endian signed PCM of 1..32 bits) or AIFF-C with compression type
 * NONE/twos (big-endian), sowt (little-endian), raw (8-bit offset binary), fl32/fl64 (float).
 * @throws AudioDecodeError naming `file` for other compression types, malformed chunks and
 * sample data shorter than the COMM chunk's frame count.
 */
export function decodeAiff(bytes: Uint8Array, file: string): DecodedAudio {
  const form = fourcc(bytes, 8);
  if (bytes.byteLength < 12 || fourcc(bytes, 0) !== 'FORM' || (form !== 'AIFF' && form !== 'AIFC')) {
    throw new AudioDecodeError(`${file}: not an AIFF file (expected "FORM" ... "AIFF"/"AIFC" in the first 12 bytes)`, file);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let comm: { channels: number; frames: number; bits: number; sampleRate: number; compression: string } | undefined;
  let soundData: number | undefined;
  let at = 12;
  while (at + 8 <= bytes.byteLength) {
    const id = fourcc(bytes, at);
    const size = view.getUint32(at + 4);
    const body = at + 8;
    if (id === 'COMM') {
      const need = form === 'AIFC' ? 22 : 18;
      if (size < need || body + need > bytes.byteLength) throw new AudioDecodeError(`${file}: truncated or malformed AIFF COMM chunk (${size} bytes at ${at}, needs ${need})`, file);
      comm = {
        channels: view.getUint16(body),
        frames: view.getUint32(body + 2),
        bits: view.getUint16(body + 6),
        sampleRate: readExtended(view, body + 8),
        compression: form === 'AIFC' ? fourcc(bytes, body + 18) : 'NONE',
      };
    } else if (id === 'SSND') {
      if (body + 8 > bytes.byteLength) throw new AudioDecodeError(`${file}: truncated AIFF SSND chunk at byte ${at}`, file);
      soundData = body + 8 + view.getUint32(body);
    }
    at = body + size + (size & 1);
  }
  if (!comm) throw new AudioDecodeError(`${file}: AIFF file has no COMM chunk`, file);
  const { channels, frames, bits, sampleRate, compression } = comm;
  if (channels === 0 || !(sampleRate > 0)) throw new AudioDecodeError(`${file}: AIFF COMM chunk declares ${channels} channels at ${sampleRate} Hz`, file);
  const format = aifcCompressions[compression]?.(bits);
  if (!format) throw new AudioDecodeError(`${file}: AIFF-C compression "${compression}" with ${bits}-bit samples is not supported; NONE, twos, sowt, raw, fl32 and fl64 are`, file);
  if (format.kind !== 'float' && (bits < 1 || bits > 32)) throw new AudioDecodeError(`${file}: AIFF with ${bits} bits per sample is not supported`, file);
  if (frames === 0) return { sampleRate, channels, samples: Array.from({ length: channels }, () => new Float32Array(0)) };
  if (soundData === undefined) throw new AudioDecodeError(`${file}: AIFF COMM chunk declares ${frames} frames but there is no SSND chunk (truncated?)`, file);
  const layout: PcmLayout = { sampleRate, channels, frames, offset: soundData, format };
  checkDataFits(bytes, layout, file, 'AIFF SSND chunk');
  return { sampleRate, channels, samples: readFrames(bytes, layout) };
}

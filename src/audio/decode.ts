import { FLACDecoder } from '@wasm-audio-decoders/flac';
import { OggVorbisDecoder } from '@wasm-audio-decoders/ogg-vorbis';
import { MPEGDecoder } from 'mpg123-decoder';
import { OggOpusDecoder } from 'ogg-opus-decoder';
import { AudioDecodeError } from '../errors.js';
import { decodeAiff, decodeWav } from './pcm.js';
import type { DecodedAudio } from './types.js';

// Compressed codecs go to eshaz's wasm-audio-decoders (libFLAC, mpg123, libopus, libvorbis built
// to WebAssembly and shipped inline in the npm packages, so they work unchanged in Node and in a
// browser bundle). Those decoders skip damaged or missing data silently, so the container checks
// below (FLAC STREAMINFO sample count, Ogg end-of-stream page, MPEG frame lengths) are what
// turns a file cut short into an error.

/** Containers/codecs `decodeAudio` recognises by their first bytes. */
export type AudioFormat = 'wav' | 'aiff' | 'flac' | 'mp3' | 'ogg-opus' | 'ogg-vorbis' | 'ogg-flac';

const ascii = (b: Uint8Array, at: number, n: number): string => String.fromCharCode(...b.subarray(at, at + n));

/** Size of an ID3v2 tag at the start of `bytes` (0 if none): header, syncsafe size, footer. */
function id3v2Size(bytes: Uint8Array): number {
  if (bytes.byteLength < 10 || ascii(bytes, 0, 3) !== 'ID3') return 0;
  const size = ((bytes[6]! & 0x7f) << 21) | ((bytes[7]! & 0x7f) << 14) | ((bytes[8]! & 0x7f) << 7) | (bytes[9]! & 0x7f);
  return 10 + size + (bytes[5]! & 0x10 ? 10 : 0);
}

/** Formats that are recognised only to name them in the "not supported" error. */
function unsupportedFormat(bytes: Uint8Array, at: number): string | undefined {
  if (ascii(bytes, at + 4, 4) === 'ftyp') return 'MP4/M4A (AAC or ALAC)';
  if (bytes[at] === 0x1a && bytes[at + 1] === 0x45 && bytes[at + 2] === 0xdf && bytes[at + 3] === 0xa3) return 'WebM/Matroska';
  if (ascii(bytes, at, 4) === 'caff') return 'Core Audio Format (CAF)';
  if (ascii(bytes, at, 4) === 'wvpk') return 'WavPack';
  if (ascii(bytes, at, 4) === 'RF64') return 'RF64 (WAV over 4 GiB)';
  if (bytes[at] === 0xff && (bytes[at + 1]! & 0xf6) === 0xf0) return 'AAC (ADTS)';
  return undefined;
}

/**
 * The format of audio `bytes`, from magic bytes only (a file name is never trusted).
 * @throws AudioDecodeError naming `file` when the bytes are empty, of a known but unsupported
 * format, or of no recognised format.
 */
export function detectAudioFormat(bytes: Uint8Array, file = '<audio bytes>'): AudioFormat {
  if (bytes.byteLength === 0) throw new AudioDecodeError(`${file}: no audio data (0 bytes)`, file);
  const head = ascii(bytes, 0, 4);
  if ((head === 'RIFF' || head === 'RIFX') && ascii(bytes, 8, 4) === 'WAVE') return 'wav';
  if (head === 'FORM' && ['AIFF', 'AIFC'].includes(ascii(bytes, 8, 4))) return 'aiff';
  if (head === 'OggS') {
    // The first page carries the codec's identification header.
    const body = 27 + (bytes[26] ?? 0);
    const id = ascii(bytes, body, 8);
    if (id === 'OpusHead') return 'ogg-opus';
    if (id.startsWith('\x01vorbis')) return 'ogg-vorbis';
    if (id.startsWith('\x7fFLAC')) return 'ogg-flac';
    const codec = id.startsWith('Speex') ? 'Speex' : id.startsWith('\x80theora') ? 'Theora video' : 'an unknown codec';
    throw new AudioDecodeError(`${file}: Ogg stream of ${codec} is not supported; Ogg Opus, Vorbis and FLAC are`, file);
  }
  // An ID3v2 tag may precede MP3 and (rarely) FLAC data.
  const at = id3v2Size(bytes);
  if (ascii(bytes, at, 4) === 'fLaC') return 'flac';
  if (bytes[at] === 0xff && (bytes[at + 1]! & 0xe0) === 0xe0 && (bytes[at + 1]! & 0x06) !== 0) return 'mp3';
  const other = unsupportedFormat(bytes, at);
  if (other) throw new AudioDecodeError(`${file}: ${other} is not supported; WAV, AIFF, FLAC, MP3, Ogg Opus and Ogg Vorbis are`, file);
  const hex = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new AudioDecodeError(`${file}: not a recognised audio format (first bytes ${hex}); WAV, AIFF, FLAC, MP3, Ogg Opus and Ogg Vorbis are supported`, file);
}

/** FLAC STREAMINFO's total sample count per channel (0 = unknown), for the truncation check. */
function flacTotalSamples(bytes: Uint8Array, at: number): number {
  // 'fLaC', 4-byte block header, STREAMINFO: the 36-bit count sits in its bytes 13..17.
  const s = at + 8;
  if (bytes.byteLength < s + 18) return 0;
  const low = ((bytes[s + 14]! << 24) | (bytes[s + 15]! << 16) | (bytes[s + 16]! << 8) | bytes[s + 17]!) >>> 0;
  return (bytes[s + 13]! & 0x0f) * 2 ** 32 + low;
}

/** Throw unless the Ogg pages run whole to the end of the data and the last one ends the stream. */
function checkOggComplete(bytes: Uint8Array, file: string): void {
  let at = 0;
  let endOfStream = false;
  while (at < bytes.byteLength) {
    if (at + 27 > bytes.byteLength || ascii(bytes, at, 4) !== 'OggS') {
      throw new AudioDecodeError(`${file}: truncated or corrupt Ogg stream: no complete page header at byte ${at} of ${bytes.byteLength}`, file);
    }
    const segments = bytes[at + 26]!;
    let size = 27 + segments;
    for (let i = 0; i < segments; i++) size += bytes[at + 27 + i] ?? 0;
    if (at + size > bytes.byteLength) throw new AudioDecodeError(`${file}: truncated Ogg stream: the page at byte ${at} needs ${size} bytes, ${bytes.byteLength - at} are left`, file);
    endOfStream = (bytes[at + 5]! & 0x04) !== 0;
    at += size;
  }
  if (!endOfStream) throw new AudioDecodeError(`${file}: truncated Ogg stream: the last page does not end the stream`, file);
}

const mpegBitrates = {
  // kbit/s by [version 1 | 2/2.5][layer 1..3][index]
  v1: [
    [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
    [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
    [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  ],
  v2: [
    [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
  ],
};
const mpegRates = [44100, 48000, 32000];

/** Bytes of the MPEG audio frame whose header is at `at`, or 0 if there is no valid header. */
function mpegFrameLength(bytes: Uint8Array, at: number): number {
  if (at + 4 > bytes.byteLength || bytes[at] !== 0xff || (bytes[at + 1]! & 0xe0) !== 0xe0) return 0;
  const versionBits = (bytes[at + 1]! >> 3) & 3; // 0: 2.5, 2: 2, 3: 1
  const layer = 4 - ((bytes[at + 1]! >> 1) & 3); // 1..3
  const bitrateIndex = bytes[at + 2]! >> 4;
  const rateIndex = (bytes[at + 2]! >> 2) & 3;
  const padding = (bytes[at + 2]! >> 1) & 1;
  if (versionBits === 1 || layer === 4 || bitrateIndex === 0 || bitrateIndex === 15 || rateIndex === 3) return 0;
  const v1 = versionBits === 3;
  const bitrate = (v1 ? mpegBitrates.v1 : mpegBitrates.v2)[layer - 1]![bitrateIndex]! * 1000;
  const rate = mpegRates[rateIndex]! / (v1 ? 1 : versionBits === 2 ? 2 : 4);
  if (layer === 1) return (Math.floor((12 * bitrate) / rate) + padding) * 4;
  return Math.floor(((layer === 3 && !v1 ? 72 : 144) * bitrate) / rate) + padding;
}

/** Throw if the last MPEG frame (walking frame lengths from `at`) runs past the end of the data. */
function checkMpegComplete(bytes: Uint8Array, at: number, file: string): void {
  let length = mpegFrameLength(bytes, at);
  while (length > 0) {
    if (at + length > bytes.byteLength) {
      throw new AudioDecodeError(`${file}: truncated MP3: the frame at byte ${at} needs ${length} bytes, ${bytes.byteLength - at} are left`, file);
    }
    at += length;
    length = mpegFrameLength(bytes, at);
  }
}

interface WasmDecoded {
  channelData: Float32Array[];
  samplesDecoded: number;
  sampleRate: number;
  errors: readonly { message: string; frameNumber: number }[];
}

function fromWasm(result: WasmDecoded, codec: string, file: string): DecodedAudio {
  const [firstError] = result.errors;
  if (firstError) throw new AudioDecodeError(`${file}: ${codec} frame ${firstError.frameNumber} could not be decoded: ${firstError.message}`, file);
  if (result.samplesDecoded === 0 || result.channelData.length === 0) throw new AudioDecodeError(`${file}: no ${codec} audio could be decoded`, file);
  const samples = result.channelData.map((c) => c.subarray(0, result.samplesDecoded));
  return { sampleRate: result.sampleRate, channels: samples.length, samples };
}

/**
 * libFLAC's integer samples as Whisper reads them, code / 2^(bits-1): the wasm decoder divides by
 * 2^(bits-1) - 1 instead. Up to 24 bits, its f32 times 2^(bits-1) - 1 is within 0.25 of the code,
 * so rounding recovers the exact code; wider samples are rescaled without rounding.
 */
function flacCodesToFullScale(result: WasmDecoded & { bitDepth: number }): WasmDecoded {
  const full = 2 ** (result.bitDepth - 1);
  const exact = result.bitDepth <= 24;
  for (const channel of result.channelData) {
    for (let i = 0; i < channel.length; i++) {
      const code = channel[i]! * (full - 1);
      channel[i] = (exact ? Math.round(code) : code) / full;
    }
  }
  return result;
}

async function withDecoder<D extends { ready: Promise<void>; free(): void }, R>(decoder: D, use: (d: D) => Promise<R> | R): Promise<R> {
  try {
    await decoder.ready;
    return await use(decoder);
  } finally {
    decoder.free();
  }
}

/**
 * Decode an audio file held in memory: WAV (RIFF/RIFX; integer PCM 8/16/24/32-bit, float 32/64),
 * AIFF/AIFF-C, FLAC (native or in Ogg), MP3 (MPEG 1/2/2.5 layers I-III), Ogg Opus (decoded at
 * 48 kHz, as libopus does) and Ogg Vorbis. The format is found from the bytes, not from the name.
 * Samples are planar, full scale [-1, 1]; nothing is resampled or downmixed.
 * @param bytes the whole file.
 * @param nameHint the file's name, used in error messages.
 * @throws AudioDecodeError naming the file: unsupported or unrecognised format or codec,
 * malformed headers, truncated data, or frames the decoder rejects.
 */
export async function decodeAudio(bytes: Uint8Array, nameHint = '<audio bytes>'): Promise<DecodedAudio> {
  const file = nameHint;
  const format = detectAudioFormat(bytes, file);
  switch (format) {
    case 'wav':
      return decodeWav(bytes, file);
    case 'aiff':
      return decodeAiff(bytes, file);
    case 'flac': {
      const audio = await withDecoder(new FLACDecoder(), async (d) => fromWasm(flacCodesToFullScale(await d.decodeFile(bytes)), 'FLAC', file));
      const expected = flacTotalSamples(bytes, id3v2Size(bytes));
      const got = audio.samples[0]!.length;
      if (expected > got) throw new AudioDecodeError(`${file}: truncated FLAC: STREAMINFO declares ${expected} samples per channel, only ${got} could be decoded`, file);
      return audio;
    }
    case 'ogg-flac':
      checkOggComplete(bytes, file);
      return withDecoder(new FLACDecoder(), async (d) => fromWasm(flacCodesToFullScale(await d.decodeFile(bytes)), 'Ogg FLAC', file));
    case 'ogg-opus':
      checkOggComplete(bytes, file);
      return withDecoder(new OggOpusDecoder(), async (d) => fromWasm(await d.decodeFile(bytes), 'Opus', file));
    case 'ogg-vorbis':
      checkOggComplete(bytes, file);
      return withDecoder(new OggVorbisDecoder(), async (d) => fromWasm(await d.decodeFile(bytes), 'Vorbis', file));
    case 'mp3':
      checkMpegComplete(bytes, id3v2Size(bytes), file);
      return withDecoder(new MPEGDecoder(), (d) => fromWasm(d.decode(bytes), 'MP3', file));
  }
}

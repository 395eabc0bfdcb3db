// Writers of WAV and AIFF files for the decoder tests, written from the format specifications
// independently of src/audio/pcm.ts (and checked against ffmpeg in pcm.test.ts).

/** How samples are stored: integer codes of `bits` (8-bit WAV is unsigned), or IEEE float. */
export interface PcmSpec {
  kind: 'int' | 'float';
  bits: 8 | 16 | 24 | 32 | 64;
}

/** Integer code of sample v in [-1, 1) for a signed `bits`-bit container: round(v * 2^(bits-1)), clamped. */
export function intCode(v: number, bits: number): number {
  const full = 2 ** (bits - 1);
  return Math.max(-full, Math.min(full - 1, Math.round(v * full)));
}

function writeSample(view: DataView, at: number, v: number, spec: PcmSpec, le: boolean, unsigned8: boolean): void {
  if (spec.kind === 'float') {
    if (spec.bits === 32) view.setFloat32(at, v, le);
    else view.setFloat64(at, v, le);
    return;
  }
  const code = intCode(v, spec.bits);
  switch (spec.bits) {
    case 8:
      view.setUint8(at, unsigned8 ? code + 128 : code & 0xff);
      return;
    case 16:
      view.setInt16(at, code, le);
      return;
    case 24: {
      const u = code & 0xffffff;
      const bytes = [u & 0xff, (u >> 8) & 0xff, (u >> 16) & 0xff];
      if (!le) bytes.reverse();
      bytes.forEach((b, i) => view.setUint8(at + i, b));
      return;
    }
    default:
      view.setInt32(at, code, le);
  }
}

/** Interleave planar channels into `view` from byte `at`. */
function writeFrames(view: DataView, at: number, channels: Float32Array[], spec: PcmSpec, le: boolean, unsigned8: boolean): void {
  const bytes = spec.bits / 8;
  for (let i = 0; i < channels[0]!.length; i++) {
    for (const c of channels) {
      writeSample(view, at, c[i]!, spec, le, unsigned8);
      at += bytes;
    }
  }
}

/**
 * A WAV file: RIFF (little-endian) or RIFX (big-endian); `extensible` writes a
 * WAVE_FORMAT_EXTENSIBLE fmt chunk. A LIST chunk of odd length (padded) precedes the data so the
 * reader must walk chunks.
 */
export function writeWav(channels: Float32Array[], sampleRate: number, spec: PcmSpec, opts: { bigEndian?: boolean; extensible?: boolean } = {}): Uint8Array {
  const le = !opts.bigEndian;
  const n = channels.length;
  const bytes = spec.bits / 8;
  const dataSize = channels[0]!.length * n * bytes;
  const fmtSize = opts.extensible ? 40 : 16;
  const listBody = 'INFOISFT\x05\x00\x00\x00test\x00'; // 17 bytes: odd, so one pad byte follows
  const total = 12 + 8 + fmtSize + 8 + listBody.length + 1 + 8 + dataSize;
  const buf = new Uint8Array(total);
  const view = new DataView(buf.buffer);
  const ascii = (at: number, s: string) => [...s].forEach((ch, i) => view.setUint8(at + i, ch.charCodeAt(0)));
  ascii(0, le ? 'RIFF' : 'RIFX');
  view.setUint32(4, total - 8, le);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, fmtSize, le);
  const tag = spec.kind === 'float' ? 3 : 1;
  view.setUint16(20, opts.extensible ? 0xfffe : tag, le);
  view.setUint16(22, n, le);
  view.setUint32(24, sampleRate, le);
  view.setUint32(28, sampleRate * n * bytes, le);
  view.setUint16(32, n * bytes, le);
  view.setUint16(34, spec.bits, le);
  if (opts.extensible) {
    view.setUint16(36, 22, le); // cbSize
    view.setUint16(38, spec.bits, le); // valid bits
    view.setUint32(40, n === 2 ? 3 : 0, le); // channel mask
    // SubFormat GUID {0000000X-0000-0010-8000-00AA00389B71}
    view.setUint32(44, tag, le);
    view.setUint16(48, 0, le);
    view.setUint16(50, 0x10, le);
    [0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71].forEach((b, i) => view.setUint8(52 + i, b));
  }
  let at = 20 + fmtSize;
  ascii(at, 'LIST');
  view.setUint32(at + 4, listBody.length, le);
  ascii(at + 8, listBody);
  at += 8 + listBody.length + 1;
  ascii(at, 'data');
  view.setUint32(at + 4, dataSize, le);
  writeFrames(view, at + 8, channels, spec, le, true);
  return buf;
}

/** 80-bit IEEE extended big-endian encoding of a positive integer rate. */
function extended(rate: number): number[] {
  const exp = Math.floor(Math.log2(rate));
  const mantissa = BigInt(rate) << BigInt(63 - exp);
  const out = [((16383 + exp) >> 8) & 0x7f, (16383 + exp) & 0xff];
  for (let i = 7; i >= 0; i--) out.push(Number((mantissa >> BigInt(8 * i)) & 0xffn));
  return out;
}

/**
 * An AIFF file (big-endian integers), or AIFF-C with compression `sowt` (little-endian integers),
 * `fl32`/`fl64` (big-endian floats) or `NONE`. AIFF 8-bit samples are signed.
 */
export function writeAiff(channels: Float32Array[], sampleRate: number, spec: PcmSpec, compression?: 'NONE' | 'sowt' | 'fl32' | 'fl64'): Uint8Array {
  const aifc = compression !== undefined;
  const n = channels.length;
  const frames = channels[0]!.length;
  const bytes = spec.bits / 8;
  const dataSize = frames * n * bytes;
  const name = '\x0enot compressed\x00'; // pascal string padded to even length
  const commSize = aifc ? 18 + 4 + name.length : 18;
  const fver = aifc ? 12 : 0;
  const total = 12 + fver + 8 + commSize + 16 + dataSize;
  const buf = new Uint8Array(total);
  const view = new DataView(buf.buffer);
  const ascii = (at: number, s: string) => [...s].forEach((ch, i) => view.setUint8(at + i, ch.charCodeAt(0)));
  ascii(0, 'FORM');
  view.setUint32(4, total - 8);
  ascii(8, aifc ? 'AIFC' : 'AIFF');
  let at = 12;
  if (aifc) {
    ascii(at, 'FVER');
    view.setUint32(at + 4, 4);
    view.setUint32(at + 8, 0xa2805140);
    at += 12;
  }
  ascii(at, 'COMM');
  view.setUint32(at + 4, commSize);
  view.setUint16(at + 8, n);
  view.setUint32(at + 10, frames);
  view.setUint16(at + 14, spec.bits);
  extended(sampleRate).forEach((b, i) => view.setUint8(at + 16 + i, b));
  if (aifc) {
    ascii(at + 26, compression);
    ascii(at + 30, name);
  }
  at += 8 + commSize;
  ascii(at, 'SSND');
  view.setUint32(at + 4, 8 + dataSize);
  view.setUint32(at + 8, 0);
  view.setUint32(at + 12, 0);
  writeFrames(view, at + 16, channels, spec, compression === 'sowt', false);
  return buf;
}

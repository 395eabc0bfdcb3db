import { f16BitsToNumber, numberToF16Bits } from '../gpu/gpu.js';

// ggml's q8_0 block format (ggml-common.h block_q8_0), the 8-bit type whisper.cpp's quantize
// tool writes: each run of 32 consecutive values along a row (ne[0], the fastest ggml dimension)
// is one 34-byte block, an f16 scale d then 32 int8 values; value = q * d. Quantization follows
// ggml's quantize_row_q8_0_ref, which defines the files whisper.cpp makes, in f32 arithmetic:
//   d = amax / 127, id = d ? 1 / d : 0, q = roundf(x * id) (round half away from zero),
// and the block stores d rounded to f16 (round to nearest even, as F16C's _cvtss_sh). q comes from
// the f32 d, not the stored f16 one, exactly as in ggml. This is not dq-whisper's per-channel
// int8 (one f32 scale per output channel, round half to even): see src/quant/weights.ts.

/** Values per q8_0 block (ggml's QK8_0). */
export const q8_0BlockValues = 32;

/** Bytes per q8_0 block: an f16 scale and 32 int8 values. */
export const q8_0BlockBytes = 2 + q8_0BlockValues;

/** Bytes of `count` values stored as q8_0 (`count` a multiple of 32). */
export function q8_0ByteLength(count: number): number {
  return (count / q8_0BlockValues) * q8_0BlockBytes;
}

/** C's roundf: nearest integer, halves away from zero. */
function roundHalfAway(x: number): number {
  return Math.sign(x) * Math.round(Math.abs(x));
}

/**
 * `values` as q8_0 blocks, bit for bit what ggml's quantize_row_q8_0_ref writes. The caller
 * guarantees `values.length` is a multiple of 32 (ggml quantizes whole rows of a multiple of 32).
 */
export function encodeQ8_0(values: Float32Array): Uint8Array {
  if (values.length % q8_0BlockValues !== 0) throw new RangeError(`q8_0 needs a multiple of ${q8_0BlockValues} values, got ${values.length}`);
  const blocks = values.length / q8_0BlockValues;
  const out = new Uint8Array(blocks * q8_0BlockBytes);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const first = b * q8_0BlockValues;
    let amax = 0;
    for (let j = 0; j < q8_0BlockValues; j++) amax = Math.max(amax, Math.abs(values[first + j]!));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    const at = b * q8_0BlockBytes;
    view.setUint16(at, numberToF16Bits(d), true);
    for (let j = 0; j < q8_0BlockValues; j++) view.setInt8(at + 2 + j, roundHalfAway(Math.fround(values[first + j]! * id)));
  }
  return out;
}

/** Dequantize q8_0 blocks into `out` (ggml's dequantize_row_q8_0: q * d in f32). */
export function decodeQ8_0(bytes: Uint8Array, out: Float32Array): void {
  const blocks = out.length / q8_0BlockValues;
  if (!Number.isInteger(blocks) || bytes.byteLength < blocks * q8_0BlockBytes) {
    throw new RangeError(`q8_0: ${bytes.byteLength} bytes cannot hold ${out.length} values (${q8_0BlockBytes} bytes per ${q8_0BlockValues})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < blocks; b++) {
    const at = b * q8_0BlockBytes;
    const d = f16BitsToNumber(view.getUint16(at, true));
    for (let j = 0; j < q8_0BlockValues; j++) out[b * q8_0BlockValues + j] = view.getInt8(at + 2 + j) * d;
  }
}

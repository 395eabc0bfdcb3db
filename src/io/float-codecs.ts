import { f16BitsToNumber, numberToF16Bits } from '../gpu/gpu.js';

// Checkpoint formats are little-endian. Typed-array views read and write host order, which lets
// an f32 tensor go from file to Float32Array with no conversion; every engine that runs WebGPU
// (x86, ARM) is little-endian, and this check says so plainly if that ever fails to hold.
const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
if (!littleEndianHost) throw new Error('dq-whisper checkpoint I/O needs a little-endian host');

/** The float encodings checkpoints store and dq-whisper reads or writes. */
export type FloatEncoding = 'f32' | 'f16' | 'bf16';

let f16Table: Float32Array | undefined;

/** All 65,536 binary16 values as float32: a table lookup per element is the fastest widening. */
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToNumber(h);
  }
  return f16Table;
}

/**
 * Widen `count` elements stored as `encoding` in `bytes` (little-endian; `bytes.byteOffset` a
 * multiple of the element size) into `out`. Every f16 and bf16 value is exact in float32.
 */
export function decodeToF32(encoding: FloatEncoding, bytes: Uint8Array, out: Float32Array): void {
  const count = out.length;
  switch (encoding) {
    case 'f32':
      out.set(new Float32Array(bytes.buffer, bytes.byteOffset, count));
      return;
    case 'f16': {
      const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
      const table = f16ToF32Table();
      for (let i = 0; i < count; i++) out[i] = table[halves[i]!]!;
      return;
    }
    case 'bf16': {
      // bfloat16 is the top half of a float32.
      const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
      const words = new Uint32Array(out.buffer, out.byteOffset, count);
      for (let i = 0; i < count; i++) words[i] = halves[i]! << 16;
      return;
    }
  }
}

/**
 * `values` stored as `encoding` (little-endian bytes). f32 returns a view of `values`' own memory
 * (no copy); f16 rounds to nearest even, overflowing to ±Infinity as IEEE does.
 */
export function encodeFromF32(encoding: 'f32' | 'f16', values: Float32Array): Uint8Array {
  if (encoding === 'f32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const halves = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) halves[i] = numberToF16Bits(values[i]!);
  return new Uint8Array(halves.buffer);
}

import { inflateRawSync } from 'node:zlib';

// A minimal numpy .npz reader for test references (Whisper's mel_filters.npz): zip local file
// entries (stored or deflated) holding .npy v1/v2 little-endian float32 arrays.

/** The float32 arrays of an .npz file by name (without ".npy"), with their shapes. */
export function readNpzFloat32(bytes: Uint8Array): Map<string, { shape: number[]; data: Float32Array }> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const arrays = new Map<string, { shape: number[]; data: Float32Array }>();
  let at = 0;
  while (at + 30 <= bytes.byteLength && view.getUint32(at, true) === 0x04034b50) {
    const method = view.getUint16(at + 8, true);
    const compressedSize = view.getUint32(at + 18, true);
    const nameLength = view.getUint16(at + 26, true);
    const extraLength = view.getUint16(at + 28, true);
    const name = new TextDecoder().decode(bytes.subarray(at + 30, at + 30 + nameLength));
    const dataStart = at + 30 + nameLength + extraLength;
    if (compressedSize === 0) throw new Error(`npz entry ${name}: sizes only in a data descriptor are not supported`);
    const raw = bytes.subarray(dataStart, dataStart + compressedSize);
    const npy = method === 8 ? new Uint8Array(inflateRawSync(raw)) : method === 0 ? raw : undefined;
    if (!npy) throw new Error(`npz entry ${name}: compression method ${method} is not supported`);
    arrays.set(name.replace(/\.npy$/, ''), parseNpy(npy, name));
    at = dataStart + compressedSize;
  }
  return arrays;
}

function parseNpy(npy: Uint8Array, name: string): { shape: number[]; data: Float32Array } {
  const view = new DataView(npy.buffer, npy.byteOffset, npy.byteLength);
  const major = npy[6]!;
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(npy.subarray(headerStart, headerStart + headerLength));
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header)) throw new Error(`${name}: expected C-order little-endian float32, header ${header}`);
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '').split(',').filter((s) => s.trim() !== '').map(Number);
  const count = shape.reduce((n, d) => n * d, 1);
  const data = new Float32Array(count);
  const body = npy.subarray(headerStart + headerLength);
  for (let i = 0; i < count; i++) data[i] = new DataView(body.buffer, body.byteOffset).getFloat32(4 * i, true);
  return { shape, data };
}

import { unzipSync } from 'fflate';
import { CheckpointError } from '../errors.js';

/** Frequency bins of a 400-point real FFT: Whisper's N_FFT / 2 + 1. */
export const N_FREQ_BINS = 201;

/** A mel filterbank: `data` is row-major f32 [nMels, 201] (filter m's weight for FFT bin f at m * 201 + f). */
export interface MelFilters {
  nMels: number;
  data: Float32Array;
}

/**
 * Read Whisper's mel filterbanks from `mel_filters.npz` (OpenAI's whisper/assets; a zip of .npy
 * files): every array named mel_<n> of shape [n, 201], float32 little-endian, C order. The zip is
 * read with fflate; the .npy header (a Python dict literal) is parsed here.
 * @param file the file's name, for error messages.
 * @throws CheckpointError naming the file and array when an entry is not such an array, or none is there.
 */
export function readMelFilters(npz: Uint8Array, file = 'mel_filters.npz'): Map<number, MelFilters> {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(npz);
  } catch (cause) {
    throw new CheckpointError(`${file}: not a readable .npz (zip) file: ${(cause as Error).message}`, file);
  }
  const filters = new Map<number, MelFilters>();
  for (const [name, npy] of Object.entries(entries)) {
    const m = /^mel_(\d+)\.npy$/.exec(name);
    if (!m) continue;
    const nMels = Number(m[1]);
    const { shape, data } = parseNpyFloat32(npy, file, name);
    if (shape.length !== 2 || shape[0] !== nMels || shape[1] !== N_FREQ_BINS) {
      throw new CheckpointError(`${file}: array ${name} has shape [${shape.join(', ')}], expected [${nMels}, ${N_FREQ_BINS}]`, file, name);
    }
    filters.set(nMels, { nMels, data });
  }
  if (filters.size === 0) throw new CheckpointError(`${file}: no mel_<n>.npy arrays (entries: ${Object.keys(entries).join(', ') || 'none'})`, file);
  return filters;
}

/** A float32 little-endian C-order .npy array (format versions 1-3). */
function parseNpyFloat32(npy: Uint8Array, file: string, name: string): { shape: number[]; data: Float32Array } {
  const what = `${file}: array ${name}`;
  if (npy.byteLength < 10 || npy[0] !== 0x93 || String.fromCharCode(...npy.subarray(1, 6)) !== 'NUMPY') throw new CheckpointError(`${what}: not a .npy array (bad magic)`, file, name);
  const view = new DataView(npy.buffer, npy.byteOffset, npy.byteLength);
  const major = npy[6]!;
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(npy.subarray(headerStart, headerStart + headerLength));
  const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr !== '<f4' || fortran !== 'False' || shapeText === undefined) {
    throw new CheckpointError(`${what}: expected a C-order little-endian float32 array, header is ${header.trim()}`, file, name);
  }
  const shape = shapeText.split(',').filter((s) => s.trim() !== '').map(Number);
  const count = shape.reduce((n, d) => n * d, 1);
  const start = headerStart + headerLength;
  if (npy.byteLength - start < count * 4) throw new CheckpointError(`${what}: truncated: ${count} float32 values need ${count * 4} bytes, ${npy.byteLength - start} are there`, file, name);
  // Copy so the result is aligned and owns its memory.
  const data = new Float32Array(npy.slice(start, start + count * 4).buffer);
  return { shape, data };
}

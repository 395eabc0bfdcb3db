import { CheckpointError } from '../errors.js';
import type { ByteSource, FileChunks } from './byte-source.js';
import { decodeToF32, encodeFromF32, type FloatEncoding } from './float-codecs.js';

// Hand-written rather than an npm package: safetensors is an 8-byte header length, a JSON header
// and raw little-endian data, and what matters here (reading one tensor's byte range at a time
// from any ByteSource, validating offsets before reading, streaming writes) is the whole parser.
// On npm, `safetensors` is a 0.0.1 stub and @huggingface/hub parses headers of Hub URLs only.

/** Every dtype the safetensors format defines, with its element size in bytes. */
export const safetensorsDtypeBytes = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
} as const;

export type SafetensorsDtype = keyof typeof safetensorsDtypeBytes;

/** The float dtypes dq-whisper reads (widened to f32) ... */
export const readableDtypes: Readonly<Partial<Record<SafetensorsDtype, FloatEncoding>>> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

/** ... and the ones it writes. */
export type WritableDtype = 'F32' | 'F16';

/** One tensor of a safetensors header, with absolute byte offsets into the file. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** File offset of the first data byte (header included). */
  readonly begin: number;
  readonly byteLength: number;
}

/** A parsed and validated safetensors header. */
export interface SafetensorsHeader {
  /** `__metadata__` (string to string), e.g. {"format": "pt"} as transformers writes. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensors in file order (ascending offsets). */
  readonly tensors: readonly SafetensorsEntry[];
}

// The reference implementation refuses headers above 100 MB; a Whisper header is ~50 kB.
const maxHeaderBytes = 100_000_000;

function fail(file: string, message: string, tensor?: string): never {
  throw new CheckpointError(`${file}: ${tensor === undefined ? '' : `tensor "${tensor}": `}${message}`, file, tensor);
}

/**
 * Read and validate the header of a safetensors file: length within the file, valid JSON, known
 * dtypes, byte ranges that match dtype × shape, lie inside the data section, neither overlap nor
 * leave holes (as the format requires). Throws CheckpointError naming the file and tensor.
 */
export async function readSafetensorsHeader(source: ByteSource): Promise<SafetensorsHeader> {
  const file = source.name;
  if (source.size < 8) fail(file, `${source.size} bytes is too short for a safetensors file (8-byte header length first)`);
  const lengthBytes = await source.read(0, 8);
  const lengthView = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8);
  const headerLength = lengthView.getUint32(4, true) * 2 ** 32 + lengthView.getUint32(0, true);
  if (headerLength > source.size - 8) {
    fail(file, `header length ${headerLength} runs past the end of the file (${source.size} bytes): truncated, or not a safetensors file`);
  }
  if (headerLength > maxHeaderBytes) fail(file, `header length ${headerLength} exceeds ${maxHeaderBytes} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await source.read(8, headerLength)));
  } catch (e) {
    fail(file, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(file, 'header is not a JSON object');
  const dataStart = 8 + headerLength;
  const dataSize = source.size - dataStart;
  let metadata: Record<string, string> = {};
  const tensors: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(file, value);
      continue;
    }
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof entry !== 'object' || entry === null) fail(file, 'header entry is not an object', name);
    const dtype = entry.dtype;
    if (typeof dtype !== 'string' || !(dtype in safetensorsDtypeBytes)) {
      fail(file, `dtype ${JSON.stringify(dtype)} is not a safetensors dtype (${Object.keys(safetensorsDtypeBytes).join(', ')})`, name);
    }
    const shape = entry.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(file, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`, name);
    }
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
      fail(file, `data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 <= begin <= end`, name);
    }
    const [begin, end] = offsets as [number, number];
    const expectedBytes = (shape as number[]).reduce((n, d) => n * d, 1) * safetensorsDtypeBytes[dtype as SafetensorsDtype];
    if (end - begin !== expectedBytes) {
      fail(file, `data_offsets [${begin}, ${end}] hold ${end - begin} bytes, expected ${expectedBytes} for ${dtype} [${(shape as number[]).join(', ')}]`, name);
    }
    if (end > dataSize) {
      fail(file, `data ends at byte ${end} of the data section, which has only ${dataSize} bytes: the file is truncated`, name);
    }
    tensors.push({ name, dtype: dtype as SafetensorsDtype, shape: shape as number[], begin: dataStart + begin, byteLength: end - begin });
  }
  tensors.sort((a, b) => a.begin - b.begin || a.byteLength - b.byteLength);
  let covered = dataStart;
  let previous: string | undefined;
  for (const t of tensors) {
    if (t.begin < covered) {
      fail(file, `data [${t.begin - dataStart}, ${t.begin - dataStart + t.byteLength}) overlaps tensor "${previous}" (ends at ${covered - dataStart})`, t.name);
    }
    if (t.begin > covered) {
      fail(file, `data starts at ${t.begin - dataStart} leaving a hole after ${previous === undefined ? 'the header' : `tensor "${previous}"`} (ends at ${covered - dataStart}); safetensors data must be contiguous`, t.name);
    }
    covered = t.begin + t.byteLength;
    previous = t.name;
  }
  if (covered !== source.size) {
    fail(file, `${source.size - covered} bytes after the last tensor's data; the header does not describe the whole file`);
  }
  return { metadata, tensors };
}

function parseMetadata(file: string, value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(file, '__metadata__ is not an object');
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') fail(file, `__metadata__ field "${k}" is ${JSON.stringify(v)}, expected a string`);
  }
  return value as Record<string, string>;
}

/**
 * Read one tensor's byte range and widen it to float32. Only this tensor's bytes are read; f32
 * data is read straight into the returned array's memory. Throws CheckpointError for dtypes other
 * than F32, F16 and BF16.
 */
export async function readSafetensorsTensor(source: ByteSource, entry: SafetensorsEntry): Promise<Float32Array> {
  const encoding = readableDtypes[entry.dtype];
  if (!encoding) fail(source.name, `dtype ${entry.dtype} is not supported; expected F32, F16 or BF16`, entry.name);
  const out = new Float32Array(entry.shape.reduce((n, d) => n * d, 1));
  if (encoding === 'f32') {
    await source.read(entry.begin, entry.byteLength, new Uint8Array(out.buffer));
  } else {
    // A fresh array so the 16-bit view is aligned whatever the source returns.
    const bytes = await source.read(entry.begin, entry.byteLength, new Uint8Array(entry.byteLength));
    decodeToF32(encoding, bytes, out);
  }
  return out;
}

/** One tensor to write: float32 values in row-major order of `shape`. */
export interface TensorToWrite {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

const writableEncoding: Readonly<Record<WritableDtype, 'f32' | 'f16'>> = { F32: 'f32', F16: 'f16' };

/**
 * A safetensors file of `tensors` stored as `dtype`, in the given order, as chunks: the header
 * (JSON with `__metadata__` first, space-padded to a multiple of 8 bytes as the reference writer
 * does, so every tensor stays aligned) and then each tensor's data, converted when it is
 * written. F32 chunks are views of the tensors' own memory.
 */
export function encodeSafetensors(
  name: string,
  tensors: readonly TensorToWrite[],
  dtype: WritableDtype,
  metadata: Readonly<Record<string, string>> = { format: 'pt' },
): FileChunks {
  const encoded = tensors.map((t): EncodedTensorToWrite => {
    const count = t.shape.reduce((n, d) => n * d, 1);
    if (count !== t.data.length) {
      fail(name, `has ${t.data.length} values, expected ${count} for shape [${t.shape.join(', ')}]`, t.name);
    }
    return { name: t.name, dtype, shape: t.shape, bytes: () => encodeFromF32(writableEncoding[dtype], t.data) };
  });
  return encodeSafetensorsEncoded(name, encoded, metadata);
}

/** One tensor to write already in its stored form: `bytes()` gives its little-endian data when it is written. */
export interface EncodedTensorToWrite {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Exactly numel(shape) × the dtype's size bytes; called once, while the file is written. */
  bytes(): Uint8Array;
}

/**
 * A safetensors file of tensors of any dtypes (e.g. I8 weights beside F32 scales), laid out as
 * {@link encodeSafetensors} does. Throws CheckpointError for a name written twice, and while
 * writing when a tensor's bytes do not match its dtype and shape.
 */
export function encodeSafetensorsEncoded(
  name: string,
  tensors: readonly EncodedTensorToWrite[],
  metadata: Readonly<Record<string, string>> = { format: 'pt' },
): FileChunks {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  const sizes: number[] = [];
  for (const t of tensors) {
    const bytes = t.shape.reduce((n, d) => n * d, 1) * safetensorsDtypeBytes[t.dtype];
    if (t.name in header) fail(name, 'appears twice', t.name);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    sizes.push(bytes);
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20);
  const lengthField = new DataView(head.buffer);
  lengthField.setUint32(0, padded, true);
  lengthField.setUint32(4, 0, true);
  head.set(json, 8);
  return {
    name,
    byteLength: head.byteLength + offset,
    *chunks() {
      yield head;
      for (const [i, t] of tensors.entries()) {
        const bytes = t.bytes();
        if (bytes.byteLength !== sizes[i]) fail(name, `data is ${bytes.byteLength} bytes, expected ${sizes[i]} for ${t.dtype} [${t.shape.join(', ')}]`, t.name);
        yield bytes;
      }
    },
  };
}

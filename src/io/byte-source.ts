import { CheckpointError } from '../errors.js';

/**
 * Random access to the bytes of one file, so the checkpoint parsers read only the ranges they
 * need and run the same in Node (file handles, see `node-files.ts`) and browsers (Blob/File,
 * ArrayBuffer). `name` is what errors call the file.
 */
export interface ByteSource {
  readonly name: string;
  /** Size of the file in bytes. */
  readonly size: number;
  /**
   * Bytes [offset, offset + length). When `into` is given (at least `length` bytes) they are
   * written there and `into.subarray(0, length)` is returned, so callers can read straight into
   * a typed array's memory. Reading past the end throws {@link CheckpointError}.
   */
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /** Release the underlying handle, if any. */
  close?(): Promise<void>;
}

/** Throws CheckpointError unless [offset, offset + length) lies inside a source of `size` bytes. */
export function checkRange(source: { name: string; size: number }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > source.size) {
    throw new CheckpointError(
      `${source.name}: read of ${length} bytes at offset ${offset} is outside the file (${source.size} bytes); the file is truncated or its header is corrupt`,
      source.name,
    );
  }
}

/** A source over bytes already in memory (an ArrayBuffer a browser fetched, a test fixture). */
export function bufferSource(bytes: Uint8Array, name: string): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    async read(offset, length, into) {
      checkRange(this, offset, length);
      const range = bytes.subarray(offset, offset + length);
      if (!into) return range;
      into.set(range);
      return into.subarray(0, length);
    },
  };
}

/** A source over a Blob or a browser File: each read slices only the range it needs. */
export function blobSource(blob: Blob, name: string): ByteSource {
  return {
    name,
    size: blob.size,
    async read(offset, length, into) {
      checkRange(this, offset, length);
      const range = new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
      if (!into) return range;
      into.set(range);
      return into.subarray(0, length);
    },
  };
}

/**
 * Opens the files of a checkpoint by name ("config.json", "model.safetensors", shard names);
 * resolves undefined when there is no such file. Node: {@link directoryOpener} in node-files.ts;
 * browsers: a map of dropped File objects through {@link blobSource}.
 */
export type FileOpener = (name: string) => Promise<ByteSource | undefined>;

/** One output file as a sequence of byte chunks, written in order (never all held at once). */
export interface FileChunks {
  readonly name: string;
  /** Total bytes the chunks add up to. */
  readonly byteLength: number;
  chunks(): Iterable<Uint8Array>;
}

/** A small file held in memory as one chunk. */
export function bytesFile(name: string, bytes: Uint8Array): FileChunks {
  return { name, byteLength: bytes.byteLength, *chunks() { yield bytes; } };
}

/** A small text file (UTF-8) as one chunk. */
export function textFile(name: string, text: string): FileChunks {
  return bytesFile(name, new TextEncoder().encode(text));
}

/** Reads a whole (small) file such as config.json as UTF-8 text. */
export async function readText(source: ByteSource): Promise<string> {
  return new TextDecoder('utf-8', { fatal: false }).decode(await source.read(0, source.size));
}

/** Concatenates chunks into one array (for small files, tests and browser downloads). */
export function concatChunks(file: FileChunks): Uint8Array {
  const out = new Uint8Array(file.byteLength);
  let at = 0;
  for (const chunk of file.chunks()) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  if (at !== file.byteLength) throw new Error(`${file.name}: chunks add up to ${at} bytes, declared ${file.byteLength}`);
  return out;
}

/**
 * Sequential little-endian reader over a ByteSource with a read-ahead buffer, for formats that
 * must be walked field by field (ggml). `ensure(n)` before the synchronous getters.
 */
export class SequentialReader {
  private buffer = new Uint8Array(0);
  private view = new DataView(this.buffer.buffer);
  private bufferStart = 0;
  private at = 0;

  constructor(
    readonly source: ByteSource,
    position = 0,
    private readonly readAhead = 1 << 20,
  ) {
    this.at = position;
    this.bufferStart = position;
  }

  /** Current file offset. */
  get position(): number {
    return this.at;
  }

  /** Make the next `n` bytes available to the synchronous getters; throws CheckpointError past the end. */
  async ensure(n: number): Promise<void> {
    const from = this.at - this.bufferStart;
    if (from + n <= this.buffer.byteLength) return;
    checkRange(this.source, this.at, n);
    const length = Math.min(Math.max(n, this.readAhead), this.source.size - this.at);
    // Copy: a source may return a view of memory it reuses.
    this.buffer = (await this.source.read(this.at, length)).slice();
    this.view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
    this.bufferStart = this.at;
  }

  /** Skip `n` bytes without reading them; throws CheckpointError past the end. */
  skip(n: number): void {
    checkRange(this.source, this.at, n);
    this.at += n;
  }

  i32(): number {
    const v = this.view.getInt32(this.at - this.bufferStart, true);
    this.at += 4;
    return v;
  }

  /** The next `n` bytes (a copy). */
  bytes(n: number): Uint8Array {
    const from = this.at - this.bufferStart;
    this.at += n;
    return this.buffer.slice(from, from + n);
  }

  /** The next `count` little-endian float32 values. */
  f32s(count: number): Float32Array {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.view.getFloat32(this.at - this.bufferStart + 4 * i, true);
    this.at += 4 * count;
    return out;
  }
}

import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CheckpointError } from '../errors.js';
import { checkRange, type ByteSource, type FileChunks, type FileOpener } from './byte-source.js';
import { ggmlCheckpointFile, readGgmlCheckpoint, type GgmlWriteOptions, type LoadedGgmlCheckpoint } from './ggml.js';
import { hfCheckpointFiles, hfFileNames, readHfCheckpoint, type HfReadOptions, type HfWriteOptions, type LoadedCheckpoint, type ProgressCallback } from './huggingface.js';
import type { WhisperCheckpoint } from './whisper-inventory.js';
import type { WritableDtype } from './safetensors.js';
import { hfInt8CheckpointFiles, readHfInt8Checkpoint, type LoadedQuantizedCheckpoint, type QuantizedCheckpoint } from '../quant/hf-int8.js';

// Node's file system side of src/io: the parsers take ByteSources and produce FileChunks, these
// functions connect them to files. Browsers use blobSource and concatChunks instead.

// One read call moves at most 2 GiB; stay well below.
const maxReadChunk = 1 << 30;

/** A ByteSource over a file, reading ranges through one open handle. Call `close()` when done. */
export async function fileSource(path: string): Promise<ByteSource> {
  const handle: FileHandle = await open(path, 'r');
  const { size } = await handle.stat();
  const source: ByteSource = {
    name: path,
    size,
    async read(offset, length, into) {
      checkRange(source, offset, length);
      const target = into ?? new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(target, done, Math.min(length - done, maxReadChunk), offset + done);
        if (bytesRead === 0) throw new CheckpointError(`${path}: file ended at ${offset + done} while reading ${length} bytes at ${offset}; it changed while being read`, path);
        done += bytesRead;
      }
      return target.subarray(0, length);
    },
    close: () => handle.close(),
  };
  return source;
}

/** A FileOpener over a folder: undefined for files that do not exist. */
export function directoryOpener(dir: string): FileOpener {
  return async (name) => {
    try {
      return await fileSource(join(dir, name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  };
}

/**
 * Write `file` to `path` atomically: into a temporary file in the same folder (so the rename
 * cannot cross file systems), flushed to disk, then renamed over `path`. A reader never sees a
 * partial file; on failure the temporary file is removed and `path` is untouched.
 */
export async function writeFileAtomic(path: string, file: FileChunks): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx');
  try {
    let written = 0;
    for (const chunk of file.chunks()) {
      let done = 0;
      while (done < chunk.byteLength) {
        const { bytesWritten } = await handle.write(chunk, done, chunk.byteLength - done);
        done += bytesWritten;
      }
      written += done;
    }
    if (written !== file.byteLength) throw new Error(`${path}: wrote ${written} bytes, expected ${file.byteLength}`);
    await handle.sync();
    await handle.close();
    await rename(temp, path);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw e;
  }
}

/**
 * Read a Hugging Face Whisper folder (config.json + model.safetensors, or sharded with
 * model.safetensors.index.json). See {@link readHfCheckpoint}.
 */
export function loadHfCheckpoint(dir: string, opts: HfReadOptions = {}): Promise<LoadedCheckpoint> {
  return readHfCheckpoint(directoryOpener(dir), opts);
}

/**
 * Save `model` as a Hugging Face folder that transformers' `from_pretrained` loads: config.json
 * and model.safetensors, or shards and index with `maxShardBytes`. Each file is written
 * atomically; weight files of the other layout left from an earlier save are removed, because
 * transformers prefers model.safetensors over an index. Returns the paths written.
 */
export async function saveHfCheckpoint(dir: string, model: WhisperCheckpoint, opts: HfWriteOptions = {}): Promise<string[]> {
  return writeHfFolder(dir, hfCheckpointFiles(model, opts));
}

/** Write a dq-whisper-int8 checkpoint folder, atomically per file. See {@link hfInt8CheckpointFiles}. */
export async function saveHfInt8Checkpoint(dir: string, checkpoint: QuantizedCheckpoint, opts: { dtype?: WritableDtype } = {}): Promise<string[]> {
  return writeHfFolder(dir, hfInt8CheckpointFiles(checkpoint, opts));
}

/** Read a dq-whisper-int8 checkpoint folder. See {@link readHfInt8Checkpoint}. */
export function loadHfInt8Checkpoint(dir: string): Promise<LoadedQuantizedCheckpoint> {
  return readHfInt8Checkpoint(directoryOpener(dir));
}

/**
 * Write Hugging Face checkpoint files into `dir` (created if needed), each atomically, then
 * remove weight files of an earlier save that this one does not have (a sharded save replaced by
 * a single file, or fewer shards), so the folder holds one consistent checkpoint.
 */
async function writeHfFolder(dir: string, files: readonly FileChunks[]): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const file of files) {
    const path = join(dir, file.name);
    await writeFileAtomic(path, file);
    written.push(path);
  }
  const current = new Set(files.map((f) => f.name));
  for (const name of await readdir(dir)) {
    const weightFile = name === hfFileNames.weights || name === hfFileNames.index || hfFileNames.shardPattern.test(name);
    if (weightFile && !current.has(name)) await unlink(join(dir, name));
  }
  return written;
}

/** Read a whisper.cpp ggml model file. See {@link readGgmlCheckpoint}. */
export async function loadGgmlCheckpoint(path: string, opts: { onProgress?: ProgressCallback } = {}): Promise<LoadedGgmlCheckpoint> {
  const source = await fileSource(path);
  try {
    return await readGgmlCheckpoint(source, opts);
  } finally {
    await source.close?.();
  }
}

/** Write `model` as a whisper.cpp ggml model file, atomically. See {@link ggmlCheckpointFile}. */
export async function saveGgmlCheckpoint(path: string, model: WhisperCheckpoint, opts: GgmlWriteOptions): Promise<void> {
  await writeFileAtomic(path, ggmlCheckpointFile(basename(path), model, opts));
}

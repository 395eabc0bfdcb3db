// Reading a model the user points the page at: files chosen in the file picker (a Hugging Face
// folder's config.json + safetensors, a dq-whisper-int8 export, or one whisper.cpp ggml .bin) or
// a URL (a folder URL, or a .bin file). The byte-level readers are the library's, fed Blobs and
// fetched bytes instead of file handles.
import {
  blobSource, bufferSource, CheckpointError, dequantizeCheckpoint, hfFileNames, int8QuantMethod, readGgmlCheckpoint,
  readHfCheckpoint, readHfInt8Checkpoint, readText, type ByteSource, type FileOpener, type ProgressCallback,
} from '../../src/index.js';
import type { WhisperCheckpoint } from '../../src/io/whisper-inventory.js';

/** A model read for the page: its weights, what it was read from, and warnings to show. */
export interface PageModel extends WhisperCheckpoint {
  /** One line: the format and the files or URL. */
  readonly description: string;
  readonly warnings: readonly string[];
}

/** Whether `config.json` (opened by `open`) declares a dq-whisper-int8 checkpoint. */
async function isInt8Export(config: ByteSource): Promise<boolean> {
  try {
    const json = JSON.parse(await readText(config)) as { quantization_config?: { quant_method?: unknown } } | null;
    return json?.quantization_config?.quant_method === int8QuantMethod;
  } catch {
    return false; // readHfCheckpoint reports the bad JSON with the file name
  }
}

/** A Hugging Face folder through `open`: float (readHfCheckpoint) or int8 (dequantized to float32 for the GPU). */
async function readFolder(open: FileOpener, where: string, onProgress?: ProgressCallback): Promise<PageModel> {
  const config = await open(hfFileNames.config);
  if (config && (await isInt8Export(config))) {
    const quantized = await readHfInt8Checkpoint(open);
    const bits = quantized.bits;
    return { ...dequantizeCheckpoint(quantized), description: `${int8QuantMethod} (${bits}-bit, ${quantized.quantized.size} modules, dequantized) from ${where}`, warnings: quantized.warnings };
  }
  const loaded = await readHfCheckpoint(open, { onProgress });
  return { config: loaded.config, weights: loaded.weights, description: `Hugging Face ${[...new Set(loaded.sourceDtypes.values())].join('/')} from ${where}`, warnings: loaded.warnings };
}

async function readGgml(source: ByteSource, onProgress?: ProgressCallback): Promise<PageModel> {
  const loaded = await readGgmlCheckpoint(source, { onProgress });
  return { config: loaded.config, weights: loaded.weights, description: `whisper.cpp ggml (${[...new Set(loaded.sourceDtypes.values())].join('/')}) ${source.name}`, warnings: loaded.warnings };
}

const isHfFile = (name: string) => name === hfFileNames.config || name === hfFileNames.index || name.endsWith('.safetensors');

/**
 * Read the model in `files` (from a file picker): one whisper.cpp file, or the files of a Hugging
 * Face folder, matched by name. Throws CheckpointError saying what to choose when the selection
 * is neither.
 */
export async function readModelFiles(files: readonly File[], onProgress?: ProgressCallback): Promise<PageModel> {
  if (files.length === 1 && !isHfFile(files[0]!.name)) return readGgml(blobSource(files[0]!, files[0]!.name), onProgress);
  const byName = new Map(files.map((f) => [f.name, f]));
  if (!byName.has(hfFileNames.config)) {
    throw new CheckpointError(
      `chose ${files.map((f) => f.name).join(', ') || 'no files'}: choose either one whisper.cpp ggml file, or a Hugging Face folder's ${hfFileNames.config} together with its ${hfFileNames.weights} (or its index and shards)`,
      files[0]?.name ?? '',
    );
  }
  const open: FileOpener = async (name) => {
    const file = byName.get(name);
    return file && blobSource(file, file.name);
  };
  return readFolder(open, files.map((f) => f.name).join(', '), onProgress);
}

/** The bytes at `url`, or undefined for 404 (a file the folder does not have). */
async function fetchBytes(url: string): Promise<Uint8Array | undefined> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (cause) {
    // The browser hides why (network, CORS, mixed content) from scripts; say where to look.
    throw new CheckpointError(`${url}: could not be fetched (${(cause as Error).message}); the browser console says whether it was the network or a missing CORS header`, url);
  }
  if (response.status === 404) return undefined;
  if (!response.ok) throw new CheckpointError(`${url}: HTTP ${response.status} ${response.statusText}`, url);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * Read the model at `url`: a whisper.cpp file when it ends in .bin, otherwise a Hugging Face
 * folder (its URL, or the URL of its config.json), whose files are fetched by name.
 */
export async function readModelUrl(url: string, onProgress?: ProgressCallback): Promise<PageModel> {
  const absolute = new URL(url, location.href);
  if (absolute.pathname.endsWith('.bin')) {
    const bytes = await fetchBytes(absolute.href);
    if (!bytes) throw new CheckpointError(`${absolute.href}: not found (HTTP 404)`, absolute.href);
    return readGgml(bufferSource(bytes, absolute.href), onProgress);
  }
  const folder = new URL(absolute.pathname.endsWith(`/${hfFileNames.config}`) ? '.' : absolute.pathname.endsWith('/') ? absolute.href : `${absolute.href}/`, absolute);
  // config.json is read twice (format check, then the reader): fetch each file once.
  const fetched = new Map<string, Promise<Uint8Array | undefined>>();
  const open: FileOpener = async (name) => {
    const href = new URL(name, folder).href;
    if (!fetched.has(name)) fetched.set(name, fetchBytes(href));
    const bytes = await fetched.get(name)!;
    return bytes && bufferSource(bytes, href);
  };
  return readFolder(open, folder.href, onProgress);
}

// What the dqw commands share: their output streams, progress bars, the package's Whisper assets
// and loading a checkpoint from a path that may be either format.
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { WhisperWeights } from '../model/whisper.js';
import { int8DotDescription } from '../kernels/int8.js';
import type { Gpu } from '../gpu/gpu.js';
import cliProgress from 'cli-progress';
import { readMelFilters, type MelFilters } from '../audio/mel-filters.js';
import { DqwError } from '../errors.js';
import type { LoadedCheckpoint, ProgressCallback } from '../io/huggingface.js';
import { hfFileNames } from '../io/huggingface.js';
import { loadGgmlCheckpoint, loadHfCheckpoint, loadHfInt8Checkpoint } from '../io/node-files.js';
import type { WhisperConfig } from '../model/config.js';
import { int8QuantMethod, type LoadedQuantizedCheckpoint } from '../quant/hf-int8.js';

/** The streams the command writes to (the process's, or a test's). */
export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** Where the CLI's Whisper assets (tokenizer ranks, mel filters) are: assets/ of the package. */
const ASSETS = new URL('../../assets/', import.meta.url);

/**
 * Path of the tokenizer ranks for `config`, by OpenAI's rule: vocabularies of 51865 tokens and
 * more are multilingual, smaller ones English-only (gpt2).
 */
export function tokenizerRanksPath(config: WhisperConfig): string {
  return new URL(config.vocab_size >= 51865 ? 'multilingual.tiktoken' : 'gpt2.tiktoken', ASSETS).pathname;
}

/** The mel filterbank of `config`'s num_mel_bins from the package's mel_filters.npz. */
export async function loadMelFilters(config: WhisperConfig): Promise<MelFilters> {
  const file = new URL('mel_filters.npz', ASSETS).pathname;
  const filters = readMelFilters(new Uint8Array(await readFile(file)), file).get(config.num_mel_bins);
  if (!filters) throw new DqwError(`${file} has no filterbank of ${config.num_mel_bins} mel bins (the model's num_mel_bins)`);
  return filters;
}

/** A progress bar on `stream`: redrawn in place on a terminal, a line every 2 s (and at the end) otherwise. */
export function progressBar(stream: CommandIo['stderr'], format: string): cliProgress.SingleBar {
  return new cliProgress.SingleBar({ stream, format, noTTYOutput: true, hideCursor: stream.isTTY === true, etaBuffer: 20 }, cliProgress.Presets.shades_classic);
}

/** The Hugging Face folder `path` names (the folder, or a config.json / safetensors file in it), or null for a ggml file. */
async function hfFolderOf(path: string, option: string): Promise<string | null> {
  const info = await stat(path).catch(() => {
    throw new DqwError(`${option} ${path}: no such file or folder`);
  });
  if (info.isDirectory()) return path;
  if (basename(path) === 'config.json' || path.endsWith('.safetensors') || path.endsWith('.safetensors.index.json')) return dirname(path);
  return null;
}

/**
 * Whether the Hugging Face folder `dir` holds a dq-whisper-int8 export: its config.json names
 * that quant_method. A config.json that is missing or not JSON is left to the float reader,
 * whose errors say what is wrong.
 */
async function isInt8Folder(dir: string): Promise<boolean> {
  const text = await readFile(join(dir, hfFileNames.config), 'utf8').catch(() => null);
  if (text === null) return false;
  try {
    const json = JSON.parse(text) as { quantization_config?: { quant_method?: unknown } } | null;
    return json?.quantization_config?.quant_method === int8QuantMethod;
  } catch {
    return false;
  }
}

/** A checkpoint to run: float (Hugging Face or ggml), or a dq-whisper-int8 export whose quantized layers run on the int8 kernels. */
export type RunnableCheckpoint = { kind: 'float'; checkpoint: LoadedCheckpoint } | { kind: 'int8'; checkpoint: LoadedQuantizedCheckpoint };

/**
 * The line saying what runs: the model's size and, for a quantized export, that its quantized
 * layers run on the int8 kernels and with which dot product.
 */
export function modelHeader(command: string, path: string, weights: WhisperWeights): string {
  const c = weights.config;
  return `dqw ${command}: ${path}: ${runtimeOf(weights)} (${c.encoder_layers}+${c.decoder_layers} layers, d_model ${c.d_model})`;
}

/**
 * How a model runs: f32, or its int8 path: modules per weight bit width (a mixed plan has both),
 * and the dot-product instruction, e.g. "int8 (8-bit weights in 12 modules and 4-bit in 5, 8-bit
 * activations per token; dot4I8Packed)".
 */
export function runtimeOf(weights: WhisperWeights): string {
  if (weights.quantizedBits.size === 0) return 'f32';
  const modules = new Map<number, number>();
  for (const bits of weights.quantizedBits.values()) modules.set(bits, (modules.get(bits) ?? 0) + 1);
  const counts = [...modules].sort((a, b) => b[0] - a[0]).map(([bits, n], i) => `${bits}-bit${i === 0 ? ' weights' : ''} in ${n} module${n === 1 ? '' : 's'}`);
  return `int8 (${counts.join(' and ')}, 8-bit activations per token; ${int8DotDescription(weights.gpu)})`;
}

/** Upload a runnable checkpoint: an int8 export as it is (its layers run on the int8 kernels), a float one as f32 (its host copy is then dropped). */
export function uploadRunnable(gpu: Gpu, loaded: RunnableCheckpoint): WhisperWeights {
  const source = loaded.checkpoint.files.join(', ');
  if (loaded.kind === 'int8') return WhisperWeights.uploadQuantized(gpu, loaded.checkpoint, source);
  const weights = WhisperWeights.upload(gpu, loaded.checkpoint.config, loaded.checkpoint.weights, source);
  loaded.checkpoint.weights.clear();
  return weights;
}

/**
 * Load the checkpoint at `path` for inference: a dq-whisper-int8 folder (`dqw export --format hf
 * --quant int8|int4`) as it is quantized, anything else as {@link loadCheckpoint} does.
 */
export async function loadRunnableCheckpoint(path: string, stderr: CommandIo['stderr'], option = '--model'): Promise<RunnableCheckpoint> {
  const dir = await hfFolderOf(path, option);
  if (dir !== null && (await isInt8Folder(dir))) return { kind: 'int8', checkpoint: await loadHfInt8Checkpoint(dir) };
  return { kind: 'float', checkpoint: await loadCheckpoint(path, stderr, option) };
}

/**
 * Load the float checkpoint at `path` (named by the command-line option `option` in errors): a
 * Hugging Face folder, or a file in one (config.json, *.safetensors), else a whisper.cpp ggml
 * file; with a progress bar on `stderr`.
 */
export async function loadCheckpoint(path: string, stderr: CommandIo['stderr'], option = '--model'): Promise<LoadedCheckpoint> {
  const dir = await hfFolderOf(path, option);
  const loading = progressBar(stderr, `loading ${option.replace(/^--/, '')} |{bar}| {percentage}% | {tensor}`);
  loading.start(1, 0, { tensor: '' });
  const onProgress: ProgressCallback = (done, total, tensor) => {
    loading.setTotal(total);
    loading.update(done, { tensor });
  };
  try {
    return dir !== null ? await loadHfCheckpoint(dir, { onProgress }) : await loadGgmlCheckpoint(path, { onProgress });
  } finally {
    loading.stop();
  }
}

// What the dqw commands share: their output streams, progress bars, the package's Whisper assets
// and loading a checkpoint from a path that may be either format.
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import cliProgress from 'cli-progress';
import { readMelFilters, type MelFilters } from '../audio/mel-filters.js';
import { DqwError } from '../errors.js';
import type { LoadedCheckpoint, ProgressCallback } from '../io/huggingface.js';
import { loadGgmlCheckpoint, loadHfCheckpoint } from '../io/node-files.js';
import type { WhisperConfig } from '../model/config.js';

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

/**
 * Load the checkpoint at `path` (named by the command-line option `option` in errors): a Hugging
 * Face folder, or a file in one (config.json, *.safetensors), else a whisper.cpp ggml file; with
 * a progress bar on `stderr`.
 */
export async function loadCheckpoint(path: string, stderr: CommandIo['stderr'], option = '--model'): Promise<LoadedCheckpoint> {
  const info = await stat(path).catch(() => {
    throw new DqwError(`${option} ${path}: no such file or folder`);
  });
  const loading = progressBar(stderr, `loading ${option.replace(/^--/, '')} |{bar}| {percentage}% | {tensor}`);
  loading.start(1, 0, { tensor: '' });
  const onProgress: ProgressCallback = (done, total, tensor) => {
    loading.setTotal(total);
    loading.update(done, { tensor });
  };
  try {
    if (info.isDirectory()) return await loadHfCheckpoint(path, { onProgress });
    if (basename(path) === 'config.json' || path.endsWith('.safetensors') || path.endsWith('.safetensors.index.json')) return await loadHfCheckpoint(dirname(path), { onProgress });
    return await loadGgmlCheckpoint(path, { onProgress });
  } finally {
    loading.stop();
  }
}

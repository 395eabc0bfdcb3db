// What the dqw commands share: their output streams, progress bars, the package's Whisper assets
// and loading a checkpoint from a path that may be either format.
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import cliProgress from 'cli-progress';
import { DqwError } from '../errors.js';
import type { LoadedCheckpoint, ProgressCallback } from '../io/huggingface.js';
import { loadGgmlCheckpoint, loadHfCheckpoint } from '../io/node-files.js';

/** The streams the command writes to (the process's, or a test's). */
export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** Where the CLI's Whisper assets (tokenizer ranks, mel filters) are: assets/ of the package. */
export const ASSETS = new URL('../../assets/', import.meta.url);

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

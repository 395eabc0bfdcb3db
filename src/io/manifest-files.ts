import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { readAudioFile16k } from './audio-file.js';
import { loadExampleAudio, type ExampleAudio } from '../data/audio-loader.js';
import { ManifestError, type ManifestContents, type SkippedRow, type TrainingExample } from '../data/examples.js';
import { parseAudioFolderCsv, parseCommonVoiceTsv, parseJsonlManifest } from '../data/manifests.js';

// Node's file side of src/data: reads manifests and checks that their audio files exist.

/** Options of the manifest file readers. */
export interface ManifestFileOptions {
  /** Language for rows that state none; a code or English name. */
  readonly language?: string;
  /**
   * Skip rows whose audio file does not exist (one `stat` per row). Default true; turn off for
   * very large manifests on slow storage, and let {@link loadExampleAudioFile} report them.
   */
  readonly checkAudioFiles?: boolean;
}

/** Options of {@link readCommonVoice}. */
export interface CommonVoiceFileOptions extends ManifestFileOptions {
  /** Whether the TSV uses CSV quoting (see `CommonVoiceParseOptions.quoted`). Default false. */
  readonly quoted?: boolean;
}

// Files checked at once: enough to hide latency, few enough to stay far from open-file limits.
const statConcurrency = 64;

async function readManifestBytes(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' ? 'manifest not found' : `cannot read manifest (${(e as Error).message})`;
    throw new ManifestError(`${path}: ${what}`, path);
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Moves examples whose audio file is missing (or not a file) to the skipped rows. */
async function withAudioChecked(contents: ManifestContents, options: ManifestFileOptions): Promise<ManifestContents> {
  if (options.checkAudioFiles === false) return contents;
  const { examples } = contents;
  const present: boolean[] = [];
  for (let i = 0; i < examples.length; i += statConcurrency) {
    present.push(...(await Promise.all(examples.slice(i, i + statConcurrency).map((e) => isFile(e.audio)))));
  }
  const missing: SkippedRow[] = examples.filter((_, i) => !present[i]).map((e) => ({ line: e.line, source: e.source, reason: `audio file not found: ${e.audio}` }));
  return {
    examples: examples.filter((_, i) => present[i]),
    skipped: [...contents.skipped, ...missing].sort((a, b) => a.line - b.line),
  };
}

/**
 * Reads a JSON Lines manifest (see `parseJsonlManifest`); audio paths are resolved against the
 * manifest's folder.
 * @throws ManifestError when the file is missing or unreadable.
 */
export async function readJsonlManifest(path: string, options: ManifestFileOptions = {}): Promise<ManifestContents> {
  const folder = dirname(resolve(path));
  const contents = parseJsonlManifest(await readManifestBytes(path), { ...options, source: path, resolveAudio: (p) => resolve(folder, p) });
  return withAudioChecked(contents, options);
}

/**
 * Reads one split of a Common Voice release folder (`<dir>/<split>.tsv`, audio in `<dir>/clips/`),
 * see `parseCommonVoiceTsv`. `split` is the TSV's name without extension: "train", "dev",
 * "test", "validated", ...
 * @throws ManifestError when the TSV is missing, unreadable or lacks a needed column.
 */
export async function readCommonVoice(dir: string, split: string, options: CommonVoiceFileOptions = {}): Promise<ManifestContents> {
  const folder = resolve(dir);
  const path = join(dir, `${split}.tsv`);
  const contents = parseCommonVoiceTsv(await readManifestBytes(path), { ...options, source: path, resolveAudio: (p) => resolve(folder, p) });
  return withAudioChecked(contents, options);
}

/**
 * Reads a Hugging Face audiofolder (`<dir>/metadata.csv`, audio paths relative to `dir`), see
 * `parseAudioFolderCsv`.
 * @throws ManifestError when metadata.csv is missing, unreadable or lacks a needed column.
 */
export async function readAudioFolder(dir: string, options: ManifestFileOptions = {}): Promise<ManifestContents> {
  const folder = resolve(dir);
  const path = join(dir, 'metadata.csv');
  const contents = parseAudioFolderCsv(await readManifestBytes(path), { ...options, source: path, resolveAudio: (p) => resolve(folder, p) });
  return withAudioChecked(contents, options);
}

/** An example's audio as 16 kHz mono, read with `readAudioFile16k`; see `loadExampleAudio`. */
export function loadExampleAudioFile(example: TrainingExample): Promise<ExampleAudio> {
  return loadExampleAudio(example, readAudioFile16k);
}

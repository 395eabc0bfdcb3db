// `dqw eval`: transcribe a manifest's examples with a checkpoint and print WER, CER and the
// real-time factor per language. Also what `dqw pseudo-label` shares with it: reading the
// --data argument in any manifest format and opening a checkpoint as an Evaluator.
import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ManifestContents, SkippedRow } from '../data/examples.js';
import { DqwError } from '../errors.js';
import { Evaluator, formatEvalTable, type EvaluationResult } from '../eval/evaluate.js';
import { Gpu } from '../gpu/gpu.js';
import { readAudioFile16k } from '../io/audio-file.js';
import { readAudioFolder, readCommonVoice, readJsonlManifest } from '../io/manifest-files.js';
import { loadSpellingMapping, loadWhisperTokenizer } from '../io/text-assets.js';
import { WhisperInference } from '../model/inference.js';
import { loadMelFilters, loadRunnableCheckpoint, progressBar, tokenizerRanksPath, modelHeader, runtimeOf, uploadRunnable, type CommandIo } from './checkpoint.js';

export const evalUsage = `usage: dqw eval --model <dir|file> --data <manifest> [options]

  --model <dir|file>   Hugging Face folder (config.json + model.safetensors) or whisper.cpp ggml file
  --data <manifest>    JSON Lines file (audio, text, language per line), a Hugging Face audiofolder
                       (folder with metadata.csv), or a Common Voice folder (its test.tsv) or split file
  --language <code>    language of rows that state none
  --limit <n>          evaluate the first n usable rows only
  --json               print the scores and every transcript as JSON instead of the table
`;

const processIo: CommandIo = { stdout: process.stdout, stderr: process.stderr };

/** OpenAI's British→American spellings for the English normalizer, shipped in assets/. */
const SPELLINGS = new URL('../../assets/english.json', import.meta.url).pathname;

/**
 * Reads the manifest named by a --data argument: a `metadata.csv` or a folder holding one (Hugging
 * Face audiofolder); a `.tsv` file (one Common Voice split) or a folder holding `test.tsv`
 * (Common Voice); any other file as JSON Lines.
 */
export async function readManifestArgument(path: string, options: { language?: string } = {}): Promise<ManifestContents> {
  const info = await stat(path).catch(() => {
    throw new DqwError(`--data ${path}: no such file or folder`);
  });
  const has = (name: string) => stat(join(path, name)).then((s) => s.isFile(), () => false);
  if (info.isDirectory()) {
    if (await has('metadata.csv')) return readAudioFolder(path, options);
    if (await has('test.tsv')) return readCommonVoice(path, 'test', options);
    throw new DqwError(`--data ${path}: a folder must hold metadata.csv (audiofolder) or test.tsv (Common Voice)`);
  }
  if (basename(path) === 'metadata.csv') return readAudioFolder(dirname(path), options);
  if (path.endsWith('.tsv')) return readCommonVoice(dirname(path), basename(path, '.tsv'), options);
  return readJsonlManifest(path, options);
}

/** Skipped rows as lines "file:line: reason" under `heading`, for stderr; nothing when there are none. */
export function formatSkippedRows(skipped: readonly SkippedRow[], heading: string): string {
  if (skipped.length === 0) return '';
  return `${heading}\n${skipped.map((s) => `  ${s.source}:${s.line}: ${s.reason}\n`).join('')}`;
}

/** A checkpoint on the GPU as an Evaluator; `close()` frees everything. */
export interface OpenedEvaluator {
  readonly evaluator: Evaluator;
  /** How the model runs (f32, or the int8 kernels and their weight bits). */
  readonly runtime: string;
  close(): void;
}

/** Loads the checkpoint at `path` (named `option` in messages) onto a new GPU device as an Evaluator. */
export async function openEvaluator(path: string, option: string, io: CommandIo): Promise<OpenedEvaluator> {
  const loaded = await loadRunnableCheckpoint(path, io.stderr, option);
  const checkpoint = loaded.checkpoint;
  for (const warning of checkpoint.warnings) io.stderr.write(`warning: ${warning}\n`);
  const config = checkpoint.config;
  const [tokenizer, melFilters, spellingMapping] = await Promise.all([
    loadWhisperTokenizer(tokenizerRanksPath(config), { vocabSize: config.vocab_size }),
    loadMelFilters(config),
    loadSpellingMapping(SPELLINGS),
  ]);
  const gpu = await Gpu.create();
  const weights = uploadRunnable(gpu, loaded);
  io.stderr.write(`${modelHeader(option === '--teacher' ? 'pseudo-label' : 'eval', path, weights)}\n`);
  const inference = new WhisperInference(weights);
  const evaluator = new Evaluator(inference, { tokenizer, melFilters, spellingMapping });
  return {
    evaluator,
    runtime: runtimeOf(weights),
    close() {
      evaluator.destroy();
      inference.destroy();
      weights.destroy();
      gpu.destroy();
    },
  };
}

/** The --limit argument: a positive integer or absent. */
export function parseLimit(value: string | undefined, usage: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new DqwError(`--limit must be a positive integer, got "${value}"\n${usage}`);
  return n;
}

/**
 * Reads the manifest, reports its bad rows on stderr and transcribes the usable ones (the first
 * `limit`) with a progress bar.
 * @returns the evaluation and every skipped row (manifest rows, then audio that failed).
 */
export async function evaluateManifest(
  opened: OpenedEvaluator,
  contents: ManifestContents,
  limit: number | undefined,
  io: CommandIo,
): Promise<{ result: EvaluationResult; skipped: SkippedRow[] }> {
  const examples = contents.examples.slice(0, limit);
  const bar = progressBar(io.stderr, 'transcribing |{bar}| {value}/{total} utterances | {audio} s audio');
  bar.start(examples.length, 0, { audio: '0.0' });
  let result: EvaluationResult;
  try {
    result = await opened.evaluator.evaluate(examples, {
      readAudio: readAudioFile16k,
      onProgress: (p) => bar.update(p.done, { audio: p.audioSeconds.toFixed(1) }),
    });
  } finally {
    bar.stop();
  }
  io.stderr.write(formatSkippedRows(result.skipped, `skipped ${result.skipped.length} of ${examples.length} rows whose audio could not be used:`));
  return { result, skipped: [...contents.skipped, ...result.skipped] };
}

/** The manifest's examples, with its bad rows reported on stderr; throws when none is usable. */
export async function readUsableManifest(path: string, language: string | undefined, io: CommandIo): Promise<ManifestContents> {
  const contents = await readManifestArgument(path, { language });
  const rows = contents.skipped.length + contents.examples.length;
  io.stderr.write(formatSkippedRows(contents.skipped, `skipped ${contents.skipped.length} of ${rows} rows of ${path}:`));
  if (contents.examples.length === 0) throw new DqwError(`--data ${path}: no usable rows`);
  return contents;
}

/** What `dqw eval --json` prints. */
function evaluationJson(result: EvaluationResult, skipped: readonly SkippedRow[]): unknown {
  return {
    adapter: result.adapter,
    languages: result.languages,
    overall: result.overall,
    utterances: result.utterances.map((u) => ({
      audio: u.example.audio,
      source: u.example.source,
      line: u.example.line,
      language: u.example.language,
      reference: u.example.text,
      hypothesis: u.hypothesis,
      audioSeconds: u.audioSeconds,
      decodeSeconds: u.decodeSeconds,
    })),
    skipped,
  };
}

/**
 * Run `dqw eval` with `argv` (the arguments after the command name): the table (or JSON) on
 * stdout; progress and skipped rows on stderr. Throws DqwError for bad arguments, an unreadable
 * manifest or checkpoint, and a manifest without a usable row.
 */
export async function evalCommand(argv: string[], io: CommandIo = processIo): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      data: { type: 'string' },
      language: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  if (!values.model) throw new DqwError(`--model is required\n${evalUsage}`);
  if (!values.data) throw new DqwError(`--data is required\n${evalUsage}`);
  const limit = parseLimit(values.limit, evalUsage);
  const contents = await readUsableManifest(values.data, values.language, io);
  const opened = await openEvaluator(values.model, '--model', io);
  try {
    const { result, skipped } = await evaluateManifest(opened, contents, limit, io);
    if (values.json) {
      io.stdout.write(`${JSON.stringify(evaluationJson(result, skipped), null, 2)}\n`);
    } else {
      const a = result.adapter;
      io.stdout.write(`${formatEvalTable(result)}\nadapter: ${a.description || a.device || '(no description)'} (${a.runtime})\n`);
    }
  } finally {
    opened.close();
  }
}

// `dqw transcribe`: load a checkpoint (Hugging Face folder or whisper.cpp ggml file), then for each
// audio file decode, compute the log-mel on the GPU, transcribe long-form with KV-cache decoding
// and write the transcript. A file that fails is reported and skipped; the exit code says whether
// any did.
import { stat, mkdir, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { LogMelSpectrogram, N_FRAMES, N_SAMPLES } from '../audio/logmel.js';
import { formatTranscript, TRANSCRIPT_FORMATS, type TranscriptFormat } from '../decode/format.js';
import { GpuDecoderBackend } from '../decode/gpu-backend.js';
import { transcribe } from '../decode/transcribe.js';
import { DqwError } from '../errors.js';
import { Gpu } from '../gpu/gpu.js';
import { readAudioFile16k } from '../io/audio-file.js';
import { verifyKnownCheckpoint } from '../io/checksums.js';
import { loadMelFilters, loadRunnableCheckpoint, progressBar, tokenizerRanksPath, modelHeader, uploadRunnable, type CommandIo } from './checkpoint.js';
import { loadWhisperTokenizer } from '../io/text-assets.js';
import { WhisperInference } from '../model/inference.js';
import { WhisperWeights } from '../model/whisper.js';
import type { WhisperTask } from '../text/tokenizer.js';

export const transcribeUsage = `usage: dqw transcribe <audio...> --model <dir|file> [options]

  --model <dir|file>   Hugging Face folder (config.json + model.safetensors; a dq-whisper-int8
                       export of dqw export --quant int8|int4 runs on the int8 kernels) or
                       whisper.cpp ggml file
  --language <code>    language of the audio (default: detected per file on multilingual models)
  --task <task>        transcribe (default) or translate (to English)
  --beam <n>           beam search with n beams (default: greedy with temperature fallback)
  --no-timestamps      decode without timestamp tokens (segments are whole 30 s windows)
  --format <fmt>       ${TRANSCRIPT_FORMATS.join(', ')} (default txt)
  --output <dir>       where transcripts go, as <audio name>.<fmt> (default .)
`;



interface TranscribeArgs {
  files: string[];
  model: string;
  language?: string;
  task: WhisperTask;
  beam?: number;
  withoutTimestamps: boolean;
  format: TranscriptFormat;
  output: string;
}

function parseTranscribeArgs(argv: string[]): TranscribeArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      language: { type: 'string' },
      task: { type: 'string', default: 'transcribe' },
      beam: { type: 'string' },
      format: { type: 'string', default: 'txt' },
      output: { type: 'string', default: '.' },
      'no-timestamps': { type: 'boolean', default: false },
    },
  });
  const usageError = (msg: string) => new DqwError(`${msg}\n${transcribeUsage}`);
  if (positionals.length === 0) throw usageError('no audio files given');
  if (!values.model) throw usageError('--model is required');
  if (values.task !== 'transcribe' && values.task !== 'translate') throw usageError(`--task must be transcribe or translate, got "${values.task}"`);
  if (!TRANSCRIPT_FORMATS.includes(values.format as TranscriptFormat)) throw usageError(`--format must be one of ${TRANSCRIPT_FORMATS.join(', ')}, got "${values.format}"`);
  let beam: number | undefined;
  if (values.beam !== undefined) {
    beam = Number(values.beam);
    if (!Number.isInteger(beam) || beam < 1) throw usageError(`--beam must be a positive integer, got "${values.beam}"`);
  }
  return {
    files: positionals,
    model: values.model,
    language: values.language,
    task: values.task,
    beam,
    withoutTimestamps: values['no-timestamps'],
    format: values.format as TranscriptFormat,
    output: values.output,
  };
}



/** Our errors and Node's system errors (ENOENT, ...) by their message; anything else, a bug, with its stack. */
function describeError(err: unknown): string {
  if (err instanceof DqwError || (err instanceof Error && 'code' in err)) return err.message;
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

/** Seconds of a mel frame count (10 ms per frame). */
const seconds = (frames: number) => (frames / 100).toFixed(1);

/**
 * Run `dqw transcribe` with `argv` (the arguments after the command name). Transcripts go to
 * `<output>/<audio name>.<format>`; a file that cannot be read, decoded or transcribed is
 * reported on stderr and the others go on. Throws DqwError for bad arguments or a model that
 * cannot be loaded, and (after all files) when any file failed, saying how many.
 */
export async function transcribeCommand(argv: string[], io: CommandIo = { stdout: process.stdout, stderr: process.stderr }): Promise<void> {
  const args = parseTranscribeArgs(argv);
  const loaded = await loadRunnableCheckpoint(args.model, io.stderr);
  const checkpoint = loaded.checkpoint;
  const checksum = (await stat(args.model)).isFile() ? await verifyKnownCheckpoint(args.model) : undefined;
  for (const warning of [...checkpoint.warnings, ...(checksum?.warning ? [checksum.warning] : [])]) io.stderr.write(`warning: ${warning}\n`);
  const config = checkpoint.config;

  const tokenizer = await loadWhisperTokenizer(tokenizerRanksPath(config), { vocabSize: config.vocab_size });
  if (args.language !== undefined) tokenizer.languageToken(args.language);
  const filters = await loadMelFilters(config);

  const gpu = await Gpu.create();
  const weights = uploadRunnable(gpu, loaded);
  io.stderr.write(`${modelHeader('transcribe', args.model, weights)}\n`);
  const backend = new GpuDecoderBackend(new WhisperInference(weights));
  const logMel = new LogMelSpectrogram(gpu, filters);
  await mkdir(args.output, { recursive: true });
  const failed: string[] = [];
  try {
    for (const [i, file] of args.files.entries()) {
      const bar = progressBar(io.stderr, `[${i + 1}/${args.files.length}] ${basename(file)} |{bar}| {percentage}% | {done}/{length} s`);
      try {
        const samples = await readAudioFile16k(file);
        // As OpenAI: the log-mel of the audio followed by 30 s of silence; the content is all but the last window.
        const mel = await logMel.compute(samples, { length: samples.length + N_SAMPLES, label: file });
        const frames = mel.length / config.num_mel_bins;
        const contentFrames = frames - N_FRAMES;
        bar.start(Math.max(contentFrames, 1), 0, { done: seconds(0), length: seconds(contentFrames) });
        const transcript = await transcribe(backend, tokenizer, { data: mel, bins: config.num_mel_bins, frames }, {
          language: args.language,
          task: args.task,
          beamSize: args.beam,
          withoutTimestamps: args.withoutTimestamps,
          contentFrames,
          onProgress: (p) => bar.update(p.framesDone, { done: seconds(p.framesDone) }),
        });
        bar.stop();
        const out = join(args.output, `${basename(file, extname(file))}.${args.format}`);
        await writeFile(out, formatTranscript(transcript, args.format));
        io.stdout.write(`${file} -> ${out}\n`);
      } catch (err) {
        bar.stop();
        failed.push(file);
        io.stderr.write(`dqw transcribe: ${file}: ${describeError(err)}\n`);
      }
    }
  } finally {
    logMel.destroy();
    backend.destroy();
    weights.destroy();
    gpu.destroy();
  }
  if (failed.length) throw new DqwError(`${failed.length} of ${args.files.length} files failed: ${failed.join(', ')}`);
}

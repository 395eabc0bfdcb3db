// From examples (audio + transcript) to the host data of a training step: the log-mel of each
// clip padded or trimmed to the model's window (GPU, as Whisper's pad_or_trim + log_mel), and
// the decoder sequence <|sot|><|lang|><|transcribe|><|notimestamps|> text <|eot|> split into
// inputs (all but the last) and labels (all but the first), right-padded with the ignore index.
import { HOP_LENGTH, LogMelSpectrogram } from '../audio/logmel.js';
import type { MelFilters } from '../audio/mel-filters.js';
import { ConfigError, ShapeError } from '../errors.js';
import type { Gpu } from '../gpu/gpu.js';
import { melFrames, type WhisperConfig } from '../model/config.js';
import type { WhisperTokenizer } from '../text/tokenizer.js';
import { loadExampleAudio, type AudioReader } from '../data/audio-loader.js';
import type { SkippedRow, TrainingExample } from '../data/examples.js';
import type { DistillationBatch } from './step.js';

/** An example ready for batching: its log-mel and its full token sequence. */
export interface PreparedExample {
  readonly example: TrainingExample;
  /** f32 [num_mel_bins, 2 * max_source_positions]. */
  readonly mel: Float32Array;
  /** sot sequence + text + eot (possibly cut to the decoder length + 1). */
  readonly sequence: readonly number[];
  /** Whether the sequence was cut to fit the decoder length. */
  readonly truncated: boolean;
  /** Whether the audio was longer than the model's window and was trimmed. */
  readonly trimmed: boolean;
}

/** An example's decoder sequence: sot sequence (its language, transcribe, no timestamps) + text + eot. */
export function tokenSequence(tokenizer: WhisperTokenizer, example: TrainingExample): number[] {
  const m = tokenizer.multilingual;
  return [...tokenizer.sotSequence({ language: m ? example.language : null, task: m ? 'transcribe' : null, timestamps: false }), ...tokenizer.encode(` ${example.text.trim()}`), tokenizer.eot];
}

/**
 * The decoder positions a batch needs for `examples`: their longest sequence less one (inputs
 * drop the last token), or `maxTokens` when given, at most the model's max_target_positions.
 */
export function decoderLength(tokenizer: WhisperTokenizer, config: WhisperConfig, examples: readonly TrainingExample[], maxTokens?: number): number {
  const longest = Math.max(2, ...examples.map((e) => tokenSequence(tokenizer, e).length - 1));
  return Math.min(maxTokens ?? longest, config.max_target_positions);
}

/**
 * The most examples one forward may hold so that its f32 logits [examples × tokens, vocab] (the
 * largest tensor of a step: student and teacher logits and their gradient are this size) fit one
 * storage binding of `maxBindingBytes`, which the memory planner refuses to exceed. Throws
 * ConfigError when a single example's do not.
 */
export function examplesPerBinding(tokens: number, vocab: number, maxBindingBytes: number): number {
  const most = Math.floor(maxBindingBytes / (4 * tokens * vocab));
  if (most < 1) {
    throw new ConfigError(`one example's logits [${tokens}, ${vocab}] f32 need ${4 * tokens * vocab} bytes, more than one storage binding holds on this device (${maxBindingBytes}); use fewer decoder positions (--max-tokens)`);
  }
  return most;
}

/** What a command logs when `asked` examples per forward do not fit one binding: the reason, then `outcome`. */
export function bindingFitMessage(asked: number, tokens: number, vocab: number, maxBindingBytes: number, outcome: string): string {
  return `logits of ${asked} examples x ${tokens} tokens x ${vocab} (f32) exceed one storage binding on this device (${maxBindingBytes} bytes): ${outcome}`;
}

/** How a batch runs: `batchSize` examples per forward, `microBatches` forwards per update. */
export interface BatchSplit {
  readonly batchSize: number;
  readonly microBatches: number;
}

/**
 * `batch` examples per micro-batch and `microBatches` per update, re-split where a micro-batch's
 * logits would not fit one storage binding: into the largest divisor of `batch` that fits
 * ({@link examplesPerBinding}), with proportionally more micro-batches, so that every update
 * still sees batch × microBatches examples (gradient accumulation averages the micro-batches).
 * Returns the input unchanged when it fits.
 */
export function splitBatchForBinding(split: BatchSplit, tokens: number, vocab: number, maxBindingBytes: number): BatchSplit {
  const most = examplesPerBinding(tokens, vocab, maxBindingBytes);
  if (split.batchSize <= most) return split;
  let size = most;
  while (split.batchSize % size !== 0) size--;
  return { batchSize: size, microBatches: split.microBatches * (split.batchSize / size) };
}

/** Turns examples into batches for one model's window, decoder length and tokenizer. */
export class BatchPreparer {
  private readonly logMel: LogMelSpectrogram;
  /** Samples in the model's audio window (30 s for Whisper's 1500 positions). */
  readonly windowSamples: number;

  constructor(
    gpu: Gpu,
    readonly config: WhisperConfig,
    readonly tokenizer: WhisperTokenizer,
    filters: MelFilters,
    /** Decoder positions per sequence (the step's `tokens`). */
    readonly tokens: number,
    readonly ignoreIndex = -100,
  ) {
    if (filters.nMels !== config.num_mel_bins) throw new ConfigError(`batches: mel filterbank has ${filters.nMels} bands, the model takes num_mel_bins ${config.num_mel_bins}`);
    if (!Number.isInteger(tokens) || tokens < 2 || tokens > config.max_target_positions) throw new ConfigError(`batches: decoder length ${tokens} must be 2..${config.max_target_positions} (max_target_positions)`);
    this.logMel = new LogMelSpectrogram(gpu, filters);
    this.windowSamples = melFrames(config) * HOP_LENGTH;
  }

  /** Read an example's audio with `read` and prepare it, or the skip record when the audio cannot be used. */
  async load(example: TrainingExample, read: AudioReader): Promise<PreparedExample | { skipped: SkippedRow }> {
    const audio = await loadExampleAudio(example, read);
    return audio.skipped ? { skipped: audio.skipped } : this.prepare(example, audio.samples);
  }

  /** Log-mel and token sequence of an example whose audio (16 kHz mono) is `samples`. */
  async prepare(example: TrainingExample, samples: Float32Array): Promise<PreparedExample> {
    const mel = await this.logMel.compute(samples, { length: this.windowSamples, label: example.audio });
    const full = tokenSequence(this.tokenizer, example);
    const truncated = full.length > this.tokens + 1;
    return { example, mel, sequence: truncated ? full.slice(0, this.tokens + 1) : full, truncated, trimmed: samples.length > this.windowSamples };
  }

  /**
   * A batch of exactly `batch` rows: the prepared examples, then (when fewer) the same examples
   * again in order, so a short last batch still fills the compiled shape with real data.
   */
  assemble(items: readonly PreparedExample[], batch: number): DistillationBatch {
    if (!items.length) throw new ShapeError('batches: no examples to assemble');
    const T = this.tokens;
    const melSize = items[0]!.mel.length;
    const mel = new Float32Array(batch * melSize);
    const tokens = new Int32Array(batch * T).fill(this.tokenizer.eot);
    const labels = new Int32Array(batch * T).fill(this.ignoreIndex);
    const tokenLengths = new Uint32Array(batch);
    for (let b = 0; b < batch; b++) {
      const item = items[b % items.length]!;
      if (item.mel.length !== melSize) throw new ShapeError(`batches: log-mel of ${item.example.audio} has ${item.mel.length} values, expected ${melSize}`);
      mel.set(item.mel, b * melSize);
      const n = item.sequence.length - 1;
      for (let t = 0; t < n; t++) {
        tokens[b * T + t] = item.sequence[t]!;
        labels[b * T + t] = item.sequence[t + 1]!;
      }
      tokenLengths[b] = n;
    }
    return { mel, tokens, labels, tokenLengths };
  }

  /** Label tokens (positions with a loss) of a batch. */
  static labelCount(batch: DistillationBatch, ignoreIndex = -100): number {
    return batch.labels.reduce((n, l) => n + (l !== ignoreIndex ? 1 : 0), 0);
  }

  destroy(): void {
    this.logMel.destroy();
  }
}

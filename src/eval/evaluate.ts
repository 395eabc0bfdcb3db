// Evaluation of a loaded model on a manifest's examples: transcribe each (greedy by default, in
// the example's language), score WER and CER per language and overall after Whisper's
// normalization, and time decoding for the real-time factor. Browser-safe: audio comes through
// the caller's reader, so the same code serves `dqw eval`, the training loop's dev evaluations
// and a web page.
import { HOP_LENGTH, LogMelSpectrogram, N_FRAMES, N_SAMPLES } from '../audio/logmel.js';
import type { MelFilters } from '../audio/mel-filters.js';
import { WHISPER_SAMPLE_RATE } from '../audio/resample.js';
import { loadExampleAudio, type AudioReader } from '../data/audio-loader.js';
import type { SkippedRow, TrainingExample } from '../data/examples.js';
import { GpuDecoderBackend } from '../decode/gpu-backend.js';
import { logSumExp } from '../decode/logit-filters.js';
import { transcribe, type TranscribeOptions } from '../decode/transcribe.js';
import type { AdapterDescription } from '../gpu/device.js';
import { tokenSequence } from '../distill/batch.js';
import { melFrames } from '../model/config.js';
import type { WhisperInference } from '../model/inference.js';
import { scoreCorpus, type ErrorRate, type LanguageScore, type ScoredUtterance } from '../text/metrics.js';
import { whisperNormalizer } from '../text/normalizers.js';
import type { WhisperTokenizer } from '../text/tokenizer.js';

/** What an {@link Evaluator} needs besides the model: tokenizer, mel filterbank and English spellings. */
export interface EvaluatorAssets {
  /** The model's tokenizer (multilingual or English-only, as its vocabulary). */
  readonly tokenizer: WhisperTokenizer;
  /** The filterbank of the model's `num_mel_bins`. */
  readonly melFilters: MelFilters;
  /** British→American word mapping of Whisper's English normalizer (OpenAI's english.json). */
  readonly spellingMapping: Readonly<Record<string, string>>;
}

/** One transcribed example. */
export interface UtteranceResult {
  readonly example: TrainingExample;
  /** The model's transcript, trimmed (not normalized). */
  readonly hypothesis: string;
  /** Seconds of audio (16 kHz samples / 16000). */
  readonly audioSeconds: number;
  /**
   * Wall-clock seconds of the log-mel and decoding (not of reading the file). On an Evaluator's
   * first call this includes compiling the programs, once per shape, on the first utterance.
   */
  readonly decodeSeconds: number;
}

/** Audio length, decoding time and their ratio over a set of utterances. */
export interface Timing {
  readonly audioSeconds: number;
  readonly decodeSeconds: number;
  /** decodeSeconds / audioSeconds; null without audio. */
  readonly realTimeFactor: number | null;
}

/**
 * Scores of one language. `metric` is the one Whisper reports for it: CER for languages written
 * without spaces (zh, ja, th, lo, my, yue), WER otherwise.
 */
export interface LanguageEvaluation extends Timing {
  readonly language: string;
  readonly utterances: number;
  readonly metric: 'wer' | 'cer';
  /** Word error rate; null where `metric` is CER (such text has no words to count). */
  readonly wer: ErrorRate | null;
  /** Character error rate over non-whitespace characters (spaces are word boundaries, which WER scores). */
  readonly cer: ErrorRate;
}

/** Scores over every utterance. */
export interface OverallEvaluation extends Timing {
  readonly utterances: number;
  /** WER over the utterances of WER languages; null when there are none. */
  readonly wer: ErrorRate | null;
  /** CER over all utterances; null when there are none. */
  readonly cer: ErrorRate | null;
}

/** What {@link Evaluator.evaluate} returns. */
export interface EvaluationResult {
  /** One entry per language, in order of first appearance. */
  readonly languages: LanguageEvaluation[];
  readonly overall: OverallEvaluation;
  /** Every transcribed example, in input order. */
  readonly utterances: UtteranceResult[];
  /** Examples whose audio could not be read or decoded. */
  readonly skipped: SkippedRow[];
  /** The GPU the decoding ran on. */
  readonly adapter: Readonly<AdapterDescription>;
}

/** Teacher-forced cross-entropy of reference transcripts (see {@link Evaluator.referenceLoss}). */
export interface ReferenceLoss {
  /** Mean nats per predicted token over every example, and the tokens counted. */
  readonly overall: { readonly loss: number; readonly tokens: number };
  /** The same per language, in order of first appearance. */
  readonly languages: readonly { readonly language: string; readonly loss: number; readonly tokens: number }[];
  readonly skipped: SkippedRow[];
}

/** Progress after each example. */
export interface EvaluationProgress {
  /** Examples done (transcribed or skipped) and in total. */
  readonly done: number;
  readonly total: number;
  /** Audio seconds transcribed so far. */
  readonly audioSeconds: number;
  /** The example just transcribed, or the skip record of one whose audio failed. */
  readonly utterance?: UtteranceResult;
  readonly skipped?: SkippedRow;
}

/** Options of {@link Evaluator.evaluate}. */
export interface EvaluationOptions {
  /** Reads an example's audio as 16 kHz mono (Node: `readAudioFile16k`; browsers: fetch + `loadAudio16k`). */
  readonly readAudio: AudioReader;
  /**
   * Decoding options; the language is always the example's. Default: greedy (temperature 0, no
   * fallback, no beam) without previous-text prompts, so long clips reuse one prefill program
   * instead of compiling one per prompt length.
   */
  readonly transcribe?: Omit<TranscribeOptions, 'language' | 'contentFrames' | 'onProgress'>;
  /** Called after each example. */
  readonly onProgress?: (progress: EvaluationProgress) => void;
}

const GREEDY: TranscribeOptions = { temperature: 0, conditionOnPreviousText: false };

/** The error rate of a language's score, without its language, metric and count. */
const errorRateOf = ({ substitutions, deletions, insertions, hits, referenceLength, errors, rate }: LanguageScore): ErrorRate =>
  ({ substitutions, deletions, insertions, hits, referenceLength, errors, rate });

const timing = (audioSeconds: number, decodeSeconds: number): Timing => ({
  audioSeconds,
  decodeSeconds,
  realTimeFactor: audioSeconds > 0 ? decodeSeconds / audioSeconds : null,
});

/**
 * Transcribes and scores examples with a model already on the GPU. Keep one per model and call
 * {@link evaluate} as often as needed: its decoding programs are compiled on the first call and
 * replayed afterwards (they read the weights' buffers, so weights updated in place by training
 * are used as they are at each call). `destroy()` frees the log-mel constants; the inference
 * object and its weights stay with their owner.
 */
export class Evaluator {
  /** Whisper's normalization: the English normalizer for "en", the basic one otherwise. */
  readonly normalize: (text: string, language: string) => string;
  private readonly backend: GpuDecoderBackend;
  private readonly logMel: LogMelSpectrogram;
  private readonly tokenizer: WhisperTokenizer;

  constructor(inference: WhisperInference, assets: EvaluatorAssets) {
    this.backend = new GpuDecoderBackend(inference);
    this.logMel = new LogMelSpectrogram(inference.gpu, assets.melFilters);
    this.tokenizer = assets.tokenizer;
    this.normalize = whisperNormalizer(assets.spellingMapping);
  }

  /**
   * Transcribes every example in its language and scores the transcripts: corpus-level WER and
   * CER (edits summed over utterances) per language and overall, after {@link normalize}.
   * Examples whose audio cannot be read or decoded are skipped and listed.
   * @throws EvaluationError when a language's references are empty after normalization.
   */
  async evaluate(examples: readonly TrainingExample[], options: EvaluationOptions): Promise<EvaluationResult> {
    const utterances: UtteranceResult[] = [];
    const skipped: SkippedRow[] = [];
    const perLanguageTime = new Map<string, { audio: number; decode: number }>();
    let audioTotal = 0;
    for (const example of examples) {
      const loaded = await loadExampleAudio(example, options.readAudio);
      const done = utterances.length + skipped.length + 1;
      if (loaded.skipped) {
        skipped.push(loaded.skipped);
        options.onProgress?.({ done, total: examples.length, audioSeconds: audioTotal, skipped: loaded.skipped });
        continue;
      }
      const utterance = await this.transcribeOne(example, loaded.samples, options);
      utterances.push(utterance);
      audioTotal += utterance.audioSeconds;
      const time = perLanguageTime.get(example.language) ?? { audio: 0, decode: 0 };
      time.audio += utterance.audioSeconds;
      time.decode += utterance.decodeSeconds;
      perLanguageTime.set(example.language, time);
      options.onProgress?.({ done, total: examples.length, audioSeconds: audioTotal, utterance });
    }
    return { ...this.score(utterances, perLanguageTime), utterances, skipped, adapter: this.backend.inference.gpu.adapter };
  }

  /**
   * Teacher-forced cross-entropy of each example's reference transcript given its audio, in nats
   * per token: the training objective's CE on held-out clips, which ranks models that do not yet
   * transcribe (where CER saturates at 100%). As in training, the audio fills the model's window
   * (padded or trimmed) and the decoder reads <|sot|><|lang|><|transcribe|><|notimestamps|>
   * text; the tokens counted are the text's and <|eot|>, each predicted from those before it.
   * Sequences longer than the text context are cut to it.
   */
  async referenceLoss(examples: readonly TrainingExample[], options: { readonly readAudio: AudioReader }): Promise<ReferenceLoss> {
    const inference = this.backend.inference;
    const config = inference.config;
    const prompt = this.tokenizer.sotSequence({ language: this.tokenizer.multilingual ? 'en' : null, task: this.tokenizer.multilingual ? 'transcribe' : null, timestamps: false }).length;
    const perLanguage = new Map<string, { nll: number; tokens: number }>();
    const skipped: SkippedRow[] = [];
    for (const example of examples) {
      const loaded = await loadExampleAudio(example, options.readAudio);
      if (loaded.skipped) {
        skipped.push(loaded.skipped);
        continue;
      }
      const mel = await this.logMel.compute(loaded.samples, { length: melFrames(config) * HOP_LENGTH, label: example.audio });
      const sequence = tokenSequence(this.tokenizer, example).slice(0, config.max_target_positions);
      const audio = await inference.encode(mel);
      // One session shape (and so one set of programs) for every example: the full text context.
      const session = await inference.startSession(audio);
      const sum = perLanguage.get(example.language) ?? { nll: 0, tokens: 0 };
      try {
        for (let i = 0; i + 1 < sequence.length; i++) {
          const logits = await session.step([[sequence[i]!]]);
          if (i + 1 < prompt) continue;
          sum.nll += logSumExp(logits) - logits[sequence[i + 1]!]!;
          sum.tokens++;
        }
      } finally {
        session.free();
        audio.free();
      }
      perLanguage.set(example.language, sum);
    }
    let nll = 0;
    let tokens = 0;
    for (const s of perLanguage.values()) {
      nll += s.nll;
      tokens += s.tokens;
    }
    return {
      overall: { loss: tokens ? nll / tokens : NaN, tokens },
      languages: [...perLanguage].map(([language, s]) => ({ language, loss: s.nll / s.tokens, tokens: s.tokens })),
      skipped,
    };
  }

  /** Free the log-mel constants (not the model). */
  destroy(): void {
    this.logMel.destroy();
  }

  private async transcribeOne(example: TrainingExample, samples: Float32Array, options: EvaluationOptions): Promise<UtteranceResult> {
    const started = performance.now();
    const bins = this.backend.info.melBins;
    // As OpenAI's transcribe: the log-mel of the audio followed by 30 s of silence, all but the last 30 s being content.
    const mel = await this.logMel.compute(samples, { length: samples.length + N_SAMPLES, label: example.audio });
    const frames = mel.length / bins;
    const transcript = await transcribe(this.backend, this.tokenizer, { data: mel, bins, frames }, {
      ...GREEDY,
      ...options.transcribe,
      language: example.language,
      contentFrames: frames - N_FRAMES,
    });
    return {
      example,
      hypothesis: transcript.text.trim(),
      audioSeconds: samples.length / WHISPER_SAMPLE_RATE,
      decodeSeconds: (performance.now() - started) / 1000,
    };
  }

  private score(utterances: readonly UtteranceResult[], time: ReadonlyMap<string, { audio: number; decode: number }>): Pick<EvaluationResult, 'languages' | 'overall'> {
    const scored: ScoredUtterance[] = utterances.map((u) => ({ reference: u.example.text, hypothesis: u.hypothesis, language: u.example.language }));
    // Whisper's rule (WER, or CER for languages without spaces) per language, then CER of every language.
    const primary = scoreCorpus(scored, { normalize: this.normalize });
    const characters = scoreCorpus(scored, { normalize: this.normalize, cerLanguages: new Set(time.keys()) });
    const languages = primary.languages.map((p, i): LanguageEvaluation => {
      const { audio, decode } = time.get(p.language)!;
      const cer = errorRateOf(characters.languages[i]!);
      return { language: p.language, utterances: p.utterances, metric: p.metric, wer: p.metric === 'wer' ? errorRateOf(p) : null, cer, ...timing(audio, decode) };
    });
    let audio = 0;
    let decode = 0;
    for (const t of time.values()) {
      audio += t.audio;
      decode += t.decode;
    }
    return { languages, overall: { utterances: utterances.length, wer: primary.wer, cer: characters.cer, ...timing(audio, decode) } };
  }
}

const percent = (rate: ErrorRate | null) => (rate === null ? '–' : `${(100 * rate.rate).toFixed(2)}%`);
const rtf = (t: Timing) => (t.realTimeFactor === null ? '–' : t.realTimeFactor.toFixed(3));

/**
 * An evaluation as a Markdown table: a row per language and an "all" row with utterances, WER
 * and CER in percent to two decimals ("–" where not defined), audio seconds to one decimal and
 * the real-time factor to three.
 */
export function formatEvalTable(result: Pick<EvaluationResult, 'languages' | 'overall'>): string {
  const lines = ['| language | utterances | WER | CER | audio s | RTF |', '|---|---:|---:|---:|---:|---:|'];
  const row = (label: string, r: LanguageEvaluation | OverallEvaluation) =>
    `| ${label} | ${r.utterances} | ${percent(r.wer)} | ${percent(r.cer)} | ${r.audioSeconds.toFixed(1)} | ${rtf(r)} |`;
  for (const l of result.languages) lines.push(row(l.language, l));
  lines.push(row('all', result.overall));
  return `${lines.join('\n')}\n`;
}

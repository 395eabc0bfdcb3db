import { DecodingError } from '../errors.js';
import type { WhisperTask, WhisperTokenizer } from '../text/tokenizer.js';
import { Rng } from '../util/random.js';
import { compressionRatio } from './compression.js';
import { ApplyTimestampRules, SuppressBlank, SuppressTokens, logSumExp, type LogitFilter } from './logit-filters.js';
import type { DecoderBackend, DecoderModelInfo, EncodedAudio } from './model.js';
import { pythonStrip, pythonTail, roundHalfEven } from './python-compat.js';
import { BeamSearchDecoder, GreedyDecoder, argmax, rankCandidates, type TokenSelector } from './search.js';

// One decoding pass over a batch of audio windows, as OpenAI's whisper/decoding.py DecodingTask.

// Whisper's audio rate and mel hop (10 ms). src/audio has them too; decoding keeps its own so it
// does not import the GPU log-mel front end.
const SAMPLE_RATE = 16000;
const HOP_LENGTH = 160;

/** Seconds spanned by `frames` mel frames (OpenAI's frames * HOP_LENGTH / SAMPLE_RATE). */
export function melFramesToSeconds(frames: number): number {
  return (frames * HOP_LENGTH) / SAMPLE_RATE;
}

/** Mel frames per encoder position and so per timestamp step (OpenAI's input_stride, 2). */
export function inputStride(info: DecoderModelInfo): number {
  const stride = info.windowFrames / info.audioContext;
  if (!Number.isInteger(stride)) throw new DecodingError(`windowFrames ${info.windowFrames} is not a multiple of audioContext ${info.audioContext}`);
  return stride;
}

/** Seconds per timestamp token (OpenAI's time_precision, 0.02). */
export function timePrecision(info: DecoderModelInfo): number {
  return melFramesToSeconds(inputStride(info));
}

/** Options of one decoding pass: OpenAI's DecodingOptions, camel-cased; defaults as there. */
export interface DecodingOptions {
  /** "transcribe" (default) or "translate" (to English). */
  task?: WhisperTask;
  /** Language code or name of the audio; undefined or null detects it per window (multilingual models). */
  language?: string | null;
  /** 0 (default) takes the likeliest token; above 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Most tokens to sample (default textContext / 2 = 224). */
  sampleLen?: number;
  /** Independent samples per window at temperature > 0, the best kept (default 1). */
  bestOf?: number;
  /** Beam search with this many beams (default: none, greedy or sampling). */
  beamSize?: number;
  /** Beam search keeps going until round(beamSize · patience) candidates finished (default 1). */
  patience?: number;
  /** Ranks candidates by sum logprob / ((5 + length) / 6) ** lengthPenalty; default: / length. */
  lengthPenalty?: number;
  /** Previous text (or its tokens), fed after <|startofprev|>; its last textContext/2 − 1 tokens are kept. */
  prompt?: string | readonly number[];
  /** Text (or tokens) the transcript is forced to start with, after the SOT sequence. */
  prefix?: string | readonly number[];
  /**
   * Ids never sampled, as a list or comma-separated string; -1 stands for the tokenizer's
   * non-speech symbols. Default "-1". The SOT-sequence specials are added whenever this is
   * non-empty; "" or [] or null turns suppression off entirely (as OpenAI).
   */
  suppressTokens?: string | readonly number[] | null;
  /** Forbid a blank (space or <|endoftext|>) first token (default true). */
  suppressBlank?: boolean;
  /** Decode text only, with <|notimestamps|> (default false). */
  withoutTimestamps?: boolean;
  /** Latest allowed first timestamp in seconds (default 1.0); 0 or null: no limit. */
  maxInitialTimestamp?: number | null;
  /** Random numbers for sampling at temperature > 0 (default a generator seeded with 0). */
  rng?: Rng;
}

/** The result for one audio window (OpenAI's DecodingResult). */
export interface DecodingResult {
  /** Language code: the one asked for, or the detected one. */
  language: string;
  /** Probability of every language, when the language was detected. */
  languageProbs?: Record<string, number>;
  /** The sampled tokens, without the initial tokens and <|endoftext|>. */
  tokens: number[];
  /** Their text (timestamps dropped), stripped of surrounding whitespace. */
  text: string;
  /** Summed log probability of the tokens and <|endoftext|> over their count. */
  avgLogprob: number;
  /** Probability of <|nospeech|> right after <|startoftranscript|>. */
  noSpeechProb: number;
  /** The temperature decoded at. */
  temperature: number;
  /** {@link compressionRatio} of `text`. */
  compressionRatio: number;
}

/** The language detected for one window. */
export interface LanguageDetection {
  /** Code of the likeliest language. */
  language: string;
  /** Its token id. */
  token: number;
  /** Probability of each language code (softmax over the language tokens only). */
  probs: Record<string, number>;
}

function checkVocabulary(info: DecoderModelInfo, tokenizer: WhisperTokenizer): void {
  if (info.vocabSize !== tokenizer.vocabSize) {
    throw new DecodingError(`the model's vocabulary has ${info.vocabSize} tokens, the tokenizer's ${tokenizer.vocabSize}`);
  }
}

/**
 * Language identification as OpenAI's `detect_language`: the logits after a lone
 * <|startoftranscript|>, restricted to the language tokens, for each window of `audio`.
 */
export async function detectLanguage(backend: DecoderBackend, tokenizer: WhisperTokenizer, audio: EncodedAudio): Promise<LanguageDetection[]> {
  checkVocabulary(backend.info, tokenizer);
  if (!tokenizer.multilingual || tokenizer.numLanguages === 0) {
    throw new DecodingError("this model's vocabulary has no language tokens, so it cannot identify the language");
  }
  const vocab = backend.info.vocabSize;
  const windows = Array.from({ length: audio.windows }, (_, w) => w);
  const session = await backend.startSession(audio, windows);
  try {
    const logits = await session.step(windows.map(() => [tokenizer.sot]));
    const languageTokens = tokenizer.languageTokens;
    return windows.map((w) => {
      const scores = languageTokens.map((id) => logits[w * vocab + id]!);
      const norm = logSumExp(scores);
      const best = argmax(scores);
      const probs: Record<string, number> = {};
      tokenizer.languageCodes.forEach((code, i) => (probs[code] = Math.exp(scores[i]! - norm)));
      return { language: tokenizer.languageCodes[best]!, token: languageTokens[best]!, probs };
    });
  } finally {
    session.free();
  }
}

function checkOptions(options: DecodingOptions): void {
  const { beamSize, bestOf, patience, lengthPenalty, sampleLen } = options;
  const temperature = options.temperature ?? 0;
  if (beamSize !== undefined && bestOf !== undefined) throw new DecodingError("beamSize and bestOf can't be given together");
  if (!(temperature >= 0 && Number.isFinite(temperature))) throw new DecodingError(`temperature must be a finite number >= 0, got ${temperature}`);
  if (temperature === 0 && bestOf !== undefined) throw new DecodingError('bestOf with greedy decoding (temperature 0) is not compatible');
  if (patience !== undefined && beamSize === undefined) throw new DecodingError('patience requires beamSize to be given');
  if (lengthPenalty !== undefined && !(lengthPenalty >= 0 && lengthPenalty <= 1)) {
    throw new DecodingError(`lengthPenalty (alpha) should be a value between 0 and 1, got ${lengthPenalty}`);
  }
  for (const [name, value] of [['beamSize', beamSize], ['bestOf', bestOf], ['sampleLen', sampleLen]] as const) {
    if (value !== undefined && !(Number.isInteger(value) && value >= 1)) throw new DecodingError(`${name} must be a positive integer, got ${value}`);
  }
}

/** OpenAI's `_get_suppress_tokens`, or null when suppression is off. */
function suppressedIds(tokenizer: WhisperTokenizer, option: DecodingOptions['suppressTokens']): number[] | null {
  const requested = option === undefined ? '-1' : option;
  if (requested === null || requested.length === 0) return null;
  const ids = typeof requested === 'string'
    ? requested.split(',').map((part) => {
        const id = Number(part.trim());
        if (part.trim() === '' || !Number.isInteger(id)) throw new DecodingError(`suppressTokens "${requested}": "${part}" is not a token id`);
        return id;
      })
    : [...requested];
  const bad = ids.find((id) => id !== -1 && !(Number.isInteger(id) && id >= 0 && id < tokenizer.vocabSize));
  if (bad !== undefined) throw new DecodingError(`suppressTokens: ${bad} is not a token id (0..${tokenizer.vocabSize - 1}) or -1`);
  return tokenizer.suppressTokens(ids);
}

function textOrTokens(tokenizer: WhisperTokenizer, value: string | readonly number[]): number[] {
  return typeof value === 'string' ? tokenizer.encode(' ' + pythonStrip(value)) : [...value];
}

/** OpenAI's `_get_initial_tokens`: [<|startofprev|>, prompt…] + SOT sequence + prefix. */
function initialTokens(tokenizer: WhisperTokenizer, sotSequence: number[], options: DecodingOptions, textContext: number, sampleLen: number): number[] {
  let tokens = [...sotSequence];
  // Empty prompt or prefix, as text or tokens, counts as none (Python truthiness).
  if (options.prefix !== undefined && options.prefix.length > 0) {
    tokens = tokens.concat(pythonTail(textOrTokens(tokenizer, options.prefix), Math.floor(textContext / 2) - sampleLen));
  }
  if (options.prompt !== undefined && options.prompt.length > 0) {
    const prompt = pythonTail(textOrTokens(tokenizer, options.prompt), Math.floor(textContext / 2) - 1);
    tokens = [tokenizer.sotPrev, ...prompt, ...tokens];
  }
  return tokens;
}

/**
 * Decodes every window of `audio` with the same options (OpenAI's `decode` / DecodingTask.run):
 * language detection when no language is given, then greedy decoding, sampling (best of N) or
 * beam search under the logit filters, and the best candidate per window by
 * {@link rankCandidates}. The windows are decoded side by side in one backend session.
 */
export async function decodeWindows(
  backend: DecoderBackend,
  tokenizer: WhisperTokenizer,
  audio: EncodedAudio,
  options: DecodingOptions = {},
): Promise<DecodingResult[]> {
  const info = backend.info;
  checkVocabulary(info, tokenizer);
  checkOptions(options);
  const temperature = options.temperature ?? 0;
  const nGroup = options.beamSize ?? options.bestOf ?? 1;
  const nCtx = info.textContext;
  const sampleLen = options.sampleLen ?? Math.floor(nCtx / 2);
  const nAudio = audio.windows;

  const sotSequence = tokenizer.sotSequence({
    language: options.language ?? 'en',
    task: options.task ?? 'transcribe',
    timestamps: !options.withoutTimestamps,
  });
  const initial = initialTokens(tokenizer, sotSequence, options, nCtx, sampleLen);
  if (initial.length > nCtx) {
    throw new DecodingError(`${initial.length} initial tokens (prompt, SOT sequence, prefix) exceed the text context of ${nCtx}`);
  }
  const sampleBegin = initial.length;
  const sotIndex = initial.indexOf(tokenizer.sot);

  // Language per window: given, or detected and written after <|startoftranscript|>.
  let languages: string[];
  let detections: LanguageDetection[] | undefined;
  const perWindow = Array.from({ length: nAudio }, () => [...initial]);
  if (options.language == null && tokenizer.multilingual) {
    detections = await detectLanguage(backend, tokenizer, audio);
    languages = detections.map((d) => d.language);
    detections.forEach((d, w) => (perWindow[w]![sotIndex + 1] = d.token));
  } else {
    const code = tokenizer.multilingual ? tokenizer.languageOf(tokenizer.languageToken(options.language ?? 'en'))! : 'en';
    languages = perWindow.map(() => code);
  }

  const filters: LogitFilter[] = [];
  if (options.suppressBlank ?? true) filters.push(new SuppressBlank(tokenizer.beginSuppressTokens, sampleBegin));
  const suppressed = suppressedIds(tokenizer, options.suppressTokens);
  if (suppressed !== null) filters.push(new SuppressTokens(suppressed));
  if (!options.withoutTimestamps) {
    const maxInitial = options.maxInitialTimestamp === undefined ? 1.0 : options.maxInitialTimestamp;
    const maxInitialIndex = maxInitial ? roundHalfEven(maxInitial / timePrecision(info)) : null;
    filters.push(new ApplyTimestampRules(tokenizer, sampleBegin, maxInitialIndex));
  }

  const selector: TokenSelector = options.beamSize !== undefined
    ? new BeamSearchDecoder(options.beamSize, tokenizer.eot, options.patience)
    : new GreedyDecoder(temperature, tokenizer.eot, nGroup, temperature > 0 ? (options.rng ?? new Rng(0)) : undefined);

  // Each window repeated for its beams or samples.
  let tokens = perWindow.flatMap((seq) => Array.from({ length: nGroup }, () => [...seq]));
  const audioIndex = tokens.map((_, s) => Math.floor(s / nGroup));
  const sumLogprobs = new Float64Array(tokens.length);
  const noSpeechProbs: number[] = [];
  const vocab = info.vocabSize;
  const session = await backend.startSession(audio, audioIndex);
  try {
    // The no-speech probability is read at <|startoftranscript|>; when a prompt or the rest of
    // the SOT sequence follows it, the initial tokens are fed in two steps to stop there first.
    const readNoSpeech = (logits: Float32Array): void => {
      for (let s = 0; s < tokens.length; s += nGroup) {
        const row = logits.subarray(s * vocab, (s + 1) * vocab);
        noSpeechProbs.push(Math.exp(row[tokenizer.noSpeech]! - logSumExp(row)));
      }
    };
    let logits: Float32Array;
    if (sotIndex < sampleBegin - 1) {
      readNoSpeech(await session.step(tokens.map((seq) => seq.slice(0, sotIndex + 1))));
      logits = await session.step(tokens.map((seq) => seq.slice(sotIndex + 1)));
    } else {
      logits = await session.step(tokens);
      readNoSpeech(logits);
    }
    for (let i = 0; i < sampleLen; i++) {
      if (i > 0) logits = await session.step(tokens.map((seq) => [seq[seq.length - 1]!]));
      for (const filter of filters) filter.apply(logits, tokens);
      const step = selector.update(tokens, logits, sumLogprobs);
      tokens = step.tokens;
      if (step.completed || tokens[0]!.length > nCtx) break;
      if (step.parents && step.parents.some((p, s) => p !== s)) await session.reorder(step.parents);
    }
  } finally {
    session.free();
  }

  return selector.finalize(tokens, sumLogprobs).map((group, w) => {
    const sampled = group.sequences.map((seq) => seq.slice(sampleBegin, seq.indexOf(tokenizer.eot)));
    const best = rankCandidates(sampled.map((t) => t.length), group.sumLogprobs, options.lengthPenalty);
    const bestTokens = sampled[best]!;
    const text = pythonStrip(tokenizer.decode(bestTokens));
    const result: DecodingResult = {
      language: languages[w]!,
      tokens: bestTokens,
      text,
      avgLogprob: group.sumLogprobs[best]! / (bestTokens.length + 1),
      noSpeechProb: noSpeechProbs[w]!,
      temperature,
      compressionRatio: compressionRatio(text),
    };
    if (detections) result.languageProbs = detections[w]!.probs;
    return result;
  });
}

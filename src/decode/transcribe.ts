import { DecodingError } from '../errors.js';
import type { WhisperTokenizer } from '../text/tokenizer.js';
import { Rng } from '../util/random.js';
import { decodeWindows, detectLanguage, inputStride, melFramesToSeconds, timePrecision, type DecodingOptions, type DecodingResult } from './decode.js';
import type { DecoderBackend, EncodedAudio } from './model.js';
import { pythonStrip } from './python-compat.js';

// Long-form transcription as OpenAI's whisper/transcribe.py: windows over the whole log-mel,
// temperature fallback, no-speech skipping, timestamp-based seeking, previous-text prompts.

/** A log-mel spectrogram: row-major [bins, frames] (band m of frame t at m · frames + t), as OpenAI's. */
export interface LogMel {
  readonly data: Float32Array;
  readonly bins: number;
  readonly frames: number;
}

/** One transcribed segment (OpenAI's segment dict, camel-cased). */
export interface Segment {
  /** Index in the transcript. */
  id: number;
  /** Mel frame the window it came from started at. */
  seek: number;
  /** Start and end in seconds from the start of the audio. */
  start: number;
  end: number;
  /** Text of its text tokens (not stripped: it usually starts with a space). */
  text: string;
  /** Its tokens, timestamps included. */
  tokens: number[];
  /** Temperature, average log probability, compression ratio and no-speech probability of its window's decoding. */
  temperature: number;
  avgLogprob: number;
  compressionRatio: number;
  noSpeechProb: number;
}

/** A transcription: the whole text, its segments and the language. */
export interface Transcript {
  text: string;
  segments: Segment[];
  language: string;
}

/** Progress after each window, for progress bars. */
export interface TranscribeProgress {
  /** Mel frames done (capped at contentFrames) and in total. */
  framesDone: number;
  contentFrames: number;
  /** Segments the window just added. */
  segments: readonly Segment[];
}

/** Options of {@link transcribe}: OpenAI's transcribe() keyword arguments, camel-cased, defaults as there. */
export interface TranscribeOptions extends Omit<DecodingOptions, 'temperature' | 'prompt' | 'rng'> {
  /** Temperatures tried in turn while a decoding fails the thresholds (default 0, 0.2, …, 1.0). */
  temperature?: number | readonly number[];
  /** A decoding whose text compresses better than this is too repetitive (default 2.4; null: off). */
  compressionRatioThreshold?: number | null;
  /** A decoding whose average log probability is below this failed (default −1; null: off). */
  logprobThreshold?: number | null;
  /** A window with no-speech probability above this and a failing log probability is skipped as silence (default 0.6; null: off). */
  noSpeechThreshold?: number | null;
  /** Feed the previous windows' text as the prompt (default true). */
  conditionOnPreviousText?: boolean;
  /** Prompt text for the first window (custom vocabulary, spelling, style). */
  initialPrompt?: string;
  /**
   * Frames of `mel` that hold audio (default all). OpenAI computes the log-mel of the audio
   * followed by 30 s of silence and passes frames − 3000 here: language detection then reads
   * the padded first window, while decoding windows are cut at the content and zero-padded.
   */
  contentFrames?: number;
  /** Seed of the sampling random generator (default 0). */
  seed?: number;
  /** Called after each window. */
  onProgress?: (progress: TranscribeProgress) => void;
}

const DEFAULT_TEMPERATURES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];

/** `frames` frames of `mel` from frame `start`, zero-padded to `windowFrames` (OpenAI's pad_or_trim). */
function melWindow(mel: LogMel, start: number, frames: number, windowFrames: number): Float32Array {
  const out = new Float32Array(mel.bins * windowFrames);
  const count = Math.max(0, Math.min(frames, windowFrames, mel.frames - start));
  for (let b = 0; b < mel.bins; b++) {
    out.set(mel.data.subarray(b * mel.frames + start, b * mel.frames + start + count), b * windowFrames);
  }
  return out;
}

/**
 * Transcribes a whole log-mel spectrogram of any length, following OpenAI's `transcribe` (without
 * word timestamps and clip ranges): detect the language on the first window when none is given;
 * decode 30 s windows with temperature fallback; skip silent windows; split the output at
 * timestamp pairs into segments and seek to the last complete one; prompt each window with the
 * text since the last reset. Windows are decoded one after another, as each depends on the last.
 */
export async function transcribe(backend: DecoderBackend, tokenizer: WhisperTokenizer, mel: LogMel, options: TranscribeOptions = {}): Promise<Transcript> {
  const info = backend.info;
  if (mel.bins !== info.melBins || mel.data.length !== mel.bins * mel.frames) {
    throw new DecodingError(`transcribe: mel has ${mel.data.length} values for [${mel.bins}, ${mel.frames}], the model expects ${info.melBins} mel bins`);
  }
  const {
    temperature = DEFAULT_TEMPERATURES,
    compressionRatioThreshold = 2.4,
    logprobThreshold = -1.0,
    noSpeechThreshold = 0.6,
    conditionOnPreviousText = true,
    initialPrompt,
    seed = 0,
    onProgress,
    contentFrames = mel.frames,
    ...decodeOptions
  } = options;
  if (!Number.isInteger(contentFrames) || contentFrames < 0 || contentFrames > mel.frames) {
    throw new DecodingError(`transcribe: contentFrames ${contentFrames} must be an integer in 0..${mel.frames}`);
  }
  const temperatures = typeof temperature === 'number' ? [temperature] : [...temperature];
  if (temperatures.length === 0) throw new DecodingError('transcribe: no temperature to decode at');
  const rng = new Rng(seed);
  const nFrames = info.windowFrames;

  let language: string;
  if (!tokenizer.multilingual) {
    language = 'en';
  } else if (decodeOptions.language != null) {
    language = tokenizer.languageOf(tokenizer.languageToken(decodeOptions.language))!;
  } else {
    // OpenAI detects on the first window of the padded mel, before cutting at the content.
    const audio = await backend.encode(melWindow(mel, 0, nFrames, nFrames), 1);
    try {
      language = (await detectLanguage(backend, tokenizer, audio))[0]!.language;
    } finally {
      audio.free();
    }
  }

  const decodeWithFallback = async (audio: EncodedAudio, prompt: number[]): Promise<DecodingResult> => {
    let result: DecodingResult | undefined;
    for (const t of temperatures) {
      // Beam search only at temperature 0, best-of only above it.
      const { beamSize, patience, bestOf, ...rest } = decodeOptions;
      const perTemperature: DecodingOptions = t > 0 ? { ...rest, bestOf } : { ...rest, beamSize, patience };
      result = (await decodeWindows(backend, tokenizer, audio, { ...perTemperature, language, prompt, temperature: t, rng }))[0]!;
      let needsFallback = false;
      if (compressionRatioThreshold !== null && result.compressionRatio > compressionRatioThreshold) needsFallback = true; // too repetitive
      if (logprobThreshold !== null && result.avgLogprob < logprobThreshold) needsFallback = true; // too improbable
      if (noSpeechThreshold !== null && result.noSpeechProb > noSpeechThreshold) needsFallback = false; // silence
      if (!needsFallback) break;
    }
    return result!;
  };

  const stride = inputStride(info);
  const precision = timePrecision(info);
  const { timestampBegin, eot } = tokenizer;
  const allTokens: number[] = [];
  const allSegments: Segment[] = [];
  let promptResetSince = 0;
  const initialPromptTokens = initialPrompt !== undefined ? tokenizer.encode(' ' + pythonStrip(initialPrompt)) : [];
  allTokens.push(...initialPromptTokens);

  let seek = 0;
  while (seek < contentFrames) {
    const timeOffset = melFramesToSeconds(seek);
    const segmentSize = Math.min(nFrames, contentFrames - seek);
    const segmentDuration = melFramesToSeconds(segmentSize);
    const audio = await backend.encode(melWindow(mel, seek, segmentSize, nFrames), 1);
    let result: DecodingResult;
    try {
      result = await decodeWithFallback(audio, allTokens.slice(promptResetSince));
    } finally {
      audio.free();
    }
    const tokens = result.tokens;

    if (noSpeechThreshold !== null) {
      // No voice activity, unless the log probability is high enough despite it.
      let shouldSkip = result.noSpeechProb > noSpeechThreshold;
      if (logprobThreshold !== null && result.avgLogprob > logprobThreshold) shouldSkip = false;
      if (shouldSkip) {
        seek += segmentSize; // fast-forward to the next window
        continue;
      }
    }

    const previousSeek = seek;
    const newSegment = (start: number, end: number, segmentTokens: number[]): Segment => ({
      id: 0,
      seek,
      start,
      end,
      text: tokenizer.decode(segmentTokens.filter((t) => t < eot)),
      tokens: segmentTokens,
      temperature: result.temperature,
      avgLogprob: result.avgLogprob,
      compressionRatio: result.compressionRatio,
      noSpeechProb: result.noSpeechProb,
    });
    const currentSegments: Segment[] = [];
    const isTimestamp = tokens.map((t) => t >= timestampBegin);
    const singleTimestampEnding = tokens.length >= 2 && !isTimestamp[tokens.length - 2] && isTimestamp[tokens.length - 1]!;
    // Each position that follows two consecutive timestamps starts a new segment.
    const consecutive: number[] = [];
    for (let i = 1; i < tokens.length; i++) if (isTimestamp[i - 1] && isTimestamp[i]) consecutive.push(i);

    if (consecutive.length > 0) {
      const slices = [...consecutive];
      if (singleTimestampEnding) slices.push(tokens.length);
      let lastSlice = 0;
      for (const currentSlice of slices) {
        const sliced = tokens.slice(lastSlice, currentSlice);
        const startPos = sliced[0]! - timestampBegin;
        const endPos = sliced[sliced.length - 1]! - timestampBegin;
        currentSegments.push(newSegment(timeOffset + startPos * precision, timeOffset + endPos * precision, sliced));
        lastSlice = currentSlice;
      }
      if (singleTimestampEnding) {
        seek += segmentSize; // a single timestamp at the end: no speech after it
      } else {
        // Leave out the unfinished last segment and continue from the last timestamp.
        seek += (tokens[lastSlice - 1]! - timestampBegin) * stride;
      }
    } else {
      let duration = segmentDuration;
      const timestamps = tokens.filter((_, i) => isTimestamp[i]);
      if (timestamps.length > 0 && timestamps[timestamps.length - 1] !== timestampBegin) {
        // No consecutive timestamps, but a timestamp: it ends the segment.
        duration = (timestamps[timestamps.length - 1]! - timestampBegin) * precision;
      }
      currentSegments.push(newSegment(timeOffset, timeOffset + duration, tokens));
      seek += segmentSize;
    }

    // An instantaneous segment or one without text is kept empty.
    for (const segment of currentSegments) {
      if (segment.start === segment.end || pythonStrip(segment.text) === '') {
        segment.text = '';
        segment.tokens = [];
      }
    }
    for (const segment of currentSegments) {
      segment.id = allSegments.length;
      allSegments.push(segment);
      allTokens.push(...segment.tokens);
    }
    // No prompt after a high-temperature decoding, or when not conditioning on previous text.
    if (!conditionOnPreviousText || result.temperature > 0.5) promptResetSince = allTokens.length;
    onProgress?.({ framesDone: Math.min(contentFrames, seek), contentFrames, segments: currentSegments });
    if (seek <= previousSeek) throw new DecodingError(`transcribe: seeking did not advance past frame ${seek}`);
  }

  return { text: tokenizer.decode(allTokens.slice(initialPromptTokens.length)), segments: allSegments, language };
}

// Test models whose logits are written by hand, so the tokens decoding must produce are known.
import { loadWhisperTokenizer } from '../../src/io/text-assets.js';
import type { DecoderBackend, DecoderModelInfo, DecoderSession, EncodedAudio } from '../../src/decode/model.js';
import { RecomputeBackend } from '../../src/decode/recompute.js';
import type { WhisperTokenizer } from '../../src/text/tokenizer.js';
import { WHISPER_ASSETS } from '../text/assets.js';

let tokenizer: Promise<WhisperTokenizer> | undefined;

/** OpenAI's multilingual tokenizer (vocabulary 51865, as whisper tiny..large-v2). */
export function multilingualTokenizer(): Promise<WhisperTokenizer> {
  tokenizer ??= loadWhisperTokenizer(`${WHISPER_ASSETS}multilingual.tiktoken`, { vocabSize: 51865 });
  return tokenizer;
}

/** Released-model geometry with one mel bin: the scripts read the window from bin 0. */
export function scriptedInfo(overrides: Partial<DecoderModelInfo> = {}): DecoderModelInfo {
  return { vocabSize: 51865, textContext: 448, melBins: 1, windowFrames: 3000, audioContext: 1500, ...overrides };
}

/** What a script sees of a window: its mel values (bin 0). */
export interface ScriptWindow {
  readonly mel: Float32Array;
}

/**
 * A script: the logits after `tokens` (the whole sequence fed so far) as {token: logit}; every
 * token not named gets `background` (default −∞, so probabilities are exactly the named ones').
 */
export type LogitScript = (window: ScriptWindow, tokens: readonly number[]) => Map<number, number>;

/** logit map from probabilities: {token: p} → {token: ln p}. */
export function probs(entries: [number, number][]): Map<number, number> {
  return new Map(entries.map(([t, p]) => [t, Math.log(p)]));
}

/** A full-recomputation backend over a script; `calls` records every sequence it was asked about. */
export function scriptedBackend(script: LogitScript, options: { info?: DecoderModelInfo; background?: number } = {}) {
  const info = options.info ?? scriptedInfo();
  const background = options.background ?? -Infinity;
  const calls: number[][] = [];
  const backend = new RecomputeBackend<ScriptWindow>({
    info,
    encodeWindow: (mel) => ({ mel: mel.slice() }),
    lastLogits: (window, tokens) => {
      calls.push([...tokens]);
      const row = new Float32Array(info.vocabSize).fill(background);
      for (const [token, logit] of script(window, tokens)) row[token] = logit;
      return row;
    },
  });
  return { backend, calls };
}

/** Wraps a backend to count sessions and record each session's sequence count. */
export function countingBackend(inner: DecoderBackend): { backend: DecoderBackend; sessions: number[]; encodes: Float32Array[] } {
  const sessions: number[] = [];
  const encodes: Float32Array[] = [];
  const backend: DecoderBackend = {
    info: inner.info,
    encode: (mel: Float32Array, windows: number): Promise<EncodedAudio> => {
      encodes.push(mel.slice());
      return inner.encode(mel, windows);
    },
    startSession: (audio: EncodedAudio, audioIndex: readonly number[]): Promise<DecoderSession> => {
      sessions.push(audioIndex.length);
      return inner.startSession(audio, audioIndex);
    },
  };
  return { backend, sessions, encodes };
}

/**
 * A script that makes each window say `output(window)` (the tokens after the SOT sequence,
 * <|endoftext|> included) with probability 1 per token, and <|nospeech|> at <|startoftranscript|>
 * with probability `noSpeech(window)` (default 0.01).
 */
export function sayScript(tok: WhisperTokenizer, output: (window: ScriptWindow) => readonly number[], noSpeech: (window: ScriptWindow) => number = () => 0.01): LogitScript {
  return (window, tokens) => {
    const last = tokens[tokens.length - 1]!;
    if (last === tok.sot) {
      const p = noSpeech(window);
      return probs([[tok.noSpeech, p], [tok.eot, 1 - p]]);
    }
    // The sampled tokens start after the task token (or <|notimestamps|> after it).
    let begin = tokens.lastIndexOf(tok.sot) + 1;
    while (begin < tokens.length && tokens[begin]! > tok.eot && !tok.isTimestamp(tokens[begin]!)) begin++;
    const said = tokens.slice(begin);
    const wanted = output(window);
    const next = wanted[said.length];
    if (next === undefined) throw new Error(`script ran past its output: ${said.join(',')}`);
    return new Map([[next, 0]]);
  };
}

/** A one-bin mel of `frames` frames whose value at frame f is f + 1 (zero padding reads 0). */
export function rampMel(frames: number): { data: Float32Array; bins: number; frames: number } {
  return { data: Float32Array.from({ length: frames }, (_, f) => f + 1), bins: 1, frames };
}

/** The frame a ramp-mel window starts at. */
export function windowSeek(window: ScriptWindow): number {
  return window.mel[0]! - 1;
}

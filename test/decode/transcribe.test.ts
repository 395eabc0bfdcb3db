import { beforeAll, describe, expect, it } from 'vitest';
import { transcribe, type TranscribeProgress } from '../../src/decode/transcribe.js';
import { DecodingError } from '../../src/errors.js';
import type { WhisperTokenizer } from '../../src/text/tokenizer.js';
import { countingBackend, multilingualTokenizer, probs, rampMel, sayScript, scriptedBackend, windowSeek, type LogitScript } from './scripted.js';

// Long-form transcription against scripted windows: the mel is a ramp (frame f holds f + 1), so a
// script knows which frame its window starts at and says what that window should decode to.
// Expected segments, seeks and prompts follow whisper/transcribe.py, worked out in the comments.

let tok: WhisperTokenizer;
let word: (text: string) => number;
let ts: (seconds: number) => number;
beforeAll(async () => {
  tok = await multilingualTokenizer();
  word = (text) => {
    const ids = tok.encode(text);
    if (ids.length !== 1) throw new Error(`"${text}" is ${ids.length} tokens`);
    return ids[0]!;
  };
  ts = (seconds) => tok.timestampBegin + Math.round(seconds / 0.02);
});

/** The sequences a backend was asked about whose last token is the task token: one per window decoded. */
function windowPrompts(calls: number[][]): number[][] {
  return calls.filter((c) => c[c.length - 1] === tok.transcribe).map((c) => c.slice(0, c.indexOf(tok.sot)));
}

describe('transcribe: seeking over a 70 s mel', () => {
  const outputs = () => new Map<number, number[]>([
    // Two complete segments, then " cut" without a closing timestamp: seek to <|5.00|> = frame 500.
    [0, [ts(0), word(' Hello'), ts(2), ts(2), word(' world'), ts(5), ts(5), word(' cut'), tok.eot]],
    // No consecutive timestamps: one segment ending at its last timestamp; seek a whole window.
    [500, [ts(0), word(' again'), ts(3), tok.eot]],
    // Ends with a single timestamp: both segments kept, seek a whole window; the blank one is emptied.
    [3500, [ts(0), tok.encode(' ')[0]!, ts(1), ts(1), word(' two'), ts(2), tok.eot]],
    // The last 5 s: cut at the content and zero-padded; only <|0.00|>, so the segment spans the window.
    [6500, [ts(0), word(' tail'), tok.eot]],
  ]);

  it('segments, times, seeks, prompts and text as transcribe.py', async () => {
    const table = outputs();
    const windows: Float32Array[] = [];
    const script = sayScript(tok, (w) => {
      const out = table.get(windowSeek(w));
      if (!out) throw new Error(`unexpected window at frame ${windowSeek(w)}`);
      return out;
    });
    const { backend, calls } = scriptedBackend((w, t) => {
      windows.push(w.mel);
      return script(w, t);
    });
    const progress: TranscribeProgress[] = [];
    const result = await transcribe(backend, tok, rampMel(7000), { language: 'en', onProgress: (p) => progress.push(p) });

    const seg = (id: number, seek: number, start: number, end: number, text: string, tokens: number[]) => ({ id, seek, start, end, text, tokens });
    const t = table;
    expect(result.segments.map(({ id, seek, start, end, text, tokens }) => ({ id, seek, start, end, text, tokens }))).toEqual([
      seg(0, 0, 0, 2, ' Hello', t.get(0)!.slice(0, 3)),
      seg(1, 0, 2, 5, ' world', t.get(0)!.slice(3, 6)),
      seg(2, 500, 5, 8, ' again', t.get(500)!.slice(0, 3)),
      seg(3, 3500, 35, 36, '', []),
      seg(4, 3500, 36, 37, ' two', t.get(3500)!.slice(3, 6)),
      seg(5, 6500, 65, 70, ' tail', t.get(6500)!.slice(0, 2)),
    ]);
    expect(result.text).toBe(' Hello world again two tail');
    expect(result.language).toBe('en');
    for (const s of result.segments) {
      expect(s.temperature).toBe(0);
      expect(s.avgLogprob).toBe(0); // every scripted token had probability 1
      expect(s.noSpeechProb).toBeCloseTo(0.01, 6);
    }
    // Each window is prompted with every token of the segments before it.
    expect(windowPrompts(calls)).toEqual([
      [],
      [tok.sotPrev, ...t.get(0)!.slice(0, 6)],
      [tok.sotPrev, ...t.get(0)!.slice(0, 6), ...t.get(500)!.slice(0, 3)],
      [tok.sotPrev, ...t.get(0)!.slice(0, 6), ...t.get(500)!.slice(0, 3), ...t.get(3500)!.slice(3, 6)],
    ]);
    // The last window holds frames 6500..6999 (values 6501..7000), then zeros.
    const last = windows[windows.length - 1]!;
    expect([last[0], last[499], last[500], last[2999]]).toEqual([6501, 7000, 0, 0]);
    expect(progress.map((p) => p.framesDone)).toEqual([500, 3500, 6500, 7000]);
    expect(progress.map((p) => p.segments.length)).toEqual([2, 1, 2, 1]);
  });

  it('without conditioning on previous text, no window is prompted', async () => {
    const table = outputs();
    const { backend, calls } = scriptedBackend(sayScript(tok, (w) => table.get(windowSeek(w))!));
    await transcribe(backend, tok, rampMel(7000), { language: 'en', conditionOnPreviousText: false });
    expect(windowPrompts(calls)).toEqual([[], [], [], []]);
  });

  it('an initial prompt starts the first prompt and stays out of the text', async () => {
    const table = outputs();
    const { backend, calls } = scriptedBackend(sayScript(tok, (w) => table.get(windowSeek(w))!));
    const result = await transcribe(backend, tok, rampMel(7000), { language: 'en', initialPrompt: ' Glossary: Hello. ' });
    const initial = tok.encode(' Glossary: Hello.');
    expect(windowPrompts(calls).slice(0, 2)).toEqual([[tok.sotPrev, ...initial], [tok.sotPrev, ...initial, ...table.get(0)!.slice(0, 6)]]);
    expect(result.text).toBe(' Hello world again two tail');
  });
});

describe('transcribe: language, fallback and silence', () => {
  it('detects the language on the first window of the padded mel, then decodes the cut window', async () => {
    const [de, fr] = [tok.languageToken('de'), tok.languageToken('fr')];
    const hallo = word(' Hallo');
    const script: LogitScript = (w, tokens) => {
      if (tokens.length === 1) {
        // Frame 1500 holds audio in the padded mel but zero in the cut decoding window.
        return w.mel[1500] !== 0 ? probs([[de, 0.9], [fr, 0.1]]) : probs([[fr, 0.9], [tok.noSpeech, 0.1]]);
      }
      if (tokens[1] !== de) throw new Error('decoding did not use the detected language');
      return new Map([[tokens.length === 4 ? hallo : tok.eot, 0]]);
    };
    const { backend } = scriptedBackend(script);
    const result = await transcribe(backend, tok, rampMel(4000), { contentFrames: 1000, withoutTimestamps: true });
    expect(result.language).toBe('de');
    expect(result.segments.map((s) => [s.start, s.end, s.text])).toEqual([[0, 10, ' Hallo']]);
  });

  it('falls back to a higher temperature when the text is too repetitive', async () => {
    const [R, S] = [word(' la'), word(' done')];
    // Greedy repeats " la" until sampleLen (compression ratio far above 2.4); at 0.2 " done"
    // (logit −0.2) is drawn with p = 0.27 per step and ends the window.
    const script: LogitScript = (_w, tokens) => {
      if (tokens[tokens.length - 1] === tok.sot) return probs([[tok.noSpeech, 0.01], [tok.eot, 0.99]]);
      if (tokens[tokens.length - 1] === S) return new Map([[tok.eot, 0]]);
      return new Map([[R, 0], [S, -0.2]]);
    };
    const counted = countingBackend(scriptedBackend(script).backend);
    const result = await transcribe(counted.backend, tok, rampMel(3000), { language: 'en', withoutTimestamps: true, sampleLen: 40, seed: 1 });
    expect(counted.sessions).toEqual([1, 1]);
    const segment = result.segments[0]!;
    expect(segment.temperature).toBe(0.2);
    expect(segment.tokens[segment.tokens.length - 1]).toBe(S);
    expect(segment.compressionRatio).toBeLessThanOrEqual(2.4);
    expect(segment.avgLogprob).toBeGreaterThan(-1);
  });

  it('falls back through every temperature while the log probability stays below −1, and drops the prompt after T > 0.5', async () => {
    const four = [word(' a'), word(' b'), word(' c'), word(' d')];
    // Four equally likely tokens: ln 0.25 = −1.39 per token at any temperature, then <|endoftext|>.
    const script: LogitScript = (_w, tokens) => {
      if (tokens[tokens.length - 1] === tok.sot) return probs([[tok.noSpeech, 0.01], [tok.eot, 0.99]]);
      const said = tokens.length - (tokens.lastIndexOf(tok.sot) + 4);
      return said >= 3 ? new Map([[tok.eot, 0]]) : new Map(four.map((t) => [t, 0]));
    };
    const { backend: inner, calls } = scriptedBackend(script);
    const counted = countingBackend(inner);
    const result = await transcribe(counted.backend, tok, rampMel(6000), { language: 'en', withoutTimestamps: true });
    expect(counted.sessions).toEqual(Array(12).fill(1)); // 6 temperatures for each of 2 windows
    expect(result.segments.map((s) => s.temperature)).toEqual([1, 1]);
    expect(result.segments[0]!.avgLogprob).toBeCloseTo((3 * Math.log(0.25)) / 4, 6);
    // After a window decoded at T = 1.0 the next window gets no prompt.
    expect(windowPrompts(calls).every((p) => p.length === 0)).toBe(true);
  });

  it('skips a window as silence when no-speech probability > 0.6 and log probability < −1, without fallback', async () => {
    const four = [word(' a'), word(' b'), word(' c'), word(' d')];
    const script = (noSpeech: number, certain: boolean): LogitScript => (w, tokens) => {
      if (tokens[tokens.length - 1] === tok.sot) return probs([[tok.noSpeech, windowSeek(w) === 0 ? noSpeech : 0.01], [tok.eot, 0.5]]);
      const said = tokens.length - (tokens.lastIndexOf(tok.sot) + 4);
      if (said >= 3) return new Map([[tok.eot, 0]]); // 3 × ln 0.25 over 4: −1.04
      return new Map(certain ? [[four[0]!, 0]] : four.map((t) => [t, 0]));
    };
    const silent = countingBackend(scriptedBackend(script(0.9, false)).backend);
    const skipped = await transcribe(silent.backend, tok, rampMel(6000), { language: 'en', withoutTimestamps: true, temperature: [0, 0.5] });
    // Window 0: one decoding (silence stops the fallback), then skipped; window 3000: both temperatures.
    expect(silent.sessions).toEqual([1, 1, 1]);
    expect(skipped.segments.map((s) => s.seek)).toEqual([3000]);
    // Likely speech despite the no-speech probability: kept.
    const sure = await transcribe(scriptedBackend(script(0.9, true)).backend, tok, rampMel(6000), { language: 'en', withoutTimestamps: true });
    expect(sure.segments.map((s) => [s.seek, s.start, s.end])).toEqual([[0, 0, 30], [3000, 30, 60]]);
    expect(sure.segments[0]!.noSpeechProb).toBeCloseTo(0.9 / 1.4, 6);
    // No thresholds: nothing is skipped.
    const kept = await transcribe(scriptedBackend(script(0.9, false)).backend, tok, rampMel(6000), {
      language: 'en', withoutTimestamps: true, temperature: 0, noSpeechThreshold: null,
    });
    expect(kept.segments.map((s) => s.seek)).toEqual([0, 3000]);
  });
});

describe('transcribe: input checks', () => {
  it('rejects a mel of the wrong shape or content length with DecodingError', async () => {
    const { backend } = scriptedBackend(sayScript(tok, () => [tok.eot]));
    await expect(transcribe(backend, tok, { data: new Float32Array(160), bins: 80, frames: 2 })).rejects.toThrow(/model expects 1 mel bins/);
    await expect(transcribe(backend, tok, { data: new Float32Array(10), bins: 1, frames: 9 })).rejects.toThrow(DecodingError);
    await expect(transcribe(backend, tok, rampMel(100), { contentFrames: 101 })).rejects.toThrow(/contentFrames 101 must be an integer in 0..100/);
    await expect(transcribe(backend, tok, rampMel(100), { temperature: [] })).rejects.toThrow(/no temperature/);
  });
});

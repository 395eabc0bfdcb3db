import { beforeAll, describe, expect, it } from 'vitest';
import { compressionRatio } from '../../src/decode/compression.js';
import { decodeWindows, detectLanguage, type DecodingOptions } from '../../src/decode/decode.js';
import { DecodingError } from '../../src/errors.js';
import { decoderModelInfo } from '../../src/decode/model.js';
import { presetConfig } from '../../src/model/config.js';
import type { WhisperTokenizer } from '../../src/text/tokenizer.js';
import { Rng } from '../../src/util/random.js';
import { countingBackend, multilingualTokenizer, probs, sayScript, scriptedBackend, scriptedInfo, type LogitScript } from './scripted.js';

// Decoding against hand-written logits: every expected token and log probability below follows
// from the script and OpenAI's rules, worked out by hand in the comments.

let tok: WhisperTokenizer;
let word: (text: string) => number;
/** Single-token words, typed as a tuple of the same length. */
function words<const T extends readonly string[]>(...texts: T): { [K in keyof T]: number } {
  return texts.map((t) => word(t)) as { [K in keyof T]: number };
}
beforeAll(async () => {
  tok = await multilingualTokenizer();
  word = (text) => {
    const ids = tok.encode(text);
    if (ids.length !== 1) throw new Error(`"${text}" is ${ids.length} tokens`);
    return ids[0]!;
  };
});

/** Script from a table: key = the tokens after the initial ones (comma-joined), value = {token: p}. */
function treeScript(sampleBegin: (tokens: readonly number[]) => number, table: Record<string, [number, number][]>, atSot: [number, number][] = [], fallback?: [number, number][]): LogitScript {
  return (_window, tokens) => {
    if (tokens[tokens.length - 1] === tok.sot) return probs(atSot.length ? atSot : [[tok.noSpeech, 0.1], [tok.eot, 0.9]]);
    const key = tokens.slice(sampleBegin(tokens)).join(',');
    const entry = table[key] ?? fallback;
    if (!entry) throw new Error(`no script entry for [${key}]`);
    return probs(entry);
  };
}

/** Sampled tokens begin after [sot, language, task, notimestamps?] (no prompt in these tests). */
const afterSot = (n: number) => (tokens: readonly number[]) => tokens.indexOf(tok.sot) + n;

async function decodeOne(script: LogitScript, options: DecodingOptions, windows = 1) {
  const { backend, calls } = scriptedBackend(script);
  const counted = countingBackend(backend);
  const audio = await counted.backend.encode(Float32Array.from({ length: 3000 * windows }, (_, i) => Math.floor(i / 3000)), windows);
  const results = await decodeWindows(counted.backend, tok, audio, options);
  return { results, calls, sessions: counted.sessions };
}

describe('greedy decoding', () => {
  it('takes the likeliest token each step; avg logprob, no-speech probability and compression ratio as OpenAI', async () => {
    const [hello, world] = [word(' Hello'), word(' world')];
    const script = treeScript(afterSot(4), {
      '': [[hello, 0.6], [world, 0.4]],
      [`${hello}`]: [[world, 0.7], [tok.eot, 0.3]],
      [`${hello},${world}`]: [[tok.eot, 0.9], [hello, 0.1]],
    }, [[tok.noSpeech, 0.2], [tok.eot, 0.8]]);
    const { results, calls } = await decodeOne(script, { language: 'en', withoutTimestamps: true });
    const r = results[0]!;
    expect(r.tokens).toEqual([hello, world]);
    expect(r.text).toBe('Hello world');
    expect(r.language).toBe('en');
    expect(r.temperature).toBe(0);
    expect(r.avgLogprob).toBeCloseTo((Math.log(0.6) + Math.log(0.7) + Math.log(0.9)) / 3, 6);
    expect(r.noSpeechProb).toBeCloseTo(0.2, 6);
    expect(r.compressionRatio).toBe(compressionRatio('Hello world'));
    // The initial tokens are fed up to <|startoftranscript|> first (for the no-speech probability).
    expect(calls[0]).toEqual([tok.sot]);
    expect(calls[1]).toEqual([tok.sot, tok.languageToken('en'), tok.transcribe, tok.noTimestamps]);
  });

  it('suppress_blank forbids a blank first token; log probabilities are taken after the filters', async () => {
    const [space, hi] = [tok.encode(' ')[0]!, word(' Hi')];
    const table = {
      '': [[space, 0.5], [tok.eot, 0.3], [hi, 0.2]] as [number, number][],
      [`${hi}`]: [[tok.eot, 0.8], [hi, 0.2]] as [number, number][],
      [`${space}`]: [[tok.eot, 0.6], [hi, 0.4]] as [number, number][],
    };
    const on = (await decodeOne(treeScript(afterSot(4), table), { language: 'en', withoutTimestamps: true })).results[0]!;
    expect(on.tokens).toEqual([hi]);
    // With space and eot masked, " Hi" has all the mass: log 1 = 0.
    expect(on.avgLogprob).toBeCloseTo(Math.log(0.8) / 2, 6);
    const off = (await decodeOne(treeScript(afterSot(4), table), { language: 'en', withoutTimestamps: true, suppressBlank: false })).results[0]!;
    expect(off.tokens).toEqual([space]);
    expect(off.avgLogprob).toBeCloseTo((Math.log(0.5) + Math.log(0.6)) / 2, 6);
  });

  it('suppress_tokens: -1 is the non-speech set plus the SOT specials; "" turns suppression off', async () => {
    const [hello, note] = [word(' Hello'), tok.nonSpeechTokens[5]!];
    const table = (first: number): Record<string, [number, number][]> => ({
      '': [[first, 0.6], [hello, 0.4]],
      [`${hello}`]: [[tok.eot, 1]],
      [`${first}`]: [[tok.eot, 1]],
    });
    const base = { language: 'en', withoutTimestamps: true } as const;
    const run = async (first: number, suppressTokens?: DecodingOptions['suppressTokens']) =>
      (await decodeOne(treeScript(afterSot(4), table(first)), { ...base, suppressTokens })).results[0]!.tokens;
    expect(await run(note)).toEqual([hello]);
    expect(await run(note, '-1')).toEqual([hello]);
    expect(await run(note, '')).toEqual([note]);
    expect(await run(note, [])).toEqual([note]);
    expect(await run(note, null)).toEqual([note]);
    expect(await run(note, `${hello}`)).toEqual([note]); // only " Hello" (and the specials) suppressed...
    // ...so with " Hello" gone too, the non-speech token is what remains.
    expect(await run(note, `${note}`)).toEqual([hello]);
    expect(await run(tok.transcribe, [hello + 1])).toEqual([hello]); // specials always join a non-empty list
    expect(await run(tok.transcribe, '')).toEqual([tok.transcribe]);
  });
});

describe('timestamps', () => {
  it('the decoded sequence follows the timestamp rules under adversarial logits', async () => {
    const ts = (seconds: number) => tok.timestampBegin + Math.round(seconds / 0.02);
    const [hello, world] = [word(' Hello'), word(' world')];
    const script = treeScript(afterSot(3), {
      // Text is masked at the start and <|2.00|> is past max_initial_timestamp 1.0: <|0.40|>.
      '': [[hello, 0.5], [ts(2), 0.3], [ts(0.4), 0.2]],
      // After a lone timestamp: text.
      [`${ts(0.4)}`]: [[ts(0.6), 0.6], [hello, 0.4]],
      // <|0.20|> would go back in time; <|0.80|> + <|0.90|> (0.3) outweigh " world" (0.2): a timestamp.
      [`${ts(0.4)},${hello}`]: [[ts(0.2), 0.4], [ts(0.8), 0.15], [ts(0.9), 0.15], [world, 0.2], [tok.eot, 0.1]],
      // After the closing timestamp: no text; <|endoftext|> beats <|0.80|>.
      [`${ts(0.4)},${hello},${ts(0.8)}`]: [[world, 0.8], [tok.eot, 0.15], [ts(0.8), 0.05]],
    });
    const r = (await decodeOne(script, { language: 'en' })).results[0]!;
    expect(r.tokens).toEqual([ts(0.4), hello, ts(0.8)]);
    expect(r.text).toBe('Hello');
  });

  it('max_initial_timestamp 0 or null lifts the limit on the first timestamp', async () => {
    const ts2 = tok.timestampBegin + 100;
    const script = treeScript(afterSot(3), { '': [[ts2, 0.7], [tok.timestampBegin + 10, 0.3]] }, [], [[tok.eot, 1]]);
    for (const maxInitialTimestamp of [0, null]) {
      expect((await decodeOne(script, { language: 'en', maxInitialTimestamp })).results[0]!.tokens[0]).toBe(ts2);
    }
    // The limit is inclusive: round(2.0 / 0.02) = 100 allows <|2.00|>, round(1.98 / 0.02) = 99 does not.
    expect((await decodeOne(script, { language: 'en', maxInitialTimestamp: 2.0 })).results[0]!.tokens[0]).toBe(ts2);
    expect((await decodeOne(script, { language: 'en', maxInitialTimestamp: 1.98 })).results[0]!.tokens[0]).toBe(tok.timestampBegin + 10);
    expect((await decodeOne(script, { language: 'en' })).results[0]!.tokens[0]).toBe(tok.timestampBegin + 10);
  });
});

describe('language detection', () => {
  it('detects per window from the logits after <|startoftranscript|> and writes the language token', async () => {
    const [de, fr, en] = [tok.languageToken('de'), tok.languageToken('fr'), tok.languageToken('en')] as const;
    const [hallo, salut] = [word(' Hallo'), word(' Salut')];
    const script: LogitScript = (window, tokens) => {
      if (tokens.length === 1) {
        // Window 0 sounds German, window 1 French; no-speech and eot mass is ignored by detection.
        return window.mel[0] === 0
          ? probs([[de, 0.5], [fr, 0.2], [en, 0.1], [tok.noSpeech, 0.1], [tok.eot, 0.1]])
          : probs([[fr, 0.3], [de, 0.1], [tok.noSpeech, 0.6]]);
      }
      const said = tokens.slice(4);
      if (said.length > 0) return probs([[tok.eot, 1]]);
      return probs([[tokens[1] === de ? hallo : salut, 1]]);
    };
    const { results, sessions } = await decodeOne(script, { withoutTimestamps: true }, 2);
    expect(results.map((r) => r.language)).toEqual(['de', 'fr']);
    expect(results.map((r) => r.tokens)).toEqual([[hallo], [salut]]);
    expect(results[0]!.languageProbs!.de).toBeCloseTo(0.5 / 0.8, 6);
    expect(results[0]!.languageProbs!.en).toBeCloseTo(0.1 / 0.8, 6);
    expect(results[1]!.languageProbs!.fr).toBeCloseTo(0.75, 6);
    expect(Object.values(results[1]!.languageProbs!).reduce((a, b) => a + b)).toBeCloseTo(1, 9);
    expect(results.map((r) => r.noSpeechProb.toFixed(6))).toEqual(['0.100000', '0.600000']);
    expect(sessions).toEqual([2, 2]); // one detection session, one decoding session, both windows batched

    const { backend } = scriptedBackend(script);
    const detected = await detectLanguage(backend, tok, await backend.encode(new Float32Array(3000), 1));
    expect(detected[0]!.token).toBe(de);
  });
});

describe('beam search', () => {
  it('finds the path greedy misses (beam 2), ranking by length-normalised log probability', async () => {
    const [A, B, W, X, Z] = words(' A', ' B', ' W', ' X', ' Z');
    const table: Record<string, [number, number][]> = {
      '': [[A, 0.5], [B, 0.4], [tok.encode(' C')[0]!, 0.1]],
      [`${A}`]: [[Z, 0.4], [X, 0.3], [W, 0.3]],
      [`${B}`]: [[W, 0.9], [X, 0.1]],
    };
    const script = treeScript(afterSot(4), table, [], [[tok.eot, 1]]);
    const options = { language: 'en', withoutTimestamps: true } as const;
    const greedy = (await decodeOne(script, options)).results[0]!;
    expect(greedy.tokens).toEqual([A, Z]);
    const beam = await decodeOne(script, { ...options, beamSize: 2 });
    expect(beam.results[0]!.tokens).toEqual([B, W]);
    // sum = ln 0.4 + ln 0.9 + ln 1 over 2 tokens + <|endoftext|>
    expect(beam.results[0]!.avgLogprob).toBeCloseTo(Math.log(0.36) / 3, 6);
    expect(beam.sessions).toEqual([2]);
  });

  it('patience keeps searching until round(beam · patience) candidates finished', async () => {
    const [A, B, X, Y, Z] = words(' A', ' B', ' X', ' Y', ' Z');
    // Patience 1 stops with "A" (ln .36 / 1) and "A X" (ln .24 / 2); patience 2 also finishes
    // "B Y Z" (ln .4 / 3 = −0.31), the best of all.
    const table: Record<string, [number, number][]> = {
      '': [[A, 0.6], [B, 0.4]],
      [`${A}`]: [[tok.eot, 0.6], [X, 0.4]],
      [`${B}`]: [[Y, 1]],
      [`${B},${Y}`]: [[Z, 1]],
    };
    const script = treeScript(afterSot(4), table, [], [[tok.eot, 1]]);
    const options = { language: 'en', withoutTimestamps: true, beamSize: 2 } as const;
    expect((await decodeOne(script, { ...options, patience: 1 })).results[0]!.tokens).toEqual([A, X]);
    expect((await decodeOne(script, options)).results[0]!.tokens).toEqual([A, X]);
    const patient = (await decodeOne(script, { ...options, patience: 2 })).results[0]!;
    expect(patient.tokens).toEqual([B, Y, Z]);
    expect(patient.avgLogprob).toBeCloseTo(Math.log(0.4) / 4, 6);
    // Length penalty 0 ranks by the plain sum: "B Y Z" (ln .4) beats "A" (ln .36) and "A X" (ln .24).
    expect((await decodeOne(script, { ...options, lengthPenalty: 0 })).results[0]!.tokens).toEqual([A]);
    expect((await decodeOne(script, { ...options, patience: 2, lengthPenalty: 0 })).results[0]!.tokens).toEqual([B, Y, Z]);
  });

  it('decodes several windows side by side, each with its own beams', async () => {
    const [A, B] = [word(' A'), word(' B')];
    const script: LogitScript = (window, tokens) => {
      if (tokens.length === 1) return probs([[tok.noSpeech, 0.1], [tok.eot, 0.9]]);
      const said = tokens.slice(4);
      if (said.length === 0) return probs(window.mel[0] === 0 ? [[A, 0.7], [B, 0.3]] : [[A, 0.3], [B, 0.7]]);
      return probs([[tok.eot, 1]]);
    };
    const { results, sessions } = await decodeOne(script, { language: 'en', withoutTimestamps: true, beamSize: 3 }, 2);
    expect(results.map((r) => r.tokens)).toEqual([[A], [B]]);
    expect(sessions).toEqual([6]);
  });
});

describe('sampling', () => {
  it('best-of-N at temperature > 0 returns the best-ranked of N samples', async () => {
    const [A, B, X, Y] = words(' A', ' B', ' X', ' Y');
    const table: Record<string, [number, number][]> = {
      '': [[A, 0.5], [B, 0.5]],
      [`${B}`]: [[X, 0.9], [Y, 0.1]],
    };
    const script = treeScript(afterSot(4), table, [], [[tok.eot, 1]]);
    const options = { language: 'en', withoutTimestamps: true, temperature: 0.5 } as const;
    // "B X": (ln .5 + ln .9) / 3 beats "A" (ln .5 / 2) and "B Y"; 8 samples miss it with p = 0.4%.
    const best = await decodeOne(script, { ...options, bestOf: 8, rng: new Rng(3) });
    expect(best.results[0]!.tokens).toEqual([B, X]);
    expect(best.results[0]!.avgLogprob).toBeCloseTo((Math.log(0.5) + Math.log(0.9)) / 3, 6);
    expect(best.results[0]!.temperature).toBe(0.5);
    expect(best.sessions).toEqual([8]);
    // One sample per seed: both first tokens occur over a few seeds (each with p = 1/2).
    const firsts = new Set<number>();
    for (let seed = 0; seed < 8; seed++) firsts.add((await decodeOne(script, { ...options, rng: new Rng(seed) })).results[0]!.tokens[0]!);
    expect([...firsts].sort()).toEqual([A, B].sort());
  });
});

describe('initial tokens', () => {
  it('prompt goes after <|startofprev|>, keeping its last textContext/2 − 1 tokens; prefix after the SOT sequence', async () => {
    const [hello, there] = [word(' Hello'), word(' there')];
    const script: LogitScript = (_w, tokens) =>
      tokens[tokens.length - 1] === tok.sot ? probs([[tok.noSpeech, 0.3], [tok.eot, 0.7]]) : probs([[tokens.includes(there) ? tok.eot : there, 1]]);
    const options = { language: 'en', withoutTimestamps: true } as const;
    const sot = [tok.sot, tok.languageToken('en'), tok.transcribe, tok.noTimestamps];

    const prompted = await decodeOne(script, { ...options, prompt: '  Previous words. ' });
    const promptTokens = tok.encode(' Previous words.');
    expect(prompted.calls[0]).toEqual([tok.sotPrev, ...promptTokens, tok.sot]);
    expect(prompted.calls[1]).toEqual([tok.sotPrev, ...promptTokens, ...sot]);
    expect(prompted.results[0]!.noSpeechProb).toBeCloseTo(0.3, 6);
    expect(prompted.results[0]!.tokens).toEqual([there]);

    const long = Array.from({ length: 300 }, (_, i) => 1000 + i);
    const truncated = await decodeOne(script, { ...options, prompt: long });
    expect(truncated.calls[1]).toEqual([tok.sotPrev, ...long.slice(300 - 223), ...sot]);

    const prefixed = await decodeOne(script, { ...options, prefix: 'Hello' });
    expect(prefixed.calls[1]).toEqual([...sot, hello]);
    expect(prefixed.results[0]!.tokens).toEqual([there]); // the prefix is not part of the result
    expect(prefixed.results[0]!.text).toBe('there');

    // An empty prompt is no prompt (Python truthiness), as transcribe's first window sends.
    expect((await decodeOne(script, { ...options, prompt: [] })).calls[0]).toEqual([tok.sot]);
  });

  it('stops at sampleLen tokens, and before a sequence outgrows the text context', async () => {
    const A = word(' A');
    const always: LogitScript = (_w, tokens) => (tokens[tokens.length - 1] === tok.sot ? probs([[tok.eot, 1]]) : probs([[A, 1]]));
    const info = scriptedInfo({ textContext: 16 });
    const run = async (options: DecodingOptions) => {
      const { backend, calls } = scriptedBackend(always, { info });
      const results = await decodeWindows(backend, tok, await backend.encode(new Float32Array(3000), 1), { language: 'en', withoutTimestamps: true, ...options });
      return { tokens: results[0]!.tokens, longest: Math.max(...calls.map((c) => c.length)) };
    };
    expect(await run({})).toEqual({ tokens: Array(8).fill(A), longest: 4 + 7 }); // sampleLen = 16 / 2
    expect((await run({ sampleLen: 3 })).tokens).toHaveLength(3);
    // Prompt capped at 16/2 − 1 = 7 tokens: 12 initial tokens, and decoding stops when the
    // sequence reaches 17 > 16 tokens: 5 sampled, the last never fed.
    const capped = await run({ prompt: Array(20).fill(A) });
    expect(capped).toEqual({ tokens: Array(5).fill(A), longest: 16 });
  });
});

describe('option checks', () => {
  it('rejects what OpenAI rejects, and more, with DecodingError', async () => {
    const script: LogitScript = () => probs([[tok.eot, 1]]);
    const bad: DecodingOptions[] = [
      { beamSize: 2, bestOf: 2 },
      { bestOf: 2 },
      { patience: 2 },
      { beamSize: 2, lengthPenalty: 1.5 },
      { beamSize: 0 },
      { temperature: -1 },
      { sampleLen: 2.5 },
      { suppressTokens: '1,x' },
      { suppressTokens: [99999999] },
    ];
    for (const options of bad) await expect(decodeOne(script, { language: 'en', ...options }), JSON.stringify(options)).rejects.toThrow(DecodingError);
    const { backend } = scriptedBackend(script, { info: scriptedInfo({ vocabSize: 51864 }) });
    await expect(decodeWindows(backend, tok, await backend.encode(new Float32Array(3000), 1))).rejects.toThrow(/51864 tokens, the tokenizer's 51865/);
  });
});

describe('SOT sequence', () => {
  it('carries the task token, and <|notimestamps|> only without timestamps', async () => {
    const hi = word(' hi');
    const translate = await decodeOne(sayScript(tok, () => [tok.timestampBegin, hi, tok.eot]), { language: 'es', task: 'translate' });
    expect(translate.calls[1]).toEqual([tok.sot, tok.languageToken('es'), tok.translate]);
    expect(translate.results[0]!.tokens).toEqual([tok.timestampBegin, hi]);
    const plain = await decodeOne(sayScript(tok, () => [hi, tok.eot]), { language: 'es', withoutTimestamps: true });
    expect(plain.calls[1]).toEqual([tok.sot, tok.languageToken('es'), tok.transcribe, tok.noTimestamps]);
    expect(plain.results[0]!.tokens).toEqual([hi]);
  });
});

describe('backend protocol', () => {
  it('decoderModelInfo reads the geometry of a config', () => {
    expect(decoderModelInfo(presetConfig('large-v3'))).toEqual({ vocabSize: 51866, textContext: 448, melBins: 128, windowFrames: 3000, audioContext: 1500 });
  });

  it('the reference backend rejects out-of-protocol calls with DecodingError', async () => {
    const { backend } = scriptedBackend(() => probs([[tok.eot, 1]]), { info: scriptedInfo({ textContext: 4 }) });
    await expect(backend.encode(new Float32Array(2999), 1)).rejects.toThrow(/expected 1 windows of \[1, 3000\]/);
    const audio = await backend.encode(new Float32Array(6000), 2);
    await expect(backend.startSession(audio, [0, 2])).rejects.toThrow(/sequence 1 is given window 2/);
    const session = await backend.startSession(audio, [0, 0, 1]);
    await expect(session.step([[1], [2]])).rejects.toThrow(/tokens for 2 sequences, the session has 3/);
    await expect(session.step([[1], [2, 3], [4]])).rejects.toThrow(/sequence 1 is fed 2 tokens/);
    await expect(session.step([[1], [2], [51865]])).rejects.toThrow(/token 51865 is outside the vocabulary/);
    await expect(session.step([[1, 1, 1, 1, 1], [2, 2, 2, 2, 2], [3, 3, 3, 3, 3]])).rejects.toThrow(/exceed the text context of 4/);
    await session.step([[1, 2], [3, 4], [5, 6]]);
    expect(session.length).toBe(2);
    await expect(session.reorder([1, 0, 0])).rejects.toThrow(/sequence 2 \(window 1\) cannot continue sequence 0 of window 0/);
    await session.reorder([1, 1, 2]);
    session.free();
    await expect(session.step([[1], [2], [3]])).rejects.toThrow(/used after free/);
    const { backend: other } = scriptedBackend(() => probs([[tok.eot, 1]]));
    await expect(other.startSession(audio, [0])).rejects.toThrow(/not encoded by this backend/);
  });
});

// Reusable checks that a DecoderBackend with caches (the GPU one, or any other) computes what a
// full-recomputation reference computes: logits step by step through the session protocol, and
// exactly the same tokens through whole decodings. Call these from a backend's own test file.
import { expect } from 'vitest';
import { decodeWindows, type DecodingOptions, type DecodingResult } from '../../src/decode/decode.js';
import type { DecoderBackend, DecoderSession } from '../../src/decode/model.js';
import type { WhisperTokenizer } from '../../src/text/tokenizer.js';
import { Rng } from '../../src/util/random.js';
import { expectClose, maxAbsDiff } from '../helpers.js';

/** Tolerance of the logits comparison: |candidate − reference| ≤ atol + rtol·|reference|. */
export interface LogitTolerance {
  atol: number;
  rtol: number;
}

/** Deterministic token ids in [0, vocab) (a fixed LCG), so failures reproduce. */
function tokenStream(vocab: number, seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % vocab;
  };
}

/**
 * Drives both backends through the same session protocol and compares the logits of every step:
 * two sequences per window of `mel` (`windows` windows), a 3-token first step that differs per
 * sequence, single-token steps, a beam reorder in which one sequence of each window takes the
 * other's cache (one parent taken twice, one dropped), a 2-token step on a filled cache, and a
 * second session on the same audio. Resolves to the largest absolute logit difference seen.
 */
export async function expectSameStepLogits(
  candidate: DecoderBackend,
  reference: DecoderBackend,
  mel: Float32Array,
  windows: number,
  tolerance: LogitTolerance,
  seed = 1,
): Promise<number> {
  expect(candidate.info).toEqual(reference.info);
  const vocab = reference.info.vocabSize;
  const next = tokenStream(vocab, seed);
  const audioIndex = Array.from({ length: 2 * windows }, (_, s) => Math.floor(s / 2));
  const [audioC, audioR] = [await candidate.encode(mel, windows), await reference.encode(mel, windows)];
  let worst = 0;
  const both = async (what: string, act: (session: DecoderSession) => Promise<Float32Array | void>, sessions: [DecoderSession, DecoderSession]) => {
    const [c, r] = [await act(sessions[0]), await act(sessions[1])];
    expect(sessions[0].length, `${what}: length`).toBe(sessions[1].length);
    if (c && r) {
      expect(c.length, `${what}: logits size`).toBe(audioIndex.length * vocab);
      expectClose(c, r, tolerance, `${what} logits`);
      worst = Math.max(worst, maxAbsDiff(c, r));
    }
  };
  try {
    for (const round of [0, 1]) {
      const sessions: [DecoderSession, DecoderSession] = [await candidate.startSession(audioC, audioIndex), await reference.startSession(audioR, audioIndex)];
      try {
        const prompt = audioIndex.map(() => [next(), next(), next()]);
        await both(`session ${round} prompt step`, (s) => s.step(prompt), sessions);
        for (let i = 0; i < 3; i++) {
          const tokens = audioIndex.map(() => [next()]);
          await both(`session ${round} step ${i + 1}`, (s) => s.step(tokens), sessions);
        }
        const parents = audioIndex.map((_, s) => s - (s % 2) + 1); // both sequences of a window continue its second
        await both(`session ${round} reorder`, (s) => s.reorder(parents), sessions);
        for (let i = 0; i < 2; i++) {
          const tokens = audioIndex.map(() => [next()]);
          await both(`session ${round} step ${i + 4} after reorder`, (s) => s.step(tokens), sessions);
        }
        const pair = audioIndex.map(() => [next(), next()]);
        await both(`session ${round} two-token step`, (s) => s.step(pair), sessions);
      } finally {
        sessions.forEach((s) => s.free());
      }
    }
  } finally {
    audioC.free();
    audioR.free();
  }
  return worst;
}

/**
 * Decodes `mel` with each option set on both backends and expects exactly the same tokens,
 * language and (within `logprobTolerance`) average log probability per window. An option set's
 * `rng` is copied for each backend, so both sample the same random numbers. Resolves to the
 * candidate's results.
 */
export async function expectSameTokens(
  candidate: DecoderBackend,
  reference: DecoderBackend,
  tokenizer: WhisperTokenizer,
  mel: Float32Array,
  windows: number,
  optionSets: readonly DecodingOptions[],
  logprobTolerance = 1e-4,
): Promise<DecodingResult[][]> {
  const all: DecodingResult[][] = [];
  const [audioC, audioR] = [await candidate.encode(mel, windows), await reference.encode(mel, windows)];
  try {
    for (const options of optionSets) {
      const what = JSON.stringify(options);
      const withRng = (): DecodingOptions => (options.rng ? { ...options, rng: Rng.fromState(options.rng.state()) } : options);
      const ours = await decodeWindows(candidate, tokenizer, audioC, withRng());
      const theirs = await decodeWindows(reference, tokenizer, audioR, withRng());
      expect(ours.map((r) => r.tokens), `${what}: tokens`).toEqual(theirs.map((r) => r.tokens));
      expect(ours.map((r) => r.language), `${what}: language`).toEqual(theirs.map((r) => r.language));
      ours.forEach((r, w) => expect(Math.abs(r.avgLogprob - theirs[w]!.avgLogprob), `${what}: window ${w} avgLogprob`).toBeLessThanOrEqual(logprobTolerance));
      all.push(ours);
    }
  } finally {
    audioC.free();
    audioR.free();
  }
  return all;
}

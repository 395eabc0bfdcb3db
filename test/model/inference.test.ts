import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.js';
import { compileGraph } from '../../src/graph/compile.js';
import { Graph } from '../../src/graph/graph.js';
import { melFrames, presetConfig, type WhisperConfig } from '../../src/model/config.js';
import { WhisperInference, type DecodingSession } from '../../src/model/inference.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { buildWhisper, WhisperWeights } from '../../src/model/whisper.js';
import { countDeviceObjects } from '../graph/counting.js';
import { expectClose, maxAbsDiff, randomArray, useGpu } from '../helpers.js';
import { whisperForwardRef } from '../ref/whisper.js';

const gpu = useGpu();

// As test/model/whisper.test.ts: 2+2 layers, 2 heads of 16, 10 audio positions, 120 tokens, and
// 12 decoder positions so that sessions run into the token limit.
const cfg: WhisperConfig = {
  ...presetConfig('tiny'),
  vocab_size: 120, num_mel_bins: 10, d_model: 32, encoder_layers: 2, encoder_attention_heads: 2, encoder_ffn_dim: 64,
  decoder_layers: 2, decoder_attention_heads: 2, decoder_ffn_dim: 48, max_source_positions: 10, max_target_positions: 12,
  decoder_start_token_id: 119, eos_token_id: 117, pad_token_id: 117, bos_token_id: 117,
};
// std 0.2 moves the logits by O(1) along every path; randomizeAll leaves no bias at 0.
const weights = initWhisperWeights(cfg, 11, { std: 0.2, randomizeAll: true });
const windowFloats = cfg.num_mel_bins * melFrames(cfg);
const mel = randomArray(2 * windowFloats, 5);
const otherMel = randomArray(2 * windowFloats, 6);
const melOf = (m: Float32Array, w: number) => m.subarray(w * windowFloats, (w + 1) * windowFloats);

// Logits are compared relative to their scale (max |expected|). float32 KV-cache path vs the
// float64 reference through 2+2 blocks: measured <= 4e-7 on lavapipe (see the test's report);
// 2e-5 leaves room for other GPUs' exp/erf and is far below any indexing slip (~1e-1).
const refTol = 2e-5;
// KV path vs the same kernels over the whole prefix: only summation orders differ.
const recomputeTol = 1e-5;

function expectScaled(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): number {
  const scale = Math.max(...Array.from(expected, Math.abs));
  expectClose(actual, expected, { atol: tol * scale, rtol: 0 }, what);
  return maxAbsDiff(actual, expected) / scale;
}

const V = cfg.vocab_size;
const rowOf = (logits: Float32Array, s: number) => logits.subarray(s * V, (s + 1) * V);
const argmax = (x: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
};

/** Last-position logits of each sequence from the float64 reference (window of sequence s: windowOf(s)). */
function referenceLogits(melHost: Float32Array, histories: number[][], windowOf: (s: number) => number): Float64Array[] {
  return histories.map((h, s) => {
    const { logits } = whisperForwardRef(cfg, weights, melOf(melHost, windowOf(s)), h);
    return logits.subarray((h.length - 1) * V, h.length * V);
  });
}

/** Last-position logits from buildWhisper over the whole prefix (no cache), batch = sequences. */
async function recomputedLogits(w: WhisperWeights, melHost: Float32Array, histories: number[][], windowOf: (s: number) => number): Promise<Float32Array[]> {
  const g = new Graph();
  const T = histories[0]!.length;
  const m = buildWhisper(g, w, { batch: histories.length, tokens: T }, { keep: { logits: true } });
  const step = await compileGraph(gpu(), g);
  const melBatch = new Float32Array(histories.length * windowFloats);
  histories.forEach((_, s) => melBatch.set(melOf(melHost, windowOf(s)), s * windowFloats));
  step.write(m.inputs.mel, melBatch);
  step.write(m.inputs.tokens, Int32Array.from(histories.flat()));
  await step.run();
  const all = await step.read(m.logits);
  step.destroy();
  return histories.map((_, s) => all.slice((s * T + T - 1) * V, (s * T + T) * V));
}

describe('Whisper inference with KV caches', () => {
  it('2 windows: prefill and steps give the logits of full recomputation and of the float64 reference', async () => {
    const w = WhisperWeights.upload(gpu(), cfg, weights);
    const inference = new WhisperInference(w);
    const audio = await inference.encode(mel, 2);
    const session = await inference.startSession(audio);
    const histories = [[119, 4, 42], [119, 11, 23]];
    let logits = await session.step(histories);
    let worstRef = 0;
    let worstRecompute = 0;
    // Feed fixed tokens (a few repeats) until the 12-position limit.
    const fed = [[7, 88, 3, 3, 60, 5, 9, 1, 2], [99, 5, 5, 0, 116, 8, 13, 21, 34]];
    for (let t = 0; ; t++) {
      const ref = referenceLogits(mel, histories, (s) => s);
      const full = await recomputedLogits(w, mel, histories, (s) => s);
      for (let s = 0; s < 2; s++) {
        worstRef = Math.max(worstRef, expectScaled(rowOf(logits, s), ref[s]!, refTol, `window ${s} after ${histories[s]!.length} tokens vs reference`));
        worstRecompute = Math.max(worstRecompute, expectScaled(rowOf(logits, s), full[s]!, recomputeTol, `window ${s} after ${histories[s]!.length} tokens vs recompute`));
      }
      if (t === fed[0]!.length) break;
      const next = [fed[0]![t]!, fed[1]![t]!];
      histories.forEach((h, s) => h.push(next[s]!));
      logits = await session.step(next.map((t) => [t]));
      expect(session.length).toBe(histories[0]!.length);
    }
    expect(session.length).toBe(cfg.max_target_positions);
    await expect(session.step([[1], [2]])).rejects.toThrow(/12 \+ 1 tokens exceed the session's 12 tokens/);
    console.log(`KV-cache logits: max error ${worstRef.toExponential(2)} of scale vs float64, ${worstRecompute.toExponential(2)} vs recomputation`);
    expect(worstRef).toBeGreaterThan(0);
    inference.destroy();
    w.destroy();
  });

  it('greedy decoding gives exactly the tokens of full recomputation; steps replay without allocating', async () => {
    const w = WhisperWeights.upload(gpu(), cfg, weights);
    const inference = new WhisperInference(w);
    const audio = await inference.encode(mel, 2);
    const session = await inference.startSession(audio);
    const cached = [[119], [119]];
    let logits = await session.step(cached);
    while (session.length < cfg.max_target_positions) {
      const next = [0, 1].map((s) => argmax(rowOf(logits, s)));
      cached.forEach((h, s) => h.push(next[s]!));
      const counts = countDeviceObjects(gpu().device);
      try {
        logits = await session.step(next.map((t) => [t]));
      } finally {
        counts.restore();
      }
      // After the first step compiled the program, a step is one encoder and no new objects.
      if (session.length > 2) expect({ buffers: counts.buffers, bindGroups: counts.bindGroups, encoders: counts.encoders }).toEqual({ buffers: 0, bindGroups: 0, encoders: 1 });
    }
    const recomputed = [[119], [119]];
    while (recomputed[0]!.length < cfg.max_target_positions) {
      const full = await recomputedLogits(w, mel, recomputed, (s) => s);
      recomputed.forEach((h, s) => h.push(argmax(full[s]!)));
    }
    expect(cached).toEqual(recomputed);
    // Different windows decode differently (the cross-attention sees its own window).
    expect(cached[0]).not.toEqual(cached[1]);
    inference.destroy();
    w.destroy();
  });

  it('several tokens after the prompt (as decoding feeds the rest of the SOT sequence) equal one prompt of them all', async () => {
    const w = WhisperWeights.upload(gpu(), cfg, weights);
    const inference = new WhisperInference(w);
    const audio = await inference.encode(mel, 2);
    const split = await inference.startSession(audio, { maxTokens: 6 });
    await split.step([[119], [119]]);
    const afterSplit = await split.step([[4, 42, 7], [11, 23, 5]]);
    expect(split.length).toBe(4);
    const whole = await inference.startSession(audio, { maxTokens: 6 });
    const afterWhole = await whole.step([[119, 4, 42, 7], [119, 11, 23, 5]]);
    // Different programs (steps over the cache vs one causal prefill), the same numbers.
    expectScaled(afterSplit, afterWhole, recomputeTol, 'split vs whole prompt');
    const ref = referenceLogits(mel, [[119, 4, 42, 7], [119, 11, 23, 5]], (s) => s);
    for (let s = 0; s < 2; s++) expectScaled(rowOf(afterSplit, s), ref[s]!, refTol, `window ${s}`);
    inference.destroy();
    w.destroy();
  });

  it('beam reorder: 2 windows x 3 sequences continue their parents\' histories', async () => {
    const w = WhisperWeights.upload(gpu(), cfg, weights);
    const inference = new WhisperInference(w);
    const audio = await inference.encode(mel, 2);
    const session = await inference.startSession(audio, { sequencesPerWindow: 3, maxTokens: 8 });
    const windowOf = (s: number) => Math.floor(s / 3);
    let histories = [[119, 1], [119, 2], [119, 3], [119, 4], [119, 5], [119, 6]];
    await session.step(histories);
    const rounds: { parents: number[]; next: number[] }[] = [
      { parents: [2, 0, 0, 4, 5, 3], next: [10, 11, 12, 13, 14, 15] },
      { parents: [1, 1, 1, 3, 3, 4], next: [20, 20, 21, 22, 23, 24] },
      { parents: [0, 1, 2, 3, 4, 5], next: [30, 31, 32, 33, 34, 35] },
    ];
    let worst = 0;
    for (const { parents, next } of rounds) {
      await session.reorder(parents);
      histories = parents.map((p, s) => [...histories[p]!, next[s]!]);
      const logits = await session.step(next.map((t) => [t]));
      const ref = referenceLogits(mel, histories, windowOf);
      for (let s = 0; s < 6; s++) worst = Math.max(worst, expectScaled(rowOf(logits, s), ref[s]!, refTol, `sequence ${s} (${histories[s]!.join(' ')})`));
    }
    expect(worst).toBeGreaterThan(0);
    await expect(session.reorder([6, 0, 0, 4, 5, 3])).rejects.toThrow(/parent 6 of sequence 0 is outside \[0, 6\)/);
    await expect(session.reorder([0, 1, 2, 3, 4])).rejects.toThrow(ShapeError);
    inference.destroy();
    w.destroy();
  });

  it('a session re-encodes its audio after another encode of the same window count; a newer session of one shape ends the older', async () => {
    const w = WhisperWeights.upload(gpu(), cfg, weights);
    const inference = new WhisperInference(w);
    const first = await inference.encode(mel, 2);
    const second = await inference.encode(otherMel, 2);
    const older = await inference.startSession(first);
    const prompt = [[119, 4], [119, 4]];
    const logits = await older.step(prompt);
    const ref = referenceLogits(mel, prompt, (s) => s);
    for (let s = 0; s < 2; s++) expectScaled(rowOf(logits, s), ref[s]!, refTol, `window ${s} of the first audio`);
    const newer: DecodingSession = await inference.startSession(second);
    const otherLogits = await newer.step(prompt);
    const otherRef = referenceLogits(otherMel, prompt, (s) => s);
    for (let s = 0; s < 2; s++) expectScaled(rowOf(otherLogits, s), otherRef[s]!, refTol, `window ${s} of the second audio`);
    await expect(older.step([[1], [2]])).rejects.toThrow(/freed, or a newer session of the same shape/);
    inference.destroy();
    w.destroy();
  });

  it(`prompts of ${WhisperInference.maxPrefillPrograms + 1} lengths: the least recently used prefill program is dropped and compiled again when needed`, async () => {
    const w = WhisperWeights.upload(gpu(), cfg, weights);
    const inference = new WhisperInference(w);
    const audio = await inference.encode(melOf(mel, 1));
    const prompts = [[119], [119, 5], [119, 5, 6], [119, 5, 6, 7], [119, 5, 6, 7, 8], [119]];
    for (const prompt of prompts) {
      const session = await inference.startSession(audio);
      const logits = await session.step([prompt]);
      expectScaled(logits, referenceLogits(mel, [prompt], () => 1)[0]!, refTol, `prompt of ${prompt.length}`);
      session.free();
    }
    inference.destroy();
    w.destroy();
  });

  it('rejects bad input naming what is wrong', async () => {
    const w = WhisperWeights.upload(gpu(), cfg, weights);
    const inference = new WhisperInference(w);
    await expect(inference.encode(new Float32Array(5))).rejects.toThrow(/mel has 5 values, expected 1 x 10 mel bins x 20 frames = 200/);
    const audio = await inference.encode(melOf(mel, 0));
    await expect(inference.startSession(audio, { maxTokens: 13 })).rejects.toThrow(/maxTokens must be 1..12/);
    const session = await inference.startSession(audio, { maxTokens: 4 });
    await expect(session.step([[119, 120]])).rejects.toThrow(/step tokens: id 120 at position 1 is outside the vocabulary/);
    await expect(session.step([[119, 1, 2, 3, 4]])).rejects.toThrow(/0 \+ 5 tokens exceed the session's 4 tokens/);
    await expect(session.step([[119], [119]])).rejects.toThrow(/2 token sequences for 1 sequences/);
    await expect(session.step([[]])).rejects.toThrow(/same positive number of tokens/);
    session.free();
    await expect(session.step([[119]])).rejects.toThrow(/this session was freed/);
    audio.free();
    await expect(inference.startSession(audio).then((s) => s.step([[119]]))).rejects.toThrow(/encoded audio was used after free/);
    inference.destroy();
    w.destroy();
  });
});

import { describe, expect, it } from 'vitest';
import { ApplyTimestampRules, SuppressBlank, SuppressTokens, logSumExp } from '../../src/decode/logit-filters.js';
import { pythonStrip, pythonTail, roundHalfEven } from '../../src/decode/python-compat.js';
import { argmax, rankCandidates, sampleToken } from '../../src/decode/search.js';
import { Rng } from '../../src/util/random.js';

// A toy vocabulary laid out as Whisper's: text 0..9, <|endoftext|> 10, two other specials 11, 12,
// <|notimestamps|> 13, timestamps 14..19 (<|0.00|> .. <|0.10|>).
const ids = { eot: 10, noTimestamps: 13, timestampBegin: 14 };
const V = 20;
const initial = [11, 12];

/** Ids left finite in a row. */
function allowed(row: Float32Array): number[] {
  return [...row.keys()].filter((i) => row[i] !== -Infinity);
}
function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}
function row(values: Record<number, number> = {}, fill = 0): Float32Array {
  const r = new Float32Array(V).fill(fill);
  for (const [i, v] of Object.entries(values)) r[Number(i)] = v;
  return r;
}
function applyRules(tokens: number[], logits: Float32Array, maxInitial: number | null = null): number[] {
  new ApplyTimestampRules(ids, initial.length, maxInitial).apply(logits, [tokens]);
  return allowed(logits);
}

describe('ApplyTimestampRules (expected masks derived by hand from whisper/decoding.py)', () => {
  it('starts with a timestamp no later than the initial maximum', () => {
    expect(applyRules(initial, row(), 2)).toEqual([14, 15, 16]);
    expect(applyRules(initial, row(), null)).toEqual(range(14, 20));
    expect(applyRules(initial, row(), 0)).toEqual([14]);
  });

  it('after a timestamp and text, forbids timestamps up to the last one (nonzero segment length)', () => {
    // Text logit 5 outweighs the timestamp mass ln 5, so the mass rule stays out of the way.
    expect(applyRules([...initial, 14, 3], row({ 3: 5 }))).toEqual([...range(0, 13), ...range(15, 20)]);
  });

  it('a timestamp after text closes a pair: no text, and the next may equal it', () => {
    expect(applyRules([...initial, 14, 3, 16], row({ 10: 5 }))).toEqual([10, 11, 12, 16, 17, 18, 19]);
  });

  it('after a pair of timestamps, the next token is not a timestamp', () => {
    expect(applyRules([...initial, 14, 3, 16, 16], row())).toEqual(range(0, 13));
  });

  it('lone timestamp at the start is followed by text', () => {
    expect(applyRules([...initial, 15], row({ 4: 9 }))).toEqual(range(0, 13));
  });

  it('samples a timestamp when the timestamps together outweigh every text token', () => {
    const ts = { 15: 0, 16: 0, 17: 0, 18: 0, 19: 0 }; // mass ln 5 = 1.609
    expect(applyRules([...initial, 14, 3], row({ 3: 1.6, ...ts }, -Infinity))).toEqual(range(15, 20));
    expect(applyRules([...initial, 14, 3], row({ 3: 1.61, ...ts }, -Infinity))).toEqual([3, ...range(15, 20)]);
  });

  it('handles each row of a batch by its own history', () => {
    const logits = new Float32Array(2 * V);
    logits.set(row({ 3: 5 }), 0);
    logits.set(row(), V);
    new ApplyTimestampRules(ids, 2, null).apply(logits, [[...initial, 14, 3], [...initial, 14, 3, 16, 16]]);
    expect(allowed(logits.subarray(0, V))).toEqual([...range(0, 13), ...range(15, 20)]);
    expect(allowed(logits.subarray(V))).toEqual(range(0, 13));
  });
});

describe('SuppressBlank and SuppressTokens', () => {
  it('SuppressBlank masks only at the first sampled position', () => {
    const filter = new SuppressBlank([5, 10], 2);
    const first = row();
    filter.apply(first, [initial]);
    expect(allowed(first)).toEqual(range(0, 20).filter((i) => i !== 5 && i !== 10));
    const later = row();
    filter.apply(later, [[...initial, 3]]);
    expect(allowed(later)).toEqual(range(0, 20));
  });

  it('SuppressTokens masks its ids in every row at every step', () => {
    const logits = new Float32Array(2 * V);
    new SuppressTokens([1, 19]).apply(logits, [[...initial, 4], [...initial, 5]]);
    expect(allowed(logits.subarray(0, V))).toEqual([0, ...range(2, 19)]);
    expect(allowed(logits.subarray(V))).toEqual([0, ...range(2, 19)]);
  });
});

describe('token choice', () => {
  it('argmax takes the first of equal maxima, as torch.argmax', () => {
    expect(argmax([1, 3, 3, 2])).toBe(1);
    expect(argmax([-Infinity, -Infinity])).toBe(0);
  });

  it('logSumExp is exact on small cases and −∞ on an all-masked range', () => {
    expect(logSumExp([Math.log(0.25), Math.log(0.75)])).toBeCloseTo(0, 14);
    expect(logSumExp([-Infinity, -Infinity])).toBe(-Infinity);
    expect(logSumExp([1000, 1000])).toBeCloseTo(1000 + Math.LN2, 10);
  });

  it('sampleToken draws from softmax(logits / T): frequencies within 4.5 standard errors', () => {
    const p = [0.5, 0.3, 0.2];
    const logits = [...p.map(Math.log), -Infinity];
    const n = 20000;
    for (const temperature of [1, 0.5]) {
      const rng = new Rng(7);
      const counts = [0, 0, 0, 0];
      for (let i = 0; i < n; i++) counts[sampleToken(logits, temperature, rng)]!++;
      const weights = p.map((x) => x ** (1 / temperature));
      const total = weights.reduce((a, b) => a + b);
      weights.forEach((w, i) => {
        const expected = w / total;
        expect(Math.abs(counts[i]! / n - expected)).toBeLessThan(4.5 * Math.sqrt((expected * (1 - expected)) / n));
      });
      expect(counts[3]).toBe(0); // a masked token is never drawn
    }
  });
});

describe('rankCandidates (MaximumLikelihoodRanker)', () => {
  // Short: ln 0.3 = −1.204 over 1 token; long: ln 0.1 = −2.303 over 3 tokens.
  const lengths = [1, 3];
  const sums = [Math.log(0.3), Math.log(0.1)];
  it('divides by the length by default', () => {
    expect(rankCandidates(lengths, sums, undefined)).toBe(1); // −1.204 vs −0.768
  });
  it('length penalty 0 ranks by the plain sum', () => {
    expect(rankCandidates(lengths, sums, 0)).toBe(0);
  });
  it('Google NMT penalty ((5 + L) / 6)^alpha', () => {
    // alpha 1: −1.204 / 1 vs −2.303 / (8/6) = −1.727
    expect(rankCandidates(lengths, sums, 1)).toBe(0);
    // a long candidate that wins only with the penalty: ln 0.25 / (8/6) = −1.040 > ln 0.3
    expect(rankCandidates(lengths, [Math.log(0.3), Math.log(0.25)], 1)).toBe(1);
  });
});

describe('Python semantics', () => {
  it('roundHalfEven rounds halves to even like Python round()', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, 1234.5].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, 2, 1234]);
  });
  it('pythonStrip strips what str.isspace() accepts', () => {
    expect(pythonStrip('\u001c\u0085 hi \u3000\n')).toBe('hi');
    expect(pythonStrip('\ufeffhi\ufeff')).toBe('\ufeffhi\ufeff');
  });
  it('pythonTail is items[-count:]', () => {
    const items = [1, 2, 3, 4];
    expect(pythonTail(items, 2)).toEqual([3, 4]);
    expect(pythonTail(items, 9)).toEqual(items);
    expect(pythonTail(items, 0)).toEqual(items);
    expect(pythonTail(items, -1)).toEqual([2, 3, 4]);
  });
});

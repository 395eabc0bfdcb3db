import { describe, expect, it } from 'vitest';
import { BeamSearchDecoder } from '../../src/decode/search.js';
import { ShapeError } from '../../src/errors.js';

describe('beam search candidates (topKRows per beam)', () => {
  const eot = 9;
  it('takes each beam\'s beam + 1 likeliest tokens, ties to the lower id, and copes with a vocabulary smaller than that', () => {
    // Two beams over a 4-token vocabulary: beam + 1 = 3 candidates each.
    const decoder = new BeamSearchDecoder(2, eot, undefined);
    const logits = Float32Array.from([
      0, 2, 2, -Infinity, // beam 0: tokens 1 and 2 tie, then 0
      5, 1, 0, 0, // beam 1: token 0 far ahead
    ]);
    const step = decoder.update([[7], [8]], logits, Float64Array.from([0, -10]));
    // Beam 0's continuations (log-probs about -0.76) beat beam 1's (-10 and worse): [7, 1], [7, 2].
    expect(step.tokens).toEqual([[7, 1], [7, 2]]);
    expect(step.parents).toEqual([0, 0]);
    const small = new BeamSearchDecoder(3, eot, undefined);
    // Three beams, two tokens: all six continuations are candidates, the best three kept.
    const twoTokens = small.update([[1], [2], [3]], Float32Array.from([0, 1, 0, 1, 0, 1]), Float64Array.from([0, -1.5, -2]));
    expect(twoTokens.tokens).toEqual([[1, 1], [1, 0], [2, 1]]);
  });

  it('a NaN in the logits is an error naming the beam, not a silently wrong candidate', () => {
    const decoder = new BeamSearchDecoder(2, eot, undefined);
    const logits = Float32Array.from([0, 1, 2, 3, 0, 1, Number.NaN, 3]);
    expect(() => decoder.update([[7], [8]], logits, new Float64Array(2))).toThrow(ShapeError);
    expect(() => new BeamSearchDecoder(2, eot, undefined).update([[7], [8]], logits, new Float64Array(2))).toThrow(/beam search logits of beam 1: row 0 holds NaN at column 2/);
  });
});

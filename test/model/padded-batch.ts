// The batch the whole-model tests share: two sequences of 7 decoder positions over a tiny
// vocabulary (ids < 120), the second right-padded after 5 tokens (pad id 117) with its padded
// labels ignored (-100), and random log-mel input.
import type { WhisperConfig } from '../../src/model/config.js';
import { expectClose, maxAbsDiff, randomArray } from '../helpers.js';

export const B = 2;
export const T = 7;
export const lengths = [7, 5];
export const tokens = [119, 4, 42, 7, 88, 3, 60, 119, 11, 23, 99, 5, 117, 117];
export const labels = [4, 42, 7, 88, 3, 60, 117, 11, 23, 99, 5, 117, -100, -100];

/** Random mel [B, num_mel_bins, 2 * max_source_positions] and its per-example slices. */
export function paddedBatchMel(cfg: WhisperConfig, seed: number): { mel: Float32Array; melOf: (b: number) => Float32Array } {
  const size = cfg.num_mel_bins * 2 * cfg.max_source_positions;
  const mel = randomArray(B * size, seed);
  return { mel, melOf: (b) => mel.subarray(b * size, (b + 1) * size) };
}

/** |actual - expected| <= tol * max|expected|: a tolerance relative to the tensor's scale; returns the relative error. */
export function expectScaled(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): number {
  const scale = Math.max(...Array.from(expected, Math.abs));
  expectClose(actual, expected, { atol: tol * scale, rtol: 0 }, what);
  return maxAbsDiff(actual, expected) / scale;
}

import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { Batcher, type Batch, type BatcherOptions } from '../../src/data/batcher.js';
import type { TrainingExample } from '../../src/data/examples.js';
import { sampleAudio, sampleLines } from './fixtures.js';

// The 79 real clips as examples (built here from the manifest lines, independently of the readers).
const examples: TrainingExample[] = sampleLines.map((l, i) => ({ audio: sampleAudio(l), text: l.text, language: l.language, duration: l.seconds, line: i + 1, source: 'manifest.jsonl' }));
const untimed: TrainingExample[] = examples.map(({ duration: _, ...rest }) => rest);

const describeBatch = (b: Batch) => `${b.epoch}/${b.index}:${b.examples.map((e) => e.line).join(',')}`;
const take = (batcher: Batcher, n: number) => Array.from({ length: n }, () => describeBatch(batcher.next()));

/** Epoch `epoch`'s batches as manifest lines, each batch sorted. */
const epochLines = (batcher: Batcher, epoch: number) => batcher.epochBatches(epoch).map((b) => b.map((i) => examples[i]!.line));

describe('Batcher', () => {
  it('puts every example in exactly one batch per epoch, within maxExamples and the padded-length budget', () => {
    const options: BatcherOptions = { seed: 3, maxExamples: 8, maxPaddedLength: 45 };
    const batcher = new Batcher(examples, options);
    for (const epoch of [0, 1, 5]) {
      const batches = batcher.epochBatches(epoch);
      expect(batches.flat().sort((a, b) => a - b)).toEqual(examples.map((_, i) => i));
      for (const batch of batches) {
        expect(batch.length).toBeLessThanOrEqual(8);
        const longest = Math.max(...batch.map((i) => examples[i]!.duration!));
        // Clips over the budget by themselves travel alone.
        if (batch.length > 1) expect(batch.length * longest).toBeLessThanOrEqual(45);
      }
    }
    const over = examples.filter((e) => e.duration! > 45).length;
    expect(over).toBe(6);
    for (const epoch of [0, 1]) expect(batcher.epochBatches(epoch).filter((b) => b.length === 1).length).toBeGreaterThanOrEqual(over);
  });

  it('buckets by length: with one-batch pools, batches cover disjoint length ranges (duration, else text length)', () => {
    for (const [set, length] of [[examples, (e: TrainingExample) => e.duration!], [untimed, (e: TrainingExample) => e.text.length]] as const) {
      // One example without a duration switches the whole set to text length.
      const mixed = set === untimed ? [examples[0]!, ...untimed.slice(1)] : set;
      const batches = new Batcher(mixed, { seed: 11, maxExamples: 6, poolBatches: 1 }).epochBatches(2);
      const ranges = batches.map((b) => b.map((i) => length(mixed[i]!))).map((ls) => [Math.min(...ls), Math.max(...ls)] as const).sort((a, b) => a[0] - b[0]);
      for (let k = 1; k < ranges.length; k++) expect(ranges[k]![0]).toBeGreaterThanOrEqual(ranges[k - 1]![1]);
      expect(batches.length).toBe(Math.ceil(79 / 6));
    }
  });

  it('deals languages evenly: with one pool of B batches, a language with n clips has floor(n/B) or ceil(n/B) in each', () => {
    const batcher = new Batcher(examples, { seed: 5, maxExamples: 8, poolBatches: 100 });
    const totals = new Map<string, number>();
    for (const e of examples) totals.set(e.language, (totals.get(e.language) ?? 0) + 1);
    for (const epoch of [0, 1, 2]) {
      const batches = batcher.epochBatches(epoch);
      expect(batches.map((b) => b.length).sort()).toEqual([7, 8, 8, 8, 8, 8, 8, 8, 8, 8]);
      for (const [language, total] of totals) {
        const counts = batches.map((b) => b.filter((i) => examples[i]!.language === language).length);
        for (const c of counts) expect([Math.floor(total / 10), Math.ceil(total / 10)], `${language} (${total} clips): ${counts}`).toContain(c);
      }
      // English (31 of 79 clips) is in every batch with 3 or 4 clips; every batch mixes at least 4 languages.
      expect(batches.every((b) => new Set(b.map((i) => examples[i]!.language)).size >= 4)).toBe(true);
    }
  });

  it('is deterministic per seed, and differs between seeds and between epochs', () => {
    const options: BatcherOptions = { seed: 42, maxExamples: 8 };
    expect(take(new Batcher(examples, options), 25)).toEqual(take(new Batcher(examples, options), 25));
    const a = new Batcher(examples, options);
    expect(epochLines(a, 0)).not.toEqual(epochLines(a, 1));
    expect(epochLines(a, 0)).not.toEqual(epochLines(new Batcher(examples, { ...options, seed: 43 }), 0));
  });

  it('resumes exactly: from a state taken at batch k (JSON round trip) the rest equals an uninterrupted run', () => {
    const options: BatcherOptions = { seed: 7, maxExamples: 8, maxPaddedLength: 200 };
    const perEpoch = new Batcher(examples, options).epochBatches(0).length;
    const total = 3 * perEpoch + 2;
    const uninterrupted = take(new Batcher(examples, options), total);
    // Epoch boundaries appear in the sequence as index 0.
    expect(uninterrupted.filter((b) => /^\d+\/0:/.test(b))).toHaveLength(4);
    for (const k of [0, 1, perEpoch - 1, perEpoch, perEpoch + 3, 2 * perEpoch + 1]) {
      const first = new Batcher(examples, options);
      const before = take(first, k);
      const state = JSON.parse(JSON.stringify(first.state()));
      expect(state.epoch * perEpoch + state.batchIndex).toBe(k);
      const resumed = Batcher.fromState(examples, options, state);
      expect([...before, ...take(resumed, total - k)]).toEqual(uninterrupted);
    }
  });

  it('refuses a state from other data or options, and bad options, with ConfigError', () => {
    const options: BatcherOptions = { seed: 7, maxExamples: 8 };
    const batcher = new Batcher(examples, options);
    take(batcher, 3);
    const state = batcher.state();
    expect(() => Batcher.fromState(examples.slice(1), options, state)).toThrow(/fingerprint .* the examples or batching options changed/);
    expect(() => Batcher.fromState(examples, { ...options, maxExamples: 4 }, state)).toThrow(ConfigError);
    expect(() => Batcher.fromState(examples, { ...options, seed: 8 }, state)).toThrow('Batcher state: seed 7 differs from the options\' seed 8');
    expect(() => Batcher.fromState(examples, options, { ...state, batchIndex: 999 })).toThrow(/batchIndex must be an integer in 0\.\.\d+ for epoch 0, got 999/);
    expect(() => new Batcher(examples, { seed: 1 })).toThrow('Batcher: set maxExamples, maxPaddedLength or both');
    expect(() => new Batcher([], { seed: 1, maxExamples: 2 })).toThrow('Batcher: no examples');
    expect(() => new Batcher(examples, { seed: 1, maxExamples: 2, length: () => NaN })).toThrow('Batcher: length of manifest.jsonl:1 must be a finite non-negative number, got NaN');
  });
});

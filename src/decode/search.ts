import type { Rng } from '../util/random.js';
import { topKRows } from '../util/top-k.js';
import { DecodingError } from '../errors.js';
import { logSumExp } from './logit-filters.js';
import { roundHalfEven } from './python-compat.js';

// Token selection as OpenAI's whisper/decoding.py: GreedyDecoder (argmax at temperature 0,
// otherwise sampling, which also serves best-of-N), BeamSearchDecoder with patience, and the
// MaximumLikelihoodRanker that picks one candidate per audio window.

/** The outcome of one {@link TokenSelector.update}. */
export interface SelectionStep {
  /** Every sequence with its next token appended (rows may have been reordered). */
  tokens: number[][];
  /** True when decoding can stop. */
  completed: boolean;
  /** For beam search: new sequence s continues old sequence parents[s] (reorder the caches). */
  parents?: number[];
}

/** Candidate sequences of one audio window, with their summed log probabilities. */
export interface Candidates {
  sequences: number[][];
  sumLogprobs: number[];
}

/** How the next tokens are chosen (OpenAI's `TokenDecoder`). */
export interface TokenSelector {
  /**
   * Chooses each sequence's next token from its filtered logits row and adds its log
   * probability to `sumLogprobs` (updated in place, reordered with the sequences).
   */
  update(tokens: readonly (readonly number[])[], logits: Float32Array, sumLogprobs: Float64Array): SelectionStep;
  /** The finished candidates per audio window (each ending with <|endoftext|>). */
  finalize(tokens: readonly (readonly number[])[], sumLogprobs: Float64Array): Candidates[];
}

/** Index of the largest value in row [begin, end); the first one on ties, as torch.argmax. */
export function argmax(x: ArrayLike<number>, begin = 0, end = x.length): number {
  let best = begin;
  for (let i = begin + 1; i < end; i++) if (x[i]! > x[best]!) best = i;
  return best - begin;
}

/** One draw from softmax(row / temperature), by inverse CDF over ids in order. */
export function sampleToken(row: ArrayLike<number>, temperature: number, rng: Rng): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  const weights = new Float64Array(row.length);
  let total = 0;
  for (let i = 0; i < row.length; i++) {
    weights[i] = Math.exp((row[i]! - max) / temperature);
    total += weights[i]!;
  }
  const target = rng.uniform() * total;
  let cumulative = 0;
  let last = 0;
  for (let i = 0; i < row.length; i++) {
    if (weights[i] === 0) continue;
    cumulative += weights[i]!;
    last = i;
    if (cumulative > target) return i;
  }
  return last; // rounding left the target at the very top: the last token with any mass
}

/** Greedy decoding at temperature 0, sampling from softmax(logits / T) otherwise (OpenAI's GreedyDecoder). */
export class GreedyDecoder implements TokenSelector {
  constructor(
    private readonly temperature: number,
    private readonly eot: number,
    private readonly groupSize: number,
    private readonly rng: Rng | undefined,
  ) {
    if (temperature > 0 && rng === undefined) throw new DecodingError('sampling at temperature > 0 needs a random generator');
  }

  update(tokens: readonly (readonly number[])[], logits: Float32Array, sumLogprobs: Float64Array): SelectionStep {
    const vocab = logits.length / tokens.length;
    const next = tokens.map((seq, s) => {
      const row = logits.subarray(s * vocab, (s + 1) * vocab);
      const token = this.temperature === 0 ? argmax(row) : sampleToken(row, this.temperature, this.rng!);
      const finished = seq[seq.length - 1] === this.eot;
      if (!finished) sumLogprobs[s]! += row[token]! - logSumExp(row);
      return [...seq, finished ? this.eot : token];
    });
    return { tokens: next, completed: next.every((seq) => seq[seq.length - 1] === this.eot) };
  }

  finalize(tokens: readonly (readonly number[])[], sumLogprobs: Float64Array): Candidates[] {
    const groups: Candidates[] = [];
    for (let s = 0; s < tokens.length; s += this.groupSize) {
      const sequences = tokens.slice(s, s + this.groupSize).map((seq) => [...seq, this.eot]);
      groups.push({ sequences, sumLogprobs: Array.from(sumLogprobs.subarray(s, s + this.groupSize)) });
    }
    return groups;
  }
}

/** Candidates keyed by their token sequence, in insertion order (a Python dict of tuples). */
class CandidateMap {
  private readonly entries = new Map<string, { sequence: number[]; score: number }>();
  get size(): number {
    return this.entries.size;
  }
  set(sequence: number[], score: number): void {
    const key = sequence.join(',');
    const entry = this.entries.get(key);
    if (entry) entry.score = score;
    else this.entries.set(key, { sequence, score });
  }
  /** Entries by score, highest first; equal scores keep insertion order (Python's stable sort). */
  byScore(): { sequence: number[]; score: number }[] {
    return [...this.entries.values()].sort((a, b) => (b.score > a.score ? 1 : b.score < a.score ? -1 : 0));
  }
  values(): { sequence: number[]; score: number }[] {
    return [...this.entries.values()];
  }
}

/**
 * Beam search with patience (OpenAI's BeamSearchDecoder, arXiv:2204.05424): each step extends
 * every beam by its beamSize + 1 likeliest tokens, keeps the beamSize best unfinished candidates
 * per window and collects finished ones until round(beamSize · patience) are found.
 */
export class BeamSearchDecoder implements TokenSelector {
  private readonly maxCandidates: number;
  private finished: CandidateMap[] | null = null;

  constructor(
    private readonly beamSize: number,
    private readonly eot: number,
    patience: number | undefined,
  ) {
    this.maxCandidates = roundHalfEven(beamSize * (patience || 1));
    if (!(this.maxCandidates > 0)) throw new DecodingError(`invalid beam size (${beamSize}) or patience (${patience})`);
  }

  update(tokens: readonly (readonly number[])[], logits: Float32Array, sumLogprobs: Float64Array): SelectionStep {
    const beam = this.beamSize;
    if (tokens.length % beam !== 0) throw new DecodingError(`${tokens.length} sequences are not a multiple of the beam size ${beam}`);
    const nAudio = tokens.length / beam;
    const vocab = logits.length / tokens.length;
    this.finished ??= Array.from({ length: nAudio }, () => new CandidateMap());

    const nextTokens: number[][] = [];
    const parents: number[] = [];
    const newlyFinished: CandidateMap[] = [];
    const newSums = Float64Array.from(sumLogprobs);
    for (let i = 0; i < nAudio; i++) {
      // Step 1: the cumulative log probability of every candidate continuation.
      const scores = new CandidateMap();
      const sources = new Map<string, number>();
      for (let j = 0; j < beam; j++) {
        const idx = i * beam + j;
        const row = logits.subarray(idx * vocab, (idx + 1) * vocab);
        const norm = logSumExp(row);
        for (const token of topKRows(row, 1, vocab, Math.min(beam + 1, vocab), `beam search logits of beam ${idx}`).ids) {
          const sequence = [...tokens[idx]!, token];
          scores.set(sequence, sumLogprobs[idx]! + (row[token]! - norm));
          sources.set(sequence.join(','), idx);
        }
      }
      // Step 2: keep the best `beam` unfinished candidates; set the finished ones aside.
      const finished = new CandidateMap();
      let saved = 0;
      for (const { sequence, score } of scores.byScore()) {
        if (sequence[sequence.length - 1] === this.eot) {
          finished.set(sequence, score);
        } else {
          newSums[nextTokens.length] = score;
          nextTokens.push(sequence);
          parents.push(sources.get(sequence.join(','))!);
          if (++saved === beam) break;
        }
      }
      newlyFinished.push(finished);
    }
    sumLogprobs.set(newSums);

    newlyFinished.forEach((finished, i) => {
      const previous = this.finished![i]!;
      for (const { sequence, score } of finished.byScore()) {
        if (previous.size >= this.maxCandidates) break; // the candidate list is full
        previous.set(sequence, score);
      }
    });
    const completed = this.finished.every((c) => c.size >= this.maxCandidates);
    return { tokens: nextTokens, completed, parents };
  }

  finalize(tokens: readonly (readonly number[])[], sumLogprobs: Float64Array): Candidates[] {
    const nAudio = tokens.length / this.beamSize;
    this.finished ??= Array.from({ length: nAudio }, () => new CandidateMap());
    return this.finished.map((sequences, i) => {
      if (sequences.size < this.beamSize) {
        // Not enough finished: add the unfinished beams, best first. numpy's argsort reversed
        // puts the later beam first among equal scores.
        const order = Array.from({ length: this.beamSize }, (_, j) => j)
          .sort((a, b) => sumLogprobs[i * this.beamSize + a]! - sumLogprobs[i * this.beamSize + b]! || a - b)
          .reverse();
        for (const j of order) {
          const idx = i * this.beamSize + j;
          sequences.set([...tokens[idx]!, this.eot], sumLogprobs[idx]!);
          if (sequences.size >= this.beamSize) break;
        }
      }
      const values = sequences.values();
      return { sequences: values.map((v) => v.sequence), sumLogprobs: values.map((v) => v.score) };
    });
  }
}

/**
 * OpenAI's MaximumLikelihoodRanker: the index of the candidate with the highest sum of log
 * probabilities over its length (lengthPenalty undefined) or over the Google NMT penalty
 * ((5 + length) / 6) ** lengthPenalty. `lengths` count the sampled tokens, <|endoftext|> excluded.
 */
export function rankCandidates(lengths: readonly number[], sumLogprobs: readonly number[], lengthPenalty: number | undefined): number {
  const scores = sumLogprobs.map((logprob, i) => {
    const penalty = lengthPenalty === undefined ? lengths[i]! : ((5 + lengths[i]!) / 6) ** lengthPenalty;
    return logprob / penalty;
  });
  return argmax(scores);
}

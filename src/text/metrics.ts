import { EvaluationError } from '../errors.js';
import { LANGUAGES_WITHOUT_SPACES } from './languages.js';

// Edit counting is written here rather than taken from npm: Levenshtein packages return the
// distance of two strings, while WER needs the substitution/deletion/insertion split over
// sequences of words.

/** How a hypothesis differs from its reference under one minimum-cost alignment. */
export interface EditCounts {
  /** Reference tokens replaced by another token. */
  substitutions: number;
  /** Reference tokens missing from the hypothesis. */
  deletions: number;
  /** Hypothesis tokens with no reference token. */
  insertions: number;
  /** Reference tokens matched exactly. */
  hits: number;
  /** Number of reference tokens (words or characters). */
  referenceLength: number;
}

/** Edit counts with their total and the error rate (total / reference length). */
export interface ErrorRate extends EditCounts {
  /** substitutions + deletions + insertions */
  errors: number;
  /** errors / referenceLength */
  rate: number;
}

/**
 * Counts the edits of a minimum edit-distance alignment of `hypothesis` to `reference` (unit
 * costs). Among alignments of equal cost, each cell prefers a match or substitution, then a
 * deletion, then an insertion, so the split is deterministic. O(n·m) time, O(m) memory.
 */
export function editCounts<T>(reference: readonly T[], hypothesis: readonly T[]): EditCounts {
  const m = hypothesis.length;
  // For each column of the previous and current row: cost and the counts along the chosen path.
  let prev = { cost: new Int32Array(m + 1), sub: new Int32Array(m + 1), del: new Int32Array(m + 1), ins: new Int32Array(m + 1) };
  let cur = { cost: new Int32Array(m + 1), sub: new Int32Array(m + 1), del: new Int32Array(m + 1), ins: new Int32Array(m + 1) };
  for (let j = 0; j <= m; j++) {
    prev.cost[j] = j;
    prev.ins[j] = j;
  }
  for (let i = 1; i <= reference.length; i++) {
    const r = reference[i - 1];
    cur.cost[0] = i;
    cur.sub[0] = 0;
    cur.ins[0] = 0;
    cur.del[0] = i;
    for (let j = 1; j <= m; j++) {
      const mismatch = r === hypothesis[j - 1] ? 0 : 1;
      const diagonal = prev.cost[j - 1]! + mismatch;
      const deletion = prev.cost[j]! + 1;
      const insertion = cur.cost[j - 1]! + 1;
      if (diagonal <= deletion && diagonal <= insertion) {
        cur.cost[j] = diagonal;
        cur.sub[j] = prev.sub[j - 1]! + mismatch;
        cur.del[j] = prev.del[j - 1]!;
        cur.ins[j] = prev.ins[j - 1]!;
      } else if (deletion <= insertion) {
        cur.cost[j] = deletion;
        cur.sub[j] = prev.sub[j]!;
        cur.del[j] = prev.del[j]! + 1;
        cur.ins[j] = prev.ins[j]!;
      } else {
        cur.cost[j] = insertion;
        cur.sub[j] = cur.sub[j - 1]!;
        cur.del[j] = cur.del[j - 1]!;
        cur.ins[j] = cur.ins[j - 1]! + 1;
      }
    }
    [prev, cur] = [cur, prev];
  }
  const substitutions = prev.sub[m]!;
  const deletions = prev.del[m]!;
  const insertions = prev.ins[m]!;
  return { substitutions, deletions, insertions, hits: reference.length - substitutions - deletions, referenceLength: reference.length };
}

/** Sums edit counts (corpus-level scoring adds edits and reference lengths, not rates). */
export function addEditCounts(a: EditCounts, b: EditCounts): EditCounts {
  return {
    substitutions: a.substitutions + b.substitutions,
    deletions: a.deletions + b.deletions,
    insertions: a.insertions + b.insertions,
    hits: a.hits + b.hits,
    referenceLength: a.referenceLength + b.referenceLength,
  };
}

/** The error rate of edit counts; throws when there is no reference token to divide by. */
export function errorRate(counts: EditCounts, what = 'reference'): ErrorRate {
  if (counts.referenceLength === 0) throw new EvaluationError(`${what} is empty: an error rate needs at least one reference token`);
  const errors = counts.substitutions + counts.deletions + counts.insertions;
  return { ...counts, errors, rate: errors / counts.referenceLength };
}

/** Words of a text: the pieces between whitespace runs. */
export function words(text: string): string[] {
  return text.split(/\s+/u).filter((w) => w !== '');
}

/**
 * Characters of a text for CER: Unicode code points, whitespace runs read as one space and
 * trimmed, or dropped with `ignoreWhitespace` (for scripts written without spaces).
 */
export function characters(text: string, options: { ignoreWhitespace?: boolean } = {}): string[] {
  return Array.from(words(text).join(options.ignoreWhitespace ? '' : ' '));
}

/** Word error rate of one hypothesis: word edits / reference words. Texts are compared as given (normalize first). */
export function wordErrorRate(reference: string, hypothesis: string): ErrorRate {
  return errorRate(editCounts(words(reference), words(hypothesis)));
}

/** Character error rate of one hypothesis: character edits / reference characters (see {@link characters}). */
export function charErrorRate(reference: string, hypothesis: string, options: { ignoreWhitespace?: boolean } = {}): ErrorRate {
  return errorRate(editCounts(characters(reference, options), characters(hypothesis, options)));
}

/** One utterance to score. */
export interface ScoredUtterance {
  reference: string;
  hypothesis: string;
  /** ISO 639-1 code (Whisper's codes), used to group and to choose WER or CER. */
  language: string;
}

/** Options of {@link scoreCorpus}. */
export interface CorpusScoreOptions {
  /** Applied to reference and hypothesis before scoring, e.g. {@link whisperNormalizer}'s result. Default: none. */
  normalize?: (text: string, language: string) => string;
  /** Languages scored by CER (whitespace ignored); default: Whisper's languages written without spaces (zh, ja, th, lo, my, yue). */
  cerLanguages?: ReadonlySet<string>;
}

/** Score of one language over a corpus. */
export interface LanguageScore extends ErrorRate {
  language: string;
  metric: 'wer' | 'cer';
  utterances: number;
}

/** Corpus-level scores: edits summed over utterances, divided by the summed reference lengths. */
export interface CorpusScore {
  /** One entry per language, in order of first appearance. */
  languages: LanguageScore[];
  /** WER over all utterances of WER languages; null when there are none. */
  wer: ErrorRate | null;
  /** CER over all utterances of CER languages; null when there are none. */
  cer: ErrorRate | null;
}

/**
 * Scores a corpus per language and overall, as corpus-level WER/CER are defined: the sum of edits
 * over the sum of reference lengths (not a mean of per-utterance rates). An utterance whose
 * normalized reference is empty still counts its insertions; a language or total whose reference
 * length is zero throws an EvaluationError.
 */
export function scoreCorpus(utterances: Iterable<ScoredUtterance>, options: CorpusScoreOptions = {}): CorpusScore {
  const normalize = options.normalize ?? ((text: string) => text);
  const cerLanguages = options.cerLanguages ?? LANGUAGES_WITHOUT_SPACES;
  const perLanguage = new Map<string, { counts: EditCounts; utterances: number }>();
  for (const u of utterances) {
    const reference = normalize(u.reference, u.language);
    const hypothesis = normalize(u.hypothesis, u.language);
    const counts = cerLanguages.has(u.language)
      ? editCounts(characters(reference, { ignoreWhitespace: true }), characters(hypothesis, { ignoreWhitespace: true }))
      : editCounts(words(reference), words(hypothesis));
    const entry = perLanguage.get(u.language);
    if (entry) {
      entry.counts = addEditCounts(entry.counts, counts);
      entry.utterances++;
    } else perLanguage.set(u.language, { counts, utterances: 1 });
  }
  const none: EditCounts = { substitutions: 0, deletions: 0, insertions: 0, hits: 0, referenceLength: 0 };
  let werTotal = none;
  let cerTotal = none;
  const languages: LanguageScore[] = [];
  for (const [language, { counts, utterances: n }] of perLanguage) {
    const metric = cerLanguages.has(language) ? 'cer' : 'wer';
    languages.push({ language, metric, utterances: n, ...errorRate(counts, `reference text of language "${language}"`) });
    if (metric === 'cer') cerTotal = addEditCounts(cerTotal, counts);
    else werTotal = addEditCounts(werTotal, counts);
  }
  return {
    languages,
    wer: werTotal === none ? null : errorRate(werTotal),
    cer: cerTotal === none ? null : errorRate(cerTotal),
  };
}

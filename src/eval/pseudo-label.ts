// Pseudo-labelling as distil-whisper does it: the teacher's transcripts become the training text,
// and an utterance whose transcript is too far from the human reference is left out (the teacher
// probably failed there, and the student would learn its mistake).
import { LANGUAGES_WITHOUT_SPACES } from '../text/languages.js';
import { scoreCorpus } from '../text/metrics.js';
import type { UtteranceResult } from './evaluate.js';

/** The fate of one utterance. */
export interface PseudoLabelDecision {
  readonly utterance: UtteranceResult;
  /** WER, or CER for languages written without spaces (see `scoreCorpus`). */
  readonly metric: 'wer' | 'cer';
  /** The transcript's error rate against the reference after normalization; null when it has none. */
  readonly errorRate: number | null;
  /** Whether the transcript becomes a training label. */
  readonly kept: boolean;
  /** Why it was dropped, in words. */
  readonly reason?: string;
}

/** Kept and dropped counts of one language. */
export interface PseudoLabelCounts {
  readonly language: string;
  readonly kept: number;
  readonly dropped: number;
}

/** Options of {@link selectPseudoLabels}. */
export interface PseudoLabelOptions {
  /** Highest error rate kept (distil-whisper: 0.1, i.e. 10% WER). */
  readonly maxErrorRate: number;
  /** Applied to reference and transcript before scoring (`Evaluator.normalize`). */
  readonly normalize: (text: string, language: string) => string;
}

/**
 * Decides which transcripts to keep: an utterance is dropped when its error rate against the
 * reference exceeds `maxErrorRate`, when the transcript is empty, or when the reference is empty
 * after normalization (its error rate is unknown; distil-whisper drops these too).
 */
export function selectPseudoLabels(utterances: readonly UtteranceResult[], options: PseudoLabelOptions): { decisions: PseudoLabelDecision[]; languages: PseudoLabelCounts[] } {
  const counts = new Map<string, { kept: number; dropped: number }>();
  const decisions = utterances.map((utterance): PseudoLabelDecision => {
    const decision = decide(utterance, options);
    const c = counts.get(utterance.example.language) ?? { kept: 0, dropped: 0 };
    if (decision.kept) c.kept++;
    else c.dropped++;
    counts.set(utterance.example.language, c);
    return decision;
  });
  return { decisions, languages: [...counts].map(([language, c]) => ({ language, ...c })) };
}

function decide(utterance: UtteranceResult, options: PseudoLabelOptions): PseudoLabelDecision {
  const { language, text: reference } = utterance.example;
  const { hypothesis } = utterance;
  if (options.normalize(reference, language).trim() === '') {
    const metric = LANGUAGES_WITHOUT_SPACES.has(language) ? 'cer' : 'wer';
    return { utterance, metric, errorRate: null, kept: false, reason: 'reference is empty after normalization' };
  }
  const score = scoreCorpus([{ reference, hypothesis, language }], { normalize: options.normalize }).languages[0]!;
  const base = { utterance, metric: score.metric, errorRate: score.rate };
  if (hypothesis === '') return { ...base, kept: false, reason: 'empty transcript' };
  if (score.rate > options.maxErrorRate) {
    return { ...base, kept: false, reason: `${score.metric.toUpperCase()} ${(100 * score.rate).toFixed(1)}% exceeds ${(100 * options.maxErrorRate).toFixed(1)}%` };
  }
  return { ...base, kept: true };
}

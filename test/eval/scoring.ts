// Independent scoring for the evaluation tests: edit distances from fastest-levenshtein (not
// src/text/metrics.ts), on texts normalized with Whisper's normalizers, summed per language.
import { distance } from 'fastest-levenshtein';
import { LANGUAGES_WITHOUT_SPACES } from '../../src/text/languages.js';

/** Levenshtein distance of two token sequences: each distinct token becomes one private-use character. */
export function tokenDistance(reference: readonly string[], hypothesis: readonly string[]): number {
  const codes = new Map<string, string>();
  const encode = (tokens: readonly string[]) =>
    tokens
      .map((t) => {
        let c = codes.get(t);
        if (c === undefined) {
          c = String.fromCharCode(0xe000 + codes.size);
          codes.set(t, c);
        }
        return c;
      })
      .join('');
  return distance(encode(reference), encode(hypothesis));
}

const wordsOf = (s: string) => s.split(/\s+/u).filter((w) => w !== '');
const charactersOf = (s: string) => Array.from(s.replace(/\s+/gu, ''));

/** Errors and reference length of one utterance, by words or by non-whitespace characters. */
export function utteranceErrors(reference: string, hypothesis: string, unit: 'word' | 'character'): { errors: number; length: number } {
  const split = unit === 'word' ? wordsOf : charactersOf;
  return { errors: tokenDistance(split(reference), split(hypothesis)), length: split(reference).length };
}

/** The error rate distil-whisper's filter reads: WER, or CER for languages without spaces. */
export function independentErrorRate(reference: string, hypothesis: string, language: string): number {
  const { errors, length } = utteranceErrors(reference, hypothesis, LANGUAGES_WITHOUT_SPACES.has(language) ? 'character' : 'word');
  return errors / length;
}

/** An utterance as the tests see it: texts already normalized, timings as returned. */
export interface IndependentUtterance {
  reference: string;
  hypothesis: string;
  language: string;
  audioSeconds: number;
  decodeSeconds: number;
}

/**
 * The rows formatEvalTable should print, cells as strings: per language in order of first
 * appearance, then "all"; WER ("–" for languages without spaces, and overall WER over the others),
 * CER over non-whitespace characters, in percent to two decimals; audio seconds to one decimal;
 * RTF (decode / audio seconds) to three.
 */
export function expectedTableRows(utterances: readonly IndependentUtterance[]): string[][] {
  const percent = (e: number, n: number) => `${((100 * e) / n).toFixed(2)}%`;
  const row = (label: string, us: readonly IndependentUtterance[]) => {
    const spaced = us.filter((u) => !LANGUAGES_WITHOUT_SPACES.has(u.language));
    const sum = (xs: { errors: number; length: number }[]) => xs.reduce((a, b) => ({ errors: a.errors + b.errors, length: a.length + b.length }), { errors: 0, length: 0 });
    const wer = sum(spaced.map((u) => utteranceErrors(u.reference, u.hypothesis, 'word')));
    const cer = sum(us.map((u) => utteranceErrors(u.reference, u.hypothesis, 'character')));
    const audio = us.reduce((a, u) => a + u.audioSeconds, 0);
    const decode = us.reduce((a, u) => a + u.decodeSeconds, 0);
    return [label, String(us.length), spaced.length ? percent(wer.errors, wer.length) : '–', percent(cer.errors, cer.length), audio.toFixed(1), (decode / audio).toFixed(3)];
  };
  const languages = [...new Set(utterances.map((u) => u.language))];
  return [...languages.map((l) => row(l, utterances.filter((u) => u.language === l))), row('all', utterances)];
}

/** The body rows of a Markdown table (header and separator left out), cells trimmed. */
export function tableRows(markdown: string): string[][] {
  return markdown
    .trim()
    .split('\n')
    .slice(2)
    .map((line) => line.split('|').slice(1, -1).map((c) => c.trim()));
}

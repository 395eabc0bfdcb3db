import { distance } from 'fastest-levenshtein';
import { describe, expect, it } from 'vitest';
import { EvaluationError } from '../../src/errors.js';
import { charErrorRate, editCounts, scoreCorpus, wordErrorRate } from '../../src/text/metrics.js';
import { whisperNormalizer } from '../../src/text/normalizers.js';
import { HF_TINY, readJson, readSpeechSamples } from './assets.js';

// Oracles: hand-counted alignments, and fastest-levenshtein (an independent edit distance) for
// the totals of random pairs. Rates are exact ratios of small integers, compared with toBe.

describe('editCounts', () => {
  it.each([
    // one word dropped: "the cat sat on [the] mat"
    ['the cat sat on the mat', 'the cat sat on mat', { substitutions: 0, deletions: 1, insertions: 0, hits: 5 }],
    // b -> x substituted, d inserted at the end
    ['a b c', 'a x c d', { substitutions: 1, deletions: 0, insertions: 1, hits: 2 }],
    // empty hypothesis: every reference word deleted
    ['a b c', '', { substitutions: 0, deletions: 3, insertions: 0, hits: 0 }],
    // empty reference: every hypothesis word inserted
    ['', 'a b', { substitutions: 0, deletions: 0, insertions: 2, hits: 0 }],
    // "a b" vs "b c" costs 2 either as S+S or as D+I; the stated tie rule prefers substitutions
    ['a b', 'b c', { substitutions: 2, deletions: 0, insertions: 0, hits: 0 }],
    // transposition is two edits
    ['x y z', 'x z y', { substitutions: 2, deletions: 0, insertions: 0, hits: 1 }],
  ])('%j vs %j', (reference, hypothesis, expected) => {
    const ref = reference.split(' ').filter(Boolean);
    const hyp = hypothesis.split(' ').filter(Boolean);
    expect(editCounts(ref, hyp)).toEqual({ ...expected, referenceLength: ref.length });
  });

  it('totals equal fastest-levenshtein on 300 random pairs, and the counts add up to both lengths', () => {
    let seed = 12345;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const randomText = (): string => Array.from({ length: random(25) }, () => 'abcd'[random(4)]).join('');
    for (let trial = 0; trial < 300; trial++) {
      const [ref, hyp] = [randomText(), randomText()];
      const c = editCounts([...ref], [...hyp]);
      expect(c.substitutions + c.deletions + c.insertions).toBe(distance(ref, hyp));
      expect(c.hits + c.substitutions + c.deletions).toBe(ref.length);
      expect(c.hits + c.substitutions + c.insertions).toBe(hyp.length);
    }
  });
});

describe('WER and CER of one utterance', () => {
  it('WER = word edits / reference words', () => {
    const r = wordErrorRate('the cat sat on the mat', 'the cat sat on mat');
    expect([r.errors, r.referenceLength, r.rate]).toEqual([1, 6, 1 / 6]);
    // insertions can push WER above 1
    expect(wordErrorRate('yes', 'no no no').rate).toBe(3);
  });

  it('CER = character edits / reference characters: kitten -> sitting is 2 S + 1 I over 6', () => {
    const r = charErrorRate('kitten', 'sitting');
    expect([r.substitutions, r.deletions, r.insertions, r.rate]).toEqual([2, 0, 1, 0.5]);
  });

  it('CER counts code points (not UTF-16 units), one space per whitespace run, or none when ignored', () => {
    // 析 -> 折 in 12 characters
    expect(charErrorRate('广州市房地产中介协会分析', '广州市房地产中介协会分折').rate).toBe(1 / 12);
    // 𝄞 is one character although two UTF-16 units
    expect(charErrorRate('a𝄞b', 'ab').deletions).toBe(1);
    // "a  b" reads as "a b": 3 characters, the hypothesis "ab" lacks the space
    expect(charErrorRate('a  b', 'ab').rate).toBe(1 / 3);
    expect(charErrorRate('客観的 実在', '客観的実在', { ignoreWhitespace: true }).rate).toBe(0);
  });

  it('throws an EvaluationError for an empty reference', () => {
    expect(() => wordErrorRate('  ', 'words')).toThrow(EvaluationError);
    expect(() => charErrorRate('', '')).toThrow(/at least one reference token/);
  });
});

describe('scoreCorpus', () => {
  it('sums edits and reference lengths per language and overall (not a mean of rates), CER for zh', () => {
    const score = scoreCorpus([
      { language: 'en', reference: 'a b c d', hypothesis: 'a b c d' }, // 0 / 4
      { language: 'en', reference: 'x y', hypothesis: 'x' }, // 1 D / 2
      { language: 'de', reference: 'eins zwei drei', hypothesis: 'eins zwo drei vier' }, // 1 S + 1 I / 3
      { language: 'zh', reference: '砸自己的脚', hypothesis: '砸自己脚' }, // 1 D / 5 characters
      { language: 'zh', reference: '广州市 房地产', hypothesis: '广州市房地产' }, // whitespace ignored: 0 / 6
    ]);
    expect(score.languages.map((l) => [l.language, l.metric, l.utterances, l.errors, l.referenceLength])).toEqual([
      ['en', 'wer', 2, 1, 6],
      ['de', 'wer', 1, 2, 3],
      ['zh', 'cer', 2, 1, 11],
    ]);
    expect(score.languages[0]!.rate).toBe(1 / 6); // the mean of per-utterance rates would be 1/4
    expect(score.wer).toMatchObject({ substitutions: 1, deletions: 1, insertions: 1, referenceLength: 9, rate: 3 / 9 });
    expect(score.cer).toMatchObject({ deletions: 1, referenceLength: 11, rate: 1 / 11 });
  });

  it('an utterance whose normalized reference is empty adds insertions; an all-empty language throws', () => {
    const normalize = whisperNormalizer(readJson(`${HF_TINY}normalizer.json`));
    const score = scoreCorpus(
      [
        { language: 'en', reference: '(SPEAKING FOREIGN LANGUAGE)', hypothesis: 'bonjour' },
        { language: 'en', reference: 'Twenty-one colours.', hypothesis: '21 colors' },
      ],
      { normalize },
    );
    expect(score.languages[0]).toMatchObject({ insertions: 1, hits: 2, referenceLength: 2, rate: 0.5 });
    expect(score.cer).toBeNull();
    expect(() => scoreCorpus([{ language: 'fr', reference: '[musique]', hypothesis: '' }], { normalize })).toThrow(/language "fr"/);
  });

  it('scores the 79 transcripts of 10 languages: 0 against themselves, one deletion per utterance with the last word dropped', () => {
    const samples = readSpeechSamples();
    const exact = scoreCorpus(samples.map((s) => ({ language: s.language, reference: s.text, hypothesis: s.text })));
    expect(exact.languages).toHaveLength(10);
    expect(exact.languages.filter((l) => l.metric === 'cer').map((l) => l.language).sort()).toEqual(['ja', 'zh']);
    expect(exact.languages.every((l) => l.errors === 0)).toBe(true);

    const spaced = samples.filter((s) => s.language !== 'zh' && s.language !== 'ja');
    const dropped = scoreCorpus(
      spaced.map((s) => ({ language: s.language, reference: s.text, hypothesis: s.text.trim().split(/\s+/).slice(0, -1).join(' ') })),
    );
    const referenceWords = spaced.reduce((n, s) => n + s.text.trim().split(/\s+/).length, 0);
    expect(dropped.wer).toMatchObject({ deletions: spaced.length, substitutions: 0, insertions: 0, referenceLength: referenceWords });
    expect(dropped.wer!.rate).toBe(spaced.length / referenceWords);
  });
});

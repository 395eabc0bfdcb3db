import { describe, expect, it } from 'vitest';
import {
  BasicTextNormalizer,
  EnglishNumberNormalizer,
  EnglishSpellingNormalizer,
  EnglishTextNormalizer,
  whisperNormalizer,
} from '../../src/text/normalizers.js';
import { HF_TINY, readFixture, readJson } from './assets.js';

// Oracle: fixtures/normalizer-golden.json, written by Hugging Face transformers' copy of OpenAI's
// normalizers (see fixtures/make-goldens.py). The hand cases below are derived from reading
// OpenAI's whisper/normalizers/english.py and basic.py; each names the rule it exercises.

interface NormalizerGolden {
  english: { text: string; normalized: string }[];
  basic: { text: string; default: string; removeDiacritics: string; splitLetters: string }[];
}

const spelling = readJson<Record<string, string>>(`${HF_TINY}normalizer.json`);
const english = new EnglishTextNormalizer(spelling);
const golden = readFixture<NormalizerGolden>('normalizer-golden.json');

describe('EnglishTextNormalizer', () => {
  it('equals the reference implementation on the English transcripts and on strings for every rule', () => {
    expect(golden.english.length).toBeGreaterThan(120);
    for (const { text, normalized } of golden.english) expect({ text, out: english.normalize(text) }).toEqual({ text, out: normalized });
  });

  it.each([
    // __call__: remove words between brackets, then between parentheses
    ['[MUSIC] Hello (laughs) world', 'hello world'],
    // ignore_patterns \b(hmm|mm|mhm|mmm|uh|um)\b; replacer \bwon't\b -> "will not"; periods not followed by digits go
    ['Hmm, I won\'t go.', 'i will not go'],
    // replacers, titles: \bmr\b -> "mister ", \bdr\b -> "doctor "
    ['Mr. Smith met Dr. Jones', 'mister smith met doctor jones'],
    // replacers, general contractions: 're -> " are", 's -> " is", n't -> " not"
    ["They're sure it's wrong, isn't it", 'they are sure it is wrong is not it'],
    // \s+' -> ' (space before an apostrophe), then 's -> " is"
    ["it 's here", 'it is here'],
    // EnglishNumberNormalizer: tens then ones add up when the tens value ends in 0
    ['twenty one', '21'],
    // successive single digits are nominal; "oh" is a zero
    ['one oh one', '101'],
    // multipliers: value // 1000 * 1000 + value % 1000 * multiplier
    ['two thousand three hundred', '2300'],
    // "and" after a multiplier is ignored
    ['one hundred and five', '105'],
    // ordinals yield right away with their suffix
    ['the twenty first', 'the 21st'],
    // following prefixers: "dollars" after a number becomes a $ prefix; postprocess combines cents
    ['five dollars and seven cents', '$5.07'],
    // currency prefix kept in front of the scaled number (class docstring: "$20 million")
    ['$20 million', '$20000000'],
    // suffixers: "percent" -> %
    ['ten percent', '10%'],
    // preprocess: "<number> and a half" -> "<number> point five"; "point" appends a decimal point
    ['two and a half', '2.5'],
    // commas between digits removed; a plural suffix stays attached ("1960s")
    ['1,000,000 people in the 1960s', '1000000 people in the 1960s'],
    // postprocess writes "one(s)" instead of "1(s)"
    ['1 apple', 'one apple'],
    // EnglishSpellingNormalizer: British to American from english.json
    ['the colour of the theatre', 'the color of the theater'],
    // remove_symbols_and_diacritics: NFKD drops Mn marks; ADDITIONAL_DIACRITICS maps ß and ø
    ['Café Straße Øre', 'cafe strasse ore'],
    // prefix/suffix symbols are removed unless next to a number: "$ " goes, "5%" stays, "5 %" loses its %
    ['costs $ and 5% off, 6 % on', 'costs and 5% off 6 on'],
  ])('%j -> %j', (input, expected) => {
    expect(english.normalize(input)).toBe(expected);
  });

  it('keeps integers exact beyond 2^53 (Python ints are unbounded)', () => {
    expect(new EnglishNumberNormalizer().normalize('nine hundred ninety nine decillion and one')).toBe(
      '999000000000000000000000000000000001',
    );
  });
});

describe('EnglishSpellingNormalizer', () => {
  it('maps whole words only, and collapses whitespace as str.split() does', () => {
    const normalizer = new EnglishSpellingNormalizer({ colour: 'color' });
    expect(normalizer.normalize(' colour  colours\tcolourful ')).toBe('color colours colourful');
    expect(new EnglishSpellingNormalizer({}).normalize('constructor toString')).toBe('constructor toString');
  });
});

describe('BasicTextNormalizer', () => {
  const plain = new BasicTextNormalizer();
  const noDiacritics = new BasicTextNormalizer({ removeDiacritics: true });
  const letters = new BasicTextNormalizer({ splitLetters: true });

  it('equals the reference implementation on all transcripts (10 languages) with each option', () => {
    expect(golden.basic.length).toBeGreaterThan(79);
    for (const g of golden.basic) {
      expect({ text: g.text, out: plain.normalize(g.text) }).toEqual({ text: g.text, out: g.default });
      expect({ text: g.text, out: noDiacritics.normalize(g.text) }).toEqual({ text: g.text, out: g.removeDiacritics });
      expect({ text: g.text, out: letters.normalize(g.text) }).toEqual({ text: g.text, out: g.splitLetters });
    }
  });

  it('follows basic.py by hand', () => {
    // brackets and parentheses removed; punctuation to spaces (category P); NFKC keeps é and ö; no strip
    expect(plain.normalize('Héllo, Wörld! [x] (y)')).toBe('héllo wörld ');
    // remove_diacritics: NFKD and drop category Mn
    expect(noDiacritics.normalize('Héllo, Wörld! [x] (y)')).toBe('hello world ');
    // split_letters: one space between grapheme clusters (regex \X), then whitespace runs collapse;
    // symbols such as 👍🏽 (category So) became spaces before the split
    expect(letters.normalize('ab 한국👍🏽c')).toBe('a b 한 국 c');
  });

  it('whisperNormalizer uses the English normalizer for en and the basic one otherwise', () => {
    const normalize = whisperNormalizer(spelling);
    expect(normalize('Mr. Twenty-one', 'en')).toBe('mister 21');
    expect(normalize('Mr. Twenty-one', 'de')).toBe('mr twenty one');
  });
});

// Whisper's text normalizers for WER, ported from OpenAI's whisper/normalizers (basic.py,
// english.py); no npm package implements them. Python's `re` is Unicode-aware where JavaScript's
// RegExp is not, so `\b`, `\s`, `\d` and `str.split()` are spelled out with Python's meaning.

/** Python's `\w` for str patterns: letters, digits and other numbers, underscore. */
const PY_WORD = String.raw`[\p{L}\p{N}_]`;
/** Python's `\b`: a boundary between a `\w` character and anything else. */
const PY_BOUNDARY = String.raw`(?:(?<=${PY_WORD})(?!${PY_WORD})|(?<!${PY_WORD})(?=${PY_WORD}))`;
/** Python's `\s` and `str.isspace()`: Unicode whitespace plus the separators U+001C..U+001F. */
const PY_SPACE = String.raw`[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]`;

/** A RegExp from a Python pattern whose `\b`, `\s` and `\d` are outside character classes. */
function pyRegex(pattern: string, flags = 'gu'): RegExp {
  const translated = pattern.replace(/\\([bsd])/g, (_, c: string) =>
    c === 'b' ? PY_BOUNDARY : c === 's' ? PY_SPACE : String.raw`\p{Nd}`,
  );
  return new RegExp(translated, flags);
}

const WHITESPACE_RUN = pyRegex(String.raw`\s+`);
const BRACKETED = /[<[][^>\]]*[>\]]/gu;
const PARENTHESIZED = /\(([^)]+?)\)/gu;

/** Python's `str.split()`: the words between runs of whitespace. */
function pySplit(s: string): string[] {
  return s.split(WHITESPACE_RUN).filter((w) => w !== '');
}

/** Non-ASCII letters that NFKD does not separate from a diacritic (basic.py ADDITIONAL_DIACRITICS). */
const ADDITIONAL_DIACRITICS: Readonly<Record<string, string>> = {
  œ: 'oe', Œ: 'OE', ø: 'o', Ø: 'O', æ: 'ae', Æ: 'AE', ß: 'ss', ẞ: 'SS',
  đ: 'd', Đ: 'D', ð: 'd', Ð: 'D', þ: 'th', Þ: 'th', ł: 'l', Ł: 'L',
};

const NONSPACING_MARK = /^\p{Mn}$/u;
const MARK_SYMBOL_PUNCTUATION = /^[\p{M}\p{S}\p{P}]$/u;

/**
 * Replaces marks, symbols and punctuation with a space and drops diacritics (category Mn after
 * NFKD, plus {@link ADDITIONAL_DIACRITICS}); characters in `keep` stay (basic.py).
 */
export function removeSymbolsAndDiacritics(s: string, keep = ''): string {
  let out = '';
  for (const c of s.normalize('NFKD')) {
    if (keep.includes(c)) out += c;
    else if (Object.hasOwn(ADDITIONAL_DIACRITICS, c)) out += ADDITIONAL_DIACRITICS[c];
    else if (NONSPACING_MARK.test(c)) continue;
    else out += MARK_SYMBOL_PUNCTUATION.test(c) ? ' ' : c;
  }
  return out;
}

/** Replaces marks, symbols and punctuation with a space after NFKC, keeping diacritics (basic.py). */
export function removeSymbols(s: string): string {
  let out = '';
  for (const c of s.normalize('NFKC')) out += MARK_SYMBOL_PUNCTUATION.test(c) ? ' ' : c;
  return out;
}

/** Options of {@link BasicTextNormalizer}. */
export interface BasicTextNormalizerOptions {
  /** Drop diacritics (NFKD) instead of keeping them (NFKC). */
  removeDiacritics?: boolean;
  /** Separate every grapheme cluster with a space, for character-level comparison. */
  splitLetters?: boolean;
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * Whisper's language-independent normalizer (OpenAI's `BasicTextNormalizer`): lower case, drop
 * text in brackets and parentheses, symbols and punctuation to spaces, whitespace runs to one
 * space. Leading/trailing spaces stay, as in OpenAI's code; WER splits on them anyway.
 */
export class BasicTextNormalizer {
  private readonly clean: (s: string) => string;
  private readonly splitLetters: boolean;

  constructor(options: BasicTextNormalizerOptions = {}) {
    this.clean = options.removeDiacritics ? (s) => removeSymbolsAndDiacritics(s) : removeSymbols;
    this.splitLetters = options.splitLetters ?? false;
  }

  /** The normalized text. */
  normalize(text: string): string {
    let s = text.toLowerCase();
    s = s.replace(BRACKETED, '').replace(PARENTHESIZED, '');
    s = this.clean(s).toLowerCase();
    if (this.splitLetters) s = Array.from(graphemes.segment(s), (g) => g.segment).join(' ');
    return s.replace(WHITESPACE_RUN, ' ');
  }
}

// ---------------------------------------------------------------------------------------------
// EnglishNumberNormalizer

/** A number being built: an integer, or digits kept as text (nominal "one oh one", decimals). */
type NumberValue = bigint | string | null;

const NUMERIC_WORD = pyRegex(String.raw`^\d+(\.\d+)?$`, 'u');
const DECIMAL_DIGIT = /\p{Nd}/u;

/**
 * Value of a Unicode decimal digit. Unicode encodes every Nd digit in runs of ten ascending from
 * zero, so the value is the offset from the start of its run, modulo 10.
 */
function digitValue(c: string): number {
  const cp = c.codePointAt(0)!;
  if (cp >= 0x30 && cp <= 0x39) return cp - 0x30;
  let start = cp;
  while (DECIMAL_DIGIT.test(String.fromCodePoint(start - 1))) start--;
  return (cp - start) % 10;
}

function parseDigits(digits: string): bigint {
  let n = 0n;
  for (const c of digits) n = n * 10n + BigInt(digitValue(c));
  return n;
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/** A reduced fraction, as Python's `Fraction`. */
interface Fraction {
  num: bigint;
  den: bigint;
}

const FRACTION_TEXT = /^(?=\p{Nd}|\.\p{Nd})(\p{Nd}*)(?:\.(\p{Nd}*))?$/u;

/**
 * Python's `Fraction(value)` for the values this normalizer builds (digits with at most one
 * point, or an integer); null where Python raises ValueError ("1.5.3", "1.$5").
 */
function toFraction(value: NumberValue): Fraction | null {
  if (value === null) return null;
  if (typeof value === 'bigint') return { num: value, den: 1n };
  const m = FRACTION_TEXT.exec(value);
  if (!m) return null;
  const decimals = m[2] ?? '';
  const num = parseDigits((m[1] ?? '') + decimals);
  const den = 10n ** BigInt([...decimals].length);
  const g = gcd(num, den);
  return { num: num / g, den: den / g };
}

/** `value × multiplier` when that is an integer (english.py: `p.denominator == 1`), else null. */
function scaledInteger(value: NumberValue, multiplier: bigint): bigint | null {
  const f = toFraction(value);
  return f !== null && (f.num * multiplier) % f.den === 0n ? (f.num * multiplier) / f.den : null;
}

/** Multiplies the last three digits: "two thousand three hundred" is 2000 + 3 × 100. */
function multiplyLastGroup(value: bigint, multiplier: bigint): bigint {
  return (value / 1000n) * 1000n + (value % 1000n) * multiplier;
}

/** Python's `str(value or "")`. */
function textOrEmpty(value: NumberValue): string {
  return value === null || value === 0n || value === '' ? '' : String(value);
}

const ONES_NAMES = [
  'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve',
  'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen',
];
const TENS: ReadonlyMap<string, number> = new Map([
  ['twenty', 20], ['thirty', 30], ['forty', 40], ['fifty', 50],
  ['sixty', 60], ['seventy', 70], ['eighty', 80], ['ninety', 90],
]);
const MULTIPLIER_NAMES = [
  'hundred', 'thousand', 'million', 'billion', 'trillion', 'quadrillion', 'quintillion',
  'sextillion', 'septillion', 'octillion', 'nonillion', 'decillion',
];

/**
 * Spelled-out English numbers to digits, as OpenAI's `EnglishNumberNormalizer`: commas go,
 * suffixes stay ("1960s", "32nd"), currency words become symbols ("$20 million" → "$20000000"),
 * successive single digits read nominally ("one oh one" → "101"), "one(s)" is kept as a word.
 */
export class EnglishNumberNormalizer {
  private readonly zeros = new Set(['o', 'oh', 'zero']);
  private readonly ones = new Map(ONES_NAMES.map((name, i) => [name, i + 1]));
  private readonly onesSuffixed: Map<string, [number, string]>;
  private readonly tens = TENS;
  private readonly tensSuffixed: Map<string, [number, string]>;
  private readonly multipliers = new Map(MULTIPLIER_NAMES.map((name, i) => [name, i === 0 ? 100n : 1000n ** BigInt(i)]));
  private readonly multipliersSuffixed: Map<string, [bigint, string]>;
  private readonly decimals: Set<string>;
  private readonly precedingPrefixers = new Map([['minus', '-'], ['negative', '-'], ['plus', '+'], ['positive', '+']]);
  private readonly followingPrefixers = new Map([
    ['pound', '£'], ['pounds', '£'], ['euro', '€'], ['euros', '€'],
    ['dollar', '$'], ['dollars', '$'], ['cent', '¢'], ['cents', '¢'],
  ]);
  private readonly prefixes: Set<string>;
  private readonly specials = new Set(['and', 'double', 'triple', 'point']);
  private readonly words: Set<string>;

  constructor() {
    const onesPlural = [...this.ones].map(([name, v]): [string, [number, string]] => [name === 'six' ? 'sixes' : name + 's', [v, 's']]);
    const onesOrdinal: [string, [number, string]][] = [
      ['zeroth', [0, 'th']], ['first', [1, 'st']], ['second', [2, 'nd']], ['third', [3, 'rd']],
      ['fifth', [5, 'th']], ['twelfth', [12, 'th']],
      ...[...this.ones]
        .filter(([, v]) => v > 3 && v !== 5 && v !== 12)
        .map(([name, v]): [string, [number, string]] => [name + (name.endsWith('t') ? 'h' : 'th'), [v, 'th']]),
    ];
    this.onesSuffixed = new Map([...onesPlural, ...onesOrdinal]);
    this.tensSuffixed = new Map([
      ...[...this.tens].map(([name, v]): [string, [number, string]] => [name.replaceAll('y', 'ies'), [v, 's']]),
      ...[...this.tens].map(([name, v]): [string, [number, string]] => [name.replaceAll('y', 'ieth'), [v, 'th']]),
    ]);
    this.multipliersSuffixed = new Map([
      ...[...this.multipliers].map(([name, v]): [string, [bigint, string]] => [name + 's', [v, 's']]),
      ...[...this.multipliers].map(([name, v]): [string, [bigint, string]] => [name + 'th', [v, 'th']]),
    ]);
    this.decimals = new Set([...this.ones.keys(), ...this.tens.keys(), ...this.zeros]);
    this.prefixes = new Set([...this.precedingPrefixers.values(), ...this.followingPrefixers.values()]);
    this.words = new Set([
      ...this.zeros, ...this.ones.keys(), ...this.onesSuffixed.keys(), ...this.tens.keys(),
      ...this.tensSuffixed.keys(), ...this.multipliers.keys(), ...this.multipliersSuffixed.keys(),
      ...this.precedingPrefixers.keys(), ...this.followingPrefixers.keys(), 'per', 'percent', ...this.specials,
    ]);
  }

  /** The text with spelled-out numbers written in digits. */
  normalize(text: string): string {
    const s = this.preprocess(text);
    return this.postprocess(this.processWords(pySplit(s)).join(' '));
  }

  private processWords(words: readonly string[]): string[] {
    const out: string[] = [];
    let prefix: string | null = null;
    let value: NumberValue = null;
    let skip = false;
    const output = (result: bigint | string): void => {
      out.push(prefix === null ? String(result) : prefix + String(result));
      value = null;
      prefix = null;
    };

    for (let i = 0; i < words.length; i++) {
      const current = words[i]!;
      const prev = i > 0 ? words[i - 1]! : null;
      const next = i + 1 < words.length ? words[i + 1]! : null;
      if (skip) {
        skip = false;
        continue;
      }
      const nextIsNumeric = next !== null && NUMERIC_WORD.test(next);
      const first = String.fromCodePoint(current.codePointAt(0)!);
      const hasPrefix = this.prefixes.has(first);
      const currentWithoutPrefix = hasPrefix ? current.slice(first.length) : current;
      const prevInOnes = prev !== null && this.ones.has(prev);
      const prevInTens = prev !== null && this.tens.has(prev);

      if (NUMERIC_WORD.test(currentWithoutPrefix)) {
        // arabic numbers (potentially with signs and fractions)
        const f = toFraction(currentWithoutPrefix)!;
        if (value !== null) {
          if (typeof value === 'string' && value.endsWith('.')) {
            // concatenate decimals / ip address components
            value = value + current;
            continue;
          }
          output(value);
        }
        if (hasPrefix) prefix = first;
        value = f.den === 1n ? f.num : currentWithoutPrefix;
      } else if (!this.words.has(current)) {
        if (value !== null) output(value);
        output(current);
      } else if (this.zeros.has(current)) {
        value = textOrEmpty(value) + '0';
      } else if (this.ones.has(current)) {
        const ones = this.ones.get(current)!;
        if (value === null) value = BigInt(ones);
        else if (typeof value === 'string' || prevInOnes) {
          // after a tens word, the digit replaces the last zero
          value = prevInTens && ones < 10 ? String(value).slice(0, -1) + ones : String(value) + ones;
        } else if (ones < 10) {
          value = value % 10n === 0n ? value + BigInt(ones) : String(value) + ones;
        } else {
          value = value % 100n === 0n ? value + BigInt(ones) : String(value) + ones;
        }
      } else if (this.onesSuffixed.has(current)) {
        // ordinal or cardinal; output the number right away
        const [ones, suffix] = this.onesSuffixed.get(current)!;
        if (value === null) output(String(ones) + suffix);
        else if (typeof value === 'string' || prevInOnes) {
          output(prevInTens && ones < 10 ? String(value).slice(0, -1) + ones + suffix : String(value) + ones + suffix);
        } else if (ones < 10) {
          output(value % 10n === 0n ? String(value + BigInt(ones)) + suffix : String(value) + ones + suffix);
        } else {
          output(value % 100n === 0n ? String(value + BigInt(ones)) + suffix : String(value) + ones + suffix);
        }
        value = null;
      } else if (this.tens.has(current)) {
        const tens = this.tens.get(current)!;
        if (value === null) value = BigInt(tens);
        else if (typeof value === 'string') value = value + tens;
        else value = value % 100n === 0n ? value + BigInt(tens) : String(value) + tens;
      } else if (this.tensSuffixed.has(current)) {
        const [tens, suffix] = this.tensSuffixed.get(current)!;
        if (value === null) output(String(tens) + suffix);
        else if (typeof value === 'string') output(value + tens + suffix);
        else output(value % 100n === 0n ? String(value + BigInt(tens)) + suffix : String(value) + tens + suffix);
      } else if (this.multipliers.has(current)) {
        const multiplier = this.multipliers.get(current)!;
        if (value === null) value = multiplier;
        else if (typeof value === 'string' || value === 0n) {
          const scaled = scaledInteger(value, multiplier);
          if (scaled !== null) value = scaled;
          else {
            output(value);
            value = multiplier;
          }
        } else value = multiplyLastGroup(value, multiplier);
      } else if (this.multipliersSuffixed.has(current)) {
        const [multiplier, suffix] = this.multipliersSuffixed.get(current)!;
        if (value === null) output(String(multiplier) + suffix);
        else if (typeof value === 'string') {
          const scaled = scaledInteger(value, multiplier);
          if (scaled !== null) output(String(scaled) + suffix);
          else {
            output(value);
            output(String(multiplier) + suffix);
          }
        } else output(String(multiplyLastGroup(value, multiplier)) + suffix);
        value = null;
      } else if (this.precedingPrefixers.has(current)) {
        // apply prefix (positive, minus, etc.) if it precedes a number
        if (value !== null) output(value);
        if ((next !== null && this.words.has(next)) || nextIsNumeric) prefix = this.precedingPrefixers.get(current)!;
        else output(current);
      } else if (this.followingPrefixers.has(current)) {
        // apply prefix (dollars, cents, etc.) only after a number
        if (value !== null) {
          prefix = this.followingPrefixers.get(current)!;
          output(value);
        } else output(current);
      } else if (current === 'per' || current === 'percent') {
        // apply suffix symbols (percent -> '%')
        if (value !== null) {
          if (current === 'percent') output(String(value) + '%');
          else if (next === 'cent') {
            output(String(value) + '%');
            skip = true;
          } else {
            output(value);
            output(current);
          }
        } else output(current);
      } else {
        // "and", "double", "triple", "point"
        if ((next === null || !this.words.has(next)) && !nextIsNumeric) {
          // special handling only if the next word can be numeric
          if (value !== null) output(value);
          output(current);
        } else if (current === 'and') {
          // ignore "and" after hundreds, thousands, etc.
          if (prev === null || !this.multipliers.has(prev)) {
            if (value !== null) output(value);
            output(current);
          }
        } else if (current === 'double' || current === 'triple') {
          if (next !== null && (this.ones.has(next) || this.zeros.has(next))) {
            const repeats = current === 'double' ? 2 : 3;
            value = textOrEmpty(value) + String(this.ones.get(next) ?? 0).repeat(repeats);
            skip = true;
          } else {
            if (value !== null) output(value);
            output(current);
          }
        } else if ((next !== null && this.decimals.has(next)) || nextIsNumeric) {
          // "point"
          value = textOrEmpty(value) + '.';
        }
      }
    }
    if (value !== null) output(value);
    return out;
  }

  private preprocess(text: string): string {
    // "<number> and a half" -> "<number> point five"
    const results: string[] = [];
    const segments = text.split(pyRegex(String.raw`\band\s+a\s+half\b`));
    segments.forEach((segment, i) => {
      if (pySplit(segment).length === 0) return;
      results.push(segment);
      if (i === segments.length - 1) return;
      const lastWord = pySplit(segment).at(-1)!;
      results.push(this.decimals.has(lastWord) || this.multipliers.has(lastWord) ? 'point five' : 'and a half');
    });
    const s = results.join(' ');
    // a space at number/letter boundaries, but none before a suffix
    return s
      .replace(/([a-z])([0-9])/gu, '$1 $2')
      .replace(/([0-9])([a-z])/gu, '$1 $2')
      .replace(pyRegex(String.raw`([0-9])\s+(st|nd|rd|th|s)\b`), '$1$2');
  }

  private postprocess(s: string): string {
    // currency: "$2 and ¢7" -> "$2.07", "$0.07" -> "¢7"
    s = s.replace(pyRegex(String.raw`([€£$])([0-9]+) (?:and )?¢([0-9]{1,2})\b`), (_, currency: string, integer: string, cents: string) =>
      `${currency}${integer}.${String(Number(cents)).padStart(2, '0')}`,
    );
    s = s.replace(pyRegex(String.raw`[€£$]0[^\n]([0-9]{1,2})\b`), (_, cents: string) => `¢${Number(cents)}`);
    // "one(s)" instead of "1(s)", for readability
    return s.replace(pyRegex(String.raw`\b1(s?)\b`), 'one$1');
  }
}

/**
 * British to American spellings from a word mapping: OpenAI's english.json, shipped by Hugging
 * Face as normalizer.json.
 */
export class EnglishSpellingNormalizer {
  private readonly mapping: ReadonlyMap<string, string>;

  constructor(mapping: Readonly<Record<string, string>>) {
    this.mapping = new Map(Object.entries(mapping));
  }

  /** The text with mapped words replaced, words joined by single spaces. */
  normalize(text: string): string {
    return pySplit(text)
      .map((word) => this.mapping.get(word) ?? word)
      .join(' ');
  }
}

/** Contractions, titles and perfect tenses, in english.py's order (the order matters). */
const ENGLISH_REPLACERS: ReadonlyArray<readonly [pattern: string, replacement: string]> = [
  // common contractions
  [String.raw`\bwon't\b`, 'will not'], [String.raw`\bcan't\b`, 'can not'], [String.raw`\blet's\b`, 'let us'],
  [String.raw`\bain't\b`, 'aint'], [String.raw`\by'all\b`, 'you all'], [String.raw`\bwanna\b`, 'want to'],
  [String.raw`\bgotta\b`, 'got to'], [String.raw`\bgonna\b`, 'going to'], [String.raw`\bi'ma\b`, 'i am going to'],
  [String.raw`\bimma\b`, 'i am going to'], [String.raw`\bwoulda\b`, 'would have'], [String.raw`\bcoulda\b`, 'could have'],
  [String.raw`\bshoulda\b`, 'should have'], [String.raw`\bma'am\b`, 'madam'],
  // contractions in titles/prefixes
  [String.raw`\bmr\b`, 'mister '], [String.raw`\bmrs\b`, 'missus '], [String.raw`\bst\b`, 'saint '],
  [String.raw`\bdr\b`, 'doctor '], [String.raw`\bprof\b`, 'professor '], [String.raw`\bcapt\b`, 'captain '],
  [String.raw`\bgov\b`, 'governor '], [String.raw`\bald\b`, 'alderman '], [String.raw`\bgen\b`, 'general '],
  [String.raw`\bsen\b`, 'senator '], [String.raw`\brep\b`, 'representative '], [String.raw`\bpres\b`, 'president '],
  [String.raw`\brev\b`, 'reverend '], [String.raw`\bhon\b`, 'honorable '], [String.raw`\basst\b`, 'assistant '],
  [String.raw`\bassoc\b`, 'associate '], [String.raw`\blt\b`, 'lieutenant '], [String.raw`\bcol\b`, 'colonel '],
  [String.raw`\bjr\b`, 'junior '], [String.raw`\bsr\b`, 'senior '], [String.raw`\besq\b`, 'esquire '],
  // perfect tenses; ideally any past participle
  [String.raw`'d been\b`, ' had been'], [String.raw`'s been\b`, ' has been'], [String.raw`'d gone\b`, ' had gone'],
  [String.raw`'s gone\b`, ' has gone'], [String.raw`'d done\b`, ' had done'], [String.raw`'s got\b`, ' has got'],
  // general contractions
  [String.raw`n't\b`, ' not'], [String.raw`'re\b`, ' are'], [String.raw`'s\b`, ' is'], [String.raw`'d\b`, ' would'],
  [String.raw`'ll\b`, ' will'], [String.raw`'t\b`, ' not'], [String.raw`'ve\b`, ' have'], [String.raw`'m\b`, ' am'],
];

/**
 * Whisper's English normalizer for WER (OpenAI's `EnglishTextNormalizer`): lower case, drop
 * bracketed text and fillers (hmm, uh, um...), expand contractions and titles, numbers to digits,
 * British to American spelling, symbols and diacritics removed except around numbers.
 */
export class EnglishTextNormalizer {
  private readonly numbers = new EnglishNumberNormalizer();
  private readonly spellings: EnglishSpellingNormalizer;
  private readonly replacers: ReadonlyArray<readonly [RegExp, string]>;
  private readonly fillers = pyRegex(String.raw`\b(hmm|mm|mhm|mmm|uh|um)\b`);

  /** @param spellingMapping British→American word mapping (normalizer.json / english.json). */
  constructor(spellingMapping: Readonly<Record<string, string>>) {
    this.spellings = new EnglishSpellingNormalizer(spellingMapping);
    this.replacers = ENGLISH_REPLACERS.map(([pattern, replacement]) => [pyRegex(pattern), replacement] as const);
  }

  /** The normalized text (single spaces; leading/trailing spaces stay, as in OpenAI's code). */
  normalize(text: string): string {
    let s = text.toLowerCase();
    s = s.replace(BRACKETED, '').replace(PARENTHESIZED, '');
    s = s.replace(this.fillers, '');
    s = s.replace(pyRegex(String.raw`\s+'`), "'");
    for (const [pattern, replacement] of this.replacers) s = s.replace(pattern, replacement);
    s = s.replace(pyRegex(String.raw`(\d),(\d)`), '$1$2'); // commas between digits
    s = s.replace(/\.([^0-9]|$)/gu, ' $1'); // periods not followed by numbers
    s = removeSymbolsAndDiacritics(s, '.%$¢€£'); // keep the symbols numbers use
    s = this.numbers.normalize(s);
    s = this.spellings.normalize(s);
    // prefix/suffix symbols that are not next to a number
    s = s.replace(/[.$¢€£]([^0-9])/gu, ' $1').replace(/([^0-9])%/gu, '$1 ');
    return s.replace(WHITESPACE_RUN, ' ');
  }
}

/**
 * The normalization Whisper's evaluations use: {@link EnglishTextNormalizer} for English,
 * {@link BasicTextNormalizer} (diacritics kept) for every other language. Fits
 * `scoreCorpus`'s `normalize` option.
 */
export function whisperNormalizer(spellingMapping: Readonly<Record<string, string>>): (text: string, language: string) => string {
  const english = new EnglishTextNormalizer(spellingMapping);
  const basic = new BasicTextNormalizer();
  return (text, language) => (language === 'en' ? english.normalize(text) : basic.normalize(text));
}

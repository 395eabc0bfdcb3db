// Sentences from text files: fortune cookie databases (entries between "%" lines, attributions
// on "-- Name" lines) and prose paragraphs. Pure text in, sentences out; the file side is in
// sources.ts. Sentence boundaries come from ICU (Intl.Segmenter), which knows abbreviations and
// per-language punctuation better than a hand-written splitter would.

/** The writing system a language's sentences must be in (every letter of a sentence is). */
export type Script = 'Latin' | 'Cyrillic' | 'Greek';

/** Sentence length limits, in words (whitespace-separated tokens). */
export const MIN_SENTENCE_WORDS = 3;
export const MAX_SENTENCE_WORDS = 20;

/**
 * The prose paragraphs of a fortune database: each entry's lines without attribution lines
 * ("-- Author", "— Author"), split at blank lines, with line breaks joined by spaces. A file
 * without "%" lines is one entry, so plain prose with blank lines between paragraphs reads the same.
 */
export function fortuneParagraphs(text: string): string[] {
  const paragraphs: string[] = [];
  let current: string[] = [];
  const flush = () => {
    if (current.length > 0) paragraphs.push(current.join(' ').replace(/\s+/g, ' ').trim());
    current = [];
  };
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '%' || line === '') {
      flush();
      continue;
    }
    if (/^(--|—|―)/.test(line)) {
      flush();
      continue;
    }
    current.push(line);
  }
  flush();
  return paragraphs.filter((p) => p !== '');
}

const segmenters = new Map<string, Intl.Segmenter>();

/**
 * The translated lines of a Fish Fillets NG dialogue script: the string arguments of its
 * `dialogStr("...")` calls, Lua escapes resolved.
 */
export function filletsDialogLines(lua: string): string[] {
  const lines: string[] = [];
  for (const match of lua.matchAll(/dialogStr\(\s*"((?:[^"\\]|\\.)*)"\s*\)/g)) {
    lines.push(match[1]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? ' ' : c)));
  }
  return lines;
}

/** The sentences of a paragraph, as ICU's sentence segmentation for `language` finds them, trimmed. */
export function splitSentences(paragraph: string, language: string): string[] {
  let segmenter = segmenters.get(language);
  if (segmenter === undefined) segmenters.set(language, (segmenter = new Intl.Segmenter(language, { granularity: 'sentence' })));
  return [...segmenter.segment(paragraph)].map((s) => s.segment.trim()).filter((s) => s !== '');
}

// What a spoken sentence may contain besides letters of its script: spaces and the punctuation
// that speech synthesis reads as prosody. Everything else (digits, which espeak-ng expands in ways
// a transcript would not write; brackets; symbols of code, markup, URLs and e-mail) rejects it.
// Colons are left out too: in fortune databases they mark speakers ("A: ...") and definitions.
const punctuation = String.raw`.,;!?'"«»„“”‚‘’‹›¿¡…–—-`;
const scriptPatterns: Record<Script, RegExp> = {
  Latin: new RegExp(`^[\\p{Script=Latin}\\p{M} ${escapeClass(punctuation)}]+$`, 'u'),
  Cyrillic: new RegExp(`^[\\p{Script=Cyrillic}\\p{M} ${escapeClass(punctuation)}]+$`, 'u'),
  Greek: new RegExp(`^[\\p{Script=Greek}\\p{M} ${escapeClass(punctuation)};·]+$`, 'u'),
};

function escapeClass(chars: string): string {
  return chars.replace(/[\\\]\[^-]/g, (c) => `\\${c}`);
}

/** Opening quotes and inverted marks a sentence may start with before its capital letter. */
const sentenceStart = /^[«„“"‚‘'¿¡‹]*\p{Lu}/u;
/** A sentence ends with . ! ? or … (Greek ; too), optionally followed by closing quotes. */
const sentenceEnd = /[.!?…;][»“”"’'›]*$/u;

/**
 * The sentence as it will be spoken and transcribed, or undefined when it is not a natural
 * sentence of `script`: a leading dialogue dash is dropped, spaces are collapsed and
 * spaces before punctuation removed; it must
 * start with a capital, end with sentence punctuation, have {@link MIN_SENTENCE_WORDS} to
 * {@link MAX_SENTENCE_WORDS} words, contain only letters of `script` and ordinary punctuation
 * (no digits, URLs, code or control characters), no word of more than 30 letters and no accent
 * typed as an apostrophe.
 */
export function cleanSentence(raw: string, script: Script): string | undefined {
  const sentence = raw
    .replace(/^[-–—]\s+/, '')
    .replace(/\s+/g, ' ')
    .replace(/ ([,.;!?…])/g, '$1')
    .trim();
  if (!scriptPatterns[script].test(sentence)) return undefined;
  if (!sentenceStart.test(sentence) || !sentenceEnd.test(sentence)) return undefined;
  if (script !== 'Greek' && sentence.endsWith(';')) return undefined;
  const words = sentence.split(' ');
  if (words.length < MIN_SENTENCE_WORDS || words.length > MAX_SENTENCE_WORDS) return undefined;
  // Words must contain letters (not a lone dash or ellipsis) and be of a plausible length.
  const letterWords = words.filter((w) => /\p{L}/u.test(w));
  if (letterWords.length < MIN_SENTENCE_WORDS || words.some((w) => w.length > 30)) return undefined;
  // Repeated punctuation ("?!?", "...") is chat style, not read text.
  if (/[.!?…]{2,}|,,|--/.test(sentence)) return undefined;
  // A vowel and a straight apostrophe ending a word is an accent typed in ASCII (Italian
  // fortunes write "piu'" and "E'" for "più" and "È"), not what a transcript would say.
  if (/[aeiouAEIOU]'(?=[\s.,;!?…"»]|$)/u.test(sentence)) return undefined;
  return sentence;
}

/**
 * What two sentences share when they would be the same utterance: lower-cased letters and
 * single spaces. Sentences with equal keys are duplicates (and may not go to two splits).
 */
export function sentenceKey(sentence: string): string {
  return sentence
    .normalize('NFC')
    .toLowerCase()
    .replace(/[^\p{L}\p{M}]+/gu, ' ')
    .trim();
}

/**
 * The distinct usable sentences of `texts` (fortune databases or prose) in order of first
 * appearance, deduplicated by {@link sentenceKey}.
 */
export function extractSentences(texts: Iterable<string>, language: string, script: Script): string[] {
  const seen = new Set<string>();
  const sentences: string[] = [];
  for (const text of texts) {
    for (const paragraph of fortuneParagraphs(text)) {
      for (const raw of splitSentences(paragraph, language)) {
        const sentence = cleanSentence(raw, script);
        if (sentence === undefined) continue;
        const key = sentenceKey(sentence);
        if (seen.has(key)) continue;
        seen.add(key);
        sentences.push(sentence);
      }
    }
  }
  return sentences;
}

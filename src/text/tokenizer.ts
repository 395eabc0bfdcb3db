import { Tiktoken } from 'js-tiktoken/lite';
import { TokenizerError } from '../errors.js';
import { WHISPER_LANGUAGES, toLanguageCode } from './languages.js';

// Byte-pair encoding is js-tiktoken's (pure JS, takes custom ranks); this module adds what
// OpenAI's whisper/tokenizer.py adds on top of tiktoken: the special tokens, SOT sequences,
// timestamp handling and the suppression lists.

/**
 * Whitespace as tiktoken's Rust regex engine reads `\s`: the Unicode White_Space property.
 * JavaScript's `\s` differs (it adds U+FEFF and lacks U+0085), so the pattern spells it out.
 */
const WHITE_SPACE = String.raw`\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000`;

/**
 * The GPT-2 pre-tokenizer pattern Whisper passes to tiktoken
 * (`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`),
 * with `\s`/`\S` written as explicit White_Space classes for JavaScript's `u` mode.
 */
export const GPT2_PRETOKENIZER_PATTERN =
  String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^${WHITE_SPACE}\p{L}\p{N}]+` +
  String.raw`|[${WHITE_SPACE}]+(?![^${WHITE_SPACE}])|[${WHITE_SPACE}]+`;

/** Number of timestamp tokens, <|0.00|> to <|30.00|> in 0.02 s steps. */
export const TIMESTAMP_TOKEN_COUNT = 1501;
/** Seconds between consecutive timestamp tokens. */
export const TIMESTAMP_STEP_SECONDS = 0.02;
/** Special tokens other than the language and timestamp tokens: eot, sot and the six after the languages. */
const FIXED_SPECIAL_COUNT = 8;
/** OpenAI's rule (model.py `is_multilingual`): vocabularies this large belong to multilingual models. */
const MULTILINGUAL_MIN_VOCAB = 51865;

/**
 * The tiktoken rank file a model with `vocabSize` tokens uses, by OpenAI's rule: multilingual
 * vocabularies (51865 tokens and more) `multilingual.tiktoken`, English-only ones `gpt2.tiktoken`.
 */
export function tiktokenFileFor(vocabSize: number): 'multilingual.tiktoken' | 'gpt2.tiktoken' {
  return vocabSize >= MULTILINGUAL_MIN_VOCAB ? 'multilingual.tiktoken' : 'gpt2.tiktoken';
}

/** What Whisper is asked to do after the language token. */
export type WhisperTask = 'transcribe' | 'translate';

/** How `encode` treats text that spells a special token, such as "<|endoftext|>". */
export type SpecialTokenText =
  /** Throw a TokenizerError (tiktoken's default). */
  | 'error'
  /** Encode it as the special token (tiktoken's `allowed_special="all"`, HF's added tokens). */
  | 'parse'
  /** Encode it as ordinary text (tiktoken's `disallowed_special=()`). */
  | 'plain';

/** Options of {@link WhisperTokenizer.fromTiktoken}. */
export interface WhisperTokenizerOptions {
  /**
   * The model's vocabulary size (HF config `vocab_size`, ggml `n_vocab`); the number of language
   * tokens is derived from it: 51865 → 99 languages, 51866 (large-v3) → 100, 51864 (.en) → 99.
   */
  vocabSize?: number;
  /** Number of language tokens, when no vocabSize is given (default 99). */
  numLanguages?: number;
  /** Name of the tiktoken file for error messages. */
  source?: string;
}

/** Options of {@link WhisperTokenizer.sotSequence}. */
export interface SotSequenceOptions {
  /**
   * Language code or English name; null leaves the language token out (language detection).
   * Multilingual default "en"; English-only models accept only "en" and never emit the token.
   */
  language?: string | null;
  /** Task token; null leaves it out. Multilingual default "transcribe". */
  task?: WhisperTask | null;
  /** false appends <|notimestamps|>. Default true, as OpenAI's DecodingOptions. */
  timestamps?: boolean;
}

/**
 * Reads a tiktoken rank file (one `base64-token rank` pair a line) into the base64 tokens by rank.
 * Ranks must be 0..n-1, each once, as in Whisper's gpt2.tiktoken and multilingual.tiktoken.
 */
export function parseTiktokenRanks(text: string, source = 'tiktoken file'): string[] {
  const tokens: string[] = [];
  const lines = text.split('\n');
  const seen = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const fields = line.split(/\s+/);
    const [token, rankText] = fields;
    if (fields.length !== 2 || token === undefined || rankText === undefined) {
      throw new TokenizerError(`${source} line ${i + 1}: expected "<base64 token> <rank>", got "${line.slice(0, 80)}"`);
    }
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(token) || (token.length % 4 !== 0 && !/^=+$/.test(token))) {
      throw new TokenizerError(`${source} line ${i + 1}: "${token.slice(0, 40)}" is not base64`);
    }
    if (!/^\d+$/.test(rankText)) {
      throw new TokenizerError(`${source} line ${i + 1}: rank "${rankText}" is not a non-negative integer`);
    }
    const rank = Number(rankText);
    if (tokens[rank] !== undefined) throw new TokenizerError(`${source} line ${i + 1}: rank ${rank} appears twice`);
    if (seen.has(token)) throw new TokenizerError(`${source} line ${i + 1}: token ${token} appears twice`);
    seen.add(token);
    tokens[rank] = token;
  }
  for (let rank = 0; rank < tokens.length; rank++) {
    if (tokens[rank] === undefined) throw new TokenizerError(`${source}: rank ${rank} is missing (ranks must be 0..${tokens.length - 1})`);
  }
  if (tokens.length === 0) throw new TokenizerError(`${source}: no tokens`);
  return tokens;
}

/** The text of timestamp token i, as OpenAI writes it: f"<|{i * 0.02:.2f}|>". */
function timestampText(i: number): string {
  return `<|${(i / 50).toFixed(2)}|>`;
}

/**
 * Whisper's tokenizer: byte-level BPE over tiktoken ranks plus Whisper's special tokens, in
 * the order and with the ids of OpenAI's whisper/tokenizer.py (`get_encoding`, `Tokenizer`).
 * Works in browsers and Node alike: it is built from the tiktoken file's text.
 */
export class WhisperTokenizer {
  /** Number of ordinary (BPE) tokens; the first special token has this id. */
  readonly bpeVocabSize: number;
  /** Number of language tokens. */
  readonly numLanguages: number;
  /** Total vocabulary: BPE tokens plus all special tokens. */
  readonly vocabSize: number;
  /** Whether this is a multilingual vocabulary (false for the ".en" models' gpt2 vocabulary). */
  readonly multilingual: boolean;
  /** Every special token's text and id, in id order. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** Language codes, in the order of their tokens. */
  readonly languageCodes: readonly string[];

  /** <|endoftext|> */
  readonly eot: number;
  /** <|startoftranscript|> */
  readonly sot: number;
  /** <|translate|> */
  readonly translate: number;
  /** <|transcribe|> */
  readonly transcribe: number;
  /** <|startoflm|> */
  readonly sotLm: number;
  /** <|startofprev|> */
  readonly sotPrev: number;
  /** <|nospeech|> (Hugging Face's files call it <|nocaptions|>) */
  readonly noSpeech: number;
  /** <|notimestamps|> */
  readonly noTimestamps: number;
  /** <|0.00|>, the first timestamp token; every id from here on is a timestamp. */
  readonly timestampBegin: number;

  private readonly bpe: Tiktoken;
  private readonly specialText: readonly string[];
  private nonSpeech: readonly number[] | undefined;

  private constructor(base64ByRank: readonly string[], numLanguages: number) {
    this.bpeVocabSize = base64ByRank.length;
    this.numLanguages = numLanguages;
    this.languageCodes = WHISPER_LANGUAGES.slice(0, numLanguages).map(([code]) => code);
    const specialText = [
      '<|endoftext|>',
      '<|startoftranscript|>',
      ...this.languageCodes.map((code) => `<|${code}|>`),
      '<|translate|>',
      '<|transcribe|>',
      '<|startoflm|>',
      '<|startofprev|>',
      '<|nospeech|>',
      '<|notimestamps|>',
      ...Array.from({ length: TIMESTAMP_TOKEN_COUNT }, (_, i) => timestampText(i)),
    ];
    this.specialText = specialText;
    const specialTokens = new Map(specialText.map((text, i) => [text, this.bpeVocabSize + i]));
    this.specialTokens = specialTokens;
    this.vocabSize = this.bpeVocabSize + specialText.length;
    this.multilingual = this.vocabSize >= MULTILINGUAL_MIN_VOCAB;

    const id = (text: string): number => specialTokens.get(text)!;
    this.eot = id('<|endoftext|>');
    this.sot = id('<|startoftranscript|>');
    this.translate = id('<|translate|>');
    this.transcribe = id('<|transcribe|>');
    this.sotLm = id('<|startoflm|>');
    this.sotPrev = id('<|startofprev|>');
    this.noSpeech = id('<|nospeech|>');
    this.noTimestamps = id('<|notimestamps|>');
    this.timestampBegin = id('<|0.00|>');

    // js-tiktoken reads ranks as "<tag> <first rank> <base64>..." lines. A token of no bytes
    // (rank 50256 of multilingual.tiktoken) can never be produced by a merge and decodes to
    // nothing, so it is left out of the table; decode() still accepts its id.
    const rankLines: string[] = [];
    base64ByRank.forEach((token, rank) => {
      if (!/^=*$/.test(token)) rankLines.push(`! ${rank} ${token}`);
    });
    this.bpe = new Tiktoken({
      pat_str: GPT2_PRETOKENIZER_PATTERN,
      special_tokens: Object.fromEntries(specialTokens),
      bpe_ranks: rankLines.join('\n'),
    });
  }

  /**
   * Builds the tokenizer from the text of a tiktoken rank file: multilingual.tiktoken for
   * multilingual models, gpt2.tiktoken for the ".en" models.
   */
  static fromTiktoken(tiktokenText: string, options: WhisperTokenizerOptions = {}): WhisperTokenizer {
    const source = options.source ?? 'tiktoken file';
    const ranks = parseTiktokenRanks(tiktokenText, source);
    let numLanguages = options.numLanguages ?? 99;
    if (options.vocabSize !== undefined) {
      const derived = options.vocabSize - ranks.length - FIXED_SPECIAL_COUNT - TIMESTAMP_TOKEN_COUNT;
      if (!Number.isInteger(derived) || derived < 0 || derived > WHISPER_LANGUAGES.length) {
        throw new TokenizerError(
          `vocabSize ${options.vocabSize} does not fit ${source}: ${ranks.length} BPE tokens + ` +
            `${FIXED_SPECIAL_COUNT + TIMESTAMP_TOKEN_COUNT} special tokens leave ${derived} language tokens ` +
            `(expected 0..${WHISPER_LANGUAGES.length})`,
        );
      }
      if (options.numLanguages !== undefined && options.numLanguages !== derived) {
        throw new TokenizerError(`numLanguages ${options.numLanguages} contradicts vocabSize ${options.vocabSize}, which implies ${derived}`);
      }
      numLanguages = derived;
    }
    if (!Number.isInteger(numLanguages) || numLanguages < 0 || numLanguages > WHISPER_LANGUAGES.length) {
      throw new TokenizerError(`numLanguages must be an integer in 0..${WHISPER_LANGUAGES.length}, got ${numLanguages}`);
    }
    return new WhisperTokenizer(ranks, numLanguages);
  }

  /**
   * Token ids of `text`. Special-token text ("<|en|>") throws by default, as in tiktoken;
   * `specials: 'parse'` turns it into the special token, `'plain'` encodes it as ordinary text.
   */
  encode(text: string, options: { specials?: SpecialTokenText } = {}): number[] {
    const specials = options.specials ?? 'error';
    if (specials === 'error') {
      for (const match of text.matchAll(/<\|[^|]{1,32}\|>/g)) {
        if (this.specialTokens.has(match[0])) {
          throw new TokenizerError(
            `text contains the special token ${match[0]} at offset ${match.index}; pass specials: 'parse' or 'plain' to encode it`,
          );
        }
      }
    }
    return this.bpe.encode(text, specials === 'parse' ? 'all' : [], []);
  }

  /**
   * Text of `ids`. As OpenAI's `Tokenizer.decode`, timestamp tokens are dropped and other special
   * tokens are written out ("<|en|>") unless `skipSpecialTokens`. Invalid UTF-8 from a cut
   * multi-byte character becomes U+FFFD, as tiktoken's `errors="replace"`.
   */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    this.checkIds(ids);
    const limit = options.skipSpecialTokens ? this.eot : this.timestampBegin;
    return this.bpe.decode(ids.filter((id) => id < limit));
  }

  /** Text of `ids` with every token written out, timestamps as "<|1.08|>" (OpenAI's `decode_with_timestamps`). */
  decodeWithTimestamps(ids: readonly number[]): string {
    this.checkIds(ids);
    return this.bpe.decode([...ids]);
  }

  /** Id of a special token by its text, e.g. "<|transcribe|>" or "<|1.00|>". */
  specialToken(text: string): number {
    const id = this.specialTokens.get(text);
    if (id === undefined) throw new TokenizerError(`no special token ${text} in this vocabulary`);
    return id;
  }

  /** Text of a special token id, e.g. "<|fr|>"; undefined for ordinary tokens. */
  specialTokenText(id: number): string | undefined {
    return this.specialText[id - this.bpeVocabSize];
  }

  /** The token of a language given by code ("de") or English name ("german", "mandarin"). */
  languageToken(language: string): number {
    const code = toLanguageCode(language);
    const index = code === undefined ? -1 : this.languageCodes.indexOf(code);
    if (index < 0) {
      throw new TokenizerError(`language "${language}" has no token in this vocabulary of ${this.numLanguages} languages`);
    }
    return this.sot + 1 + index;
  }

  /** The language code of a language token; undefined for any other id. */
  languageOf(id: number): string | undefined {
    return id > this.sot && id <= this.sot + this.numLanguages ? this.languageCodes[id - this.sot - 1] : undefined;
  }

  /** All language token ids, in order. */
  get languageTokens(): number[] {
    return this.languageCodes.map((_, i) => this.sot + 1 + i);
  }

  /** Whether `id` is a timestamp token. */
  isTimestamp(id: number): boolean {
    return id >= this.timestampBegin && id < this.vocabSize;
  }

  /** Seconds of a timestamp token (0.00 to 30.00). */
  timestampSeconds(id: number): number {
    if (!this.isTimestamp(id)) throw new TokenizerError(`token ${id} is not a timestamp token (${this.timestampBegin}..${this.vocabSize - 1})`);
    return (id - this.timestampBegin) * TIMESTAMP_STEP_SECONDS;
  }

  /**
   * The tokens the decoder starts from: <|startoftranscript|>, then language and task for
   * multilingual models, then <|notimestamps|> when timestamps are off (OpenAI's `sot_sequence`
   * and `sot_sequence_including_notimestamps`).
   */
  sotSequence(options: SotSequenceOptions = {}): number[] {
    const sequence = [this.sot];
    if (this.multilingual) {
      const language = options.language === undefined ? 'en' : options.language;
      const task = options.task === undefined ? 'transcribe' : options.task;
      if (language !== null) sequence.push(this.languageToken(language));
      if (task !== null) sequence.push(task === 'transcribe' ? this.transcribe : this.translate);
    } else {
      if (options.language != null && toLanguageCode(options.language) !== 'en') {
        throw new TokenizerError(`English-only vocabulary cannot be asked for language "${options.language}"`);
      }
      if (options.task === 'translate') throw new TokenizerError('English-only vocabulary cannot translate');
    }
    if (options.timestamps === false) sequence.push(this.noTimestamps);
    return sequence;
  }

  /**
   * Tokens that would start speaker tags or non-speech annotations ("♪♪♪", "( SPEAKING FOREIGN
   * LANGUAGE )", "[DAVID]"), as OpenAI's `non_speech_tokens`: basic punctuation stays allowed.
   */
  get nonSpeechTokens(): readonly number[] {
    this.nonSpeech ??= this.computeNonSpeechTokens();
    return this.nonSpeech;
  }

  private computeNonSpeechTokens(): readonly number[] {
    const symbols = [
      ...'"#()*+/:;<=>@[\\]^_`{|}~「」『』',
      ...'<< >> <<< >>> -- --- -( -[ (\' (" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪'.split(' '),
    ];
    // U+2640..U+267F symbols share their first two UTF-8 bytes, so suppressing the first token
    // of a multi-token spelling is safe for them.
    const miscellaneous = [...'♩♪♫♬♭♮♯'];
    // Hyphens and single quotes stay allowed between words, not at the start of one.
    const result = new Set([this.encode(' -')[0]!, this.encode(" '")[0]!]);
    for (const symbol of [...symbols, ...miscellaneous]) {
      for (const tokens of [this.encode(symbol), this.encode(' ' + symbol)]) {
        if (tokens.length === 1 || miscellaneous.includes(symbol)) result.add(tokens[0]!);
      }
    }
    return [...result].sort((a, b) => a - b);
  }

  /**
   * The ids to suppress at every decoding step, as OpenAI's `DecodingTask._get_suppress_tokens`:
   * the given ids, with -1 standing for {@link nonSpeechTokens} (default `[-1]`), plus
   * transcribe, translate, sot, sot_prev, sot_lm and no_speech; sorted and unique.
   */
  suppressTokens(requested: readonly number[] = [-1]): number[] {
    this.checkIds(requested.filter((id) => id !== -1));
    const ids = requested.filter((id) => id >= 0);
    if (requested.includes(-1)) ids.push(...this.nonSpeechTokens);
    ids.push(this.transcribe, this.translate, this.sot, this.sotPrev, this.sotLm, this.noSpeech);
    return [...new Set(ids)].sort((a, b) => a - b);
  }

  /** Ids suppressed at the first sampled position: a lone space and <|endoftext|> (OpenAI's SuppressBlank). */
  get beginSuppressTokens(): number[] {
    return [...this.encode(' '), this.eot];
  }

  private checkIds(ids: readonly number[]): void {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new TokenizerError(`token id ${id} is outside this vocabulary (0..${this.vocabSize - 1})`);
      }
    }
  }
}

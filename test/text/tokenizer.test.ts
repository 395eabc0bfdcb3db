import { readFileSync } from 'node:fs';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadSuppressTokenConfig, loadWhisperTokenizer } from '../../src/io/text-assets.js';
import { TokenizerError } from '../../src/errors.js';
import { parseSuppressTokenConfig } from '../../src/text/generation-config.js';
import { WhisperTokenizer, parseTiktokenRanks } from '../../src/text/tokenizer.js';
import { HF_TINY, WHISPER_ASSETS, readFixture, readJson, readSpeechSamples } from './assets.js';

// Oracles: Hugging Face's tokenizer.json run by @huggingface/tokenizers (an independent BPE over
// merges, not ranks), OpenAI's Rust tiktoken via fixtures/tiktoken-golden.json, the token
// tables of whisper.cpp's ggml files, and HF's generation_config.json.

interface AddedToken {
  id: number;
  content: string;
}
interface TiktokenGolden {
  encodings: { text: string; multilingual: number[]; gpt2: number[] }[];
  specialText: { text: string; parsed: number[]; plain: number[] }[];
  nonSpeechTokens: { multilingual: number[]; gpt2: number[] };
}

/** Strings beyond the transcripts: scripts, emoji, numbers, whitespace runs, special-token text. */
const TRICKY = [
  '👍🏽 I ❤️ NY 🇯🇵 👨‍👩‍👧‍👦 family 🤖🤖🤖',
  '我们在北京。東京タワー、한국어 문장입니다. ภาษาไทย हिन्दी العربية עברית Ελληνικά',
  '1234567890 3.14159 -42 1,000,000 ٣٤٥ ２０２４年 ½ ²',
  'a  b   c\t\td\n\n\ne   ',
  '   leading spaces',
  ' single leading space',
  '\n',
  'x \u00a0 y \u3000z',
  "It's, I'm, you've, we'll, they'd, DON'T, 'quoted', rock'n'roll",
  '<|endoftext|>Hello<|en|><|transcribe|> <|0.00|> text <|30.00|><|startofprev|>',
  '<|xx|> <|endoftext| <|0.01|> <|startoflm|>',
  'e\u0301 café naïve Zoë',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa !!!!!!!!!!!!! ---- ....',
  'Mr. Quilter’s 1st (of 2) — “quoted” ‘text’ … ¿Qué? ¡Sí! [MUSIC] ♪♪',
  '',
];

let multilingual: WhisperTokenizer;
let gpt2: WhisperTokenizer;
let hf: HfTokenizer;
let added: AddedToken[];

beforeAll(async () => {
  multilingual = await loadWhisperTokenizer(`${WHISPER_ASSETS}multilingual.tiktoken`, { vocabSize: 51865 });
  gpt2 = await loadWhisperTokenizer(`${WHISPER_ASSETS}gpt2.tiktoken`, { vocabSize: 51864 });
  const tokenizerJson = readJson<{ added_tokens: AddedToken[] }>(`${HF_TINY}tokenizer.json`);
  added = tokenizerJson.added_tokens;
  hf = new HfTokenizer(tokenizerJson, readJson(`${HF_TINY}tokenizer_config.json`));
});

/** Hugging Face's file names <|nospeech|> by its older name. */
const hfName = (text: string): string => (text === '<|nospeech|>' ? '<|nocaptions|>' : text);

describe('special tokens', () => {
  it('have the ids of every added token in tokenizer.json (1608 = eot, sot, 99 languages, 6 more, 1501 timestamps)', () => {
    expect(multilingual.specialTokens.size).toBe(added.length);
    expect(added.length).toBe(1608);
    const hfIds = new Map(added.map((t) => [t.content, t.id]));
    for (const [text, id] of multilingual.specialTokens) expect([text, hfIds.get(hfName(text))]).toEqual([text, id]);
  });

  it('match whisper-tiny: eot 50257, sot 50258, notimestamps 50363, timestamps from 50364, vocab 51865', () => {
    expect([multilingual.eot, multilingual.sot, multilingual.noTimestamps, multilingual.timestampBegin]).toEqual([50257, 50258, 50363, 50364]);
    expect([multilingual.vocabSize, multilingual.numLanguages, multilingual.multilingual]).toEqual([51865, 99, true]);
    expect(multilingual.specialTokenText(51864)).toBe('<|30.00|>');
    expect(multilingual.specialTokenText(100)).toBeUndefined();
  });

  it('derive the language count from the vocabulary size: large-v3 (51866) adds <|yue|> and shifts the rest by one', () => {
    const text = readFileSync(`${WHISPER_ASSETS}multilingual.tiktoken`, 'utf8');
    const v3 = WhisperTokenizer.fromTiktoken(text, { vocabSize: 51866 });
    expect(v3.numLanguages).toBe(100);
    expect(v3.languageToken('yue')).toBe(50358);
    expect(v3.languageToken('cantonese')).toBe(50358);
    expect([v3.translate, v3.transcribe, v3.noTimestamps, v3.timestampBegin, v3.vocabSize]).toEqual([50359, 50360, 50364, 50365, 51866]);
    expect(() => multilingual.languageToken('yue')).toThrow(TokenizerError);
    expect(() => WhisperTokenizer.fromTiktoken(text, { vocabSize: 51000 })).toThrow(/vocabSize 51000 does not fit/);
    expect(() => WhisperTokenizer.fromTiktoken(text, { vocabSize: 51865, numLanguages: 100 })).toThrow(/contradicts/);
  });

  it('English-only (gpt2.tiktoken, .en models): eot 50256, notimestamps 50362, vocab 51864', () => {
    expect([gpt2.eot, gpt2.sot, gpt2.transcribe, gpt2.noTimestamps, gpt2.timestampBegin]).toEqual([50256, 50257, 50358, 50362, 50363]);
    expect([gpt2.vocabSize, gpt2.multilingual]).toEqual([51864, false]);
  });

  it('language tokens agree with generation_config.json lang_to_id and task tokens with task_to_id', () => {
    const config = readJson<{ lang_to_id: Record<string, number>; task_to_id: Record<string, number> }>(`${HF_TINY}generation_config.json`);
    expect(Object.keys(config.lang_to_id)).toHaveLength(99);
    for (const [text, id] of Object.entries(config.lang_to_id)) {
      expect(multilingual.languageToken(text.slice(2, -2))).toBe(id);
      expect(multilingual.languageOf(id)).toBe(text.slice(2, -2));
    }
    expect({ transcribe: multilingual.transcribe, translate: multilingual.translate }).toEqual(config.task_to_id);
    expect(multilingual.languageOf(multilingual.sot)).toBeUndefined();
    expect(multilingual.languageOf(multilingual.translate)).toBeUndefined();
    expect(multilingual.languageToken('Mandarin')).toBe(multilingual.languageToken('zh'));
    expect(() => multilingual.languageToken('klingon')).toThrow(/"klingon" has no token/);
  });
});

describe('encode and decode', () => {
  it('equal tokenizer.json (HF tokenizers.js) on every transcript of the 10 languages and tricky strings, and round-trip', () => {
    const samples = readSpeechSamples();
    expect(new Set(samples.map((s) => s.language)).size).toBe(10);
    const corpus = [...samples.map((s) => s.text), ...TRICKY];
    for (const text of corpus) {
      const ids = multilingual.encode(text, { specials: 'parse' });
      expect({ text, ids }).toEqual({ text, ids: hf.encode(text, { add_special_tokens: false }).ids });
      if (ids.length > 0) {
        const hfText = hf.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
        expect(multilingual.decodeWithTimestamps(ids)).toBe(hfText);
      }
      expect(multilingual.decodeWithTimestamps(ids)).toBe(text);
    }
  });

  it('equal OpenAI tiktoken for both vocabularies, also where JavaScript whitespace differs (U+0085, U+FEFF)', () => {
    const golden = readFixture<TiktokenGolden>('tiktoken-golden.json');
    for (const { text, multilingual: m, gpt2: g } of golden.encodings) {
      expect({ text, ids: multilingual.encode(text) }).toEqual({ text, ids: m });
      expect({ text, ids: gpt2.encode(text) }).toEqual({ text, ids: g });
      expect(gpt2.decode(g)).toBe(text);
    }
    for (const { text, parsed, plain } of golden.specialText) {
      expect(multilingual.encode(text, { specials: 'parse' })).toEqual(parsed);
      expect(multilingual.encode(text, { specials: 'plain' })).toEqual(plain);
    }
  });

  it('throw a TokenizerError on special-token text unless asked to parse it or take it as text', () => {
    expect(() => multilingual.encode('hi <|en|> there')).toThrow(/special token <\|en\|> at offset 3/);
    expect(() => multilingual.encode('hi <|en|> there')).toThrow(TokenizerError);
    expect(multilingual.encode('<|xx|> <|endoftext|')).toEqual(hf.encode('<|xx|> <|endoftext|', { add_special_tokens: false }).ids);
  });

  it('decode like OpenAI: timestamps dropped, other specials written; decodeWithTimestamps writes <|1.08|>', () => {
    const text = multilingual.encode(' Hello world.');
    const ids = [...multilingual.sotSequence({ language: 'en' }), multilingual.timestampBegin, ...text, multilingual.timestampBegin + 54, multilingual.eot];
    expect(multilingual.decode(ids)).toBe('<|startoftranscript|><|en|><|transcribe|> Hello world.<|endoftext|>');
    expect(multilingual.decode(ids, { skipSpecialTokens: true })).toBe(' Hello world.');
    expect(multilingual.decodeWithTimestamps(ids)).toBe('<|startoftranscript|><|en|><|transcribe|><|0.00|> Hello world.<|1.08|><|endoftext|>');
    expect(multilingual.decodeWithTimestamps(ids)).toBe(hf.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }));
    const noTimestamps = ids.filter((id) => !multilingual.isTimestamp(id));
    expect(multilingual.decode(noTimestamps, { skipSpecialTokens: true })).toBe(
      hf.decode(noTimestamps, { skip_special_tokens: true, clean_up_tokenization_spaces: false }),
    );
    expect(multilingual.timestampSeconds(multilingual.timestampBegin + 54)).toBeCloseTo(1.08, 12);
    expect(() => multilingual.timestampSeconds(multilingual.eot)).toThrow(TokenizerError);
  });

  it('decode a cut multi-byte character to U+FFFD and reject ids outside the vocabulary', () => {
    const ids = multilingual.encode('𝄞');
    expect(ids.length).toBe(3); // U+1D11E is 4 UTF-8 bytes in 3 tokens of this vocabulary
    expect(multilingual.decode(ids.slice(0, 1))).toBe('\ufffd');
    expect(multilingual.decode(ids.slice(0, 2))).toBe('\ufffd');
    expect(multilingual.decode(ids)).toBe('𝄞');
    expect(() => multilingual.decode([51865])).toThrow(/token id 51865 is outside this vocabulary \(0\.\.51864\)/);
    expect(() => multilingual.decode([1.5])).toThrow(TokenizerError);
    expect(() => gpt2.decode([-1])).toThrow(TokenizerError);
  });

  it('decode every BPE id to the bytes of whisper.cpp ggml vocabularies (tiny: multilingual, tiny.en: gpt2)', () => {
    for (const [file, tokenizer] of [['for-tests-ggml-tiny.bin', multilingual], ['for-tests-ggml-tiny.en.bin', gpt2]] as const) {
      const vocab = readGgmlVocabulary(`${WHISPER_ASSETS}ggml-headers/${file}`);
      expect(vocab.length).toBe(50257);
      const utf8 = new TextDecoder();
      const mismatches = vocab.filter((bytes, id) => tokenizer.decode([id]) !== utf8.decode(bytes)).length;
      expect(mismatches).toBe(0);
    }
  });
});

describe('decoder prompts and suppression', () => {
  it('build OpenAI sot sequences', () => {
    expect(multilingual.sotSequence()).toEqual([50258, 50259, 50359]);
    expect(multilingual.sotSequence({ language: 'German', task: 'translate', timestamps: false })).toEqual([50258, 50261, 50358, 50363]);
    expect(multilingual.sotSequence({ language: null, task: null })).toEqual([50258]);
    expect(gpt2.sotSequence()).toEqual([50257]);
    expect(gpt2.sotSequence({ language: 'en', timestamps: false })).toEqual([50257, 50362]);
    expect(() => gpt2.sotSequence({ language: 'fr' })).toThrow(/English-only/);
    expect(() => gpt2.sotSequence({ task: 'translate' })).toThrow(/cannot translate/);
  });

  it('suppress what generation_config.json suppresses: non-speech tokens + task/sot/prev/lm/nospeech, then " " and eot at the start', async () => {
    const config = await loadSuppressTokenConfig(`${HF_TINY}generation_config.json`, { vocabSize: multilingual.vocabSize });
    expect(multilingual.suppressTokens()).toEqual(config.suppressTokens);
    expect(multilingual.beginSuppressTokens).toEqual(config.beginSuppressTokens);
    expect(multilingual.suppressTokens([])).toEqual([50258, 50358, 50359, 50360, 50361, 50362]);
    expect(multilingual.suppressTokens([5, 5, 1])).toEqual([1, 5, 50258, 50358, 50359, 50360, 50361, 50362]);
  });

  it('list the non-speech tokens OpenAI computes with tiktoken, for both vocabularies', () => {
    const golden = readFixture<TiktokenGolden>('tiktoken-golden.json');
    expect(multilingual.nonSpeechTokens).toEqual(golden.nonSpeechTokens.multilingual);
    expect(gpt2.nonSpeechTokens).toEqual(golden.nonSpeechTokens.gpt2);
  });

  it('reject malformed suppress lists, naming the file and field', () => {
    expect(() => parseSuppressTokenConfig({ suppress_tokens: [1, 'x'] }, { source: 'gen.json' })).toThrow(/gen\.json: "suppress_tokens"\[1\] is "x"/);
    expect(() => parseSuppressTokenConfig({ begin_suppress_tokens: [220, 60000] }, { vocabSize: 51865 })).toThrow(/below the vocabulary size 51865/);
    expect(() => parseSuppressTokenConfig([])).toThrow(/expected a JSON object/);
    expect(parseSuppressTokenConfig({ max_length: 448 })).toEqual({});
  });
});

describe('tiktoken file parsing', () => {
  it('names the file and line of a malformed entry', () => {
    expect(() => parseTiktokenRanks('IQ== 0\nIg==\n', 'bad.tiktoken')).toThrow(/bad\.tiktoken line 2: expected "<base64 token> <rank>"/);
    expect(() => parseTiktokenRanks('IQ== 0\n!!! 1\n', 'bad.tiktoken')).toThrow(/line 2: "!!!" is not base64/);
    expect(() => parseTiktokenRanks('IQ== 0\nIg== 0\n', 'bad.tiktoken')).toThrow(/line 2: rank 0 appears twice/);
    expect(() => parseTiktokenRanks('IQ== 0\nIg== 2\n', 'bad.tiktoken')).toThrow(/rank 1 is missing/);
    expect(() => parseTiktokenRanks('IQ== x\n', 'bad.tiktoken')).toThrow(/rank "x" is not a non-negative integer/);
    expect(() => parseTiktokenRanks('\n', 'empty.tiktoken')).toThrow(/empty\.tiktoken: no tokens/);
  });
});

/** The token table of a whisper.cpp ggml file: after magic, 11 hparams and the mel filters, n then n × (length, bytes). */
function readGgmlVocabulary(path: string): Uint8Array[] {
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 4 + 11 * 4;
  const [nMel, nFft] = [view.getInt32(offset, true), view.getInt32(offset + 4, true)];
  offset += 8 + 4 * nMel * nFft;
  const count = view.getInt32(offset, true);
  offset += 4;
  const tokens: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const length = view.getInt32(offset, true);
    tokens.push(bytes.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return tokens;
}

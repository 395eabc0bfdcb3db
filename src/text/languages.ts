/**
 * Whisper's languages, in the order of their tokens (OpenAI whisper/tokenizer.py `LANGUAGES`):
 * language token i is `<|startoftranscript|> + 1 + i`. Models with 99 languages stop before
 * `yue`; large-v3 and later have all 100.
 */
export const WHISPER_LANGUAGES: ReadonlyArray<readonly [code: string, name: string]> = [
  ['en', 'english'], ['zh', 'chinese'], ['de', 'german'], ['es', 'spanish'], ['ru', 'russian'],
  ['ko', 'korean'], ['fr', 'french'], ['ja', 'japanese'], ['pt', 'portuguese'], ['tr', 'turkish'],
  ['pl', 'polish'], ['ca', 'catalan'], ['nl', 'dutch'], ['ar', 'arabic'], ['sv', 'swedish'],
  ['it', 'italian'], ['id', 'indonesian'], ['hi', 'hindi'], ['fi', 'finnish'], ['vi', 'vietnamese'],
  ['he', 'hebrew'], ['uk', 'ukrainian'], ['el', 'greek'], ['ms', 'malay'], ['cs', 'czech'],
  ['ro', 'romanian'], ['da', 'danish'], ['hu', 'hungarian'], ['ta', 'tamil'], ['no', 'norwegian'],
  ['th', 'thai'], ['ur', 'urdu'], ['hr', 'croatian'], ['bg', 'bulgarian'], ['lt', 'lithuanian'],
  ['la', 'latin'], ['mi', 'maori'], ['ml', 'malayalam'], ['cy', 'welsh'], ['sk', 'slovak'],
  ['te', 'telugu'], ['fa', 'persian'], ['lv', 'latvian'], ['bn', 'bengali'], ['sr', 'serbian'],
  ['az', 'azerbaijani'], ['sl', 'slovenian'], ['kn', 'kannada'], ['et', 'estonian'], ['mk', 'macedonian'],
  ['br', 'breton'], ['eu', 'basque'], ['is', 'icelandic'], ['hy', 'armenian'], ['ne', 'nepali'],
  ['mn', 'mongolian'], ['bs', 'bosnian'], ['kk', 'kazakh'], ['sq', 'albanian'], ['sw', 'swahili'],
  ['gl', 'galician'], ['mr', 'marathi'], ['pa', 'punjabi'], ['si', 'sinhala'], ['km', 'khmer'],
  ['sn', 'shona'], ['yo', 'yoruba'], ['so', 'somali'], ['af', 'afrikaans'], ['oc', 'occitan'],
  ['ka', 'georgian'], ['be', 'belarusian'], ['tg', 'tajik'], ['sd', 'sindhi'], ['gu', 'gujarati'],
  ['am', 'amharic'], ['yi', 'yiddish'], ['lo', 'lao'], ['uz', 'uzbek'], ['fo', 'faroese'],
  ['ht', 'haitian creole'], ['ps', 'pashto'], ['tk', 'turkmen'], ['nn', 'nynorsk'], ['mt', 'maltese'],
  ['sa', 'sanskrit'], ['lb', 'luxembourgish'], ['my', 'myanmar'], ['bo', 'tibetan'], ['tl', 'tagalog'],
  ['mg', 'malagasy'], ['as', 'assamese'], ['tt', 'tatar'], ['haw', 'hawaiian'], ['ln', 'lingala'],
  ['ha', 'hausa'], ['ba', 'bashkir'], ['jw', 'javanese'], ['su', 'sundanese'], ['yue', 'cantonese'],
];

/** Extra names OpenAI accepts for a language (tokenizer.py `TO_LANGUAGE_CODE`). */
const LANGUAGE_ALIASES: Readonly<Record<string, string>> = {
  burmese: 'my', valencian: 'ca', flemish: 'nl', haitian: 'ht', letzeburgesch: 'lb', pushto: 'ps',
  panjabi: 'pa', moldavian: 'ro', moldovan: 'ro', sinhalese: 'si', castilian: 'es', mandarin: 'zh',
};

const codeByName = new Map<string, string>([
  ...WHISPER_LANGUAGES.map(([code, name]) => [name, code] as [string, string]),
  ...Object.entries(LANGUAGE_ALIASES),
]);
const knownCodes = new Set(WHISPER_LANGUAGES.map(([code]) => code));

/**
 * The language code for a code or an English language name (case-insensitive, aliases such as
 * "mandarin" included), as OpenAI's `get_tokenizer` resolves it; undefined when unknown.
 */
export function toLanguageCode(codeOrName: string): string | undefined {
  const key = codeOrName.toLowerCase();
  return knownCodes.has(key) ? key : codeByName.get(key);
}

/**
 * Languages that are written without spaces between words, for which Whisper splits words at
 * character boundaries (tokenizer.py `split_to_word_tokens`) and CER is the meaningful metric.
 */
export const LANGUAGES_WITHOUT_SPACES: ReadonlySet<string> = new Set(['zh', 'ja', 'th', 'lo', 'my', 'yue']);

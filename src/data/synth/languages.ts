import type { Script } from './sentences.js';

// The languages the synthetic corpus can speak: where their sentences come from (Debian text
// packages) and which espeak-ng voices read them. Fortune databases give thousands of quotes,
// proverbs and jokes per language; klavaro's typing-practice paragraphs (literature and
// encyclopedia prose, a few dozen short-enough sentences each) and the translated dialogue of
// the game Fish Fillets NG (hundreds of conversational lines) add to them and cover French,
// Dutch and the languages that have no fortunes.

/** How a source's files hold text. */
export type SourceFormat =
  /** Fortune databases (entries between "%" lines) or plain prose paragraphs. */
  | 'fortune'
  /** Fish Fillets NG dialogue scripts: each translated line is a Lua `dialogStr("...")` call. */
  | 'fillets-dialogs';

/** Text files of one Debian package that hold sentences. */
export interface SentenceSource {
  /** The Debian package that installs the files. */
  readonly package: string;
  readonly format: SourceFormat;
  /** Which of the package's installed paths are read (symbolic links are skipped). */
  readonly files: RegExp;
}

/** One language of the synthetic corpus. */
export interface SynthLanguage {
  /** Whisper language code. */
  readonly code: string;
  /** English name, for messages. */
  readonly name: string;
  /** The script every letter of its sentences is in. */
  readonly script: Script;
  /** espeak-ng voices (language variants) that read it, as `espeak-ng -v` names them. */
  readonly voices: readonly string[];
  readonly sources: readonly SentenceSource[];
}

/**
 * The fortune files directly in /usr/share/games/fortunes/`folder` (not in subfolders:
 * fortunes-es keeps its offensive section in off/), without strfile indexes and `exclude`.
 */
function fortunes(pkg: string, folder: string, exclude: readonly string[] = []): SentenceSource {
  const dir = `/usr/share/games/fortunes${folder === '' ? '' : `/${folder}`}`;
  const skip = exclude.length === 0 ? '' : `(?!(?:${exclude.join('|')})$)`;
  return { package: pkg, format: 'fortune', files: new RegExp(`^${dir}/${skip}[^/]+(?<!\\.dat|\\.u8)$`) };
}
/** klavaro's typing-practice prose for `locale`. */
const klavaro = (locale: string): SentenceSource => ({ package: 'klavaro', format: 'fortune', files: new RegExp(`^/usr/share/klavaro/${locale}\\.paragraphs$`) });
/** Fish Fillets NG's dialogue translated into `locale` (the English original is in dialogId calls, not read). */
const fillets = (locale: string): SentenceSource => ({
  package: 'fillets-ng-data',
  format: 'fillets-dialogs',
  files: new RegExp(`^/usr/share/games/fillets-ng/script/[^/]+/dialogs_${locale}\\.lua$`),
});

/** The languages `dqw data synth` speaks, by Whisper code. */
export const SYNTH_LANGUAGES: readonly SynthLanguage[] = [
  {
    code: 'en',
    name: 'English',
    script: 'Latin',
    voices: ['en-us', 'en-gb', 'en-gb-scotland', 'en-gb-x-rp', 'en-029'],
    sources: [fortunes('fortunes', '', ['ascii-art']), klavaro('C'), klavaro('en_GB')],
  },
  { code: 'de', name: 'German', script: 'Latin', voices: ['de'], sources: [fortunes('fortunes-de', 'de', ['asciiart']), klavaro('de'), fillets('de')] },
  { code: 'es', name: 'Spanish', script: 'Latin', voices: ['es', 'es-419'], sources: [fortunes('fortunes-es', 'es'), klavaro('es'), fillets('es')] },
  { code: 'fr', name: 'French', script: 'Latin', voices: ['fr-fr', 'fr-be', 'fr-ch'], sources: [fillets('fr'), klavaro('fr')] },
  { code: 'it', name: 'Italian', script: 'Latin', voices: ['it'], sources: [fortunes('fortunes-it', 'it', ['banner']), klavaro('it'), fillets('it')] },
  { code: 'ru', name: 'Russian', script: 'Cyrillic', voices: ['ru'], sources: [fortunes('fortunes-ru', 'ru'), klavaro('ru'), fillets('ru')] },
  { code: 'pl', name: 'Polish', script: 'Latin', voices: ['pl'], sources: [fortunes('fortunes-pl', 'pl'), klavaro('pl'), fillets('pl')] },
  {
    code: 'pt',
    name: 'Portuguese',
    script: 'Latin',
    voices: ['pt-br', 'pt'],
    sources: [fortunes('fortunes-br', ''), klavaro('pt_BR'), klavaro('pt_PT')],
  },
  { code: 'nl', name: 'Dutch', script: 'Latin', voices: ['nl'], sources: [fillets('nl'), klavaro('nl')] },
  // fortunes-cs also holds Slovak classics (klasik-sk).
  { code: 'cs', name: 'Czech', script: 'Latin', voices: ['cs'], sources: [fortunes('fortunes-cs', 'cs', ['klasik-sk']), klavaro('cs'), fillets('cs')] },
  { code: 'bg', name: 'Bulgarian', script: 'Cyrillic', voices: ['bg'], sources: [fortunes('fortunes-bg', 'bg'), klavaro('bg'), fillets('bg')] },
  { code: 'sv', name: 'Swedish', script: 'Latin', voices: ['sv'], sources: [fillets('sv'), klavaro('sv')] },
];

/**
 * Languages left out on purpose, with why: espeak-ng cannot read their ordinary text.
 */
export const UNSUPPORTED_SYNTH_LANGUAGES: Readonly<Record<string, string>> = {
  zh: "espeak-ng's Mandarin reads Chinese characters poorly and pinyin tone digits aloud in English",
  ja: "espeak-ng's Japanese reads only kana, not the kanji of ordinary text",
};

/**
 * espeak-ng voice variants (espeak-ng --voices=variant) that sound like ordinary speakers, each
 * applied to every language; the robotic, whispering and novelty variants are left out.
 */
export const SYNTH_VARIANTS: readonly string[] = [
  'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'f1', 'f2', 'f3', 'f4', 'f5', 'klatt', 'klatt2', 'klatt3',
  'adam', 'Andy', 'Annie', 'belinda', 'benjamin', 'boris', 'david', 'ed', 'john', 'linda', 'max', 'michel', 'paul', 'pedro', 'quincy', 'robert', 'steph', 'zac',
];

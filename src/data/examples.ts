import { DqwError } from '../errors.js';
import { toLanguageCode } from '../text/languages.js';

/** One training or evaluation utterance, as every manifest reader returns it. */
export interface TrainingExample {
  /** The audio file, resolved against the manifest's folder (or by the caller's resolver). */
  readonly audio: string;
  /** The reference transcript, as written in the manifest. */
  readonly text: string;
  /** Whisper language code (see `WHISPER_LANGUAGES`), e.g. "en", "zh". */
  readonly language: string;
  /** Length of the audio in seconds, when the manifest states it. */
  readonly duration?: number;
  /** 1-based line of the manifest where the example's row starts. */
  readonly line: number;
  /** The manifest file (or the name the caller gave its text). */
  readonly source: string;
}

/** A manifest row that was left out, and why. */
export interface SkippedRow {
  /** 1-based line of the row in `source`. */
  readonly line: number;
  /** The manifest file, or the audio file's manifest when the audio failed to load. */
  readonly source: string;
  /** What was wrong, in words: "empty text", "unknown language \"xx\"", "audio file not found: ...". */
  readonly reason: string;
}

/** What a manifest reader returns: the usable examples in file order and the rows it skipped. */
export interface ManifestContents {
  readonly examples: TrainingExample[];
  /** Bad rows in line order; `skipped.length` is the count. */
  readonly skipped: SkippedRow[];
}

/**
 * A manifest that cannot be read at all: missing, unreadable, not UTF-8, or lacking a column that
 * every row needs. `file` names it. (One bad row is never an error: it becomes a {@link SkippedRow}.)
 */
export class ManifestError extends DqwError {
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
  }
}

/** Manifest text as a string, or its bytes (a browser's `fetch().arrayBuffer()` or `File`). */
export type ManifestInput = string | ArrayBuffer | Uint8Array;

/** Turns an audio path as written in a manifest into the path or URL the loader will read. */
export type AudioPathResolver = (pathInManifest: string) => string;

/** The manifest's text; bytes must be UTF-8 (a leading byte-order mark is dropped). */
export function manifestText(input: ManifestInput, source: string): string {
  if (typeof input === 'string') return input.replace(/^\uFEFF/, '');
  try {
    // TextDecoder drops the BOM itself.
    return new TextDecoder('utf-8', { fatal: true }).decode(input);
  } catch (e) {
    throw new ManifestError(`${source}: not UTF-8 text (${(e as Error).message})`, source);
  }
}

/**
 * The Whisper language code for a manifest's language field, or undefined when Whisper has no
 * such language. Accepts codes and English names case-insensitively ("en", "English",
 * "mandarin"), and BCP 47 tags with a region or script by their primary subtag, as Common Voice
 * writes locales ("pt-BR" → "pt", "zh-CN" → "zh", "sv-SE" → "sv").
 */
export function manifestLanguage(value: string): string | undefined {
  const trimmed = value.trim();
  if (trimmed === '') return undefined;
  return toLanguageCode(trimmed) ?? toLanguageCode(trimmed.split(/[-_]/)[0]!);
}

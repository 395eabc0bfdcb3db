// Manifest parsers: text (or bytes) in, examples and skipped rows out. No file system here, so
// browsers feed them fetched text; src/io/manifest-files.ts connects them to files under Node.
// CSV and TSV go through csv-parse's browser build (plain ESM, no Node built-ins): Common Voice
// sentences and Hugging Face metadata contain quotes, commas and multi-line fields that hand
// splitting gets wrong.
import { parse as parseCsv, type CsvError, type Info } from 'csv-parse/browser/esm/sync';
import { ConfigError } from '../errors.js';
import {
  ManifestError,
  manifestLanguage,
  manifestText,
  type AudioPathResolver,
  type ManifestContents,
  type ManifestInput,
  type SkippedRow,
  type TrainingExample,
} from './examples.js';

/** Options shared by every manifest parser. */
export interface ManifestParseOptions {
  /** The manifest's name for examples and messages (its path, URL or file name). */
  readonly source: string;
  /**
   * Maps an audio path as the manifest writes it to the path the loader reads. The file readers
   * in `dq-whisper/node` resolve against the manifest's folder; in a browser pass e.g.
   * `(p) => new URL(p, manifestUrl).href`. Default: the path unchanged.
   */
  readonly resolveAudio?: AudioPathResolver;
  /** Language for rows that state none (no such field, or empty); a code or English name. */
  readonly language?: string;
}

/** Options of {@link parseCommonVoiceTsv}. */
export interface CommonVoiceParseOptions extends ManifestParseOptions {
  /**
   * Whether double quotes delimit fields. Common Voice writes quotes literally (its sentences
   * contain them and never contain tabs), as Hugging Face's loader reads it (`QUOTE_NONE`);
   * set true for a TSV written with CSV quoting. Default false.
   */
  readonly quoted?: boolean;
}

/** The fields of a row before validation; undefined where the manifest has none. */
interface RawRow {
  readonly audio: unknown;
  readonly text: unknown;
  readonly language: unknown;
  readonly duration?: unknown;
}

function defaultLanguage(options: ManifestParseOptions): string | undefined {
  if (options.language === undefined) return undefined;
  const code = manifestLanguage(options.language);
  if (code === undefined) throw new ConfigError(`${options.source}: option language "${options.language}" is not a Whisper language`);
  return code;
}

/** Collects examples and skipped rows of one manifest, validating each row the same way. */
class ManifestBuilder {
  readonly examples: TrainingExample[] = [];
  readonly skipped: SkippedRow[] = [];
  private readonly fallbackLanguage: string | undefined;
  private readonly resolve: AudioPathResolver;

  constructor(private readonly options: ManifestParseOptions) {
    this.fallbackLanguage = defaultLanguage(options);
    this.resolve = options.resolveAudio ?? ((p) => p);
  }

  skip(line: number, reason: string): void {
    this.skipped.push({ line, source: this.options.source, reason });
  }

  /** Adds the row as an example, or records why it cannot be one. */
  add(line: number, row: RawRow): void {
    const reason = this.check(line, row);
    if (reason !== undefined) this.skip(line, reason);
  }

  private check(line: number, row: RawRow): string | undefined {
    const { audio, text, language, duration } = row;
    if (typeof audio !== 'string' || audio.trim() === '') return audio === undefined ? 'missing audio path' : 'audio path must be a non-empty string';
    if (text === undefined) return 'missing text';
    if (typeof text !== 'string') return `text must be a string, got ${JSON.stringify(text)}`;
    if (text.trim() === '') return 'empty text';
    let code: string | undefined;
    if (language === undefined || language === '') {
      code = this.fallbackLanguage;
      if (code === undefined) return 'missing language (and no language option)';
    } else {
      code = typeof language === 'string' ? manifestLanguage(language) : undefined;
      if (code === undefined) return `unknown language ${JSON.stringify(language)}`;
    }
    let seconds: number | undefined;
    if (duration !== undefined && duration !== '' && duration !== null) {
      seconds = typeof duration === 'string' ? Number(duration) : typeof duration === 'number' ? duration : NaN;
      if (!(Number.isFinite(seconds) && seconds > 0)) return `duration must be a positive number of seconds, got ${JSON.stringify(duration)}`;
    }
    const example: TrainingExample = { audio: this.resolve(audio.trim()), text, language: code, line, source: this.options.source };
    this.examples.push(seconds === undefined ? example : { ...example, duration: seconds });
    return undefined;
  }

  contents(): ManifestContents {
    return { examples: this.examples, skipped: [...this.skipped].sort((a, b) => a.line - b.line) };
  }
}

/**
 * Parses a JSON Lines manifest: one object per line with `audio` (path), `text`, `language`
 * (code or English name; the `language` option covers rows without one) and optionally
 * `duration` in seconds (`seconds` is read the same way, as dq-whisper's sample set writes it).
 * Other fields are ignored; blank lines are allowed. Rows that are not JSON objects or whose
 * fields are missing or invalid are skipped with their line and reason.
 */
export function parseJsonlManifest(input: ManifestInput, options: ManifestParseOptions): ManifestContents {
  const builder = new ManifestBuilder(options);
  const lines = manifestText(input, options.source).split('\n');
  lines.forEach((rawLine, i) => {
    const line = i + 1;
    const text = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (text.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      builder.skip(line, `invalid JSON: ${(e as Error).message}`);
      return;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      builder.skip(line, `expected a JSON object, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`);
      return;
    }
    const row = value as Record<string, unknown>;
    builder.add(line, { audio: row.audio, text: row.text, language: row.language, duration: row.duration ?? row.seconds });
  });
  return builder.contents();
}

/** One data row of a delimited file, by column name. */
interface DelimitedRow {
  readonly line: number;
  readonly field: (column: string) => string | undefined;
}

/**
 * Rows of a CSV/TSV with a header line. Rows whose field count differs from the header's are
 * skipped. Stray quotes inside a field are kept as text (`relax_quotes`, as Python's csv module
 * reads them); a quote that is never closed makes the rest of the file one broken field, which
 * is skipped as one row starting at its first line.
 */
function parseDelimited(
  text: string,
  builder: ManifestBuilder,
  source: string,
  format: { delimiter: string; quoted: boolean; name: string },
): { header: string[]; rows: DelimitedRow[] } {
  const records: { record: string[]; line: number }[] = [];
  let lastLine = 0; // the last line of the previous record, so a record's first line is lastLine + 1
  parseCsv(text, {
    delimiter: format.delimiter,
    quote: format.quoted ? '"' : false,
    relax_quotes: true,
    relax_column_count: true,
    skip_records_with_error: true,
    on_record: (record: string[], context: Info) => {
      records.push({ record, line: lastLine + 1 });
      lastLine = context.lines;
      return undefined;
    },
    on_skip: (err: CsvError | undefined) => {
      if (err === undefined) return;
      builder.skip(lastLine + 1, `malformed ${format.name} row: ${err.message}`);
      lastLine = (err as CsvError & { lines: number }).lines;
    },
  });
  // A blank line parses as one empty field.
  const nonBlank = records.filter((r) => !(r.record.length === 1 && r.record[0]!.trim() === ''));
  const first = nonBlank[0];
  if (first === undefined) throw new ManifestError(`${source}: no header row (the file is empty)`, source);
  const header = first.record.map((name) => name.trim());
  const columnIndex = new Map(header.map((name, i) => [name, i]));
  const rows: DelimitedRow[] = [];
  for (const { record, line } of nonBlank.slice(1)) {
    if (record.length !== header.length) {
      builder.skip(line, `row has ${record.length} field${record.length === 1 ? '' : 's'}, the header has ${header.length}`);
      continue;
    }
    rows.push({ line, field: (column) => { const i = columnIndex.get(column); return i === undefined ? undefined : record[i]; } });
  }
  return { header, rows };
}

function requireColumns(header: readonly string[], columns: readonly string[], source: string, why: string): void {
  const missing = columns.filter((c) => !header.includes(c));
  if (missing.length > 0) {
    throw new ManifestError(`${source}: missing column${missing.length > 1 ? 's' : ''} ${missing.map((c) => `"${c}"`).join(', ')} ${why}; the header has ${header.map((c) => `"${c}"`).join(', ')}`, source);
  }
}

/**
 * Parses one Common Voice split file (`train.tsv`, `dev.tsv`, `test.tsv`, `validated.tsv`, ...):
 * tab-separated with a header naming at least `path` and `sentence`; the language comes from
 * the `locale` column, else from the `language` option. Audio paths are `clips/<path>`, passed
 * to `resolveAudio` (so resolve against the dataset's folder, where `clips/` lies).
 */
export function parseCommonVoiceTsv(input: ManifestInput, options: CommonVoiceParseOptions): ManifestContents {
  const { source } = options;
  const builder = new ManifestBuilder(options);
  const { header, rows } = parseDelimited(manifestText(input, source), builder, source, { delimiter: '\t', quoted: options.quoted ?? false, name: 'TSV' });
  requireColumns(header, ['path', 'sentence'], source, 'of a Common Voice TSV');
  if (!header.includes('locale') && options.language === undefined) requireColumns(header, ['locale'], source, '(or pass the language option)');
  for (const row of rows) {
    const path = row.field('path');
    builder.add(row.line, { audio: path === undefined || path.trim() === '' ? path : `clips/${path.trim()}`, text: row.field('sentence'), language: row.field('locale') });
  }
  return builder.contents();
}

/**
 * Parses a Hugging Face audiofolder `metadata.csv`: comma-separated with CSV quoting, columns
 * `file_name` (relative to the metadata's folder), `transcription` or `text` (`transcription`
 * wins when both exist), and optionally `language` and `duration` (seconds).
 */
export function parseAudioFolderCsv(input: ManifestInput, options: ManifestParseOptions): ManifestContents {
  const { source } = options;
  const builder = new ManifestBuilder(options);
  const { header, rows } = parseDelimited(manifestText(input, source), builder, source, { delimiter: ',', quoted: true, name: 'CSV' });
  requireColumns(header, ['file_name'], source, 'of an audiofolder metadata.csv');
  const textColumn = header.includes('transcription') ? 'transcription' : 'text';
  requireColumns(header, [textColumn], source, '(or "transcription") of an audiofolder metadata.csv');
  if (!header.includes('language') && options.language === undefined) requireColumns(header, ['language'], source, '(or pass the language option)');
  for (const row of rows) {
    builder.add(row.line, { audio: row.field('file_name'), text: row.field(textColumn), language: row.field('language'), duration: row.field('duration') });
  }
  return builder.contents();
}

import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { WHISPER_LANGUAGES } from '../../src/text/languages.js';
import { ManifestError, manifestLanguage } from '../../src/data/examples.js';
import { parseAudioFolderCsv, parseCommonVoiceTsv, parseJsonlManifest } from '../../src/data/manifests.js';
import { readAudioFolder, readCommonVoice, readJsonlManifest } from '../../src/io/manifest-files.js';
import { sampleAudio, sampleLines, samplesManifest, tempDir } from './fixtures.js';

const dir = await tempDir();
const [en, es, de, fr, zh] = ['en', 'es', 'de', 'fr', 'zh'].map((lang) => sampleLines.find((l) => l.language === lang)!);

describe('JSONL manifests', () => {
  it('reads the real sample manifest: all 79 clips, every one of its 10 languages, durations from "seconds"', async () => {
    const { examples, skipped } = await readJsonlManifest(samplesManifest);
    expect(skipped).toEqual([]);
    expect(examples).toHaveLength(sampleLines.length);
    expect(sampleLines).toHaveLength(79);
    expect(new Set(examples.map((e) => e.language))).toEqual(new Set(['en', 'fr', 'zh', 'de', 'es', 'it', 'pt', 'ja', 'ko', 'ru']));
    examples.forEach((e, i) => {
      const line = sampleLines[i]!;
      expect(e).toEqual({ audio: sampleAudio(line), text: line.text, language: line.language, duration: line.seconds, line: i + 1, source: samplesManifest });
    });
  });

  it('resolves relative audio paths against the manifest folder and skips bad rows with their exact line and reason', async () => {
    const sub = join(dir, 'jsonl', 'nested');
    await mkdir(sub, { recursive: true });
    const rel = (l: typeof en) => relative(sub, sampleAudio(l!));
    expect(rel(en)).toMatch(/^\.\.\//);
    const rows = [
      JSON.stringify({ audio: rel(en), text: en!.text, language: 'en', duration: 5.5 }), // 1 ok
      '', // 2 blank: allowed, not a row
      '{"audio": "x.wav", "text": "broken', // 3
      JSON.stringify({ audio: rel(es), text: '   ', language: 'es' }), // 4
      JSON.stringify({ audio: rel(de), text: de!.text, language: 'xx' }), // 5
      JSON.stringify({ audio: 'missing/clip.wav', text: 'hello', language: 'en' }), // 6
      JSON.stringify({ audio: rel(fr), language: 'fr' }), // 7
      JSON.stringify({ audio: rel(fr), text: fr!.text }), // 8 no language, no option
      JSON.stringify({ audio: rel(zh), text: zh!.text, language: 'Chinese', duration: -1 }), // 9
      '[1, 2]', // 10
      JSON.stringify({ audio: rel(zh), text: zh!.text, language: 'Mandarin' }), // 11 ok (alias)
      JSON.stringify({ text: 'no audio', language: 'en' }), // 12
    ];
    const path = join(sub, 'manifest.jsonl');
    await writeFile(path, rows.join('\r\n') + '\r\n');
    const { examples, skipped } = await readJsonlManifest(path);
    expect(examples).toEqual([
      { audio: sampleAudio(en!), text: en!.text, language: 'en', duration: 5.5, line: 1, source: path },
      { audio: sampleAudio(zh!), text: zh!.text, language: 'zh', line: 11, source: path },
    ]);
    expect(skipped.map((s) => s.source)).toEqual(Array(9).fill(path));
    expect(skipped.map((s) => [s.line, s.reason])).toEqual([
      [3, expect.stringMatching(/^invalid JSON: /)],
      [4, 'empty text'],
      [5, 'unknown language "xx"'],
      [6, `audio file not found: ${join(sub, 'missing/clip.wav')}`],
      [7, 'missing text'],
      [8, 'missing language (and no language option)'],
      [9, 'duration must be a positive number of seconds, got -1'],
      [10, 'expected a JSON object, got an array'],
      [12, 'missing audio path'],
    ]);
  });

  it('uses the language option for rows without one, and refuses an unknown option', () => {
    const text = `${JSON.stringify({ audio: 'a.wav', text: 'bonjour' })}\n${JSON.stringify({ audio: 'b.wav', text: 'hallo', language: 'de' })}\n`;
    const { examples, skipped } = parseJsonlManifest(text, { source: 'mem.jsonl', language: 'French' });
    expect(skipped).toEqual([]);
    expect(examples.map((e) => [e.audio, e.language])).toEqual([['a.wav', 'fr'], ['b.wav', 'de']]);
    expect(() => parseJsonlManifest(text, { source: 'mem.jsonl', language: 'klingon' })).toThrow(ConfigError);
  });

  it('takes bytes as a browser would pass them (ArrayBuffer, BOM) and names a non-UTF-8 manifest', () => {
    const bytes = new TextEncoder().encode(`\uFEFF${JSON.stringify({ audio: 'ü.wav', text: 'straße', language: 'de' })}\n`);
    const { examples } = parseJsonlManifest(bytes.buffer, { source: 'blob', resolveAudio: (p) => new URL(p, 'https://host/data/').href });
    expect(examples).toEqual([{ audio: 'https://host/data/%C3%BC.wav', text: 'straße', language: 'de', line: 1, source: 'blob' }]);
    expect(() => parseJsonlManifest(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), { source: 'latin1.jsonl' })).toThrow(/latin1\.jsonl: not UTF-8/);
  });

  it('throws ManifestError naming a missing manifest', async () => {
    const path = join(dir, 'nope.jsonl');
    const error = await readJsonlManifest(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as ManifestError).file).toBe(path);
    expect((error as Error).message).toBe(`${path}: manifest not found`);
    await expect(readJsonlManifest(dir)).rejects.toThrow(new RegExp(`^${dir}: cannot read manifest`));
  });
});

describe('Common Voice TSV', () => {
  const header = 'client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment';
  const cvRow = (path: string, sentence: string, locale: string) => `c0ffee\t${path}\t${sentence}\t2\t0\t\t\t\t${locale}\t`;

  it('reads a release folder with literal quotes and commas in sentences, clips/ paths, locales mapped to Whisper codes', async () => {
    const cv = join(dir, 'cv');
    await mkdir(join(cv, 'clips'), { recursive: true });
    for (const [name, line] of [['a.wav', en], ['b.wav', fr], ['c.wav', zh], ['d.wav', es]] as const) await symlink(sampleAudio(line!), join(cv, 'clips', name));
    const rows = [
      header, // 1
      cvRow('a.wav', '"Hello," he said, "it\'s fine."', 'en'), // 2
      cvRow('b.wav', 'Il a dit « non », puis "oui".', 'fr'), // 3
      cvRow('c.wav', zh!.text, 'zh-CN'), // 4
      cvRow('gone.wav', 'Not on disk.', 'en'), // 5
      cvRow('d.wav', '', 'es'), // 6
      cvRow('d.wav', 'Hola.', 'tlh'), // 7
      'c0ffee\td.wav\tToo few fields', // 8
      '', // 9 blank
      cvRow('d.wav', 'Hola, "amigo".', 'es-ES'), // 10
    ];
    await writeFile(join(cv, 'train.tsv'), rows.join('\n') + '\n');
    const { examples, skipped } = await readCommonVoice(cv, 'train');
    const source = join(cv, 'train.tsv');
    expect(examples.map((e) => [e.line, e.audio, e.text, e.language])).toEqual([
      [2, join(cv, 'clips', 'a.wav'), '"Hello," he said, "it\'s fine."', 'en'],
      [3, join(cv, 'clips', 'b.wav'), 'Il a dit « non », puis "oui".', 'fr'],
      [4, join(cv, 'clips', 'c.wav'), zh!.text, 'zh'],
      [10, join(cv, 'clips', 'd.wav'), 'Hola, "amigo".', 'es'],
    ]);
    expect(examples.every((e) => e.source === source && e.duration === undefined)).toBe(true);
    expect(skipped).toEqual([
      { line: 5, source, reason: `audio file not found: ${join(cv, 'clips', 'gone.wav')}` },
      { line: 6, source, reason: 'empty text' },
      { line: 7, source, reason: 'unknown language "tlh"' },
      { line: 8, source, reason: 'row has 3 fields, the header has 10' },
    ]);
  });

  it('parses CSV quoting when asked: quoted fields may hold tabs and newlines, stray quotes stay text, lines are where rows start', () => {
    const text = [
      'path\tsentence\tlocale', // 1
      'a.mp3\t"Two\tcolumns, ""quoted"""\tde', // 2
      'b.mp3\t"first line', // 3
      'second line"\tit', // 4
      'c.mp3\tSix "inch" nails\ten', // 5: quotes inside an unquoted field
      'd.mp3\t"Quoted" then more\ten', // 6: text after a closing quote
      'e.mp3\t"never closed\ten', // 7: swallows the rest of the file
      'f.mp3\tlost\ten', // 8
    ].join('\n');
    const { examples, skipped } = parseCommonVoiceTsv(text, { source: 'q.tsv', quoted: true });
    expect(examples.map((e) => [e.line, e.audio, e.text, e.language])).toEqual([
      [2, 'clips/a.mp3', 'Two\tcolumns, "quoted"', 'de'],
      [3, 'clips/b.mp3', 'first line\nsecond line', 'it'],
      [5, 'clips/c.mp3', 'Six "inch" nails', 'en'],
      [6, 'clips/d.mp3', '"Quoted" then more', 'en'],
    ]);
    expect(skipped).toEqual([{ line: 7, source: 'q.tsv', reason: 'malformed TSV row: Quote Not Closed: the parsing is finished with an opening quote at line 8' }]);
  });

  it('takes the language from the option when there is no locale column, and names missing columns', () => {
    const { examples } = parseCommonVoiceTsv('path\tsentence\nx.mp3\tDobryy den\n', { source: 'old.tsv', language: 'ru' });
    expect(examples.map((e) => e.language)).toEqual(['ru']);
    expect(() => parseCommonVoiceTsv('path\tsentence\nx.mp3\tHi\n', { source: 'old.tsv' })).toThrow('old.tsv: missing column "locale" (or pass the language option)');
    expect(() => parseCommonVoiceTsv('client_id\tpath\tlocale\n', { source: 'bad.tsv' })).toThrow(ManifestError);
    expect(() => parseCommonVoiceTsv('client_id\tpath\tlocale\n', { source: 'bad.tsv' })).toThrow('bad.tsv: missing column "sentence" of a Common Voice TSV; the header has "client_id", "path", "locale"');
    expect(() => parseCommonVoiceTsv('', { source: 'empty.tsv' })).toThrow('empty.tsv: no header row (the file is empty)');
  });

  it('throws ManifestError naming a missing split file', async () => {
    await expect(readCommonVoice(join(dir, 'cv'), 'dev')).rejects.toThrow(`${join(dir, 'cv', 'dev.tsv')}: manifest not found`);
  });
});

describe('Hugging Face audiofolder metadata.csv', () => {
  it('reads quoted commas, doubled quotes and multi-line transcriptions, paths relative to the folder', async () => {
    const folder = join(dir, 'audiofolder');
    await mkdir(folder, { recursive: true });
    const rel = (l: typeof en) => relative(folder, sampleAudio(l!));
    const rows = [
      'file_name,transcription,language,duration', // 1
      `${rel(en)},"Yes, he said ""hello"", then left.",en,${en!.seconds}`, // 2
      `${rel(de)},"Erste Zeile,`, // 3
      `zweite Zeile",de,`, // 4
      `${rel(fr)},,fr,`, // 5 empty transcription
      `${rel(es)},"Hola",es,abc`, // 6 bad duration
      `${rel(zh)},${zh!.text}`, // 7 too few fields
      `${rel(es)},Sin comillas,Spanish,1.5`, // 8
    ];
    await writeFile(join(folder, 'metadata.csv'), rows.join('\n'));
    const { examples, skipped } = await readAudioFolder(folder);
    const source = join(folder, 'metadata.csv');
    expect(examples).toEqual([
      { audio: sampleAudio(en!), text: 'Yes, he said "hello", then left.', language: 'en', duration: en!.seconds, line: 2, source },
      { audio: sampleAudio(de!), text: 'Erste Zeile,\nzweite Zeile', language: 'de', line: 3, source },
      { audio: sampleAudio(es!), text: 'Sin comillas', language: 'es', duration: 1.5, line: 8, source },
    ]);
    expect(skipped).toEqual([
      { line: 5, source, reason: 'empty text' },
      { line: 6, source, reason: 'duration must be a positive number of seconds, got "abc"' },
      { line: 7, source, reason: 'row has 2 fields, the header has 4' },
    ]);
  });

  it('accepts a "text" column, uses the language option without a language column, and names missing columns', () => {
    const { examples } = parseAudioFolderCsv('file_name,text\na.wav,"Ciao, mondo"\n', { source: 'm.csv', language: 'it' });
    expect(examples.map((e) => [e.audio, e.text, e.language])).toEqual([['a.wav', 'Ciao, mondo', 'it']]);
    expect(() => parseAudioFolderCsv('file_name,text\na.wav,x\n', { source: 'm.csv' })).toThrow('m.csv: missing column "language" (or pass the language option)');
    expect(() => parseAudioFolderCsv('file_name,sentence,language\n', { source: 'm.csv' })).toThrow('m.csv: missing column "text" (or "transcription") of an audiofolder metadata.csv');
    expect(() => parseAudioFolderCsv('path,text,language\n', { source: 'm.csv' })).toThrow('m.csv: missing column "file_name" of an audiofolder metadata.csv');
  });
});

describe('languages', () => {
  it('accepts every Whisper language code and English name, and the locales of the sample set', () => {
    for (const [code, name] of WHISPER_LANGUAGES) {
      expect(manifestLanguage(code)).toBe(code);
      expect(manifestLanguage(name.toUpperCase())).toBe(code);
    }
    // The Azure samples sit in locale folders (de-DE, pt-BR, zh-CN, ...): each maps to its clips' language.
    const locales = new Set(sampleLines.map((l) => /^azure_customspeech\/([^/]+)\//.exec(l.audio)).filter((m) => m !== null).map((m) => m[1]!));
    expect(locales.size).toBe(9);
    for (const line of sampleLines) {
      const locale = /^azure_customspeech\/([^/]+)\//.exec(line.audio)?.[1];
      if (locale !== undefined) expect(manifestLanguage(locale)).toBe(line.language);
    }
    expect(['xx', 'tlh', '', 'english2', 'x-en'].map(manifestLanguage)).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });
});

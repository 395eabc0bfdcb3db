import { lstat, readFile } from 'node:fs/promises';
import { installedPackageVersion, packageFiles } from './debian.js';
import type { SentenceSource, SynthLanguage } from './languages.js';
import { extractSentences, filletsDialogLines } from './sentences.js';

// Node's file side of sentences.ts: the text files of a language's Debian packages.

/** A Debian package and its installed version. */
export interface PackageVersion {
  readonly name: string;
  readonly version: string;
}

/** The sentences of one language and where they came from. */
export interface LanguageSentences {
  readonly language: SynthLanguage;
  /** Distinct usable sentences (see `extractSentences`), in file order. */
  readonly sentences: string[];
  /** The packages read, with their versions. */
  readonly packages: PackageVersion[];
  /** The files read. */
  readonly files: string[];
}

/** The regular text files of `source` that its package installed, sorted. */
async function sourceFiles(source: SentenceSource): Promise<string[]> {
  const candidates = (await packageFiles(source.package)).filter((p) => source.files.test(p));
  const files: string[] = [];
  for (const path of candidates) {
    const info = await lstat(path).catch(() => undefined);
    if (info?.isFile()) files.push(path);
  }
  return files.sort();
}

/**
 * Reads the sentences of `language` from its Debian packages. Files that are not UTF-8 yield
 * their valid parts (replacement characters fail the sentence filter).
 * @throws MissingPackageError naming the first package of `language` that is not installed.
 */
export async function loadLanguageSentences(language: SynthLanguage): Promise<LanguageSentences> {
  const packages: PackageVersion[] = [];
  for (const name of new Set(language.sources.map((s) => s.package))) {
    packages.push({ name, version: await installedPackageVersion(name, `${language.name} sentences`) });
  }
  const decoder = new TextDecoder('utf-8');
  const files: string[] = [];
  const texts: string[] = [];
  for (const source of language.sources) {
    for (const file of await sourceFiles(source)) {
      const text = decoder.decode(await readFile(file));
      files.push(file);
      texts.push(...(source.format === 'fillets-dialogs' ? filletsDialogLines(text) : [text]));
    }
  }
  return { language, sentences: extractSentences(texts, language.code, language.script), packages, files };
}

import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { ConfigError } from '../../src/errors.js';
import { readAudioFile } from '../../src/io/audio-file.js';
import { readJsonlManifest } from '../../src/io/manifest-files.js';
import { synthesizeCorpus, resolveSynthLanguages, SYNTH_SPLITS, type CorpusSummary } from '../../src/data/synth/corpus.js';
import { MissingPackageError } from '../../src/data/synth/debian.js';
import { SYNTH_LANGUAGES } from '../../src/data/synth/languages.js';
import { cleanSentence, filletsDialogLines, fortuneParagraphs } from '../../src/data/synth/sentences.js';
import { loadLanguageSentences } from '../../src/data/synth/sources.js';
import { activePower, renderUtterance } from '../../src/data/synth/render.js';
import { dataCommand } from '../../src/cli/data.js';
import { DqwError } from '../../src/errors.js';
import { tempDir } from './fixtures.js';

// A tiny corpus (3 languages, ~20 s asked: each split overshoots its share by under one
// utterance), then its Portuguese part alone, with the same seed and with another. A language's
// audio depends only on the seed and its own hours, so the same seed must give the same bytes.
const languages = ['fr', 'pt', 'bg']; // fillets + klavaro, fortunes + klavaro, Cyrillic
const hours = 20 / 3600;
const command = 'dqw data synth (test)';
let dirA: string;
let dirB: string;
let dirC: string;
let summary: CorpusSummary;

interface Line {
  audio: string;
  text: string;
  language: string;
  duration: number;
  voice: string;
  rate: number;
  pitch: number;
}

/** A split's manifest lines, read with JSON.parse (our parser is checked separately). */
async function lines(dir: string, split: string): Promise<Line[]> {
  return (await readFile(join(dir, `${split}.jsonl`), 'utf8'))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line);
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}

beforeAll(async () => {
  [dirA, dirB, dirC] = await Promise.all([tempDir(), tempDir(), tempDir()]);
  summary = await synthesizeCorpus({ languages, hours, seed: 7, out: dirA, jobs: 2, command });
  await synthesizeCorpus({ languages: ['pt'], hours: hours / 3, seed: 7, out: dirB, jobs: 2, command });
  await synthesizeCorpus({ languages: ['pt'], hours: hours / 3, seed: 8, out: dirC, jobs: 2, command });
}, 110_000);

describe('synthesizeCorpus', () => {
  it('writes manifests our JSONL reader parses, every row with existing audio', async () => {
    for (const { name } of SYNTH_SPLITS) {
      const parsed = await readJsonlManifest(join(dirA, `${name}.jsonl`));
      expect(parsed.skipped).toEqual([]); // includes "audio file not found" rows
      expect(new Set(parsed.examples.map((e) => e.language))).toEqual(new Set(languages));
      expect(parsed.examples.every((e) => e.duration !== undefined && e.duration > 0.3)).toBe(true);
    }
  });

  it('writes 16 kHz mono WAVs whose length is the stated duration, and about the hours asked', async () => {
    let total = 0;
    for (const { name } of SYNTH_SPLITS) {
      for (const line of await lines(dirA, name)) {
        const audio = await readAudioFile(join(dirA, line.audio));
        expect(audio.sampleRate).toBe(16_000);
        expect(audio.channels).toBe(1);
        expect(audio.samples[0]!.length / 16_000).toBe(line.duration);
        total += line.duration;
      }
    }
    // Each of the 9 streams overshoots its target by less than its last utterance (< 8 s here).
    expect(total).toBeGreaterThanOrEqual(20);
    expect(total).toBeLessThan(20 + 9 * 8);
  });

  it('puts no sentence in two splits, even up to case and punctuation', async () => {
    const normalized = (t: string) => t.toLowerCase().replace(/[^\p{L}]+/gu, ' ').trim();
    const bySplit = await Promise.all(SYNTH_SPLITS.map(async ({ name }) => new Set((await lines(dirA, name)).map((l) => normalized(l.text)))));
    for (let i = 0; i < bySplit.length; i++) {
      for (let j = i + 1; j < bySplit.length; j++) expect([...bySplit[i]!].filter((t) => bySplit[j]!.has(t))).toEqual([]);
    }
  });

  it('speaks exactly the manifest text: a sentence of its language, and espeak-ng run on it gives the same length', async () => {
    const sentences = new Map<string, Set<string>>();
    for (const code of languages) sentences.set(code, new Set((await loadLanguageSentences(SYNTH_LANGUAGES.find((l) => l.code === code)!)).sentences));
    // espeak-ng's own 22050 Hz output for the line's text and settings, in 16 kHz samples.
    const espeakSamples = (text: string, l: Line) => {
      const wav = execFileSync('espeak-ng', ['-b', '1', '-v', l.voice, '-s', String(l.rate), '-p', String(l.pitch), '--stdout'], { input: text });
      return Math.round(((wav.length - 44) / 2) * (16_000 / 22_050));
    };
    for (const { name } of SYNTH_SPLITS) {
      for (const line of await lines(dirA, name)) {
        expect(sentences.get(line.language)!.has(line.text)).toBe(true);
        if (name === 'train') continue; // dev and test are enough for the espeak-ng check
        const samples = line.duration * 16_000;
        expect(Math.abs(espeakSamples(line.text, line) - samples)).toBeLessThanOrEqual(1);
        // The check tells texts apart: one more word changes the length by far more than a sample.
        expect(Math.abs(espeakSamples(`${line.text} Mama.`, line) - samples)).toBeGreaterThan(1000);
      }
    }
  });

  it('records per-language counts, hours and package versions in corpus.json', async () => {
    const written = JSON.parse(await readFile(join(dirA, 'corpus.json'), 'utf8')) as CorpusSummary;
    expect(written).toEqual(summary);
    expect(written.seed).toBe(7);
    for (const { name } of SYNTH_SPLITS) {
      const split = await lines(dirA, name);
      expect(written.splits[name].hours).toBeCloseTo(split.reduce((a, l) => a + l.duration, 0) / 3600, 6);
      for (const code of languages) {
        const own = split.filter((l) => l.language === code);
        expect(written.splits[name].languages[code]!.utterances).toBe(own.length);
        expect(written.splits[name].languages[code]!.sentences).toBe(new Set(own.map((l) => l.text)).size);
      }
    }
    for (const code of languages) {
      const info = written.languages[code]!;
      expect(info.sentencesAvailable).toBeGreaterThan(1000);
      expect(info.sentencesPerSplit.train + info.sentencesPerSplit.dev + info.sentencesPerSplit.test).toBe(info.sentencesAvailable);
    }
    const names = written.packages.map((p) => p.name).sort();
    expect(names).toEqual(['espeak-ng', 'fillets-ng-data', 'fortunes-bg', 'fortunes-br', 'klavaro']);
    for (const p of written.packages) expect(p.version).toBe(execFileSync('dpkg-query', ['-W', '-f=${Version}', p.name], { encoding: 'utf8' }));
    expect(written.espeakNg).toBe(/text-to-speech:\s*(\S+)/.exec(execFileSync('espeak-ng', ['--version'], { encoding: 'utf8' }))![1]);
  });

  it('gives byte-identical output for the same seed and different output for another', async () => {
    const [a, b, c] = await Promise.all([filesUnder(dirA), filesUnder(dirB), filesUnder(dirC)]);
    const wavsB = b.filter((f) => f.endsWith('.wav'));
    expect(wavsB).toEqual(a.filter((f) => f.startsWith('audio/pt/')));
    for (const f of wavsB) expect(Buffer.compare(await readFile(join(dirA, f)), await readFile(join(dirB, f))), f).toBe(0);
    for (const { name } of SYNTH_SPLITS) {
      const ptLinesA = (await readFile(join(dirA, `${name}.jsonl`), 'utf8')).split('\n').filter((l) => l.includes('"language":"pt"'));
      const linesB = (await readFile(join(dirB, `${name}.jsonl`), 'utf8')).split('\n').filter((l) => l !== '');
      expect(linesB).toEqual(ptLinesA);
      expect(await readFile(join(dirC, `${name}.jsonl`), 'utf8')).not.toBe(await readFile(join(dirB, `${name}.jsonl`), 'utf8'));
    }
    const wav = wavsB.find((f) => c.includes(f))!;
    expect(Buffer.compare(await readFile(join(dirB, wav)), await readFile(join(dirC, wav)))).not.toBe(0);
  });
});

describe('rendering', () => {
  it('measures speech power over active frames only', () => {
    // 0.5 s silence, 1 s of a 500 Hz sine of amplitude 0.5 (mean power 0.125), 0.5 s silence.
    const samples = new Float32Array(32_000);
    for (let i = 8000; i < 24_000; i++) samples[i] = 0.5 * Math.sin((2 * Math.PI * 500 * i) / 16_000);
    expect(activePower(samples, 16_000)).toBeCloseTo(0.125, 5);
  });

  it('adds noise at the SNR asked for (within 0.3 dB) and scales speech to the peak', async () => {
    const settings = { voice: 'de+m3', rate: 175, pitch: 50, peak: 0.5, noiseSeed: 1 };
    const text = 'Die Zeit ist der beste Lehrer, leider tötet sie ihre Schüler.';
    const clean = await renderUtterance('espeak-ng', text, { ...settings, snrDb: 300 });
    const noisy = await renderUtterance('espeak-ng', text, { ...settings, snrDb: 10 });
    expect(noisy.length).toBe(clean.length);
    expect(Math.max(...clean.map(Math.abs))).toBeCloseTo(0.5, 6);
    let noisePower = 0;
    for (let i = 0; i < clean.length; i++) noisePower += (noisy[i]! - clean[i]!) ** 2;
    noisePower /= clean.length;
    expect(Math.abs(10 * Math.log10(activePower(clean, 16_000) / noisePower) - 10)).toBeLessThan(0.3);
  });
});

describe('dqw data synth', () => {
  const capture = () => {
    let text = '';
    const stream = new Writable({ write: (chunk: Buffer, _enc, done) => ((text += chunk.toString()), done()) });
    return { stream, text: () => text };
  };

  it('writes the corpus with a progress bar on stderr and the split summary on stdout', async () => {
    const out = await tempDir();
    const stdout = capture();
    const stderr = capture();
    await dataCommand(['synth', '--languages', 'pt', '--hours', String(3 / 3600), '--seed', '3', '--out', out, '--jobs', '2'], { stdout: stdout.stream, stderr: stderr.stream });
    expect(stderr.text()).toMatch(/synth \|.*\| 100% \| 3\/3 s of audio/);
    for (const { name } of SYNTH_SPLITS) expect(stdout.text()).toMatch(new RegExp(`^${name} +[0-9.]+ min in .*${name}\\.jsonl: pt [1-9]`, 'm'));
    const written = JSON.parse(await readFile(join(out, 'corpus.json'), 'utf8')) as CorpusSummary;
    expect(written.command).toBe(`dqw data synth --languages pt --hours ${3 / 3600} --seed 3 --out ${out} --jobs 2`);
  });

  it('refuses missing options and unknown subcommands with the usage', async () => {
    const io = { stdout: capture().stream, stderr: capture().stream };
    await expect(dataCommand(['synth', '--hours', '1'], io)).rejects.toThrow(/--out is required[\s\S]*usage: dqw data synth/);
    await expect(dataCommand(['synth', '--out', 'x', '--hours', '0'], io)).rejects.toThrow(/--hours must be a positive number/);
    await expect(dataCommand(['fetch'], io)).rejects.toThrow(DqwError);
  });
});

describe('synth errors', () => {
  it('names a sentence package that is not installed', async () => {
    const german = SYNTH_LANGUAGES.find((l) => l.code === 'de')!;
    const missing = { ...german, sources: [{ ...german.sources[0]!, package: 'fortunes-dqw-missing' }] };
    const error = await loadLanguageSentences(missing).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingPackageError);
    expect((error as MissingPackageError).packageName).toBe('fortunes-dqw-missing');
    expect((error as Error).message).toContain('apt-get install fortunes-dqw-missing');
  });

  it('names espeak-ng when it cannot be run', async () => {
    const out = await tempDir();
    const error = await synthesizeCorpus({ languages: ['de'], hours: 0.001, seed: 0, out, espeak: '/nonexistent/espeak-ng' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingPackageError);
    expect((error as MissingPackageError).packageName).toBe('espeak-ng');
    expect((error as Error).message).toContain('apt-get install espeak-ng');
  });

  it('refuses Mandarin and Japanese with the reason, and unknown codes with the supported list', () => {
    expect(() => resolveSynthLanguages(['de', 'zh'])).toThrow(/zh.*pinyin/);
    expect(() => resolveSynthLanguages(['ja'])).toThrow(/kana/);
    expect(() => resolveSynthLanguages(['xx'])).toThrow(ConfigError);
    expect(() => resolveSynthLanguages(['xx'])).toThrow(/supported: en,de,es,fr/);
  });
});

describe('sentence extraction', () => {
  it('keeps natural sentences and rejects URLs, code, digits, labels and bad lengths', () => {
    expect(cleanSentence('Die Zeit ist der beste Lehrer.', 'Latin')).toBe('Die Zeit ist der beste Lehrer.');
    expect(cleanSentence('- Bien haya , quien a los suyos se parece.', 'Latin')).toBe('Bien haya, quien a los suyos se parece.');
    expect(cleanSentence('Всем нравится лесть, но никому не нравятся льстецы.', 'Cyrillic')).toBeDefined();
    expect(cleanSentence("L'espéranto n'est la langue officielle d'aucun pays.", 'Latin')).toBeDefined();
    for (const bad of [
      'See http://example.org for more.',
      'Call foo(bar) to do it now.',
      'It happened in 1887 in Warsaw.',
      'A: Gibt keinen, beide sind grün.',
      'Too short.',
      'lower case start is not a sentence.',
      'No final punctuation here at all',
      'Vasya сказал что все хорошо.', // mixed scripts in a Cyrillic language
      `${'word '.repeat(20)}end.`.replace(/^w/, 'W'),
      'What?!? Really now, are you sure?',
      "Non e' vero, e' piu' difficile.",
      "E' vero che lo sa.",
    ]) {
      expect(cleanSentence(bad, bad.startsWith('Vasya') ? 'Cyrillic' : 'Latin'), bad).toBeUndefined();
    }
  });

  it('reads fortune entries without attributions, and Fish Fillets dialogue lines', () => {
    const fortune = 'Die Zeit ist der beste Lehrer.\nLeider tötet sie ihre Schüler.\n\t\t-- Sprichwort\n%\nZweiter Eintrag.\n';
    expect(fortuneParagraphs(fortune)).toEqual(['Die Zeit ist der beste Lehrer. Leider tötet sie ihre Schüler.', 'Zweiter Eintrag.']);
    const lua = 'dialogId("a", "font_big", "English.")\ndialogStr("Wir sagen dazu \\"Schalenloser\\".")\ndialogStr(\n"Zweite Zeile.")\n';
    expect(filletsDialogLines(lua)).toEqual(['Wir sagen dazu "Schalenloser".', 'Zweite Zeile.']);
  });
});

import { availableParallelism } from 'node:os';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WHISPER_SAMPLE_RATE } from '../../audio/resample.js';
import { ConfigError } from '../../errors.js';
import { Rng } from '../../util/random.js';
import { installedPackageVersion } from './debian.js';
import { SYNTH_LANGUAGES, SYNTH_VARIANTS, UNSUPPORTED_SYNTH_LANGUAGES, type SynthLanguage } from './languages.js';
import { encodeWav16, renderUtterance, runEspeak, type UtteranceSettings } from './render.js';
import { loadLanguageSentences, type PackageVersion } from './sources.js';

// The synthetic corpus: per language, its sentences are shuffled and divided among train, dev
// and test (so no sentence is in two splits), and each split is spoken until it has its share of
// the hours. Every random choice is drawn, in a fixed order, from Rngs derived from the seed
// before the utterance is rendered, so the parallel rendering gives the same bytes every time.

/** The splits, with the share of each language's sentences and hours that each gets. */
export const SYNTH_SPLITS = [
  { name: 'train', fraction: 0.8 },
  { name: 'dev', fraction: 0.1 },
  { name: 'test', fraction: 0.1 },
] as const;

export type SynthSplit = (typeof SYNTH_SPLITS)[number]['name'];

/** Ranges the utterance settings are drawn from, uniformly. */
export const SYNTH_RANGES = {
  /** espeak-ng words per minute (its default is 175). */
  rate: [130, 210],
  /** espeak-ng pitch (its default is 50). */
  pitch: [25, 75],
  /** Peak amplitude of the speech, fraction of full scale. */
  peak: [0.2, 0.9],
  /** Speech-to-noise ratio in dB. */
  snrDb: [5, 40],
} as const;

/** Options of {@link synthesizeCorpus}. */
export interface SynthOptions {
  /** Whisper codes of the languages to speak (see `SYNTH_LANGUAGES`). */
  readonly languages: readonly string[];
  /** Hours of audio in all, shared equally by the languages and by fraction among the splits. */
  readonly hours: number;
  /** Seed of every random choice: the same seed (and options) gives byte-identical output. */
  readonly seed: number;
  /** Output folder; created, and must be empty if it exists. */
  readonly out: string;
  /** espeak-ng processes at once. Default `os.availableParallelism()`. */
  readonly jobs?: number;
  /** The espeak-ng executable. Default "espeak-ng". */
  readonly espeak?: string;
  /** The command line to record in corpus.json. */
  readonly command?: string;
  /** Called as audio is finished: seconds done (of complete utterances, in order) and seconds wanted. */
  readonly onProgress?: (doneSeconds: number, totalSeconds: number) => void;
}

/** One line of a split's manifest (JSON Lines; the format `parseJsonlManifest` reads). */
export interface SynthManifestLine {
  /** WAV path relative to the output folder (where the manifests are). */
  readonly audio: string;
  /** The sentence spoken, exactly as given to espeak-ng. */
  readonly text: string;
  readonly language: string;
  /** Seconds of audio. */
  readonly duration: number;
  readonly voice: string;
  readonly rate: number;
  readonly pitch: number;
  readonly snr_db: number;
}

/** Counts of one language in one split. */
export interface SplitCounts {
  readonly utterances: number;
  /** Distinct sentences spoken. */
  readonly sentences: number;
  readonly hours: number;
}

/** What corpus.json records. */
export interface CorpusSummary {
  readonly command: string | null;
  readonly seed: number;
  /** `espeak-ng --version`'s number (the Debian package's version is in `packages`). */
  readonly espeakNg: string;
  readonly sampleRate: number;
  readonly packages: PackageVersion[];
  /** espeak-ng voice variants used (each with every voice of a language, as voice+variant). */
  readonly variants: string[];
  readonly splits: Record<SynthSplit, { readonly manifest: string; readonly hours: number; readonly languages: Record<string, SplitCounts> }>;
  readonly languages: Record<string, { readonly name: string; readonly sentencesAvailable: number; readonly sentencesPerSplit: Record<SynthSplit, number>; readonly packages: string[]; readonly voices: string[] }>;
  readonly ranges: typeof SYNTH_RANGES;
}

/** The languages of `codes`, in the order given. @throws ConfigError for unknown, unsupported or repeated codes. */
export function resolveSynthLanguages(codes: readonly string[]): SynthLanguage[] {
  if (codes.length === 0) throw new ConfigError('dqw data synth: no languages given');
  const seen = new Set<string>();
  return codes.map((code) => {
    const why = UNSUPPORTED_SYNTH_LANGUAGES[code];
    if (why !== undefined) throw new ConfigError(`language "${code}" is not supported by dqw data synth: ${why}`);
    const language = SYNTH_LANGUAGES.find((l) => l.code === code);
    if (language === undefined) throw new ConfigError(`language "${code}" is not supported by dqw data synth; supported: ${SYNTH_LANGUAGES.map((l) => l.code).join(',')}`);
    if (seen.has(code)) throw new ConfigError(`language "${code}" is given twice`);
    seen.add(code);
    return language;
  });
}

/** `espeak-ng --version`'s version number, e.g. "1.51". @throws MissingPackageError when espeak-ng is missing. */
export async function espeakVersion(command = 'espeak-ng'): Promise<string> {
  const text = new TextDecoder().decode(await runEspeak(command, ['--version']));
  return /text-to-speech:\s*(\S+)/.exec(text)?.[1] ?? text.trim();
}

/** Names of the voices (`--voices`) or variants (`--voices=variant`, file names without "!v/") espeak-ng has. */
async function espeakNames(command: string, variants: boolean): Promise<Set<string>> {
  const text = new TextDecoder().decode(await runEspeak(command, [variants ? '--voices=variant' : '--voices']));
  const rows = text.split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  return new Set(rows.filter((r) => r.length >= 5).map((r) => (variants ? r[4]!.replace(/^!v\//, '') : r[1]!)));
}

function shuffle<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

const pick = <T>(items: readonly T[], rng: Rng): T => items[Math.floor(rng.uniform() * items.length)]!;
const between = ([lo, hi]: readonly [number, number], rng: Rng): number => lo + (hi - lo) * rng.uniform();

/** One utterance to render. */
interface Utterance extends UtteranceSettings {
  readonly index: number;
  readonly text: string;
}

/**
 * The utterances of one language's split, spoken until `targetSeconds`: the shortest prefix of
 * an endless, seeded sequence (the split's sentences in shuffled rounds, each with drawn
 * settings) whose audio reaches the target.
 */
class SplitStream {
  readonly rendered = new Map<number, { line: SynthManifestLine }>();
  private readonly rng: Rng;
  private order: string[] = [];
  private position = 0;
  private planned = 0;
  /** Utterances 0..complete-1 are rendered. */
  private complete = 0;
  private completeSeconds = 0;
  inFlight = 0;
  /** Index of the last utterance of the corpus once known. */
  last: number | undefined;

  constructor(
    readonly language: SynthLanguage,
    readonly split: SynthSplit,
    private readonly sentences: readonly string[],
    private readonly voices: readonly string[],
    readonly targetSeconds: number,
    seed: number,
  ) {
    this.rng = new Rng(seed);
  }

  get done(): boolean {
    return this.last !== undefined;
  }

  get doneSeconds(): number {
    return Math.min(this.completeSeconds, this.targetSeconds);
  }

  /** Whether another utterance should start: not done, and the ones in flight may not reach the target (estimated at the mean length so far). */
  wantsMore(): boolean {
    if (this.done) return false;
    const mean = this.complete > 0 ? this.completeSeconds / this.complete : 3;
    return this.completeSeconds + this.inFlight * mean < this.targetSeconds;
  }

  next(): Utterance {
    if (this.position === this.order.length) {
      this.order = shuffle([...this.sentences], this.rng);
      this.position = 0;
    }
    const text = this.order[this.position++]!;
    const rng = this.rng;
    return {
      index: this.planned++,
      text,
      voice: pick(this.voices, rng),
      rate: Math.round(between(SYNTH_RANGES.rate, rng)),
      pitch: Math.round(between(SYNTH_RANGES.pitch, rng)),
      peak: between(SYNTH_RANGES.peak, rng),
      snrDb: Math.round(between(SYNTH_RANGES.snrDb, rng) * 10) / 10,
      noiseSeed: rng.nextUint32(),
    };
  }

  /** Records a rendered utterance and moves the complete prefix on. */
  finished(index: number, line: SynthManifestLine): void {
    this.rendered.set(index, { line });
    while (this.last === undefined && this.rendered.has(this.complete)) {
      this.completeSeconds += this.rendered.get(this.complete)!.line.duration;
      if (this.completeSeconds >= this.targetSeconds) this.last = this.complete;
      this.complete++;
    }
  }

  /** The corpus's lines, in order. */
  lines(): SynthManifestLine[] {
    const lines: SynthManifestLine[] = [];
    for (let i = 0; i <= this.last!; i++) lines.push(this.rendered.get(i)!.line);
    return lines;
  }

  /** Rendered utterances past the last one (drawn while the target was not yet known to be reached). */
  extras(): SynthManifestLine[] {
    return [...this.rendered.entries()].filter(([i]) => i > this.last!).map(([, r]) => r.line);
  }
}

/**
 * Builds a synthetic speech corpus in `options.out`: WAVs under audio/<language>/<split>/,
 * train.jsonl, dev.jsonl and test.jsonl, and corpus.json (a {@link CorpusSummary}).
 * @throws ConfigError for bad options or an output folder that is not empty;
 * MissingPackageError naming espeak-ng or a sentence package that is not installed.
 */
export async function synthesizeCorpus(options: SynthOptions): Promise<CorpusSummary> {
  const languages = resolveSynthLanguages(options.languages);
  if (!(options.hours > 0 && Number.isFinite(options.hours))) throw new ConfigError(`hours must be a positive number, got ${options.hours}`);
  const jobs = options.jobs ?? availableParallelism();
  if (!(Number.isInteger(jobs) && jobs >= 1)) throw new ConfigError(`jobs must be a positive integer, got ${jobs}`);
  const seeds = new Rng(options.seed); // validates the seed
  const espeak = options.espeak ?? 'espeak-ng';
  const entries = await readdir(options.out).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw new ConfigError(`output folder ${options.out}: ${e.code === 'ENOTDIR' ? 'not a folder' : e.message}`);
  });
  if (entries.length > 0) throw new ConfigError(`output folder ${options.out} is not empty`);

  const version = await espeakVersion(espeak);
  const espeakPackage = await installedPackageVersion('espeak-ng', 'speech synthesis for dqw data synth');
  const [voiceNames, variantNames] = await Promise.all([espeakNames(espeak, false), espeakNames(espeak, true)]);
  const variants = SYNTH_VARIANTS.filter((v) => variantNames.has(v));
  if (variants.length === 0) throw new ConfigError(`espeak-ng ${version} has none of the voice variants ${SYNTH_VARIANTS.join(', ')}`);

  // One seed per table language, drawn whether or not it is chosen, so that each language's
  // corpus depends only on the seed and the hours, not on which other languages are made.
  const languageSeeds = new Map(SYNTH_LANGUAGES.map((l) => [l.code, seeds.nextUint32()]));
  const secondsPerLanguage = (options.hours * 3600) / languages.length;
  const streams: SplitStream[] = [];
  const packages = new Map<string, string>();
  const languageInfo: Record<string, CorpusSummary['languages'][string]> = {};
  for (const language of languages) {
    const voices = language.voices.filter((v) => voiceNames.has(v));
    if (voices.length === 0) throw new ConfigError(`espeak-ng ${version} has no voice for ${language.name} (looked for ${language.voices.join(', ')})`);
    const { sentences, packages: used } = await loadLanguageSentences(language);
    if (sentences.length < SYNTH_SPLITS.length) throw new ConfigError(`${language.name}: only ${sentences.length} usable sentences in ${used.map((p) => p.name).join(', ')}`);
    for (const p of used) packages.set(p.name, p.version);
    const rng = new Rng(languageSeeds.get(language.code)!);
    const shuffled = shuffle([...sentences], rng);
    // dev and test get at least one sentence each; train the rest.
    const counts = SYNTH_SPLITS.map((s) => Math.max(1, Math.round(s.fraction * shuffled.length)));
    counts[0] = shuffled.length - counts[1]! - counts[2]!;
    let from = 0;
    const sentencesPerSplit = {} as Record<SynthSplit, number>;
    const voiceVariants = voices.flatMap((v) => variants.map((variant) => `${v}+${variant}`));
    SYNTH_SPLITS.forEach((split, i) => {
      const pool = shuffled.slice(from, (from += counts[i]!));
      sentencesPerSplit[split.name] = pool.length;
      streams.push(new SplitStream(language, split.name, pool, voiceVariants, secondsPerLanguage * split.fraction, rng.nextUint32()));
    });
    languageInfo[language.code] = { name: language.name, sentencesAvailable: sentences.length, sentencesPerSplit, packages: used.map((p) => p.name), voices };
  }

  await mkdir(options.out, { recursive: true });
  for (const s of streams) await mkdir(join(options.out, audioFolder(s.language.code, s.split)), { recursive: true });
  const totalSeconds = streams.reduce((a, s) => a + s.targetSeconds, 0);
  const report = () => options.onProgress?.(streams.reduce((a, s) => a + s.doneSeconds, 0), totalSeconds);
  report();

  const render = async (stream: SplitStream, u: Utterance): Promise<void> => {
    const samples = await renderUtterance(espeak, u.text, u);
    const audio = `${audioFolder(stream.language.code, stream.split)}/${stream.language.code}-${stream.split}-${String(u.index).padStart(6, '0')}.wav`;
    await writeFile(join(options.out, audio), encodeWav16(samples, WHISPER_SAMPLE_RATE));
    stream.finished(u.index, {
      audio,
      text: u.text,
      language: stream.language.code,
      duration: samples.length / WHISPER_SAMPLE_RATE,
      voice: u.voice,
      rate: u.rate,
      pitch: u.pitch,
      snr_db: u.snrDb,
    });
    report();
  };

  // A pool of `jobs` workers; each takes the next utterance of the first stream that wants more.
  let failure: unknown;
  const worker = async (): Promise<void> => {
    for (;;) {
      if (failure !== undefined) return;
      const stream = streams.find((s) => s.wantsMore());
      if (stream === undefined) {
        if (streams.every((s) => s.done)) return;
        await new Promise((r) => setTimeout(r, 5)); // others' utterances in flight decide whether more are needed
        continue;
      }
      stream.inFlight++;
      try {
        await render(stream, stream.next());
      } catch (e) {
        failure ??= e;
      } finally {
        stream.inFlight--;
      }
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  if (failure !== undefined) throw failure;
  for (const s of streams) for (const extra of s.extras()) await rm(join(options.out, extra.audio));

  const splits = {} as Record<SynthSplit, CorpusSummary['splits'][SynthSplit]>;
  for (const { name } of SYNTH_SPLITS) {
    const ofSplit = streams.filter((s) => s.split === name);
    const lines = ofSplit.flatMap((s) => s.lines());
    const manifest = `${name}.jsonl`;
    await writeFile(join(options.out, manifest), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const perLanguage: Record<string, SplitCounts> = {};
    for (const s of ofSplit) {
      const own = s.lines();
      perLanguage[s.language.code] = { utterances: own.length, sentences: new Set(own.map((l) => l.text)).size, hours: hoursOf(own) };
    }
    splits[name] = { manifest, hours: hoursOf(lines), languages: perLanguage };
  }
  const summary: CorpusSummary = {
    command: options.command ?? null,
    seed: options.seed,
    espeakNg: version,
    sampleRate: WHISPER_SAMPLE_RATE,
    packages: [...packages].map(([name, v]) => ({ name, version: v })).concat([{ name: 'espeak-ng', version: espeakPackage }]),
    variants,
    splits,
    languages: languageInfo,
    ranges: SYNTH_RANGES,
  };
  await writeFile(join(options.out, 'corpus.json'), JSON.stringify(summary, null, 2) + '\n');
  return summary;
}

function audioFolder(language: string, split: SynthSplit): string {
  return `audio/${language}/${split}`;
}

function hoursOf(lines: readonly SynthManifestLine[]): number {
  return Math.round((lines.reduce((a, l) => a + l.duration, 0) / 3600) * 1e6) / 1e6;
}

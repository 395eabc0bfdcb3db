// `dqw data synth`: a multilingual synthetic speech corpus from Debian text packages and espeak-ng.
import { parseArgs } from 'node:util';
import { DqwError } from '../errors.js';
import { SYNTH_LANGUAGES, UNSUPPORTED_SYNTH_LANGUAGES } from '../data/synth/languages.js';
import { SYNTH_SPLITS, synthesizeCorpus } from '../data/synth/corpus.js';
import { progressBar, type CommandIo } from './checkpoint.js';

export const dataUsage = `usage: dqw data synth --hours <h> --out <dir> [options]

  Speaks real sentences from Debian text packages (fortunes-*, klavaro, fillets-ng-data) with
  espeak-ng at 16 kHz, with varied voices, rates, pitches and noise, into train/dev/test
  manifests (JSON Lines) split by sentence, and a corpus.json. See docs/data-synth.md.

  --languages <codes>  comma-separated Whisper codes (default all: ${SYNTH_LANGUAGES.map((l) => l.code).join(',')})
  --hours <h>          hours of audio in all, shared equally by the languages
  --seed <n>           seed of every random choice (default 0); the same seed gives the same bytes
  --out <dir>          output folder (created; must be empty)
  --jobs <n>           espeak-ng processes at once (default: the CPUs available)

  Left out: ${Object.entries(UNSUPPORTED_SYNTH_LANGUAGES).map(([code, why]) => `${code} (${why})`).join('; ')}.
`;

/** `dqw data <subcommand>`; only `synth` exists. */
export async function dataCommand(argv: string[], io: CommandIo = { stdout: process.stdout, stderr: process.stderr }): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h') {
    io.stdout.write(dataUsage);
    return;
  }
  if (sub !== 'synth') throw new DqwError(`${sub === undefined ? 'no subcommand' : `unknown subcommand "${sub}"`}\n${dataUsage}`);
  const { values } = parseArgs({
    args: rest,
    options: {
      languages: { type: 'string', default: SYNTH_LANGUAGES.map((l) => l.code).join(',') },
      hours: { type: 'string' },
      seed: { type: 'string', default: '0' },
      out: { type: 'string' },
      jobs: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    io.stdout.write(dataUsage);
    return;
  }
  const usageError = (msg: string) => new DqwError(`${msg}\n${dataUsage}`);
  if (values.out === undefined) throw usageError('--out is required');
  const hours = Number(values.hours);
  if (values.hours === undefined || !(hours > 0 && Number.isFinite(hours))) throw usageError(`--hours must be a positive number, got ${values.hours ?? 'none'}`);
  const seed = Number(values.seed);
  if (!(Number.isSafeInteger(seed) && seed >= 0)) throw usageError(`--seed must be a non-negative integer, got ${values.seed}`);
  const jobs = values.jobs === undefined ? undefined : Number(values.jobs);
  if (jobs !== undefined && !(Number.isInteger(jobs) && jobs >= 1)) throw usageError(`--jobs must be a positive integer, got ${values.jobs}`);

  const bar = progressBar(io.stderr, 'synth |{bar}| {percentage}% | {value}/{total} s of audio | eta {eta_formatted}');
  let started = false;
  const start = performance.now();
  try {
    const summary = await synthesizeCorpus({
      languages: values.languages.split(',').map((c) => c.trim()).filter((c) => c !== ''),
      hours,
      seed,
      out: values.out,
      jobs,
      command: ['dqw', 'data', ...argv].join(' '),
      onProgress: (done, total) => {
        if (!started) bar.start(Math.round(total), 0);
        started = true;
        bar.update(Math.round(done));
      },
    });
    bar.stop();
    const wall = (performance.now() - start) / 1000;
    for (const { name } of SYNTH_SPLITS) {
      const split = summary.splits[name];
      const counts = Object.entries(split.languages).map(([code, c]) => `${code} ${c.utterances}`).join(', ');
      io.stdout.write(`${name.padEnd(5)} ${(split.hours * 60).toFixed(2)} min in ${values.out}/${split.manifest}: ${counts}\n`);
    }
    io.stdout.write(`espeak-ng ${summary.espeakNg}; ${wall.toFixed(1)} s\n`);
  } finally {
    if (started) bar.stop();
  }
}

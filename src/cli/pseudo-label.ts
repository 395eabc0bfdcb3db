// `dqw pseudo-label`: the teacher's greedy transcripts of a manifest become the text of a new JSON
// Lines manifest, leaving out utterances whose transcript is too far from the reference.
import { mkdir } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { DqwError } from '../errors.js';
import { selectPseudoLabels, type PseudoLabelCounts, type PseudoLabelDecision } from '../eval/pseudo-label.js';
import { textFile } from '../io/byte-source.js';
import { writeFileAtomic } from '../io/node-files.js';
import type { CommandIo } from './checkpoint.js';
import { evaluateManifest, openEvaluator, parseLimit, readUsableManifest } from './eval.js';

export const pseudoLabelUsage = `usage: dqw pseudo-label --teacher <dir|file> --data <manifest> --out <manifest.jsonl> [options]

  --teacher <dir|file> Hugging Face folder or whisper.cpp ggml file whose transcripts become labels
  --data <manifest>    JSON Lines file, audiofolder, or Common Voice folder or split file (as dqw eval)
  --out <file.jsonl>   the labelled manifest: audio (relative to its folder), text (the teacher's),
                       language, duration, reference (the original text) and wer or cer
  --max-wer <rate>     drop utterances whose WER (CER for languages without spaces) against the
                       reference exceeds this, as a fraction (default 0.1, distil-whisper's 10%)
  --language <code>    language of rows that state none
  --limit <n>          label the first n usable rows only
`;

const processIo: CommandIo = { stdout: process.stdout, stderr: process.stderr };

/** One line of the output manifest: what `parseJsonlManifest` reads, plus the reference and its score. */
function manifestRow(decision: PseudoLabelDecision, folder: string): Record<string, unknown> {
  const { example, hypothesis, audioSeconds } = decision.utterance;
  return {
    audio: relative(folder, example.audio).split(sep).join('/'),
    text: hypothesis,
    language: example.language,
    duration: audioSeconds,
    reference: example.text,
    [decision.metric]: decision.errorRate,
  };
}

/** Kept and dropped counts as a Markdown table with a total row. */
export function formatPseudoLabelCounts(languages: readonly PseudoLabelCounts[]): string {
  const lines = ['| language | kept | dropped |', '|---|---:|---:|'];
  let kept = 0;
  let dropped = 0;
  for (const l of languages) {
    lines.push(`| ${l.language} | ${l.kept} | ${l.dropped} |`);
    kept += l.kept;
    dropped += l.dropped;
  }
  lines.push(`| all | ${kept} | ${dropped} |`);
  return `${lines.join('\n')}\n`;
}

/**
 * Run `dqw pseudo-label` with `argv` (the arguments after the command name): writes the output
 * manifest atomically and prints kept/dropped counts per language. Throws DqwError for bad
 * arguments, an unreadable manifest or checkpoint, and a manifest without a usable row.
 */
export async function pseudoLabelCommand(argv: string[], io: CommandIo = processIo): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      teacher: { type: 'string' },
      data: { type: 'string' },
      out: { type: 'string' },
      'max-wer': { type: 'string', default: '0.1' },
      language: { type: 'string' },
      limit: { type: 'string' },
    },
  });
  for (const required of ['teacher', 'data', 'out'] as const) {
    if (!values[required]) throw new DqwError(`--${required} is required\n${pseudoLabelUsage}`);
  }
  const maxErrorRate = Number(values['max-wer']);
  if (!(Number.isFinite(maxErrorRate) && maxErrorRate >= 0)) throw new DqwError(`--max-wer must be a non-negative fraction such as 0.1, got "${values['max-wer']}"\n${pseudoLabelUsage}`);
  const limit = parseLimit(values.limit, pseudoLabelUsage);
  const out = resolve(values.out!);
  const contents = await readUsableManifest(values.data!, values.language, io);
  const opened = await openEvaluator(values.teacher!, '--teacher', io);
  try {
    const { result } = await evaluateManifest(opened, contents, limit, io);
    const { decisions, languages } = selectPseudoLabels(result.utterances, { maxErrorRate, normalize: opened.evaluator.normalize });
    const folder = dirname(out);
    const text = decisions.filter((d) => d.kept).map((d) => `${JSON.stringify(manifestRow(d, folder))}\n`).join('');
    await mkdir(folder, { recursive: true });
    await writeFileAtomic(out, textFile(out, text));
    io.stdout.write(`${formatPseudoLabelCounts(languages)}\nwrote ${out}\n`);
  } finally {
    opened.close();
  }
}

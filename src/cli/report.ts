// `dqw report`: the charts and the HTML page of a training run, from its metrics.jsonl. The
// training loop writes the same files at each evaluation and at the end (writeTrainingReport).
import { parseArgs } from 'node:util';
import { DqwError } from '../errors.js';
import { writeTrainingReport } from '../io/training-report-files.js';
import type { CommandIo } from './checkpoint.js';
import { formatSkippedRows } from './eval.js';

export const reportUsage = `usage: dqw report --run <dir> [--out <dir>]

  --run <dir>   training run folder (the --out of dqw distill / dqw train), holding metrics.jsonl
  --out <dir>   where to write loss.svg, cer.svg, layer-map.svg and report.html (default: --run)
`;

const processIo: CommandIo = { stdout: process.stdout, stderr: process.stderr };

/** `dqw report --run <dir> [--out <dir>]`: writes the report files and prints their paths. */
export async function reportCommand(argv: string[], io: CommandIo = processIo): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { run: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', default: false } } });
  if (values.help) {
    io.stdout.write(reportUsage);
    return;
  }
  if (!values.run) throw new DqwError(`--run is required\n${reportUsage}`);
  const { paths, skipped } = await writeTrainingReport(values.run, values.out ?? values.run);
  io.stderr.write(formatSkippedRows(skipped, `warning: ${skipped.length} unreadable line(s) left out:`));
  for (const path of paths) io.stdout.write(`${path}\n`);
}

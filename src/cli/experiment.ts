// `dqw experiment dq`: the DQ-Whisper study end to end (src/experiment/run.ts).
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { DqwError } from '../errors.js';
import { experimentPresets, parseExperimentPreset, variantIds, type ExperimentPreset } from '../experiment/presets.js';
import { runExperiment } from '../experiment/run.js';
import type { CommandIo } from './checkpoint.js';

export const experimentUsage = `usage: dqw experiment dq --preset <name|file.json> --out <dir> [options]

  Runs the DQ-Whisper study: a synthetic multilingual corpus (dqw data synth), a teacher trained
  from scratch (dqw train), students with equal step budgets (${variantIds.join(', ')}:
  from scratch, fixed-map KD, dynamic matching, dynamic + post-training quantization, dynamic +
  quantization-aware distillation with guided layer selection), each scored on the held-out test
  split; writes results.md, results.json, charts and report.html in --out. Each stage is recorded
  in <out>/experiment.json when it finishes: running the same command again skips finished
  stages and resumes an interrupted training run from its last checkpoint.

  --preset <p>        ${Object.values(experimentPresets).map((p) => `${p.name} (${p.description})`).join(';\n                      ')};
                      or a JSON file of the same fields (src/experiment/presets.ts)
  --out <dir>         output folder
  --teacher <ckpt>    use this float teacher instead of training one (the demo preset defaults
                      to the committed assets/demo-teacher)
  --data <dir>        a corpus folder with train.jsonl, dev.jsonl, test.jsonl instead of synthesizing
`;

async function presetOf(spec: string): Promise<ExperimentPreset> {
  const builtIn = experimentPresets[spec];
  if (builtIn) return builtIn;
  if (!spec.endsWith('.json')) throw new DqwError(`--preset must be one of ${Object.keys(experimentPresets).join(', ')} or a .json file, got "${spec}"\n${experimentUsage}`);
  const text = await readFile(spec, 'utf8').catch(() => {
    throw new DqwError(`--preset ${spec}: no such file`);
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new DqwError(`--preset ${spec}: not JSON (${(err as Error).message})`);
  }
  return parseExperimentPreset(json, spec);
}

/** `dqw experiment dq ...`: the table and transcripts on stdout, the stages' progress on stderr. */
export async function experimentCommand(argv: string[], io: CommandIo = process): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h' || rest.includes('--help') || rest.includes('-h')) {
    io.stdout.write(experimentUsage);
    return;
  }
  if (sub !== 'dq') throw new DqwError(`unknown experiment "${sub ?? ''}"; the one there is: dq\n${experimentUsage}`);
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { preset: { type: 'string' }, out: { type: 'string' }, teacher: { type: 'string' }, data: { type: 'string' } },
  });
  if (positionals.length) throw new DqwError(`unexpected argument "${positionals[0]}"\n${experimentUsage}`);
  if (!values.preset) throw new DqwError(`--preset is required\n${experimentUsage}`);
  if (!values.out) throw new DqwError(`--out is required\n${experimentUsage}`);
  const preset = await presetOf(values.preset);
  await runExperiment({ preset, out: values.out, teacher: values.teacher, data: values.data, command: `dqw experiment ${argv.join(' ')}` }, io);
}

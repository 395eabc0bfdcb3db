// The `dqw` command line. Subcommands are added by later issues (transcribe, distill, ...).
import { parseArgs } from 'node:util';
import { Gpu } from '../gpu/gpu.js';
import { DqwError } from '../errors.js';
import { distillCommand, trainCommand } from './distill.js';
import { quantCommand } from './quant.js';
import { evalCommand } from './eval.js';
import { dataCommand } from './data.js';
import { exportCommand } from './export.js';
import { experimentCommand } from './experiment.js';
import { pseudoLabelCommand } from './pseudo-label.js';
import { teacherCacheCommand } from './teacher-cache.js';
import { profileCommand } from './profile.js';
import { reportCommand } from './report.js';
import { transcribeCommand } from './transcribe.js';

const usage = `usage: dqw <command> [options]

commands:
  info [--json]     the WebGPU adapter, the optional features obtained and the negotiated limits
  transcribe <audio...> --model <dir|file> [--language xx] [--task translate] [--beam n]
                    [--no-timestamps] [--format txt|vtt|srt|tsv|json] [--output dir]: transcripts
  export --model <dir|file> --format hf|ggml --output <path> [--quant none|int8|int4|q8_0]
                    [--dtype f32|f16] [--teacher <dir|file>]: write a checkpoint, print its size
  data synth --hours <h> --out <dir> [--languages de,fr,...] [--seed n]: synthetic speech corpus
  distill --teacher <ckpt> --student <preset|config.json|ckpt> --data <manifest> --out <dir>
                    [...]: DQ-Whisper distillation (dqw distill --help for the options)
  teacher-cache --teacher <ckpt> --data <manifest> --out <dir> [--top-k 64] [--max-tokens n]
                    [--batch n]: the teacher's top-k logits and hidden states, once, for distill
                    --teacher-cache
  train --model <preset|config.json|ckpt> --data <manifest> --out <dir> [...]: cross-entropy training
  quant plan --model <ckpt> --teacher <ckpt> --data <manifest> --target-ratio <r> --out <plan.json>
                    [...]: guided layer selection (which layers to quantize for a size ratio)
  eval --model <dir|file> --data <manifest> [--language xx] [--limit n] [--json]: WER, CER, RTF
  pseudo-label --teacher <dir|file> --data <manifest> --out <file.jsonl> [--max-wer 0.1]
                    [--language xx] [--limit n]: the teacher's transcripts as a filtered manifest
  profile --model <dir|file|preset> [--audio <file>] [--trace <file.json>]: where the GPU time of
                    a transcription goes, per kernel and per layer; a Chrome trace
  report --run <dir> [--out <dir>]: loss, CER and layer-map charts (SVG) and report.html of a training run
  experiment dq --preset demo|cpu|gpu|<file.json> --out <dir> [--teacher <ckpt>] [--data <dir>]:
                    the whole study (corpus, teacher, five students, scores, report); resumable
`;

/** `dqw info`: what the engine obtained from the adapter. */
async function info(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false } } });
  const gpu = await Gpu.create();
  try {
    const report = { adapter: gpu.adapter, features: gpu.features, limits: gpu.limits };
    if (values.json) {
      console.log(JSON.stringify(report, null, 2));
      return;
    }
    const a = gpu.adapter;
    console.log(`adapter   ${a.description || a.device || '(no description)'}`);
    console.log(`vendor    ${a.vendor || '?'}  architecture ${a.architecture || '?'}  runtime ${a.runtime}`);
    console.log('features');
    for (const [k, v] of Object.entries(gpu.features)) console.log(`  ${v ? 'yes' : 'no '}  ${k}`);
    console.log('limits');
    for (const [k, v] of Object.entries(gpu.limits)) console.log(`  ${k.padEnd(36)} ${v}`);
  } finally {
    gpu.destroy();
  }
}

const commands: Record<string, (argv: string[]) => Promise<void>> = {
  info,
  transcribe: (argv) => transcribeCommand(argv),
  export: (argv) => exportCommand(argv),
  data: (argv) => dataCommand(argv),
  distill: (argv) => distillCommand(argv),
  'teacher-cache': (argv) => teacherCacheCommand(argv),
  train: (argv) => trainCommand(argv),
  quant: (argv) => quantCommand(argv),
  eval: (argv) => evalCommand(argv),
  'pseudo-label': (argv) => pseudoLabelCommand(argv),
  profile: (argv) => profileCommand(argv),
  report: (argv) => reportCommand(argv),
  experiment: (argv) => experimentCommand(argv),
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    process.stdout.write(usage);
    return name ? 0 : 1;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`dqw: unknown command "${name}"\n${usage}`);
    return 2;
  }
  try {
    await command(rest);
    return 0;
  } catch (err) {
    if (err instanceof DqwError || (err instanceof Error && err.name === 'TypeError' && 'code' in err)) {
      process.stderr.write(`dqw ${name}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

// Dawn's bindings can keep the event loop alive after the device is gone: exit explicitly.
main(process.argv.slice(2)).then((code) => process.exit(code));

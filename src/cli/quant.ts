// `dqw quant plan`: guided layer selection (Whisper-KDQ, docs/method.md). Each quantizable layer
// of the student is fake-quantized alone and the distillation loss against the float teacher is
// measured on held-out examples; layers are then quantized cheapest first (sensitivity per byte
// saved) until the student is the requested ratio smaller than the teacher's float32 bytes, then
// the overshoot is trimmed (selectLayers). The plan is written as quant-plan.json for
// `dqw distill --quant-plan` and `dqw export`.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { BatchPreparer, bindingFitMessage, decoderLength, examplesPerBinding, type PreparedExample } from '../distill/batch.js';
import { compileDistillationStep } from '../distill/step.js';
import { meanLosses } from '../distill/trainer.js';
import { DqwError } from '../errors.js';
import { Gpu } from '../gpu/gpu.js';
import { readAudioFile16k } from '../io/audio-file.js';
import { textFile } from '../io/byte-source.js';
import { writeFileAtomic } from '../io/node-files.js';
import { loadWhisperTokenizer } from '../io/text-assets.js';
import { WhisperWeights } from '../model/whisper.js';
import { formatQuantPlan, measureLayerSensitivities, planSensitivities, parseQuantPlan, quantPlanFile, quantPlanJson, selectLayers, type LayerSensitivity } from '../quant/plan.js';
import { checkpointBytes } from '../quant/size.js';
import { quantizableModules, type QuantBits } from '../quant/weights.js';
import { loadCheckpoint, loadMelFilters, progressBar, tokenizerRanksPath, type CommandIo } from './checkpoint.js';
import { formatSkippedRows, readManifestArgument } from './eval.js';

export const quantUsage = `usage: dqw quant plan --model <student ckpt> --teacher <ckpt> --data <manifest> --target-ratio <r> --out <plan.json> [options]

  Measures each quantizable layer's sensitivity (increase of alpha*CE + beta*KL(tau) to the float
  teacher on held-out examples when that layer alone is fake-quantized) and quantizes layers
  cheapest first (sensitivity per byte saved) until teacher float32 bytes / student bytes >=
  --target-ratio; then gives back the most sensitive earlier layers that the last one's saving
  leaves room for.
  --model <ckpt>        the student (Hugging Face folder or ggml file; e.g. a dqw distill checkpoint)
  --teacher <ckpt>      the float teacher the ratio and the loss refer to
  --data <manifest>     held-out examples (JSONL, Common Voice .tsv, audiofolder metadata.csv)
  --examples <n>        examples measured on (default 8)
  --batch <n>           examples per forward (default 4)
  --target-ratio <r>    teacher float32 bytes / student bytes to reach (e.g. 5.18)
  --bits <b>            8 (default) or 4
  --mixed-int4          with --bits 8: when int8 everywhere misses the target, turn the
                        cheapest layers to int4 until it is met
  --float-dtype <t>     f32 (default) or f16: how the layers left float are stored
  --reuse <plan.json>   select again from a plan's measurements (no GPU), e.g. for another ratio
  --out <file>          where quant-plan.json goes (written atomically)
`;

interface PlanArgs {
  model: string;
  teacher: string;
  data?: string;
  examples: number;
  batch: number;
  targetRatio: number;
  bits: QuantBits;
  mixedInt4: boolean;
  floatDtype: 'F32' | 'F16';
  reuse?: string;
  out: string;
}

function parsePlanArgs(argv: string[]): PlanArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string' }, teacher: { type: 'string' }, data: { type: 'string' }, examples: { type: 'string', default: '8' },
      batch: { type: 'string', default: '4' }, 'target-ratio': { type: 'string' }, bits: { type: 'string', default: '8' },
      'mixed-int4': { type: 'boolean', default: false }, 'float-dtype': { type: 'string', default: 'f32' }, reuse: { type: 'string' }, out: { type: 'string' },
    },
  });
  const fail = (msg: string) => new DqwError(`${msg}\n${quantUsage}`);
  if (positionals.length) throw fail(`unexpected argument "${positionals[0]}"`);
  for (const k of ['model', 'teacher', 'target-ratio', 'out'] as const) if (!values[k]) throw fail(`--${k} is required`);
  if (!values.reuse && !values.data) throw fail('--data is required (or --reuse a plan)');
  const int = (name: string, v: string) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < 1) throw fail(`--${name} must be a positive integer, got "${v}"`);
    return x;
  };
  const targetRatio = Number(values['target-ratio']);
  if (!(targetRatio > 0)) throw fail(`--target-ratio must be a positive number, got "${values['target-ratio']}"`);
  if (values.bits !== '8' && values.bits !== '4') throw fail(`--bits must be 8 or 4, got "${values.bits}"`);
  if (values['float-dtype'] !== 'f32' && values['float-dtype'] !== 'f16') throw fail(`--float-dtype must be f32 or f16, got "${values['float-dtype']}"`);
  return {
    model: values.model!, teacher: values.teacher!, data: values.data, examples: int('examples', values.examples), batch: int('batch', values.batch),
    targetRatio, bits: Number(values.bits) as QuantBits, mixedInt4: values['mixed-int4'], floatDtype: values['float-dtype'] === 'f16' ? 'F16' : 'F32',
    reuse: values.reuse, out: values.out!,
  };
}

async function plan(argv: string[], io: CommandIo): Promise<void> {
  const args = parsePlanArgs(argv);
  const log = (line: string) => io.stderr.write(`${line}\n`);
  const [student, teacher] = await Promise.all([loadCheckpoint(args.model, io.stderr, '--model'), loadCheckpoint(args.teacher, io.stderr, '--teacher')]);
  const teacherFloatBytes = checkpointBytes({ config: teacher.config });
  let records: LayerSensitivity[];
  let measuredOn: string;
  if (args.reuse) {
    const previous = parseQuantPlan(await readFile(args.reuse, 'utf8'), args.reuse);
    records = planSensitivities(previous);
    measuredOn = previous.measuredOn;
  } else {
    const manifest = await readManifestArgument(args.data!);
    if (manifest.skipped.length) log(formatSkippedRows(manifest.skipped, `${args.data}: ${manifest.skipped.length} rows skipped`));
    const config = student.config;
    const [tokenizer, melFilters] = await Promise.all([loadWhisperTokenizer(tokenizerRanksPath(config), { vocabSize: config.vocab_size }), loadMelFilters(config)]);
    const gpu = await Gpu.create();
    const teacherWeights = WhisperWeights.upload(gpu, teacher.config, teacher.weights, args.teacher);
    const studentWeights = WhisperWeights.upload(gpu, config, student.weights, args.model);
    const preparer = new BatchPreparer(gpu, config, tokenizer, melFilters, decoderLength(tokenizer, config, manifest.examples.slice(0, args.examples)));
    try {
      const prepared: PreparedExample[] = [];
      for (const e of manifest.examples) {
        if (prepared.length === args.examples) break;
        const p = await preparer.load(e, readAudioFile16k);
        if ('skipped' in p) log(`${p.skipped.source}:${p.skipped.line}: ${p.skipped.reason} (skipped)`);
        else prepared.push(p);
      }
      if (!prepared.length) throw new DqwError(`${args.data}: no example could be loaded`);
      const vocab = config.vocab_size; // the teacher's too: compileDistillationStep refuses another
      const batch = Math.min(args.batch, examplesPerBinding(preparer.tokens, vocab, gpu.limits.maxStorageBufferBindingSize));
      if (batch < args.batch) log(bindingFitMessage(args.batch, preparer.tokens, vocab, gpu.limits.maxStorageBufferBindingSize, `measuring ${batch} at a time`));
      const batches: PreparedExample[][] = [];
      for (let i = 0; i < prepared.length; i += batch) batches.push(prepared.slice(i, i + batch));
      measuredOn = `${prepared.length} examples of ${args.data} (teacher ${args.teacher}, student ${args.model})`;
      const measure = async (quantized: readonly string[]) => {
        const weights = new Set(quantized.map((m) => `${m}.weight`));
        const step = await compileDistillationStep(gpu, {
          teacher: teacherWeights, student: studentWeights, shape: { batch, tokens: preparer.tokens, padded: true }, lr: 0,
          train: false, hiddenStates: 'none', quantize: (name) => (weights.has(name) ? { bits: args.bits } : null),
        });
        try {
          return (await meanLosses(step, preparer, batches, batch)).total;
        } finally {
          step.destroy();
        }
      };
      const modules = quantizableModules(config);
      const bar = progressBar(io.stderr, 'sensitivity {value}/{total} [{bar}] {percentage}% | ETA {eta_formatted} | {module}');
      bar.start(modules.length + 1, 0, { module: 'float baseline' });
      records = await measureLayerSensitivities(modules, measure, { bits: args.bits, onProgress: (p) => bar.update(p.done, { module: `${p.module ?? 'baseline'} ${p.loss.toFixed(4)}` }) });
      bar.stop();
    } finally {
      preparer.destroy();
      studentWeights.destroy();
      teacherWeights.destroy();
      gpu.destroy();
    }
  }
  const selection = selectLayers(records, { config: student.config, teacherFloatBytes, targetRatio: args.targetRatio, bits: args.bits, floatDtype: args.floatDtype, mixedInt4: args.mixedInt4 });
  const file = quantPlanFile(records, selection, measuredOn);
  await writeFileAtomic(args.out, textFile(args.out, quantPlanJson(file)));
  io.stdout.write(`${formatQuantPlan(file)}\nwrote ${args.out}\n`);
}

/** `dqw quant <subcommand>`. */
export async function quantCommand(argv: string[], io: CommandIo = process): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'plan' && (rest.includes('--help') || rest.includes('-h'))) {
    io.stdout.write(quantUsage);
    return;
  }
  if (sub === 'plan') return plan(rest, io);
  throw new DqwError(`dqw quant: unknown subcommand "${sub ?? ''}"\n${quantUsage}`);
}

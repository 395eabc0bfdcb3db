// `dqw distill` and `dqw train`: the training loop on the command line. Loads the teacher (distill)
// and the student (a preset, a config.json or a checkpoint; seeded from teacher layers or at
// random), reads the manifests, runs the Trainer with a progress line, evaluates on a dev set
// (losses, and greedy WER/CER per language), logs metrics as JSONL, writes checkpoints atomically
// (last K + best), resumes exactly, and saves on Ctrl-C.
import { appendFile, mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BatchPreparer, bindingFitMessage, decoderLength, splitBatchForBinding } from '../distill/batch.js';
import { formatLayerMap, type LayerMatchingStrategy } from '../distill/matching.js';
import type { LearningRateDecay } from '../distill/schedule.js';
import { initStudentFromTeacher } from '../distill/student-init.js';
import { defaultDistillationLoss, type CachedKlForm, type HiddenStateMatching } from '../distill/step.js';
import { Trainer, trainerStateFrom, type TrainerOptions, type TrainerResume } from '../distill/trainer.js';
import { ConfigError, DqwError } from '../errors.js';
import { Evaluator, formatEvalTable, type EvaluationResult } from '../eval/evaluate.js';
import { Gpu } from '../gpu/gpu.js';
import { readAudioFile16k } from '../io/audio-file.js';
import { loadSpellingMapping, loadWhisperTokenizer } from '../io/text-assets.js';
import { latestTrainingCheckpoint, loadTrainingCheckpoint, saveTrainingCheckpoint } from '../io/training-checkpoint.js';
import { parseWhisperConfig, presetConfig, whisperPresets, type WhisperConfig, type WhisperPreset } from '../model/config.js';
import { WhisperInference } from '../model/inference.js';
import { initWhisperWeights } from '../model/init.js';
import { WhisperWeights } from '../model/whisper.js';
import { parseQuantPlan, quantizationPlanOf } from '../quant/plan.js';
import { fullQuantizationPlan, resolvePlan, type QuantizationPlan } from '../quant/weights.js';
import { loadCheckpoint, loadMelFilters, progressBar, tokenizerRanksPath, type CommandIo } from './checkpoint.js';
import { formatSkippedRows, readManifestArgument } from './eval.js';
import { onInterrupt } from './interrupt.js';
import { writeTrainingReport } from '../io/training-report-files.js';
import { matchTeacherCache } from '../distill/teacher-cache.js';
import { openTeacherCache, teacherCacheSource, teacherWeightsDigest } from '../io/teacher-cache-files.js';
import { formatTrainingProgress } from '../report/progress.js';

const SPELLINGS = new URL('../../assets/english.json', import.meta.url).pathname;

const common = `  --data <manifest>       training set: JSONL, Common Voice .tsv, or audiofolder metadata.csv
  --dev <manifest>        dev set, evaluated every --eval-every steps (losses, WER/CER per language)
  --out <dir>             run folder: metrics.jsonl, checkpoints/, report (required)
  --steps <n>             optimizer updates (default 1000)
  --batch <n>             examples per micro-batch (default 8)
  --accumulate <k>        micro-batches per update, their gradients averaged (default 1)
  --lr <x>                peak learning rate (default 1e-4)
  --warmup <n>            linear warm-up steps (default 10% of --steps)
  --decay <d>             linear (default), cosine or constant
  --weight-decay <x>      AdamW decoupled weight decay (default 0.01)
  --max-grad-norm <x>     clip the global gradient norm (default 1; 0 turns clipping off)
  --max-tokens <n>        decoder positions per example (default: the longest label sequence)
  --eval-every <n>        steps between dev evaluations (default 100)
  --eval-limit <n>        dev examples transcribed per evaluation (default all)
  --checkpoint-every <n>  steps between checkpoints (default 100)
  --keep <k>              checkpoints kept besides the best (default 3)
  --resume                continue from the latest checkpoint in --out (exactly: weights,
                          optimizer moments, step, data position, layer maps)
  --stop-at <n>           save a checkpoint and stop after step n (a run split over sessions;
                          continue it with --resume)
  --seed <n>              data order and initialisation (default 0)
`;

export const distillUsage = `usage: dqw distill --teacher <ckpt> --student <preset|config.json|ckpt> --data <manifest> --out <dir> [options]

  --teacher <ckpt>        frozen float teacher (Hugging Face folder or ggml file)
  --teacher-cache <dir>   read the teacher's outputs from dqw teacher-cache instead of running
                          it (KL over the cached top-k); --teacher is then needed only for
                          copy-layers init and the dev losses (or --dev-teacher-cache), and is
                          checked against the cache
  --dev-teacher-cache <d> with --teacher-cache and --dev: the dev losses read this cache of the
                          --dev manifest (dqw teacher-cache, same teacher, --tau and --max-tokens)
                          instead of running the teacher
  --teacher-cache-kl <f>  tail (default: the k cached logits at their probabilities plus the rest
                          of the teacher's mass as one bucket; needs the cache's --tau = --tau)
                          or renormalised (the teacher renormalised over its k logits)
  --student <s>           preset (tiny, base, ...), a config.json, or a checkpoint
  --init <i>              copy-layers (default when the widths agree: maximally spaced teacher
                          layers), random, or ckpt (the --student checkpoint's weights)
${common}  --alpha <x> --beta <x> --gamma <x>
                          weights of CE, KL and hidden-state matching (default 0.8, 1, 1)
  --tau <x>               KL temperature (default 2)
  --hidden <h>            encoder+decoder (default), encoder, decoder or none
  --hidden-layer-norm     LayerNorm both sides before the hidden-state MSE
  --matching <m>          dynamic (default), fixed, window or greedy
  --window <w>            window of --matching window (default 1)
  --match-every <k>       recompute the layer map every k steps (default 1)
  --quant <q>             none (default), int8 or int4: fake-quant every Linear of the student
  --quant-plan <file>     quant-plan.json of dqw quant plan (guided layer selection)
  --quant-warmup <n>      float steps before fake-quant switches on (default 0)
  --quant-activations     also fake-quantize the inputs of the quantized Linears per token to
                          8 bits, as the int8 kernels run them
  --learnable-scales      learn the quantized Linears' per-channel weight scales (LSQ), from
                          max|W_c| / qmax at the fake-quant switch; saved in training.safetensors
  --freeze-scales-after <n>  keep the learned scales fixed after step n
  --scale-lr-factor <x>   learning rate of the learned scales = x times the weights' (default 1)
  --frozen-encoder        keep the teacher's encoder (student cross-attends to its output)
`;

export const trainUsage = `usage: dqw train --model <preset|config.json|ckpt> --data <manifest> --out <dir> [options]

  Cross-entropy training of a Whisper from scratch (a preset or config.json, random weights) or
  fine-tuning of a checkpoint.
  --model <m>             preset (tiny, base, ...), a config.json, or a checkpoint
${common}`;

interface RunArgs {
  teacher?: string;
  teacherCache?: string;
  devTeacherCache?: string;
  teacherCacheKl: CachedKlForm;
  student: string;
  init?: 'copy-layers' | 'random' | 'ckpt';
  data: string;
  dev?: string;
  out: string;
  resume: boolean;
  trainer: TrainerOptions;
  maxTokens?: number;
  evalEvery: number;
  evalLimit?: number;
  checkpointEvery: number;
  keep: number;
  stopAt?: number;
  quant: 'none' | 'int8' | 'int4';
  quantPlan?: string;
  quantActivations: boolean;
}

function parseRunArgs(argv: string[], distill: boolean): RunArgs {
  const usage = distill ? distillUsage : trainUsage;
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      teacher: { type: 'string' }, 'teacher-cache': { type: 'string' }, 'teacher-cache-kl': { type: 'string', default: 'tail' }, 'dev-teacher-cache': { type: 'string' }, student: { type: 'string' }, model: { type: 'string' }, init: { type: 'string' },
      data: { type: 'string' }, dev: { type: 'string' }, out: { type: 'string' },
      steps: { type: 'string', default: '1000' }, batch: { type: 'string', default: '8' }, accumulate: { type: 'string', default: '1' }, lr: { type: 'string', default: '1e-4' },
      warmup: { type: 'string' }, decay: { type: 'string', default: 'linear' }, 'weight-decay': { type: 'string', default: '0.01' },
      'max-grad-norm': { type: 'string', default: '1' }, 'max-tokens': { type: 'string' },
      'eval-every': { type: 'string', default: '100' }, 'eval-limit': { type: 'string' },
      'checkpoint-every': { type: 'string', default: '100' }, keep: { type: 'string', default: '3' },
      resume: { type: 'boolean', default: false }, 'stop-at': { type: 'string' }, seed: { type: 'string', default: '0' },
      alpha: { type: 'string' }, beta: { type: 'string' }, gamma: { type: 'string' }, tau: { type: 'string' },
      hidden: { type: 'string' }, 'hidden-layer-norm': { type: 'boolean', default: false },
      matching: { type: 'string' }, window: { type: 'string' }, 'match-every': { type: 'string' },
      quant: { type: 'string', default: 'none' }, 'quant-plan': { type: 'string' }, 'quant-warmup': { type: 'string', default: '0' }, 'quant-activations': { type: 'boolean', default: false },
      'learnable-scales': { type: 'boolean', default: false }, 'freeze-scales-after': { type: 'string' }, 'scale-lr-factor': { type: 'string' },
      'frozen-encoder': { type: 'boolean', default: false },
    },
  });
  const fail = (msg: string) => new DqwError(`${msg}\n${usage}`);
  if (positionals.length) throw fail(`unexpected argument "${positionals[0]}"`);
  const num = (name: string, v: string | undefined, integer: boolean, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!Number.isFinite(x) || x < min || (integer && !Number.isInteger(x))) throw fail(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got "${v}"`);
    return x;
  };
  const distillOnly = ['teacher', 'teacher-cache', 'dev-teacher-cache', 'student', 'init', 'alpha', 'beta', 'gamma', 'tau', 'hidden', 'matching', 'window', 'match-every', 'quant-plan', 'frozen-encoder'] as const;
  if (!distill) for (const k of distillOnly) if (values[k] !== undefined && values[k] !== false) throw fail(`--${k} is an option of dqw distill, not dqw train`);
  const student = distill ? values.student : values.model;
  if (distill && !values.teacher && !values['teacher-cache']) throw fail('--teacher is required (or --teacher-cache)');
  if (!['tail', 'renormalised'].includes(values['teacher-cache-kl'])) throw fail(`--teacher-cache-kl must be tail or renormalised, got "${values['teacher-cache-kl']}"`);
  if (values['teacher-cache-kl'] !== 'tail' && !values['teacher-cache']) throw fail('--teacher-cache-kl needs --teacher-cache');
  if (values['teacher-cache'] && values['frozen-encoder']) throw fail('--frozen-encoder needs the live teacher (the teacher cache holds no encoder output to attend to)');
  if (values['dev-teacher-cache'] && !(values['teacher-cache'] && values.dev)) throw fail('--dev-teacher-cache needs --teacher-cache and --dev');
  if (values['teacher-cache'] && values.dev && !values.teacher && !values['dev-teacher-cache']) {
    throw fail('--dev with --teacher-cache needs the teacher on the dev examples: --dev-teacher-cache (dqw teacher-cache of the --dev manifest) or --teacher');
  }
  if (!student) throw fail(distill ? '--student is required' : '--model is required');
  if (!values.data) throw fail('--data is required');
  if (!values.out) throw fail('--out is required');
  const inits = ['copy-layers', 'random', 'ckpt'];
  if (values.init !== undefined && !inits.includes(values.init)) throw fail(`--init must be one of ${inits.join(', ')}, got "${values.init}"`);
  const decays: LearningRateDecay[] = ['linear', 'cosine', 'constant'];
  if (!decays.includes(values.decay as LearningRateDecay)) throw fail(`--decay must be one of ${decays.join(', ')}, got "${values.decay}"`);
  const hiddens: HiddenStateMatching[] = ['encoder+decoder', 'encoder', 'decoder', 'none'];
  if (values.hidden !== undefined && !hiddens.includes(values.hidden as HiddenStateMatching)) throw fail(`--hidden must be one of ${hiddens.join(', ')}, got "${values.hidden}"`);
  const strategies: LayerMatchingStrategy[] = ['dynamic', 'fixed', 'window', 'greedy'];
  if (values.matching !== undefined && !strategies.includes(values.matching as LayerMatchingStrategy)) throw fail(`--matching must be one of ${strategies.join(', ')}, got "${values.matching}"`);
  if (!['none', 'int8', 'int4'].includes(values.quant)) throw fail(`--quant must be none, int8 or int4, got "${values.quant}"`);
  if (values['quant-plan'] && values.quant !== 'none') throw fail('give --quant or --quant-plan, not both');
  if (values['quant-activations'] && values.quant === 'none' && !values['quant-plan']) throw fail('--quant-activations needs --quant or --quant-plan');
  if (values['learnable-scales'] && values.quant === 'none' && !values['quant-plan']) throw fail('--learnable-scales needs --quant or --quant-plan');
  if (values['freeze-scales-after'] !== undefined && !values['learnable-scales']) throw fail('--freeze-scales-after needs --learnable-scales');
  if (values['scale-lr-factor'] !== undefined && !values['learnable-scales']) throw fail('--scale-lr-factor needs --learnable-scales');
  const steps = num('steps', values.steps, true, 1)!;
  const maxGradNorm = num('max-grad-norm', values['max-grad-norm'], false, 0)!;
  return {
    teacher: values.teacher,
    teacherCache: values['teacher-cache'],
    devTeacherCache: values['dev-teacher-cache'],
    teacherCacheKl: values['teacher-cache-kl'] as CachedKlForm,
    student,
    init: values.init as RunArgs['init'],
    data: values.data,
    dev: values.dev,
    out: values.out,
    resume: values.resume,
    maxTokens: num('max-tokens', values['max-tokens'], true, 2),
    evalEvery: num('eval-every', values['eval-every'], true, 1)!,
    evalLimit: num('eval-limit', values['eval-limit'], true, 1),
    checkpointEvery: num('checkpoint-every', values['checkpoint-every'], true, 1)!,
    keep: num('keep', values.keep, true, 1)!,
    stopAt: num('stop-at', values['stop-at'], true, 1),
    quant: values.quant as RunArgs['quant'],
    quantPlan: values['quant-plan'],
    quantActivations: values['quant-activations'],
    trainer: {
      steps,
      batchSize: num('batch', values.batch, true, 1)!,
      microBatches: num('accumulate', values.accumulate, true, 1)!,
      schedule: {
        peak: num('lr', values.lr, false, Number.MIN_VALUE)!,
        warmupSteps: num('warmup', values.warmup, true, 0) ?? Math.floor(steps / 10),
        totalSteps: steps,
        decay: values.decay as LearningRateDecay,
      },
      weightDecay: num('weight-decay', values['weight-decay'], false, 0),
      maxGradNorm: maxGradNorm > 0 ? maxGradNorm : undefined,
      seed: num('seed', values.seed, true, 0)!,
      frozenEncoder: values['frozen-encoder'],
      quantWarmupSteps: num('quant-warmup', values['quant-warmup'], true, 0),
      learnableScales: values['learnable-scales'] || undefined,
      lsqFreezeSteps: num('freeze-scales-after', values['freeze-scales-after'], true, 0),
      scaleLrFactor: num('scale-lr-factor', values['scale-lr-factor'], false, 0),
      loss: {
        alpha: num('alpha', values.alpha, false, 0),
        beta: num('beta', values.beta, false, 0),
        gamma: num('gamma', values.gamma, false, 0),
        tau: num('tau', values.tau, false, Number.MIN_VALUE),
        hiddenStates: values.hidden as HiddenStateMatching | undefined,
        hiddenLayerNorm: values['hidden-layer-norm'],
        matching: values.matching || values.window || values['match-every']
          ? { strategy: (values.matching ?? 'dynamic') as LayerMatchingStrategy, window: num('window', values.window, true, 0), every: num('match-every', values['match-every'], true, 1) }
          : undefined,
      },
    },
  };
}

/** A student config from a preset name or a config.json file; null when `spec` is a checkpoint. */
async function studentConfigOf(spec: string): Promise<WhisperConfig | null> {
  if ((whisperPresets as readonly string[]).includes(spec)) return presetConfig(spec as WhisperPreset);
  if (spec.endsWith('.json') && (await stat(spec).then((s) => s.isFile(), () => false))) {
    const text = await readFile(spec, 'utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new DqwError(`${spec}: not JSON (${(err as Error).message})`);
    }
    return parseWhisperConfig(json, spec);
  }
  return null;
}

/** The fake-quant predicate of --quant / --quant-plan (null: float training). */
async function quantizationOf(args: RunArgs, config: WhisperConfig): Promise<QuantizationPlan | null> {
  if (args.quantPlan) return quantizationPlanOf(parseQuantPlan(await readFile(args.quantPlan, 'utf8'), args.quantPlan), config);
  return args.quant === 'none' ? null : fullQuantizationPlan(config, args.quant === 'int4' ? 4 : 8);
}

/** Which weights fake-quant applies to, and at how many bits (the token embedding stays float in training). */
function quantizePredicate(config: WhisperConfig, plan: QuantizationPlan, activations: boolean): (weightName: string) => { bits: number; activations: boolean } | null {
  const bits = new Map(resolvePlan(config, plan).modules.map((m) => [m.weight, m.bits]));
  return (name) => (bits.has(name) ? { bits: bits.get(name)!, activations } : null);
}

async function runTraining(argv: string[], distill: boolean, io: CommandIo): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(distill ? distillUsage : trainUsage);
    return;
  }
  const args = parseRunArgs(argv, distill);
  const log = (line: string) => io.stderr.write(`${line}\n`);
  await mkdir(args.out, { recursive: true });
  const metricsPath = join(args.out, 'metrics.jsonl');
  const record = (r: Record<string, unknown>) => appendFile(metricsPath, `${JSON.stringify(r)}\n`);

  // Models.
  const cacheReader = args.teacherCache ? await openTeacherCache(args.teacherCache) : null;
  const teacherCkpt = args.teacher ? await loadCheckpoint(args.teacher, io.stderr, '--teacher') : null;
  const teacherDigest = cacheReader && teacherCkpt ? teacherWeightsDigest(teacherCkpt.weights) : undefined;
  let resume: TrainerResume | undefined;
  let studentConfig: WhisperConfig;
  let studentWeights: Map<string, Float32Array>;
  let resumedFrom: string | undefined;
  if (args.resume) {
    const latest = await latestTrainingCheckpoint(args.out);
    if (!latest) throw new DqwError(`--resume: no checkpoint in ${join(args.out, 'checkpoints')}`);
    const ckpt = await loadTrainingCheckpoint(latest.path);
    resume = { state: trainerStateFrom(ckpt.state, latest.path), tensors: ckpt.tensors };
    studentConfig = ckpt.model.config;
    studentWeights = ckpt.model.weights;
    resumedFrom = latest.path;
    log(`resuming from ${latest.path} (step ${resume.state.step})`);
  } else {
    const fromConfig = await studentConfigOf(args.student);
    if (fromConfig) {
      studentConfig = fromConfig;
      if (args.init === 'ckpt') throw new DqwError(`--init ckpt needs a checkpoint as --student, got ${args.student}`);
      if (args.init === 'copy-layers' && !teacherCkpt) throw new DqwError('--init copy-layers needs --teacher (the teacher cache holds outputs, not weights)');
      // copy-layers by default when there is a teacher; random when asked or when widths differ.
      if (teacherCkpt && args.init !== 'random') {
        try {
          const seeded = initStudentFromTeacher(teacherCkpt.config, teacherCkpt.weights, studentConfig);
          studentWeights = seeded.weights;
          log(`student seeded from teacher layers: encoder ${seeded.encoderLayers.join(',')}, decoder ${seeded.decoderLayers.join(',')}`);
        } catch (err) {
          if (args.init === 'copy-layers') throw err;
          studentWeights = initWhisperWeights(studentConfig, args.trainer.seed);
          log(`student initialised at random (${(err as Error).message})`);
        }
      } else {
        studentWeights = initWhisperWeights(studentConfig, args.trainer.seed);
        log('student initialised at random');
      }
    } else {
      if (args.init && args.init !== 'ckpt') throw new DqwError(`--init ${args.init} needs a preset or config.json as --student; ${args.student} is a checkpoint`);
      const ckpt = await loadCheckpoint(args.student, io.stderr, distill ? '--student' : '--model');
      studentConfig = ckpt.config;
      studentWeights = ckpt.weights;
    }
  }
  const plan = await quantizationOf(args, studentConfig);
  if (plan) args.trainer.quantize = quantizePredicate(studentConfig, plan, args.quantActivations);

  // Data.
  const train = await readManifestArgument(args.data);
  if (train.skipped.length) log(formatSkippedRows(train.skipped, `${args.data}: ${train.skipped.length} rows skipped`));
  const dev = args.dev ? await readManifestArgument(args.dev) : null;
  if (dev?.skipped.length) log(formatSkippedRows(dev.skipped, `${args.dev}: ${dev.skipped.length} rows skipped`));
  const devExamples = dev ? dev.examples.slice(0, args.evalLimit) : [];

  const [tokenizer, melFilters, spellingMapping] = await Promise.all([
    loadWhisperTokenizer(tokenizerRanksPath(studentConfig), { vocabSize: studentConfig.vocab_size }),
    loadMelFilters(studentConfig),
    loadSpellingMapping(SPELLINGS),
  ]);
  const gpu = await Gpu.create();
  const teacher = teacherCkpt ? WhisperWeights.upload(gpu, teacherCkpt.config, teacherCkpt.weights, args.teacher) : null;
  teacherCkpt?.weights.clear();
  const student = WhisperWeights.upload(gpu, studentConfig, studentWeights, 'student');
  const tokens = decoderLength(tokenizer, studentConfig, train.examples, args.maxTokens);
  if (cacheReader) {
    // What a cache must fit, the training one and the dev one alike.
    const run = {
      tokens, tau: args.trainer.loss?.tau ?? defaultDistillationLoss.tau, klForm: args.teacherCacheKl,
      teacher: teacherCkpt && teacherDigest ? { config: teacherCkpt.config, sha256: teacherDigest, path: args.teacher! } : undefined,
    };
    const entries = matchTeacherCache(cacheReader.index, cacheReader.indexFile, { ...run, examples: train.examples });
    args.trainer.teacherCache = teacherCacheSource(cacheReader, entries, args.teacherCacheKl);
    log(`teacher outputs from ${args.teacherCache}: top-${cacheReader.index.topK} logits (KL ${args.teacherCacheKl}), ${cacheReader.index.examples.length} examples`);
    if (args.devTeacherCache) {
      const devReader = await openTeacherCache(args.devTeacherCache);
      if (devReader.index.teacher.sha256 !== cacheReader.index.teacher.sha256) {
        throw new ConfigError(`${devReader.indexFile}: teacher.sha256 ${devReader.index.teacher.sha256} differs from ${cacheReader.indexFile}'s ${cacheReader.index.teacher.sha256}: the dev cache holds another teacher's outputs`);
      }
      const devEntries = matchTeacherCache(devReader.index, devReader.indexFile, { ...run, examples: devExamples });
      args.trainer.devTeacherCache = teacherCacheSource(devReader, devEntries, args.teacherCacheKl);
      log(`dev teacher outputs from ${args.devTeacherCache}: top-${devReader.index.topK} logits, ${devEntries.size} dev examples`);
    }
  }
  const preparer = new BatchPreparer(gpu, studentConfig, tokenizer, melFilters, tokens);
  // The teacher's vocabulary is the student's (compileDistillationStep refuses another).
  const vocab = studentConfig.vocab_size;
  const asked = { batchSize: args.trainer.batchSize, microBatches: args.trainer.microBatches ?? 1 };
  const split = splitBatchForBinding(asked, tokens, vocab, gpu.limits.maxStorageBufferBindingSize);
  if (split !== asked) {
    log(bindingFitMessage(asked.batchSize, tokens, vocab, gpu.limits.maxStorageBufferBindingSize,
      `each update runs as ${split.microBatches} micro-batches of ${split.batchSize} (gradient accumulation), still ${asked.batchSize * asked.microBatches} examples per update`));
    args.trainer = { ...args.trainer, ...split };
  }
  const trainer = new Trainer(gpu, teacher, student, preparer, train.examples, readAudioFile16k, args.trainer, resume);
  const inference = dev ? new WhisperInference(student) : null;
  const evaluator = inference ? new Evaluator(inference, { tokenizer, melFilters, spellingMapping }) : null;

  const interrupt = onInterrupt((e) => log(e.graceful ? '\ninterrupt: finishing this step, then saving a checkpoint (Ctrl-C again to quit without saving)' : '\ninterrupt: quitting'));
  let bestMetric: number | undefined;
  const save = async (reason: string, metric?: number) => {
    const { state, tensors } = await trainer.checkpointState();
    const saved = await saveTrainingCheckpoint(
      args.out,
      { step: trainer.step, model: { config: studentConfig, weights: await student.download() }, tensors, state: { trainer: state, reason }, metric },
      { keepLast: args.keep },
    );
    await record({ type: 'checkpoint', step: trainer.step, path: saved.path, reason });
    return saved.path;
  };
  const evaluate = async () => {
    const loss = await trainer.evaluateLoss(devExamples);
    let result: EvaluationResult | null = null;
    if (evaluator) result = await evaluator.evaluate(devExamples, { readAudio: readAudioFile16k });
    const languages = Object.fromEntries((result?.languages ?? []).map((l) => [l.language, { wer: l.wer?.rate ?? null, cer: l.cer.rate, utterances: l.utterances }]));
    await record({
      type: 'eval', step: trainer.step,
      loss: { total: loss.total, ce: loss.ce, kl: loss.kl, hs: loss.hs },
      overall: { wer: result?.overall.wer?.rate ?? null, cer: result?.overall.cer?.rate ?? null, utterances: result?.overall.utterances ?? 0 },
      languages,
    });
    log(`\nstep ${trainer.step} dev: loss ${loss.total.toFixed(4)} (ce ${loss.ce.toFixed(4)}${distill ? `, kl ${loss.kl.toFixed(4)}, hs ${loss.hs.toFixed(4)}` : ''})`);
    if (result) log(formatEvalTable(result));
    return result?.overall.cer?.rate ?? loss.total;
  };

  try {
    await record(resumedFrom
      ? { type: 'resume', step: trainer.step, from: resumedFrom }
      : { type: 'run', startedAt: new Date().toISOString(), command: `dqw ${distill ? 'distill' : 'train'} ${argv.join(' ')}`, teacher: args.teacher, teacherCache: args.teacherCache, student: args.student, options: { ...args.trainer, teacherCache: args.teacherCache, devTeacherCache: args.devTeacherCache, teacherCacheKl: args.teacherCache ? args.teacherCacheKl : undefined, quantize: plan ? (args.quantPlan ?? args.quant) : 'none' } });
    log(`${distill ? 'distilling' : 'training'} on ${gpu.adapter.description || gpu.adapter.device || 'WebGPU'}: ${train.examples.length} examples, batch ${args.trainer.batchSize} x ${tokens} tokens${(args.trainer.microBatches ?? 1) > 1 ? ` x ${args.trainer.microBatches} micro-batches` : ''}, ${args.trainer.steps} steps${plan ? `, fake-quant ${args.quantPlan ?? args.quant} after ${args.trainer.quantWarmupSteps ?? 0} float steps` : ''}`);
    const bar = progressBar(io.stderr, '[{bar}] {progress}');
    const startStep = trainer.step;
    bar.start(args.trainer.steps, trainer.step, { progress: '' });
    const started = performance.now();
    const stopAt = Math.min(args.stopAt ?? Infinity, args.trainer.steps);
    while (trainer.step < stopAt && !interrupt.requested) {
      const r = await trainer.trainStep();
      const tokensPerSecond = r.tokens / r.seconds;
      await record({ type: 'train', step: r.step, epoch: r.epoch, time: (performance.now() - started) / 1000, lr: r.lr, loss: { total: r.losses.total, ce: r.losses.ce, kl: r.losses.kl, hs: r.losses.hs }, gradNorm: Number.isFinite(r.losses.gradNorm) ? r.losses.gradNorm : undefined, samplesPerSecond: r.examples / r.seconds, tokensPerSecond, quantized: r.quantized });
      const changed = Object.entries(r.mapChanges).filter(([, c]) => c);
      if (changed.length) {
        const maps = await trainer.layerMaps();
        const teacherConfig = teacher?.config ?? cacheReader?.index.teacher.config;
        const teacherLayers = { encoder: teacherConfig && !args.trainer.frozenEncoder ? teacherConfig.encoder_layers : undefined, decoder: teacherConfig?.decoder_layers };
        await record({ type: 'layer-map', step: r.step, encoder: maps?.encoder ?? [], decoder: maps?.decoder ?? [], teacherLayers });
        log(`\nstep ${r.step}: layer map ${changed.map(([side, c]) => `${side} ${formatLayerMap(c!.teacherLayers)}`).join(', ')}`);
      }
      const l = r.losses;
      const progress = formatTrainingProgress({
        step: r.step, totalSteps: args.trainer.steps, startStep, tokensPerSecond, elapsedSeconds: (performance.now() - started) / 1000,
        loss: distill ? { total: l.total, ce: l.ce, kl: l.kl, hs: l.hs } : { total: l.total },
      });
      bar.update(r.step, { progress });
      const last = r.step === args.trainer.steps;
      let metric: number | undefined;
      if (dev && (r.step % args.evalEvery === 0 || last)) {
        bar.stop();
        metric = await evaluate();
        await writeTrainingReport(args.out);
        bar.start(args.trainer.steps, r.step, { progress });
      }
      if (r.step % args.checkpointEvery === 0 || last || metric !== undefined) {
        const isBest = metric !== undefined && (bestMetric === undefined || metric < bestMetric);
        if (isBest) bestMetric = metric;
        if (r.step % args.checkpointEvery === 0 || last || isBest) await save(last ? 'final' : isBest ? 'best' : 'interval', metric);
      }
    }
    bar.stop();
    if ((interrupt.requested || trainer.step === args.stopAt) && trainer.step < args.trainer.steps) {
      const latest = await latestTrainingCheckpoint(args.out);
      const path = latest?.step === trainer.step ? latest.path : await save(interrupt.requested ? 'interrupt' : 'stop');
      log(`stopped at step ${trainer.step}, saved in ${path}; continue with --resume`);
    }
    if (trainer.skipped.length) log(formatSkippedRows(trainer.skipped, `${trainer.skipped.length} clips could not be loaded and were skipped`));
    const report = await writeTrainingReport(args.out);
    log(`done: step ${trainer.step}; metrics in ${metricsPath}; report in ${report.paths.find((p) => p.endsWith('.html')) ?? args.out}`);
  } finally {
    interrupt.dispose();
    evaluator?.destroy();
    inference?.destroy();
    trainer.destroy();
    student.destroy();
    teacher?.destroy();
    gpu.destroy();
  }
}

/** `dqw distill`. */
export function distillCommand(argv: string[], io: CommandIo = process): Promise<void> {
  return runTraining(argv, true, io);
}

/** `dqw train`. */
export function trainCommand(argv: string[], io: CommandIo = process): Promise<void> {
  return runTraining(argv, false, io);
}

// `dqw experiment dq`: the whole study as a sequence of the dqw commands a user would type —
// data synth, train (teacher), train/distill (students), quant plan, export, then a scored
// evaluation of every model on the held-out test split and the report. Each stage is recorded in
// <out>/experiment.json with its command and wall time when it finishes; running the experiment
// again skips finished stages and resumes an interrupted training run from its last checkpoint,
// so a study can be split over sessions (or survive a crash) without losing work.
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { SkippedRow } from '../data/examples.js';
import { DqwError } from '../errors.js';
import type { EvaluationResult, ReferenceLoss } from '../eval/evaluate.js';
import { readAudioFile16k } from '../io/audio-file.js';
import { textFile } from '../io/byte-source.js';
import { hfConfigText } from '../io/huggingface.js';
import { writeFileAtomic } from '../io/node-files.js';
import { latestTrainingCheckpoint } from '../io/training-checkpoint.js';
import type { WhisperConfig } from '../model/config.js';
import { parseQuantPlan, quantizationPlanOf } from '../quant/plan.js';
import { sizeTable, type SizedModel } from '../quant/size.js';
import { loadCheckpoint, type CommandIo } from '../cli/checkpoint.js';
import { dataCommand } from '../cli/data.js';
import { distillCommand, trainCommand } from '../cli/distill.js';
import { openEvaluator, readManifestArgument } from '../cli/eval.js';
import { exportCommand } from '../cli/export.js';
import { quantCommand } from '../cli/quant.js';
import { configOfShape, variantTitles, type ExperimentPreset, type TrainingBudget, type VariantId } from './presets.js';
import { writeExperimentReport, type ExperimentResults, type ModelResult } from './report.js';

/** Where the package's committed files are (assets/demo-teacher, ...). */
const PACKAGE_ROOT = new URL('../../', import.meta.url).pathname;

/** Options of {@link runExperiment}. */
export interface ExperimentOptions {
  readonly preset: ExperimentPreset;
  /** Output folder: data/, manifests/, configs/, teacher/, students/, models/, eval/, the report. */
  readonly out: string;
  /** A teacher checkpoint to use instead of training one (or the preset's committed one). */
  readonly teacher?: string;
  /** A corpus folder with train.jsonl, dev.jsonl and test.jsonl instead of synthesizing one. */
  readonly data?: string;
  /** The command line, for the report. */
  readonly command: string;
}

/** A finished stage as experiment.json records it. */
interface StageRecord {
  readonly command: string;
  readonly seconds: number;
  readonly finishedAt: string;
}

interface ExperimentState {
  readonly preset: string;
  readonly startedAt: string;
  readonly stages: Record<string, StageRecord>;
}

/** The experiment's stages, skipping the finished ones and recording the others as they finish. */
class StageLog {
  /** Stages met so far in this invocation, and how many it will meet (for "[k/n]"). */
  private seen = 0;
  total = 0;

  private constructor(private readonly path: string, private readonly state: ExperimentState, private readonly io: CommandIo) {}

  static async open(out: string, preset: string, io: CommandIo): Promise<StageLog> {
    const path = join(out, 'experiment.json');
    const text = await readFile(path, 'utf8').catch(() => null);
    let state: ExperimentState = { preset, startedAt: new Date().toISOString(), stages: {} };
    if (text !== null) {
      try {
        state = JSON.parse(text) as ExperimentState;
      } catch (err) {
        throw new DqwError(`${path}: not JSON (${(err as Error).message}); remove it to start the experiment again`);
      }
      if (state.preset !== preset) throw new DqwError(`${path}: this folder holds a "${state.preset}" experiment, not "${preset}"; choose another --out`);
    }
    return new StageLog(path, state, io);
  }

  get stages(): Readonly<Record<string, StageRecord>> {
    return this.state.stages;
  }

  get startedAt(): string {
    return this.state.startedAt;
  }

  /** Runs `work` unless stage `id` finished before; `command` is what the report shows for it. */
  async run(id: string, title: string, command: string, work: () => Promise<void>): Promise<void> {
    const counter = `[${++this.seen}/${Math.max(this.total, this.seen)}]`;
    if (this.state.stages[id]) {
      this.io.stderr.write(`\n== ${counter} ${title}: done before (${this.state.stages[id].seconds.toFixed(0)} s), skipped\n`);
      return;
    }
    this.io.stderr.write(`\n== ${counter} ${title}\n   ${command}\n`);
    const started = performance.now();
    await work();
    this.state.stages[id] = { command, seconds: (performance.now() - started) / 1000, finishedAt: new Date().toISOString() };
    await writeFileAtomic(this.path, textFile('experiment.json', `${JSON.stringify(this.state, null, 2)}\n`));
  }
}

const exists = (path: string) => stat(path).then(() => true, () => false);

/** `dqw <args>` as a shell-ready line (arguments with spaces quoted). */
const commandLine = (args: readonly string[]) => `dqw ${args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')}`;

/**
 * Copies each split's manifest keeping the rows that fit the models' audio window (by their
 * `duration`; rows without one are kept): a clip cut to the window would be trained on a
 * transcript it no longer speaks. The rows are interleaved by language (one of each in turn), so
 * the first n rows — what --eval-limit and the test limit take — cover every language. The
 * copies go to `outDir` with absolute audio paths, leaving the corpus folder as it was.
 */
async function manifestsWithin(dataDir: string, seconds: number, outDir: string): Promise<Record<'train' | 'dev' | 'test', { path: string; kept: number; dropped: number }>> {
  const result = {} as Record<'train' | 'dev' | 'test', { path: string; kept: number; dropped: number }>;
  for (const split of ['train', 'dev', 'test'] as const) {
    const source = join(dataDir, `${split}.jsonl`);
    const text = await readFile(source, 'utf8').catch(() => {
      throw new DqwError(`--data ${dataDir}: no ${split}.jsonl (a corpus folder as dqw data synth writes it)`);
    });
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    const byLanguage = new Map<string, string[]>();
    let kept = 0;
    for (const line of lines) {
      const row = manifestRow(line);
      if (typeof row?.duration === 'number' && row.duration > seconds) continue;
      const language = typeof row?.language === 'string' ? row.language : '';
      const copy = row && typeof row.audio === 'string' ? JSON.stringify({ ...row, audio: resolve(dataDir, row.audio) }) : line;
      byLanguage.set(language, [...(byLanguage.get(language) ?? []), copy]);
      kept++;
    }
    const interleaved: string[] = [];
    const queues = [...byLanguage.values()];
    for (let i = 0; interleaved.length < kept; i++) for (const q of queues) if (i < q.length) interleaved.push(q[i]!);
    const path = join(outDir, `${split}.jsonl`);
    await writeFileAtomic(path, textFile(`${split}.jsonl`, interleaved.map((l) => `${l}\n`).join('')));
    result[split] = { path, kept, dropped: lines.length - kept };
  }
  return result;
}

/** A manifest line's fields, or null where it is not JSON (kept as it is: the manifest reader reports it with its line number). */
function manifestRow(line: string): { duration?: unknown; language?: unknown; audio?: unknown } | null {
  try {
    const row: unknown = JSON.parse(line);
    return typeof row === 'object' && row !== null ? row : null;
  } catch {
    return null;
  }
}

/** The arguments every training run of the experiment shares (its --out apart). */
function budgetArgs(budget: TrainingBudget, manifests: { train: string; dev: string }, devLimit: number): string[] {
  return [
    '--data', manifests.train, '--dev', manifests.dev,
    '--steps', String(budget.steps), '--batch', String(budget.batch), '--lr', String(budget.lr), '--decay', 'cosine',
    '--eval-every', String(budget.evalEvery), '--eval-limit', String(devLimit),
    '--checkpoint-every', String(Math.max(1, Math.floor(budget.evalEvery / 2))), '--seed', '0',
  ];
}

/** The last checkpoint of a finished training run. */
async function finalCheckpoint(runDir: string): Promise<string> {
  const latest = await latestTrainingCheckpoint(runDir);
  if (!latest) throw new DqwError(`${runDir}: the training run left no checkpoint`);
  return latest.path;
}

/**
 * Scores a model on the test examples: greedy transcripts (after one warm-up utterance that
 * compiles the programs, so the real-time factor is the decoding's) and the teacher-forced
 * cross-entropy of the references.
 */
async function evaluateModel(path: string, examples: Awaited<ReturnType<typeof readManifestArgument>>['examples'], io: CommandIo): Promise<{ result: EvaluationResult; loss: ReferenceLoss; quantization: string }> {
  const opened = await openEvaluator(path, '--model', io);
  try {
    await opened.evaluator.evaluate(examples.slice(0, 1), { readAudio: readAudioFile16k });
    let done = 0;
    const result = await opened.evaluator.evaluate(examples, {
      readAudio: readAudioFile16k,
      onProgress: (p) => {
        if (p.done - done >= 10 || p.done === p.total) io.stderr.write(`   transcribed ${(done = p.done)}/${p.total}\n`);
      },
    });
    io.stderr.write('   cross-entropy of the reference transcripts\n');
    const loss = await opened.evaluator.referenceLoss(examples, { readAudio: readAudioFile16k });
    return { result, loss, quantization: opened.runtime };
  } finally {
    opened.close();
  }
}

/** Runs the study of `options.preset` into `options.out`; returns what the report shows. */
export async function runExperiment(options: ExperimentOptions, io: CommandIo): Promise<ExperimentResults> {
  const { preset, out } = options;
  for (const dir of ['configs', 'eval', 'manifests']) await mkdir(join(out, dir), { recursive: true });
  const log = await StageLog.open(out, preset.name, io);
  const started = performance.now();
  const variants = new Set(preset.variants);
  const needsPlan = variants.has('kd-dynamic-ptq') || variants.has('dq-int8');
  const teacherTrained = !options.teacher && !preset.pretrainedTeacher;
  // data, teacher, a stage per variant (+ the plan, + dq-int8's export), a test per model.
  log.total = (options.data ? 0 : 1) + (teacherTrained ? 2 : 1) + 2 * preset.variants.length + (needsPlan ? 1 : 0) + (variants.has('dq-int8') ? 1 : 0);

  // Data.
  const dataDir = options.data ?? join(out, 'data');
  if (!options.data) {
    const synth = ['data', 'synth', '--languages', preset.data.languages.join(','), '--hours', String(preset.data.hours), '--seed', String(preset.data.seed), '--out', dataDir];
    await log.run('data', 'data: a synthetic multilingual corpus', commandLine(synth), async () => {
      if (await exists(dataDir)) throw new DqwError(`${dataDir} exists but its synthesis did not finish; remove it and run again`);
      await dataCommand(synth.slice(1), io);
    });
  }

  // Teacher.
  const teacherPathGiven = options.teacher ?? (preset.pretrainedTeacher ? join(PACKAGE_ROOT, preset.pretrainedTeacher) : undefined);
  let teacherConfig: WhisperConfig;
  if (teacherPathGiven && !(await exists(teacherPathGiven))) throw new DqwError(`--teacher ${teacherPathGiven}: no such file or folder`);
  if (!teacherPathGiven) teacherConfig = configOfShape(preset.teacher.shape);
  else teacherConfig = (await loadCheckpoint(teacherPathGiven, io.stderr, '--teacher')).config;
  const windowSeconds = teacherConfig.max_source_positions / 50;
  const manifests = await manifestsWithin(dataDir, windowSeconds, join(out, 'manifests'));
  io.stderr.write(`clips within the ${windowSeconds} s window: train ${manifests.train.kept} (${manifests.train.dropped} longer left out), dev ${manifests.dev.kept}, test ${manifests.test.kept}\n`);
  const splits = { train: manifests.train.path, dev: manifests.dev.path };

  const configsDir = join(out, 'configs');
  const writeConfig = async (name: string, config: WhisperConfig) => {
    const path = join(configsDir, name);
    await writeFileAtomic(path, textFile(name, hfConfigText(config)));
    return path;
  };
  let teacherPath = teacherPathGiven;
  if (!teacherPath) {
    const runDir = join(out, 'teacher');
    const config = await writeConfig('teacher.json', teacherConfig);
    const args = ['train', '--model', config, '--out', runDir, ...budgetArgs(preset.teacher.training, splits, preset.eval.devLimit)];
    await trainingStage(log, 'teacher', 'teacher: cross-entropy training from scratch', args, runDir, io);
    teacherPath = await finalCheckpoint(runDir);
  }

  // Students: the teacher's width, fewer layers.
  const studentConfig: WhisperConfig = { ...teacherConfig, encoder_layers: preset.student.encoderLayers, decoder_layers: preset.student.decoderLayers };
  const studentJson = await writeConfig('student.json', studentConfig);
  const studentRuns: Partial<Record<VariantId, string>> = {};
  const budget = budgetArgs(preset.students, splits, preset.eval.devLimit);
  const distillArgs = (runDir: string, extra: string[]) => ['distill', '--teacher', teacherPath!, '--student', studentJson, '--out', runDir, ...budget, ...extra];
  const modelsDir = join(out, 'models');
  const planPath = join(out, 'quant-plan.json');
  /** Stage `stage`: export `checkpoint` as variant `id` quantized by the plan; returns the model scored. */
  const exportByPlan = async (stage: string, title: string, id: VariantId, checkpoint: string) => {
    const output = join(modelsDir, id);
    const args = ['export', '--model', checkpoint, '--format', 'hf', '--quant-plan', planPath, '--teacher', teacherPath!, '--output', output];
    await log.run(stage, title, commandLine(args), () => exportCommand(args.slice(1), io));
    return { id, path: output, plan: planPath };
  };
  if (needsPlan && !variants.has('kd-dynamic')) throw new DqwError(`preset ${preset.name}: kd-dynamic-ptq and dq-int8 need kd-dynamic (guided layer selection measures its layers)`);
  const models: { id: VariantId | 'teacher'; path: string; plan?: string }[] = [{ id: 'teacher', path: teacherPath }];

  for (const id of preset.variants) {
    const runDir = join(out, 'students', id);
    if (id === 'scratch') {
      await trainingStage(log, id, `student ${id}: ${variantTitles[id]}`, ['train', '--model', studentJson, '--out', runDir, ...budget], runDir, io);
    } else if (id === 'kd-fixed' || id === 'kd-dynamic') {
      await trainingStage(log, id, `student ${id}: ${variantTitles[id]}`, distillArgs(runDir, ['--matching', id === 'kd-fixed' ? 'fixed' : 'dynamic']), runDir, io);
      if (id === 'kd-dynamic') {
        const plan = ['quant', 'plan', '--model', await finalCheckpoint(runDir), '--teacher', teacherPath, '--data', splits.dev, '--examples', String(preset.quant.examples), '--target-ratio', String(preset.quant.targetRatio), ...(preset.quant.mixedInt4 ? ['--mixed-int4'] : []), '--out', planPath];
        if (needsPlan) await log.run('quant-plan', 'guided layer selection: sensitivity of each layer of the kd-dynamic student', commandLine(plan), () => quantCommand(plan.slice(1), io));
      }
    } else if (id === 'kd-dynamic-ptq') {
      models.push(await exportByPlan(id, `student ${id}: the kd-dynamic student quantized after training by the plan`, id, await finalCheckpoint(join(out, 'students', 'kd-dynamic'))));
      continue;
    } else {
      await trainingStage(log, id, `student ${id}: ${variantTitles[id]}`, distillArgs(runDir, ['--matching', 'dynamic', '--quant-plan', planPath, '--quant-warmup', String(preset.students.quantWarmup)]), runDir, io);
    }
    studentRuns[id] = runDir;
    models.push(id === 'dq-int8' ? await exportByPlan(`${id}-export`, `student ${id}: int8/int4 export by the plan`, id, await finalCheckpoint(runDir)) : { id, path: await finalCheckpoint(runDir) });
  }

  // Scores on the test split.
  const test = await readManifestArgument(manifests.test.path);
  const testExamples = test.examples.slice(0, preset.eval.testLimit);
  const evalDir = join(out, 'eval');
  const results: ModelResult[] = [];
  const teacherSized: SizedModel = { label: 'teacher', config: teacherConfig };
  for (const model of models) {
    const path = join(evalDir, `${model.id}.json`);
    await log.run(`eval-${model.id}`, `test: ${model.id} on ${testExamples.length} held-out clips`, `dqw eval --model ${model.path} --data ${manifests.test.path}${preset.eval.testLimit ? ` --limit ${preset.eval.testLimit}` : ''}, then Evaluator.referenceLoss on the same clips`, async () => {
      const { result, loss, quantization } = await evaluateModel(model.path, testExamples, io);
      await writeFileAtomic(path, textFile(`${model.id}.json`, `${JSON.stringify({ quantization, ...evaluationRecord(result, loss) })}\n`));
    });
    const evaluation = JSON.parse(await readFile(path, 'utf8')) as ModelResult['evaluation'] & { quantization: string };
    const config = model.id === 'teacher' ? teacherConfig : studentConfig;
    const plan = model.plan ? quantizationPlanOf(parseQuantPlan(await readFile(model.plan, 'utf8'), model.plan), config) : undefined;
    const [, size] = sizeTable(teacherSized, [{ label: model.id, config, plan }]);
    results.push({
      id: model.id,
      title: model.id === 'teacher' ? (teacherPathGiven ? `teacher (${teacherPathGiven})` : 'teacher (trained here)') : variantTitles[model.id],
      path: model.path,
      run: model.id === 'teacher' ? (teacherPathGiven ? undefined : join(out, 'teacher')) : studentRuns[model.id],
      quantization: evaluation.quantization,
      size: size!,
      evaluation,
    });
  }

  const experiment: ExperimentResults = {
    preset,
    command: options.command,
    startedAt: log.startedAt,
    adapter: results[0]?.evaluation.adapter ?? '',
    teacherConfig,
    studentConfig,
    data: { dir: resolve(dataDir), windowSeconds, clips: { train: manifests.train.kept, dev: manifests.dev.kept, test: testExamples.length }, longerLeftOut: manifests.train.dropped + manifests.dev.dropped + manifests.test.dropped },
    stages: log.stages,
    wallSeconds: Object.values(log.stages).reduce((s, r) => s + r.seconds, 0),
    thisRunSeconds: (performance.now() - started) / 1000,
    models: results,
  };
  await writeExperimentReport(out, experiment, io);
  return experiment;
}

/** A training stage: resumes the run from its latest checkpoint when an earlier try stopped midway. */
async function trainingStage(log: StageLog, id: string, title: string, args: string[], runDir: string, io: CommandIo): Promise<void> {
  await log.run(id, title, commandLine(args), async () => {
    const resume = (await latestTrainingCheckpoint(runDir)) !== undefined;
    if (resume) io.stderr.write(`   resuming the interrupted run in ${runDir}\n`);
    const command = args[0] === 'train' ? trainCommand : distillCommand;
    await command([...args.slice(1), ...(resume ? ['--resume'] : [])], io);
    const latest = await latestTrainingCheckpoint(runDir);
    const steps = Number(args[args.indexOf('--steps') + 1]);
    if (latest?.step !== steps) throw new DqwError(`${runDir}: training stopped at step ${latest?.step ?? 0} of ${steps} (interrupted?); run the experiment again to resume it`);
  });
}

/** What eval/<model>.json keeps of an evaluation: the scores and every transcript. */
function evaluationRecord(result: EvaluationResult, loss: ReferenceLoss): ModelResult['evaluation'] {
  return {
    referenceLoss: { overall: loss.overall, languages: loss.languages },
    adapter: result.adapter.description || result.adapter.device || result.adapter.vendor || 'WebGPU',
    overall: { cer: result.overall.cer?.rate ?? null, wer: result.overall.wer?.rate ?? null, utterances: result.overall.utterances, realTimeFactor: result.overall.realTimeFactor },
    languages: result.languages.map((l) => ({ language: l.language, cer: l.cer.rate, wer: l.wer?.rate ?? null, utterances: l.utterances })),
    utterances: result.utterances.map((u) => ({ audio: u.example.audio, language: u.example.language, reference: u.example.text, hypothesis: u.hypothesis })),
    skipped: result.skipped.map((s: SkippedRow) => `${s.source}:${s.line}: ${s.reason}`),
  };
}


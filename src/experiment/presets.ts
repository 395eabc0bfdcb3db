// The study `dqw experiment dq` runs: which corpus, which teacher, which students with which
// budgets. A preset is plain data so a user can write their own as a JSON file (--preset x.json).
import { ConfigError } from '../errors.js';
import { presetConfig, type WhisperConfig } from '../model/config.js';

/** The students compared, in the order of the paper's table. */
export const variantIds = ['scratch', 'kd-fixed', 'kd-dynamic', 'kd-dynamic-ptq', 'dq-int8'] as const;
export type VariantId = (typeof variantIds)[number];

/** What each student is, for tables and plots. */
export const variantTitles: Record<VariantId, string> = {
  scratch: 'student from scratch (CE only)',
  'kd-fixed': 'KD, fixed layer map',
  'kd-dynamic': 'KD, dynamic matching',
  'kd-dynamic-ptq': 'KD dynamic + post-training quant',
  'dq-int8': 'DQ: dynamic + QAD, guided layers',
};

/** Shape of a Whisper trained by the experiment (the rest of its config is multilingual Whisper's). */
export interface ModelShape {
  readonly dModel: number;
  readonly encoderLayers: number;
  readonly decoderLayers: number;
  readonly heads: number;
  readonly ffnDim: number;
  /** Audio window in seconds (50 encoder positions a second); clips longer than it are left out. */
  readonly audioSeconds: number;
  /** Decoder positions (Whisper: 448). */
  readonly textPositions: number;
}

/** Steps, batch and learning rate of one training run. */
export interface TrainingBudget {
  readonly steps: number;
  readonly batch: number;
  readonly lr: number;
  /** Steps between dev evaluations. */
  readonly evalEvery: number;
}

/** Everything `dqw experiment dq` needs to know. */
export interface ExperimentPreset {
  readonly name: string;
  readonly description: string;
  /** The corpus `dqw data synth` makes (unless --data gives one). */
  readonly data: { readonly languages: readonly string[]; readonly hours: number; readonly seed: number };
  /** The teacher trained from scratch (unless --teacher gives one). */
  readonly teacher: { readonly shape: ModelShape; readonly training: TrainingBudget };
  /** A committed teacher used when --teacher is absent, relative to the package root (the demo's). */
  readonly pretrainedTeacher?: string;
  /** Student layers; width, heads and windows are the teacher's, so students start from its layers. */
  readonly student: { readonly encoderLayers: number; readonly decoderLayers: number };
  /** The equal budget of every trained student. */
  readonly students: TrainingBudget & {
    /** Float steps of the QAD student before fake-quant switches on. */
    readonly quantWarmup: number;
  };
  /** Guided layer selection: the size ratio to the teacher's float32 bytes to reach. */
  readonly quant: { readonly targetRatio: number; readonly mixedInt4: boolean; readonly examples: number };
  /** Students to train and compare. */
  readonly variants: readonly VariantId[];
  /**
   * Dev clips transcribed at each evaluation during training; test clips scored at the end
   * (default all). The experiment interleaves the manifests by language, so both cover them all.
   */
  readonly eval: { readonly devLimit: number; readonly testLimit?: number };
  /** Held-out clips whose transcripts the report shows beside their references. */
  readonly samples: number;
}

const allLanguages = ['en', 'de', 'es', 'fr', 'it', 'ru', 'pl', 'pt'];

/** The 2-core, no-GPU study: a 4+4-layer, 128-wide teacher on an hour of 8-language speech. */
const cpu: ExperimentPreset = {
  name: 'cpu',
  description: 'fits a 2-core machine with software Vulkan (lavapipe) in about two hours',
  data: { languages: allLanguages, hours: 1, seed: 0 },
  teacher: {
    shape: { dModel: 128, encoderLayers: 4, decoderLayers: 4, heads: 2, ffnDim: 512, audioSeconds: 6, textPositions: 128 },
    training: { steps: 400, batch: 8, lr: 1e-3, evalEvery: 100 },
  },
  student: { encoderLayers: 2, decoderLayers: 2 },
  students: { steps: 100, batch: 8, lr: 5e-4, evalEvery: 50, quantWarmup: 10 },
  quant: { targetRatio: 5.18, mixedInt4: true, examples: 8 },
  variants: variantIds,
  eval: { devLimit: 16, testLimit: 48 },
  samples: 8,
};

/** The GPU study: a 6+6-layer, tiny-width teacher on 20 hours of 8-language speech, 30 s windows. */
const gpu: ExperimentPreset = {
  name: 'gpu',
  description: 'for one data-centre GPU (hours); not yet run by us',
  data: { languages: allLanguages, hours: 20, seed: 0 },
  teacher: {
    shape: { dModel: 384, encoderLayers: 6, decoderLayers: 6, heads: 6, ffnDim: 1536, audioSeconds: 30, textPositions: 448 },
    training: { steps: 20000, batch: 32, lr: 1e-3, evalEvery: 1000 },
  },
  student: { encoderLayers: 3, decoderLayers: 2 },
  students: { steps: 5000, batch: 32, lr: 5e-4, evalEvery: 500, quantWarmup: 500 },
  quant: { targetRatio: 5.18, mixedInt4: true, examples: 32 },
  variants: variantIds,
  eval: { devLimit: 64 },
  samples: 8,
};

/** `npm run demo`: the committed cpu-preset teacher distilled and quantized on a small fresh corpus. */
const demo: ExperimentPreset = {
  ...cpu,
  name: 'demo',
  description: 'the main job: minutes on a 2-core machine, from the committed teacher',
  data: { languages: allLanguages, hours: 0.1, seed: 0 },
  pretrainedTeacher: 'assets/demo-teacher',
  students: { steps: 20, batch: 4, lr: 5e-4, evalEvery: 1000, quantWarmup: 4 },
  quant: { targetRatio: 5.18, mixedInt4: true, examples: 4 },
  variants: ['kd-dynamic', 'kd-dynamic-ptq', 'dq-int8'],
  eval: { devLimit: 8, testLimit: 8 },
  samples: 8,
};

/** The built-in presets by name. */
export const experimentPresets: Readonly<Record<string, ExperimentPreset>> = { cpu, gpu, demo };

/** A full Whisper config.json of `shape`, multilingual vocabulary and 80 mel bands. */
export function configOfShape(shape: ModelShape): WhisperConfig {
  return {
    ...presetConfig('tiny'),
    d_model: shape.dModel,
    encoder_layers: shape.encoderLayers,
    decoder_layers: shape.decoderLayers,
    encoder_attention_heads: shape.heads,
    decoder_attention_heads: shape.heads,
    encoder_ffn_dim: shape.ffnDim,
    decoder_ffn_dim: shape.ffnDim,
    max_source_positions: Math.round(shape.audioSeconds * 50),
    max_target_positions: shape.textPositions,
  };
}

/** Checks a preset read from a JSON file, naming the file and the first bad field. */
export function parseExperimentPreset(json: unknown, source: string): ExperimentPreset {
  const fail = (field: string, expected: string): never => {
    throw new ConfigError(`${source}: ${field} must be ${expected}`);
  };
  const obj = (v: unknown, field: string) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : fail(field, 'an object'));
  const num = (o: Record<string, unknown>, key: string, field: string, integer = true, min = 1) => {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) fail(`${field}.${key}`, `${integer ? 'an integer' : 'a number'} >= ${min}`);
    return v as number;
  };
  const root = obj(json, '(file)');
  const budget = (v: unknown, field: string): TrainingBudget => {
    const o = obj(v, field);
    return { steps: num(o, 'steps', field), batch: num(o, 'batch', field), lr: num(o, 'lr', field, false, Number.MIN_VALUE), evalEvery: num(o, 'evalEvery', field) };
  };
  const data = obj(root.data, 'data');
  const languages = data.languages;
  if (!Array.isArray(languages) || languages.length === 0 || !languages.every((l) => typeof l === 'string')) fail('data.languages', 'a non-empty array of language codes');
  const teacher = obj(root.teacher, 'teacher');
  const shape = obj(teacher.shape, 'teacher.shape');
  const student = obj(root.student, 'student');
  const students = obj(root.students, 'students');
  const quant = obj(root.quant, 'quant');
  const evalOpts = obj(root.eval ?? {}, 'eval');
  const variants = root.variants ?? variantIds;
  if (!Array.isArray(variants) || !variants.every((v) => (variantIds as readonly unknown[]).includes(v))) fail('variants', `an array of ${variantIds.join(', ')}`);
  const variantList = variants as VariantId[];
  if ((variantList.includes('kd-dynamic-ptq') || variantList.includes('dq-int8')) && !variantList.includes('kd-dynamic')) {
    fail('variants', 'an array holding kd-dynamic wherever it holds kd-dynamic-ptq or dq-int8 (guided layer selection measures the kd-dynamic student)');
  }
  if (root.pretrainedTeacher !== undefined && typeof root.pretrainedTeacher !== 'string') fail('pretrainedTeacher', 'a path');
  return {
    name: typeof root.name === 'string' ? root.name : source,
    description: typeof root.description === 'string' ? root.description : '',
    data: { languages: languages as string[], hours: num(data, 'hours', 'data', false, Number.MIN_VALUE), seed: num(data, 'seed', 'data', true, 0) },
    teacher: {
      shape: {
        dModel: num(shape, 'dModel', 'teacher.shape'), encoderLayers: num(shape, 'encoderLayers', 'teacher.shape'), decoderLayers: num(shape, 'decoderLayers', 'teacher.shape'),
        heads: num(shape, 'heads', 'teacher.shape'), ffnDim: num(shape, 'ffnDim', 'teacher.shape'), audioSeconds: num(shape, 'audioSeconds', 'teacher.shape', false, 0.02),
        textPositions: num(shape, 'textPositions', 'teacher.shape', true, 4),
      },
      training: budget(teacher.training, 'teacher.training'),
    },
    pretrainedTeacher: root.pretrainedTeacher as string | undefined,
    student: { encoderLayers: num(student, 'encoderLayers', 'student'), decoderLayers: num(student, 'decoderLayers', 'student') },
    students: { ...budget(students, 'students'), quantWarmup: num(students, 'quantWarmup', 'students', true, 0) },
    quant: { targetRatio: num(quant, 'targetRatio', 'quant', false, Number.MIN_VALUE), mixedInt4: quant.mixedInt4 === true, examples: num(quant, 'examples', 'quant') },
    variants: variantList,
    eval: { devLimit: evalOpts.devLimit === undefined ? 16 : num(evalOpts, 'devLimit', 'eval'), testLimit: evalOpts.testLimit === undefined ? undefined : num(evalOpts, 'testLimit', 'eval') },
    samples: root.samples === undefined ? 8 : num(root, 'samples', '(file)', true, 0),
  };
}

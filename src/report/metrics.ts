// The records of a training run's metrics.jsonl (one JSON object per line, told apart by `type`),
// their parser, and the run's history as the report draws it. Pure: text in, records out, so the
// browser can read a metrics file it was handed as well as Node can.
import type { SkippedRow } from '../data/examples.js';
import { DqwError } from '../errors.js';

/** A metrics file that cannot be reported on at all: missing, or without a single record. `file` names it. */
export class MetricsError extends DqwError {
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
  }
}

/** The loss of one step (or of the dev set), total and, when logged, its parts. */
export interface LossParts {
  readonly total: number;
  /** Cross-entropy against the reference (or pseudo-label) tokens. */
  readonly ce?: number;
  /** KL divergence from the teacher's temperature-scaled output distribution. */
  readonly kl?: number;
  /** Mean squared error of the matched hidden states. */
  readonly hs?: number;
}

/** Error rates of a set of utterances; a rate is null where it was not measured (no words). */
export interface ErrorRates {
  readonly wer: number | null;
  readonly cer: number | null;
  readonly utterances: number;
}

/** First line of a run: how it was started. */
export interface RunRecord {
  readonly type: 'run';
  /** ISO 8601 time the run started. */
  readonly startedAt: string;
  /** The command line that started it. */
  readonly command: string;
  /** Teacher checkpoint (distillation only). */
  readonly teacher?: string;
  /** Student preset, config or checkpoint. */
  readonly student: string;
  /** The training options, as given. */
  readonly options: Readonly<Record<string, unknown>>;
}

/** One optimizer step. */
export interface TrainRecord {
  readonly type: 'train';
  /** 1-based step number. */
  readonly step: number;
  readonly epoch: number;
  /** Seconds since this process started training (restarts at 0 after a resume). */
  readonly time: number;
  /** Learning rate used by this step. */
  readonly lr: number;
  readonly loss: LossParts;
  /** Global gradient norm before clipping, when measured. */
  readonly gradNorm?: number;
  readonly samplesPerSecond: number;
  readonly tokensPerSecond: number;
  /** Whether the student ran with fake quantization in this step. */
  readonly quantized?: boolean;
}

/** A dev-set evaluation after step `step`. */
export interface EvalRecord {
  readonly type: 'eval';
  readonly step: number;
  /** Dev-set loss, when measured. */
  readonly loss?: LossParts;
  readonly overall: ErrorRates;
  /** Rates per language code. */
  readonly languages: Readonly<Record<string, ErrorRates>>;
}

/**
 * The layer map in force from step `step` on, logged when it changes: `encoder[r]` is the 1-based
 * teacher layer that student encoder layer r+1 learns from (likewise `decoder`); an empty array
 * where that side has no map.
 */
export interface LayerMapRecord {
  readonly type: 'layer-map';
  readonly step: number;
  readonly encoder: readonly number[];
  readonly decoder: readonly number[];
  /** The teacher's layer counts, when known; the heatmap's colour scale spans them. */
  readonly teacherLayers?: { readonly encoder?: number; readonly decoder?: number };
}

/** Why a checkpoint was written. */
export type CheckpointReason = 'interval' | 'best' | 'interrupt' | 'final';

/** A checkpoint written after step `step`. */
export interface CheckpointRecord {
  readonly type: 'checkpoint';
  readonly step: number;
  /** Its folder. */
  readonly path: string;
  readonly reason: CheckpointReason;
}

/** Training resumed from the checkpoint `from`, whose last step was `step`. */
export interface ResumeRecord {
  readonly type: 'resume';
  readonly step: number;
  readonly from: string;
}

/** Any record of metrics.jsonl. */
export type MetricsRecord = RunRecord | TrainRecord | EvalRecord | LayerMapRecord | CheckpointRecord | ResumeRecord;

/** The records of a metrics file that parsed, and the lines that did not (with why). */
export interface ParsedMetrics {
  readonly records: MetricsRecord[];
  readonly skipped: SkippedRow[];
}

const recordTypes: readonly MetricsRecord['type'][] = ['run', 'train', 'eval', 'layer-map', 'checkpoint', 'resume'];
const checkpointReasons: readonly CheckpointReason[] = ['interval', 'best', 'interrupt', 'final'];

/** A record field that is not what its type needs; the parser turns it into a skipped line. */
class FieldError extends Error {}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function field<T>(o: Json, name: string, expected: string, ok: (v: unknown) => v is T): T {
  const v = o[name];
  if (!ok(v)) throw new FieldError(`field "${name}" must be ${expected}, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  return v;
}

function optional<T>(o: Json, name: string, expected: string, ok: (v: unknown) => v is T): T | undefined {
  return o[name] === undefined || o[name] === null ? undefined : field(o, name, expected, ok);
}

const isNumber = (v: unknown): v is number => typeof v === 'number';
const isString = (v: unknown): v is string => typeof v === 'string';
const isBoolean = (v: unknown): v is boolean => typeof v === 'boolean';
const isStep = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;
const isRate = (v: unknown): v is number | null => v === null || typeof v === 'number';
const isLayer = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1;
const isLayerList = (v: unknown): v is number[] => Array.isArray(v) && v.every(isLayer);

function lossParts(v: unknown, name: string): LossParts {
  if (!isObject(v)) throw new FieldError(`field "${name}" must be an object {total, ce?, kl?, hs?}, got ${JSON.stringify(v)}`);
  const nested = (inner: string) => `${name}.${inner}`;
  const part = (key: string) => {
    const x = v[key];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'number') throw new FieldError(`field "${nested(key)}" must be a number, got ${JSON.stringify(x)}`);
    return x;
  };
  const total = part('total');
  if (total === undefined) throw new FieldError(`field "${nested('total')}" is missing`);
  return { total, ce: part('ce'), kl: part('kl'), hs: part('hs') };
}

function errorRates(v: unknown, name: string): ErrorRates {
  if (!isObject(v)) throw new FieldError(`field "${name}" must be an object {wer, cer, utterances}, got ${JSON.stringify(v)}`);
  for (const key of ['wer', 'cer']) {
    if (!isRate(v[key] ?? null)) throw new FieldError(`field "${name}.${key}" must be a number or null, got ${JSON.stringify(v[key])}`);
  }
  if (!isStep(v.utterances)) throw new FieldError(`field "${name}.utterances" must be a non-negative integer, got ${JSON.stringify(v.utterances)}`);
  return { wer: (v.wer ?? null) as number | null, cer: (v.cer ?? null) as number | null, utterances: v.utterances };
}

/** The record `o` as its type says, or a FieldError naming the first field that is wrong. */
function toRecord(o: Json): MetricsRecord {
  const step = () => field(o, 'step', 'a non-negative integer', isStep);
  switch (o.type) {
    case 'run':
      return {
        type: 'run',
        startedAt: field(o, 'startedAt', 'a time string', isString),
        command: field(o, 'command', 'a string', isString),
        teacher: optional(o, 'teacher', 'a string', isString),
        student: field(o, 'student', 'a string', isString),
        options: field(o, 'options', 'an object', isObject),
      };
    case 'train':
      return {
        type: 'train',
        step: step(),
        epoch: field(o, 'epoch', 'a number', isNumber),
        time: field(o, 'time', 'a number of seconds', isNumber),
        lr: field(o, 'lr', 'a number', isNumber),
        loss: lossParts(o.loss, 'loss'),
        gradNorm: optional(o, 'gradNorm', 'a number', isNumber),
        samplesPerSecond: field(o, 'samplesPerSecond', 'a number', isNumber),
        tokensPerSecond: field(o, 'tokensPerSecond', 'a number', isNumber),
        quantized: optional(o, 'quantized', 'true or false', isBoolean),
      };
    case 'eval': {
      const languages = field(o, 'languages', 'an object of {wer, cer, utterances} per language', isObject);
      return {
        type: 'eval',
        step: step(),
        loss: o.loss === undefined || o.loss === null ? undefined : lossParts(o.loss, 'loss'),
        overall: errorRates(o.overall, 'overall'),
        languages: Object.fromEntries(Object.entries(languages).map(([code, rates]) => [code, errorRates(rates, `languages.${code}`)])),
      };
    }
    case 'layer-map': {
      const teacherLayers = optional(o, 'teacherLayers', 'an object {encoder?, decoder?}', isObject);
      return {
        type: 'layer-map',
        step: step(),
        encoder: field(o, 'encoder', 'an array of 1-based teacher layers', isLayerList),
        decoder: field(o, 'decoder', 'an array of 1-based teacher layers', isLayerList),
        teacherLayers: teacherLayers && {
          encoder: optional(teacherLayers, 'encoder', 'a positive integer', isLayer),
          decoder: optional(teacherLayers, 'decoder', 'a positive integer', isLayer),
        },
      };
    }
    case 'checkpoint':
      return {
        type: 'checkpoint',
        step: step(),
        path: field(o, 'path', 'a string', isString),
        reason: field(o, 'reason', '"interval", "best", "interrupt" or "final"', (v): v is CheckpointReason => checkpointReasons.includes(v as CheckpointReason)),
      };
    case 'resume':
      return { type: 'resume', step: step(), from: field(o, 'from', 'a string', isString) };
    default:
      throw new FieldError(o.type === undefined ? 'no "type" field' : `unknown record type ${JSON.stringify(o.type)}`);
  }
}

/**
 * Parses the text of a metrics.jsonl file named `source` (used in the skipped lines). Blank
 * lines are ignored; a line that is not JSON, not an object, of an unknown type or with a field
 * of the wrong kind is skipped and reported with its 1-based line number and the field concerned,
 * so a line cut short by a crash does not hide the rest of the run.
 */
export function parseMetricsJsonl(text: string, source = 'metrics.jsonl'): ParsedMetrics {
  const records: MetricsRecord[] = [];
  const skipped: SkippedRow[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '') return;
    const skip = (reason: string) => skipped.push({ source, line: index + 1, reason });
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      return skip(`not JSON: ${(e as Error).message}`);
    }
    if (!isObject(value)) return skip(`not a JSON object: ${line.slice(0, 40)}`);
    try {
      records.push(toRecord(value));
    } catch (e) {
      if (!(e instanceof FieldError)) throw e;
      skip(`${recordTypes.includes(value.type as MetricsRecord['type']) ? `"${value.type as string}" record: ` : ''}${e.message}`);
    }
  });
  return { records, skipped };
}

/** A run as the report shows it: one record per step, in step order, after resumes are applied. */
export interface RunHistory {
  /** The run record (the first one, when a file holds several). */
  readonly run?: RunRecord;
  readonly train: TrainRecord[];
  readonly evals: EvalRecord[];
  readonly layerMaps: LayerMapRecord[];
  readonly checkpoints: CheckpointRecord[];
  readonly resumes: ResumeRecord[];
  /** Training seconds over all sessions: each session's last `time`, added up. */
  readonly trainingSeconds: number;
}

/**
 * The history of a run from its records in file order. A resume from step S discards what the
 * abandoned session logged after S (those steps are trained again, or never were as far as the
 * checkpoints go); where a step still appears twice, the later record wins. Each list is sorted
 * by step.
 */
export function runHistory(records: readonly MetricsRecord[]): RunHistory {
  let run: RunRecord | undefined;
  const resumes: ResumeRecord[] = [];
  // Keyed by step (checkpoints by step and folder: one step may be saved twice, e.g. "best" and "final").
  const byStep = {
    train: new Map<string, TrainRecord>(),
    eval: new Map<string, EvalRecord>(),
    'layer-map': new Map<string, LayerMapRecord>(),
    checkpoint: new Map<string, CheckpointRecord>(),
  };
  let trainingSeconds = 0;
  let sessionSeconds = 0;
  for (const record of records) {
    switch (record.type) {
      case 'run':
        run ??= record;
        break;
      case 'resume':
        resumes.push(record);
        for (const map of Object.values(byStep)) for (const [key, r] of map) if (r.step > record.step) map.delete(key);
        trainingSeconds += sessionSeconds;
        sessionSeconds = 0;
        break;
      case 'train':
        sessionSeconds = Math.max(sessionSeconds, record.time);
        byStep.train.set(String(record.step), record);
        break;
      case 'checkpoint':
        byStep.checkpoint.set(`${record.step} ${record.path}`, record);
        break;
      default:
        (byStep[record.type] as Map<string, typeof record>).set(String(record.step), record);
    }
  }
  const sorted = <T extends { step: number }>(map: Map<string, T>) => [...map.values()].sort((a, b) => a.step - b.step);
  return {
    run,
    train: sorted(byStep.train),
    evals: sorted(byStep.eval),
    layerMaps: sorted(byStep['layer-map']),
    checkpoints: sorted(byStep.checkpoint),
    resumes,
    trainingSeconds: trainingSeconds + sessionSeconds,
  };
}

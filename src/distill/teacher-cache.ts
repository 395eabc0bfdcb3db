// The teacher cache (docs/teacher-cache.md): a frozen teacher's outputs stored once per dataset —
// per example its top-k logits per decoder position and its hidden states 1..L of both stacks —
// so that `dqw distill --teacher-cache` runs no teacher forward. This file is the format and its
// checks, browser-safe; src/io/teacher-cache-files.ts reads and writes it on disk.
import { ConfigError } from '../errors.js';
import type { TrainingExample } from '../data/examples.js';
import type { WhisperConfig } from '../model/config.js';
import type { CachedKlForm, CachedTeacherOutputs } from './step.js';

export const TEACHER_CACHE_FORMAT = 'dqw-teacher-cache';
export const TEACHER_CACHE_VERSION = 1;
/** The index file of a cache folder, written last. */
export const TEACHER_CACHE_INDEX = 'index.json';

/** The config fields a cached teacher's outputs depend on; a distill run's teacher must agree on each. */
export const teacherCacheConfigFields = [
  'vocab_size', 'num_mel_bins', 'max_source_positions', 'max_target_positions', 'd_model',
  'encoder_layers', 'decoder_layers', 'encoder_attention_heads', 'decoder_attention_heads', 'encoder_ffn_dim', 'decoder_ffn_dim',
] as const;

/** How a cache stores the hidden states. */
export type TeacherCacheStatesDtype = 'F32' | 'F16';

/** One cached example: which manifest row it is and where its tensors are. */
export interface TeacherCacheEntry {
  /** The manifest row (1-based line), its audio, text and language as read when the cache was built. */
  line: number;
  audio: string;
  text: string;
  language: string;
  /** Its safetensors file, relative to the cache folder. */
  file: string;
  /** Decoder positions stored (the sequence's inputs, after cutting to `tokens`). */
  positions: number;
}

/** index.json. */
export interface TeacherCacheIndex {
  format: typeof TEACHER_CACHE_FORMAT;
  version: number;
  /** The teacher: what the user gave, its config, and sha256 over its weights (teacherWeightsDigest). */
  teacher: { path: string; config: WhisperConfig; sha256: string };
  /** The manifest the cache was built from, as given. */
  manifest: string;
  /** Logits kept per decoder position. */
  topK: number;
  /** Temperature of the stored logsumexp (the 'tail' KL form needs the run's tau to be this). */
  tau: number;
  /** Decoder length of the batches (the distill run's must be equal: the same cut of long sequences). */
  tokens: number;
  /** Storage of the hidden states (F16 halves the files; read back widened to f32). */
  statesDtype: TeacherCacheStatesDtype;
  examples: TeacherCacheEntry[];
  /** Manifest rows whose audio could not be used, as the writer skipped them. */
  skipped: { line: number; reason: string }[];
}

/**
 * One example's cached tensors: [positions, k] top-k, [positions] logsumexp of logits / tau,
 * [encoder_layers, S, d] and [decoder_layers, positions, d] states.
 */
export interface TeacherCacheRecord {
  topkValues: Float32Array;
  topkIds: Int32Array;
  teacherLogsumexp: Float32Array;
  encoderStates: Float32Array;
  decoderStates: Float32Array;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Parse and validate index.json; errors name the file and the field. */
export function parseTeacherCacheIndex(json: unknown, file: string): TeacherCacheIndex {
  const fail = (field: string, what: string): never => {
    throw new ConfigError(`${file}: ${field} ${what}`);
  };
  if (!isObject(json)) return fail('the index', 'is not a JSON object');
  if (json.format !== TEACHER_CACHE_FORMAT) fail('format', `is ${JSON.stringify(json.format)}, expected "${TEACHER_CACHE_FORMAT}"`);
  if (json.version !== TEACHER_CACHE_VERSION) fail('version', `is ${JSON.stringify(json.version)}; this dqw reads version ${TEACHER_CACHE_VERSION}`);
  const teacher = json.teacher;
  if (!isObject(teacher) || typeof teacher.path !== 'string' || typeof teacher.sha256 !== 'string' || !isObject(teacher.config)) fail('teacher', 'must hold path, config and sha256');
  const int = (v: unknown, field: string, min: number) => {
    if (!Number.isSafeInteger(v) || (v as number) < min) fail(field, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const config = (teacher as { config: Record<string, unknown> }).config;
  for (const f of teacherCacheConfigFields) int(config[f], `teacher.config.${f}`, 1);
  const topK = int(json.topK, 'topK', 1);
  if (topK > (config.vocab_size as number)) fail('topK', `${topK} exceeds teacher.config.vocab_size ${config.vocab_size as number}`);
  const tokens = int(json.tokens, 'tokens', 2);
  if (typeof json.tau !== 'number' || !(json.tau > 0)) fail('tau', `must be a number > 0, got ${JSON.stringify(json.tau)}`);
  if (json.statesDtype !== 'F32' && json.statesDtype !== 'F16') fail('statesDtype', `is ${JSON.stringify(json.statesDtype)}, expected "F32" or "F16"`);
  if (typeof json.manifest !== 'string') fail('manifest', 'must be a string');
  if (!Array.isArray(json.examples)) return fail('examples', 'must be an array');
  json.examples.forEach((e: unknown, i) => {
    const field = `examples[${i}]`;
    if (!isObject(e)) return fail(field, 'is not an object');
    int(e.line, `${field}.line`, 1);
    int(e.positions, `${field}.positions`, 1);
    if ((e.positions as number) > tokens) fail(`${field}.positions`, `${e.positions as number} exceeds tokens ${tokens}`);
    for (const k of ['audio', 'text', 'language', 'file'] as const) if (typeof e[k] !== 'string') fail(`${field}.${k}`, 'must be a string');
    if ((e.file as string).includes('..')) fail(`${field}.file`, `"${e.file as string}" must stay inside the cache folder`);
  });
  if (!Array.isArray(json.skipped)) fail('skipped', 'must be an array');
  return json as unknown as TeacherCacheIndex;
}

/**
 * Check that a cache serves a distill run: the same decoder length, a teacher of the same
 * config (and weights, when the run names the teacher too), and an entry with equal audio, text
 * and language for every training example (by manifest line). Returns each example's entry.
 */
export function matchTeacherCache(
  index: TeacherCacheIndex,
  file: string,
  run: { tokens: number; tau: number; klForm: CachedKlForm; examples: readonly TrainingExample[]; teacher?: { config: WhisperConfig; sha256: string; path: string } },
): Map<TrainingExample, TeacherCacheEntry> {
  if (run.klForm === 'tail' && index.tau !== run.tau) {
    throw new ConfigError(`${file}: tau ${index.tau} differs from this run's tau ${run.tau}; the 'tail' KL reads the teacher's logsumexp at the run's tau (build the cache with --tau ${run.tau}, or use --teacher-cache-kl renormalised)`);
  }
  if (index.tokens !== run.tokens) {
    throw new ConfigError(`${file}: tokens ${index.tokens} differs from this run's decoder length ${run.tokens}; build the cache with the run's --max-tokens (or give the run --max-tokens ${index.tokens})`);
  }
  if (run.teacher) {
    for (const f of teacherCacheConfigFields) {
      if (index.teacher.config[f] !== run.teacher.config[f]) throw new ConfigError(`${file}: teacher.config.${f} ${index.teacher.config[f]} differs from --teacher ${run.teacher.path}'s ${run.teacher.config[f]}`);
    }
    if (index.teacher.sha256 !== run.teacher.sha256) throw new ConfigError(`${file}: teacher.sha256 ${index.teacher.sha256} differs from --teacher ${run.teacher.path}'s weights (${run.teacher.sha256}); the cache holds another teacher's outputs`);
  }
  const byLine = new Map(index.examples.map((e, i) => [e.line, { e, i }]));
  const out = new Map<TrainingExample, TeacherCacheEntry>();
  for (const x of run.examples) {
    const hit = byLine.get(x.line);
    if (!hit) throw new ConfigError(`${file}: examples has no entry for line ${x.line} of ${x.source} (${x.audio}); the cache was built from ${index.manifest}`);
    for (const k of ['audio', 'text', 'language'] as const) {
      if (hit.e[k] !== x[k]) throw new ConfigError(`${file}: examples[${hit.i}].${k} ${JSON.stringify(hit.e[k])} differs from line ${x.line} of ${x.source}: ${JSON.stringify(x[k])}`);
    }
    out.set(x, hit.e);
  }
  return out;
}

/** Check one record's sizes against its entry and the index; `file` names it in the error. */
export function checkTeacherCacheRecord(record: TeacherCacheRecord, entry: TeacherCacheEntry, index: TeacherCacheIndex, file: string): void {
  const c = index.teacher.config;
  const n = entry.positions;
  const want = {
    topk_values: n * index.topK, topk_ids: n * index.topK, teacher_logsumexp: n,
    encoder_states: c.encoder_layers * c.max_source_positions * c.d_model, decoder_states: c.decoder_layers * n * c.d_model,
  };
  const got = { topk_values: record.topkValues.length, topk_ids: record.topkIds.length, teacher_logsumexp: record.teacherLogsumexp.length, encoder_states: record.encoderStates.length, decoder_states: record.decoderStates.length };
  for (const [k, v] of Object.entries(want)) {
    if (got[k as keyof typeof got] !== v) throw new ConfigError(`${file}: tensor "${k}" has ${got[k as keyof typeof got]} values, expected ${v} (${n} positions, top-k ${index.topK})`);
  }
  for (let i = 0; i < record.topkIds.length; i++) {
    const id = record.topkIds[i]!;
    if (id < 0 || id >= c.vocab_size) throw new ConfigError(`${file}: tensor "topk_ids" holds ${id} at ${i}, outside the vocabulary 0..${c.vocab_size - 1}`);
  }
}

/**
 * One example's record from a batch's teacher outputs (TeacherForward.run): row `b`, its first
 * `positions` decoder positions.
 */
export function recordOfBatchRow(outputs: CachedTeacherOutputs, b: number, positions: number, shape: { batch: number; tokens: number }, config: WhisperConfig, topK: number): TeacherCacheRecord {
  const { batch: B, tokens: T } = shape;
  const S = config.max_source_positions;
  const d = config.d_model;
  const layersOf = (states: Float32Array, layers: number, rows: number, keep: number) => {
    const out = new Float32Array(layers * keep * d);
    for (let l = 0; l < layers; l++) out.set(states.subarray(((l * B + b) * rows) * d, ((l * B + b) * rows + keep) * d), l * keep * d);
    return out;
  };
  return {
    topkValues: outputs.topkValues.slice(b * T * topK, (b * T + positions) * topK),
    topkIds: outputs.topkIds.slice(b * T * topK, (b * T + positions) * topK),
    teacherLogsumexp: outputs.teacherLogsumexp!.slice(b * T, b * T + positions),
    encoderStates: layersOf(outputs.encoderStates!, config.encoder_layers, S, S),
    decoderStates: layersOf(outputs.decoderStates!, config.decoder_layers, T, positions),
  };
}

/**
 * A batch's teacher outputs in the step's layouts from per-example records, rows as
 * BatchPreparer.assemble fills them (records[b % records.length]); positions past a record's
 * are padding (labels ignored there): top-k ids 0 and values 0, logsumexp 0, states 0.
 */
export function assembleCachedOutputs(records: readonly TeacherCacheRecord[], positions: readonly number[], batch: number, tokens: number, config: WhisperConfig, topK: number): CachedTeacherOutputs {
  const S = config.max_source_positions;
  const d = config.d_model;
  const Le = config.encoder_layers;
  const Ld = config.decoder_layers;
  const topkValues = new Float32Array(batch * tokens * topK);
  const topkIds = new Int32Array(batch * tokens * topK);
  const teacherLogsumexp = new Float32Array(batch * tokens);
  const encoderStates = new Float32Array(Le * batch * S * d);
  const decoderStates = new Float32Array(Ld * batch * tokens * d);
  for (let b = 0; b < batch; b++) {
    const r = records[b % records.length]!;
    const n = positions[b % records.length]!;
    topkValues.set(r.topkValues.subarray(0, n * topK), b * tokens * topK);
    topkIds.set(r.topkIds.subarray(0, n * topK), b * tokens * topK);
    teacherLogsumexp.set(r.teacherLogsumexp.subarray(0, n), b * tokens);
    for (let l = 0; l < Le; l++) encoderStates.set(r.encoderStates.subarray(l * S * d, (l + 1) * S * d), (l * batch + b) * S * d);
    for (let l = 0; l < Ld; l++) decoderStates.set(r.decoderStates.subarray(l * n * d, (l + 1) * n * d), (l * batch + b) * tokens * d);
  }
  return { topkValues, topkIds, teacherLogsumexp, encoderStates, decoderStates };
}

// The byte-level side of training checkpoints (see training-checkpoint.ts for the folder layout
// and the Node writer/reader): training.safetensors and training.json, built from and parsed into
// memory with no file-system access, so a browser can produce or read them too.
import { CheckpointError } from '../errors.js';
import { whisperParameters, type WhisperConfig } from '../model/config.js';
import { elementsOf } from '../model/init.js';
import type { ByteSource, FileChunks } from './byte-source.js';
import { encodeSafetensors, readSafetensorsHeader, readSafetensorsTensor, type TensorToWrite } from './safetensors.js';

/** File names inside a checkpoint folder, beside the model's config.json and model.safetensors. */
export const trainingFileNames = {
  /** Optimizer moments and other learned tensors, F32. */
  tensors: 'training.safetensors',
  /** The manifest: format, version, step, metric, the caller's state and each file's sha256. Written last. */
  manifest: 'training.json',
} as const;

/** `format` field of training.json. */
export const trainingCheckpointFormat = 'dq-whisper-training-checkpoint';

/** Version of the training.json layout this code writes and reads. */
export const trainingCheckpointVersion = 1;

/** `__metadata__.format` of training.safetensors. */
const tensorsFileFormat = 'dq-whisper-training';

/** Why a training checkpoint was refused. */
export type TrainingCheckpointProblem =
  /** A file the checkpoint needs is not there. */
  | 'missing'
  /** A file's size or sha256 differs from training.json, or a file does not parse. */
  | 'corrupt'
  /** training.json has a format version this code does not read. */
  | 'version'
  /** A stored tensor's shape disagrees with the model config or with the tensor it belongs to. */
  | 'shape'
  /** A checkpoint of this step already exists (saving it again would replace it non-atomically). */
  | 'exists'
  /** What was given to save cannot be stored as it is (a non-JSON state value, a bad step or metric, a clashing name). */
  | 'invalid';

/**
 * A training checkpoint that cannot be loaded or saved. `problem` says which kind; `file` and
 * (when one is concerned) `tensor` are named in the message too.
 */
export class TrainingCheckpointError extends CheckpointError {
  constructor(
    message: string,
    readonly problem: TrainingCheckpointProblem,
    file: string,
    tensor?: string,
  ) {
    super(message, file, tensor);
  }
}

/** A tensor with an explicit shape, for tensors whose shape cannot be inferred (see {@link TrainingTensors}). */
export interface ShapedTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/**
 * Tensors saved beside the model, by name. AdamW moments use PyTorch's names,
 * `<param>.exp_avg` and `<param>.exp_avg_sq`; a plain Float32Array takes the shape of `<param>`
 * (a model parameter, or another entry of this map), any other plain array is stored 1-D.
 */
export type TrainingTensors = ReadonlyMap<string, Float32Array | ShapedTensor>;

const momentSuffix = /\.(exp_avg|exp_avg_sq)$/;

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** Shapes of the model parameters and of every given tensor, moments resolved to their parameter's. */
function resolveShapes(config: WhisperConfig, tensors: TrainingTensors): Map<string, readonly number[]> {
  const modelShapes = new Map(whisperParameters(config).map((p) => [p.name, p.shape] as const));
  const explicit = (name: string): readonly number[] | undefined => {
    const t = tensors.get(name);
    if (t === undefined) return undefined;
    return t instanceof Float32Array ? (momentSuffix.test(name) ? undefined : [t.length]) : t.shape;
  };
  const shapes = new Map<string, readonly number[]>();
  for (const [name, tensor] of tensors) {
    if (modelShapes.has(name)) {
      throw new TrainingCheckpointError(
        `${trainingFileNames.tensors}: tensor "${name}" is a model parameter name; model weights go in the model, not among the training tensors`,
        'invalid', trainingFileNames.tensors, name,
      );
    }
    const owner = name.replace(momentSuffix, '');
    const shape = tensor instanceof Float32Array && owner !== name ? (modelShapes.get(owner) ?? explicit(owner) ?? [tensor.length]) : explicit(name)!;
    shapes.set(name, shape);
  }
  return shapes;
}

/**
 * Check that every moment `<param>.exp_avg(_sq)` whose parameter is known (a model parameter of
 * `config`, or another tensor of `shapes`) has that parameter's shape. Throws a 'shape'
 * TrainingCheckpointError naming `file` and the tensor.
 */
export function checkMomentShapes(config: WhisperConfig, shapes: ReadonlyMap<string, readonly number[]>, file: string): void {
  const modelShapes = new Map(whisperParameters(config).map((p) => [p.name, p.shape] as const));
  for (const [name, shape] of shapes) {
    const owner = name.replace(momentSuffix, '');
    if (owner === name) continue;
    const expected = modelShapes.get(owner) ?? shapes.get(owner);
    if (expected && (expected.length !== shape.length || expected.some((d, i) => d !== shape[i]))) {
      const whose = modelShapes.has(owner) ? `model parameter "${owner}" of the config` : `tensor "${owner}"`;
      throw new TrainingCheckpointError(
        `${file}: tensor "${name}" has shape ${shapeText(shape)}, expected ${shapeText(expected)} as ${whose}`,
        'shape', file, name,
      );
    }
  }
}

/**
 * training.safetensors of `tensors` (F32, in the map's order), their moments checked against the
 * parameters of `config` (see {@link checkMomentShapes}). Throws TrainingCheckpointError for a
 * tensor named like a model parameter, a misshapen moment or values that do not fill their shape.
 */
export function trainingTensorsFile(config: WhisperConfig, tensors: TrainingTensors): FileChunks {
  const file = trainingFileNames.tensors;
  const shapes = resolveShapes(config, tensors);
  checkMomentShapes(config, shapes, file);
  const toWrite: TensorToWrite[] = [...tensors].map(([name, t]) => {
    const data = t instanceof Float32Array ? t : t.data;
    const shape = shapes.get(name)!;
    if (data.length !== elementsOf(shape)) {
      throw new TrainingCheckpointError(`${file}: tensor "${name}" has ${data.length} values, expected ${elementsOf(shape)} for shape ${shapeText(shape)}`, 'shape', file, name);
    }
    return { name, shape, data };
  });
  return encodeSafetensors(file, toWrite, 'F32', { format: tensorsFileFormat });
}

/** Tensors read back from training.safetensors. */
export interface ReadTrainingTensors {
  /** Values by name, in file order. */
  readonly tensors: Map<string, Float32Array>;
  /** Shape of each tensor as stored. */
  readonly shapes: Map<string, readonly number[]>;
}

/**
 * Read training.safetensors from `source`: every tensor must be F32 (moments are kept exact), and
 * moments must match the shapes of their parameters in `config`. Throws CheckpointError
 * (TrainingCheckpointError 'corrupt' or 'shape' for these checks) naming the file and tensor.
 */
export async function readTrainingTensors(source: ByteSource, config: WhisperConfig): Promise<ReadTrainingTensors> {
  const header = await readSafetensorsHeader(source);
  const shapes = new Map(header.tensors.map((e) => [e.name, e.shape] as const));
  for (const entry of header.tensors) {
    if (entry.dtype !== 'F32') {
      throw new TrainingCheckpointError(`${source.name}: tensor "${entry.name}" is ${entry.dtype}, expected F32`, 'corrupt', source.name, entry.name);
    }
  }
  checkMomentShapes(config, shapes, source.name);
  const tensors = new Map<string, Float32Array>();
  for (const entry of header.tensors) tensors.set(entry.name, await readSafetensorsTensor(source, entry));
  return { tensors, shapes };
}

/** Size and sha256 of one file of a checkpoint, as training.json records them. */
export interface FileDigest {
  readonly bytes: number;
  /** Lowercase hex. */
  readonly sha256: string;
}

/** The contents of training.json. */
export interface TrainingManifest {
  readonly format: typeof trainingCheckpointFormat;
  readonly version: number;
  readonly step: number;
  /** The caller's metric for picking the best checkpoint (lower is better); null when none was given. */
  readonly metric: number | null;
  /** ISO 8601 time of the save. */
  readonly savedAt: string;
  /** Every other file of the checkpoint folder, by name. */
  readonly files: Readonly<Record<string, FileDigest>>;
  /** The caller's JSON state, stored as given. */
  readonly state: unknown;
}

/**
 * Throws a TrainingCheckpointError ('invalid') naming the first place in `value` that JSON would
 * not give back as it is: NaN and infinities, bigints, functions, symbols, undefined in arrays,
 * typed arrays, Maps, Dates and other class instances. Object properties that are undefined are
 * allowed (JSON omits them, as an optional field that is absent).
 */
export function checkJsonValue(value: unknown, path: string, file: string): void {
  const refuse = (what: string): never => {
    throw new TrainingCheckpointError(`${file}: ${path} is ${what}, which JSON cannot hold exactly; store it as plain numbers, strings, arrays and objects`, 'invalid', file);
  };
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) refuse(String(value));
    return;
  }
  if (typeof value !== 'object') refuse(`a ${typeof value}`);
  if (Array.isArray(value)) {
    value.forEach((v, i) => (v === undefined ? refuse(`undefined at [${i}]`) : checkJsonValue(v, `${path}[${i}]`, file)));
    return;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) refuse(`a ${(value as object).constructor?.name ?? 'class instance'}`);
  for (const [k, v] of Object.entries(value as object)) if (v !== undefined) checkJsonValue(v, `${path}.${k}`, file);
}

/** training.json text of `manifest`, two-space indented; checks that the state is plain JSON first. */
export function trainingManifestText(manifest: TrainingManifest): string {
  checkJsonValue(manifest.state, 'state', trainingFileNames.manifest);
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/**
 * Parse and check training.json (`file` names it in errors): its format, its version (a
 * 'version' TrainingCheckpointError for any other than {@link trainingCheckpointVersion}), a
 * step, a metric, and the size and sha256 of each listed file.
 */
export function parseTrainingManifest(text: string, file: string): TrainingManifest {
  const corrupt = (what: string): never => {
    throw new TrainingCheckpointError(`${file}: ${what}`, 'corrupt', file);
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    corrupt(`not valid JSON (${(e as Error).message}); the file is truncated or damaged`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return corrupt('expected a JSON object');
  const m = json as Record<string, unknown>;
  if (m.format !== trainingCheckpointFormat) corrupt(`"format" is ${JSON.stringify(m.format)}, expected "${trainingCheckpointFormat}"`);
  if (m.version !== trainingCheckpointVersion) {
    throw new TrainingCheckpointError(
      `${file}: format version ${JSON.stringify(m.version)}; this dq-whisper reads version ${trainingCheckpointVersion} only`,
      'version', file,
    );
  }
  if (!Number.isSafeInteger(m.step) || (m.step as number) < 0) corrupt(`"step" is ${JSON.stringify(m.step)}, expected a non-negative integer`);
  if (m.metric !== null && !Number.isFinite(m.metric)) corrupt(`"metric" is ${JSON.stringify(m.metric)}, expected a number or null`);
  if (typeof m.savedAt !== 'string') corrupt(`"savedAt" is ${JSON.stringify(m.savedAt)}, expected an ISO date string`);
  const files = m.files;
  if (typeof files !== 'object' || files === null || Array.isArray(files)) return corrupt('"files" is not an object of file name → {bytes, sha256}');
  for (const [name, digest] of Object.entries(files)) {
    const d = digest as Partial<FileDigest> | null;
    if (!Number.isSafeInteger(d?.bytes) || typeof d?.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(d.sha256)) {
      corrupt(`"files"."${name}" is ${JSON.stringify(digest)}, expected {"bytes": integer, "sha256": 64 hex digits}`);
    }
  }
  if (!('state' in m)) corrupt('"state" is missing');
  return m as unknown as TrainingManifest;
}

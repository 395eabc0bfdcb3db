// Training checkpoints on disk: atomic saves, retention of the last K and the best, exact resume.
//
// Layout of a run folder:
//   <run>/checkpoints/
//     step-00001234/             one complete checkpoint per saved step (8+ digits, zero-padded)
//       config.json              the student, exactly as a Hugging Face Whisper folder holds it,
//       model.safetensors        F32, so `dqw export`, `dqw transcribe` and loadHfCheckpoint take the folder
//       training.safetensors     F32 tensors: AdamW moments `<param>.exp_avg` / `<param>.exp_avg_sq`,
//                                learned projections and quant scales, named by the trainer
//       training.json            written last: format, version, step, metric, savedAt, the trainer's
//                                JSON state, and {bytes, sha256} of each of the three files above
//     step-00001300.tmp-<pid>-<hex>/    a save in progress, or left by a crash: never read
//     step-00000900.trash-<pid>-<hex>/  a checkpoint being deleted: never read
//     index.json                 summary for people and tools, rewritten after each save
//
// A save writes every file into a .tmp folder (each fsynced), fsyncs the folder, renames it to
// step-NNNNNNNN and fsyncs checkpoints/: the step folder appears complete or not at all. Only then
// are older checkpoints removed (renamed to .trash first, so a crash mid-delete leaves nothing that
// looks complete) and index.json replaced atomically. Stale .tmp and .trash folders of processes
// no longer running are removed at the start of the next save. The truth is each checkpoint's
// training.json; index.json is derived from them and never read back.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hfCheckpointFiles, type LoadedCheckpoint } from './huggingface.js';
import { fileSource, loadHfCheckpoint, writeFileAtomic } from './node-files.js';
import { textFile, type FileChunks } from './byte-source.js';
import type { WhisperCheckpoint } from './whisper-inventory.js';
import {
  parseTrainingManifest, readTrainingTensors, trainingCheckpointFormat, trainingCheckpointVersion, TrainingCheckpointError,
  trainingFileNames, trainingManifestText, trainingTensorsFile, type FileDigest, type TrainingTensors,
} from './training-checkpoint-format.js';

/** What {@link saveTrainingCheckpoint} stores. */
export interface TrainingCheckpointInput {
  /** Optimizer steps taken; names the folder. A non-negative integer. */
  readonly step: number;
  /** The student's weights and config, saved as a Hugging Face folder (F32). */
  readonly model: WhisperCheckpoint;
  /** Optimizer moments and other learned tensors; see {@link TrainingTensors}. */
  readonly tensors: TrainingTensors;
  /**
   * Everything else resume needs (RNG state, batcher position, layer-map tracker, options,
   * best metric so far...), as plain JSON: saved as given, returned as parsed.
   */
  readonly state: unknown;
  /** Metric to pick the best checkpoint by, lower is better (e.g. validation loss); finite. */
  readonly metric?: number;
}

/** Options of {@link saveTrainingCheckpoint}. */
export interface TrainingCheckpointRetention {
  /** Keep the checkpoints of the `keepLast` highest steps (the one just saved always among them), and the best; at least 1. */
  readonly keepLast: number;
}

/** One complete checkpoint in a run folder. */
export interface TrainingCheckpointEntry {
  readonly step: number;
  /** Its folder. */
  readonly path: string;
  /** The metric it was saved with, if any. */
  readonly metric?: number;
}

/** The outcome of {@link saveTrainingCheckpoint}. */
export interface SavedTrainingCheckpoint {
  /** The new checkpoint's folder. */
  readonly path: string;
  /** Folders of the checkpoints kept, by ascending step (the new one included). */
  readonly kept: string[];
  /** Folders of checkpoints deleted by retention. */
  readonly deleted: string[];
  /** The best checkpoint after this save (lowest metric, earliest on ties), if any has a metric. */
  readonly best?: TrainingCheckpointEntry;
}

/** A checkpoint read back by {@link loadTrainingCheckpoint}. */
export interface LoadedTrainingCheckpoint {
  readonly path: string;
  readonly step: number;
  readonly metric?: number;
  /** When it was saved (ISO 8601). */
  readonly savedAt: string;
  /** The student, as {@link loadHfCheckpoint} reads it. */
  readonly model: LoadedCheckpoint;
  /** training.safetensors, by name. */
  readonly tensors: Map<string, Float32Array>;
  /** The stored shape of each of `tensors`. */
  readonly shapes: Map<string, readonly number[]>;
  /** The state given to the save, parsed from JSON; the caller checks its shape. */
  readonly state: unknown;
}

/** The folder holding a run's checkpoints. */
export function checkpointsDir(runDir: string): string {
  return join(runDir, 'checkpoints');
}

/** Folder name of the checkpoint of `step`: step-00001234. */
export function checkpointDirName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

const completeDirPattern = /^step-(\d{8,})$/;
const workDirPattern = /^step-\d{8,}\.(?:tmp|trash)-(\d+)-[0-9a-f]+$/;
const indexFile = 'index.json';

// .tmp/.trash folders of saves running in this process, which cleanup must not touch.
const activeWork = new Set<string>();

function workDirName(base: string, kind: 'tmp' | 'trash'): string {
  return `${base}.${kind}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** `file` with a sha256 taken of exactly the chunks as they are handed to the writer. */
function hashedWhileWritten(file: FileChunks): { file: FileChunks; digest: () => FileDigest } {
  const hash = createHash('sha256');
  return {
    file: { name: file.name, byteLength: file.byteLength, *chunks() { for (const c of file.chunks()) { hash.update(c); yield c; } } },
    digest: () => ({ bytes: file.byteLength, sha256: hash.digest('hex') }),
  };
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The complete checkpoints of a run by ascending step; [] when there are none (or no folder). */
export async function listTrainingCheckpoints(runDir: string): Promise<TrainingCheckpointEntry[]> {
  const dir = checkpointsDir(runDir);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const entries: TrainingCheckpointEntry[] = [];
  for (const name of names) {
    if (!completeDirPattern.test(name)) continue;
    const path = join(dir, name);
    // A step folder only exists once complete; one without a readable training.json was damaged
    // from outside and is left alone (loadTrainingCheckpoint on it says what is wrong).
    const text = await readFile(join(path, trainingFileNames.manifest), 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    let manifest;
    try {
      manifest = parseTrainingManifest(text, join(path, trainingFileNames.manifest));
    } catch {
      continue;
    }
    entries.push({ step: manifest.step, path, ...(manifest.metric === null ? {} : { metric: manifest.metric }) });
  }
  return entries.sort((a, b) => a.step - b.step);
}

/** The checkpoint of the highest step, or undefined when the run has none. */
export async function latestTrainingCheckpoint(runDir: string): Promise<TrainingCheckpointEntry | undefined> {
  return (await listTrainingCheckpoints(runDir)).at(-1);
}

function bestOf(entries: readonly TrainingCheckpointEntry[]): TrainingCheckpointEntry | undefined {
  let best: TrainingCheckpointEntry | undefined;
  for (const e of entries) if (e.metric !== undefined && (best === undefined || e.metric < best.metric!)) best = e;
  return best;
}

/** The checkpoint of the lowest metric (the earliest on ties), or undefined when none has a metric. */
export async function bestTrainingCheckpoint(runDir: string): Promise<TrainingCheckpointEntry | undefined> {
  return bestOf(await listTrainingCheckpoints(runDir));
}

/** Remove .tmp and .trash folders left by crashed or finished processes (not by saves running now). */
async function removeStaleWork(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const m = workDirPattern.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    const stale = pid === process.pid ? !activeWork.has(name) : !isRunning(pid);
    if (stale) await rm(join(dir, name), { recursive: true, force: true });
  }
}

/**
 * Save a training checkpoint of `input.step` into `<runDir>/checkpoints/step-NNNNNNNN/`,
 * atomically (see the layout at the top of this file), then apply retention: keep the
 * `keepLast` checkpoints of highest step and the best by metric, delete the others, and rewrite
 * `checkpoints/index.json`. Throws TrainingCheckpointError 'exists' when that step is already
 * saved (also when two saves of one step race: one wins, the other throws and leaves nothing),
 * 'invalid' for a bad step, metric, keepLast or a state that is not plain JSON, 'shape' for
 * moments that do not match their parameters; ShapeError when the model's weights do not match
 * its config. On any error the run's existing checkpoints are untouched.
 */
export async function saveTrainingCheckpoint(
  runDir: string,
  input: TrainingCheckpointInput,
  retention: TrainingCheckpointRetention,
): Promise<SavedTrainingCheckpoint> {
  const dir = checkpointsDir(runDir);
  const name = checkpointDirName(input.step);
  const finalPath = join(dir, name);
  const invalid = (what: string): never => {
    throw new TrainingCheckpointError(`${finalPath}: ${what}`, 'invalid', finalPath);
  };
  if (!Number.isSafeInteger(input.step) || input.step < 0) invalid(`step ${input.step} is not a non-negative integer`);
  if (input.metric !== undefined && !Number.isFinite(input.metric)) invalid(`metric ${input.metric} is not a finite number`);
  if (!Number.isSafeInteger(retention.keepLast) || retention.keepLast < 1) invalid(`keepLast ${retention.keepLast} is not an integer ≥ 1`);
  // Encode everything before touching the disk, so bad input leaves no trace.
  const modelFiles = hfCheckpointFiles(input.model);
  const tensorsFile = trainingTensorsFile(input.model.config, input.tensors);
  const manifestWithoutFiles = {
    format: trainingCheckpointFormat, version: trainingCheckpointVersion, step: input.step,
    metric: input.metric ?? null, savedAt: new Date().toISOString(), state: input.state,
  } as const;
  trainingManifestText({ ...manifestWithoutFiles, files: {} });

  await mkdir(dir, { recursive: true });
  const exists = () => new TrainingCheckpointError(`${finalPath}: a checkpoint of step ${input.step} already exists; it is not replaced`, 'exists', finalPath);
  if (await stat(finalPath).then(() => true, () => false)) throw exists();
  await removeStaleWork(dir);

  const tmpName = workDirName(name, 'tmp');
  const workPath = join(dir, tmpName);
  activeWork.add(tmpName);
  try {
    await mkdir(workPath);
    const files: Record<string, FileDigest> = {};
    for (const file of [...modelFiles, tensorsFile]) {
      const hashed = hashedWhileWritten(file);
      await writeFileAtomic(join(workPath, file.name), hashed.file);
      files[file.name] = hashed.digest();
    }
    await writeFileAtomic(join(workPath, trainingFileNames.manifest), textFile(trainingFileNames.manifest, trainingManifestText({ ...manifestWithoutFiles, files })));
    await fsyncPath(workPath);
    try {
      await rename(workPath, finalPath);
    } catch (e) {
      // Another save of this step got there first (rename onto a non-empty folder fails).
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') throw exists();
      throw e;
    }
    await fsyncPath(dir);
  } catch (e) {
    await rm(workPath, { recursive: true, force: true });
    throw e;
  } finally {
    activeWork.delete(tmpName);
  }
  return applyRetention(runDir, finalPath, retention.keepLast);
}

async function applyRetention(runDir: string, newPath: string, keepLast: number): Promise<SavedTrainingCheckpoint> {
  const dir = checkpointsDir(runDir);
  const entries = await listTrainingCheckpoints(runDir);
  const best = bestOf(entries);
  // The new checkpoint always stays, with the keepLast − 1 others of highest step (in a
  // monotonic run: the last keepLast), and the best.
  const others = entries.filter((e) => e.path !== newPath);
  const keep = new Set<string>([newPath, ...others.slice(Math.max(0, others.length - (keepLast - 1))).map((e) => e.path)]);
  if (best) keep.add(best.path);
  const deleted: string[] = [];
  for (const e of entries) {
    if (keep.has(e.path)) continue;
    const base = e.path.slice(dir.length + 1);
    const trashName = workDirName(base, 'trash');
    activeWork.add(trashName);
    try {
      await rename(e.path, join(dir, trashName));
      await rm(join(dir, trashName), { recursive: true, force: true });
    } catch (err) {
      // Already removed by another save's retention.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    } finally {
      activeWork.delete(trashName);
    }
    deleted.push(e.path);
  }
  const kept = entries.filter((e) => keep.has(e.path));
  const name = (e: TrainingCheckpointEntry) => e.path.slice(dir.length + 1);
  const index = {
    format: 'dq-whisper-training-index',
    version: trainingCheckpointVersion,
    latest: kept.length > 0 ? { step: kept.at(-1)!.step, dir: name(kept.at(-1)!) } : null,
    best: best ? { step: best.step, dir: name(best), metric: best.metric } : null,
    checkpoints: kept.map((e) => ({ step: e.step, dir: name(e), metric: e.metric ?? null })),
  };
  await writeFileAtomic(join(dir, indexFile), textFile(indexFile, `${JSON.stringify(index, null, 2)}\n`));
  return { path: newPath, kept: kept.map((e) => e.path), deleted, ...(best ? { best } : {}) };
}

/**
 * Read the checkpoint folder at `path` for an exact resume. training.json is read first (format
 * and version checked), then every file it lists is checked against its recorded size and sha256
 * before anything is parsed; then the model (as {@link loadHfCheckpoint}: config and weight
 * shapes checked) and training.safetensors (F32, moments shaped as their parameters). Throws
 * TrainingCheckpointError naming the file (and tensor): 'missing', 'corrupt' (truncated, altered,
 * unparseable), 'version', 'shape'; or CheckpointError from the model reader.
 */
export async function loadTrainingCheckpoint(path: string): Promise<LoadedTrainingCheckpoint> {
  const manifestPath = join(path, trainingFileNames.manifest);
  const text = await readFile(manifestPath, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
    throw new TrainingCheckpointError(
      `${manifestPath}: not found; ${path} is not a complete training checkpoint (saves write training.json last)`,
      'missing', manifestPath,
    );
  });
  const manifest = parseTrainingManifest(text, manifestPath);
  for (const required of ['config.json', 'model.safetensors', trainingFileNames.tensors]) {
    if (!(required in manifest.files)) {
      throw new TrainingCheckpointError(`${manifestPath}: "files" does not list ${required}, which every training checkpoint has`, 'corrupt', manifestPath);
    }
  }
  for (const [name, expected] of Object.entries(manifest.files)) {
    const filePath = join(path, name);
    const info = await stat(filePath).catch(() => undefined);
    if (!info) throw new TrainingCheckpointError(`${filePath}: not found (listed in ${manifestPath})`, 'missing', filePath);
    if (info.size !== expected.bytes) {
      throw new TrainingCheckpointError(
        `${filePath}: ${info.size} bytes, but ${expected.bytes} were written (${manifestPath}); the file is ${info.size < expected.bytes ? 'truncated' : 'damaged'}`,
        'corrupt', filePath,
      );
    }
    const actual = await sha256OfFile(filePath);
    if (actual !== expected.sha256) {
      throw new TrainingCheckpointError(
        `${filePath}: sha256 ${actual} differs from ${expected.sha256} recorded in ${manifestPath}; the file was altered or damaged`,
        'corrupt', filePath,
      );
    }
  }
  const model = await loadHfCheckpoint(path);
  const source = await fileSource(join(path, trainingFileNames.tensors));
  let read;
  try {
    read = await readTrainingTensors(source, model.config);
  } finally {
    await source.close?.();
  }
  return {
    path, step: manifest.step, ...(manifest.metric === null ? {} : { metric: manifest.metric }), savedAt: manifest.savedAt,
    model, tensors: read.tensors, shapes: read.shapes, state: manifest.state,
  };
}

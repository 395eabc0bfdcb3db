import { CheckpointError, ConfigError } from '../errors.js';
import { parseWhisperConfig, tiedOutputProjection, whisperConfigJson, whisperParameters, type WhisperConfig } from '../model/config.js';
import { checkWhisperWeights } from '../model/init.js';
import { readText, textFile, type ByteSource, type FileChunks, type FileOpener } from './byte-source.js';
import {
  encodeSafetensors, readableDtypes, readSafetensorsHeader, readSafetensorsTensor,
  type SafetensorsDtype, type SafetensorsEntry, type TensorToWrite, type WritableDtype,
} from './safetensors.js';
import { checkWhisperInventory, tiedProjectionWarning, type WhisperCheckpoint } from './whisper-inventory.js';

/** File names transformers uses (`save_pretrained` / `from_pretrained`). */
export const hfFileNames = {
  config: 'config.json',
  weights: 'model.safetensors',
  index: 'model.safetensors.index.json',
  /** Shard `i` (0-based) of `n`: model-00001-of-00002.safetensors. */
  shard: (i: number, n: number) => `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`,
  shardPattern: /^model-\d{5}-of-\d{5}\.safetensors$/,
} as const;

/** Reports reading progress: bytes of tensor data read so far, of `total`, and the tensor just read. */
export type ProgressCallback = (done: number, total: number, tensorName: string) => void;

/** Options of {@link readHfCheckpoint}. */
export interface HfReadOptions {
  onProgress?: ProgressCallback;
}

/** A checkpoint read from files, with what the files said about it. */
export interface LoadedCheckpoint extends WhisperCheckpoint {
  /** The dtype each tensor had in its file (F32, F16, BF16 for safetensors; f32, f16 for ggml). */
  readonly sourceDtypes: ReadonlyMap<string, string>;
  /** safetensors `__metadata__` of the first weights file (e.g. {format: "pt"}); empty for ggml. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Things that did not stop loading but should be told, e.g. a proj_out.weight that differs from the embedding. */
  readonly warnings: readonly string[];
  /** The files read, in order. */
  readonly files: readonly string[];
}

async function parseJsonFile(source: ByteSource): Promise<unknown> {
  try {
    return JSON.parse(await readText(source));
  } catch (e) {
    throw new CheckpointError(`${source.name}: not valid JSON (${(e as Error).message})`, source.name);
  }
}

/** weight_map of a model.safetensors.index.json: tensor name → shard file name. */
function parseIndex(source: ByteSource, json: unknown): Map<string, string> {
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new CheckpointError(`${source.name}: expected an object with a "weight_map" object (tensor name → shard file)`, source.name);
  }
  const map = new Map<string, string>();
  for (const [tensor, file] of Object.entries(weightMap)) {
    if (typeof file !== 'string' || file.includes('/') || file.includes('\\')) {
      throw new CheckpointError(`${source.name}: weight_map entry for "${tensor}" is ${JSON.stringify(file)}, expected a shard file name in the same folder`, source.name, tensor);
    }
    map.set(tensor, file);
  }
  return map;
}

/**
 * `open` for files a checkpoint cannot do without: a missing one is a CheckpointError saying
 * why it is needed; each opened source is pushed to `opened` for the caller to close.
 */
export function requiredOpener(open: FileOpener, opened: ByteSource[]): (name: string, why: string) => Promise<ByteSource> {
  return async (name, why) => {
    const source = await open(name);
    if (!source) throw new CheckpointError(`${name}: not found (${why})`, name);
    opened.push(source);
    return source;
  };
}

/**
 * Read a Hugging Face Whisper checkpoint: `config.json` and `model.safetensors`, or (when there is
 * none, as transformers decides) `model.safetensors.index.json` and its shards. Every header is
 * read and checked against the config first (missing, unexpected, misshapen or wrongly typed
 * tensors, truncated or overlapping data, index and shards that disagree: CheckpointError naming
 * the file and tensor); then each tensor's byte range alone is read and widened to float32, so no
 * second copy of the file is held. F32, F16 and BF16 are read. A stored `proj_out.weight` is
 * compared with the token embedding it is tied to (a warning when they differ) and dropped.
 */
export async function readHfCheckpoint(open: FileOpener, opts: HfReadOptions = {}): Promise<LoadedCheckpoint> {
  const opened: ByteSource[] = [];
  const openRequired = requiredOpener(open, opened);
  try {
    const configSource = await openRequired(hfFileNames.config, 'a Hugging Face checkpoint needs its config.json');
    const configJson = await parseJsonFile(configSource);
    const config = parseWhisperConfig(configJson, configSource.name);

    let shards: { source: ByteSource; entries: readonly SafetensorsEntry[]; metadata: Readonly<Record<string, string>> }[];
    const single = await open(hfFileNames.weights);
    if (single) {
      opened.push(single);
      const header = await readSafetensorsHeader(single);
      shards = [{ source: single, entries: header.tensors, metadata: header.metadata }];
    } else {
      const indexSource = await open(hfFileNames.index);
      if (!indexSource) {
        const legacy = await open('pytorch_model.bin');
        await legacy?.close?.();
        throw new CheckpointError(
          `${hfFileNames.weights}: not found, nor ${hfFileNames.index}` +
            (legacy ? '; pytorch_model.bin (pickle) is not read: convert it with transformers `save_pretrained(..., safe_serialization=True)`' : ''),
          hfFileNames.weights,
        );
      }
      opened.push(indexSource);
      const weightMap = parseIndex(indexSource, await parseJsonFile(indexSource));
      shards = [];
      const shardNames = [...new Set(weightMap.values())];
      const shardSources = [];
      for (const file of shardNames) shardSources.push(await openRequired(file, `listed in ${indexSource.name}`));
      for (const [i, source] of shardSources.entries()) {
        const file = shardNames[i]!;
        const header = await readSafetensorsHeader(source);
        for (const entry of header.tensors) {
          const listed = weightMap.get(entry.name);
          if (listed !== file) {
            throw new CheckpointError(
              `${source.name}: tensor "${entry.name}" is here but ${listed === undefined ? 'not listed' : `listed in ${listed}`} in ${indexSource.name}`,
              source.name, entry.name,
            );
          }
        }
        const present = new Set(header.tensors.map((t) => t.name));
        for (const [tensor, listedFile] of weightMap) {
          if (listedFile === file && !present.has(tensor)) {
            throw new CheckpointError(`${source.name}: tensor "${tensor}" is listed here by ${indexSource.name} but the shard does not hold it`, source.name, tensor);
          }
        }
        shards.push({ source, entries: header.tensors, metadata: header.metadata });
      }
    }

    const located = new Map<string, { source: ByteSource; entry: SafetensorsEntry }>();
    for (const shard of shards) for (const entry of shard.entries) located.set(entry.name, { source: shard.source, entry });
    checkWhisperInventory(
      config,
      shards.flatMap((s) => s.entries.map((e) => ({ name: e.name, shape: e.shape, dtype: e.dtype, file: s.source.name }))),
      configSource.name,
      Object.keys(readableDtypes),
    );

    const names = whisperParameters(config).map((p) => p.name);
    if (located.has(tiedOutputProjection.name)) names.push(tiedOutputProjection.name);
    const total = names.reduce((n, name) => n + located.get(name)!.entry.byteLength, 0);
    let done = 0;
    const weights = new Map<string, Float32Array>();
    const sourceDtypes = new Map<string, SafetensorsDtype>();
    const warnings: string[] = [];
    for (const name of names) {
      const { source, entry } = located.get(name)!;
      const values = await readSafetensorsTensor(source, entry);
      done += entry.byteLength;
      if (name === tiedOutputProjection.name) {
        const warning = tiedProjectionWarning(source.name, values, weights.get(tiedOutputProjection.tiedTo)!);
        if (warning) warnings.push(warning);
      } else {
        weights.set(name, values);
        sourceDtypes.set(name, entry.dtype);
      }
      opts.onProgress?.(done, total, name);
    }
    return { config, weights, sourceDtypes, metadata: shards[0]!.metadata, warnings, files: opened.map((s) => s.name) };
  } finally {
    await Promise.all(opened.map((s) => s.close?.()));
  }
}

/** Options of {@link hfCheckpointFiles}. */
export interface HfWriteOptions {
  /** Stored dtype of every tensor; default F32. */
  dtype?: WritableDtype;
  /**
   * Split the weights into shards of at most this many bytes of tensor data (a tensor larger than
   * the limit gets a shard of its own), with model.safetensors.index.json; default one file.
   */
  maxShardBytes?: number;
}

/** config.json as transformers writes it: keys sorted, two-space indent, final newline. */
export function hfConfigText(config: WhisperConfig): string {
  const json = whisperConfigJson(config);
  const sorted = Object.fromEntries(Object.keys(json).sort().map((k) => [k, json[k]]));
  return `${JSON.stringify(sorted, null, 2)}\n`;
}

/**
 * The files of a Hugging Face checkpoint of `model` (config.json, then model.safetensors or the
 * shards and model.safetensors.index.json), as chunks for a writer: Node's `saveHfCheckpoint`, or
 * a browser download. Tensors carry their exact transformers names, in declaration order, with
 * metadata {format: "pt"}, so transformers' `from_pretrained` loads the folder unchanged.
 * `proj_out.weight` is not written (tied, as transformers saves it). Throws ShapeError when the
 * weights do not match the config.
 */
export function hfCheckpointFiles(model: WhisperCheckpoint, opts: HfWriteOptions = {}): FileChunks[] {
  const dtype = opts.dtype ?? 'F32';
  checkWhisperWeights(model.config, model.weights, 'weights to save');
  const tensors: TensorToWrite[] = whisperParameters(model.config).map((p) => ({ name: p.name, shape: p.shape, data: model.weights.get(p.name)! }));
  const config = textFile(hfFileNames.config, hfConfigText(model.config));
  const elementBytes = dtype === 'F32' ? 4 : 2;
  if (opts.maxShardBytes === undefined) return [config, encodeSafetensors(hfFileNames.weights, tensors, dtype)];
  if (!(opts.maxShardBytes > 0)) throw new ConfigError(`maxShardBytes must be positive, got ${opts.maxShardBytes}`);

  // Greedy in declaration order, as transformers' shard_checkpoint does.
  const groups: TensorToWrite[][] = [];
  let current: TensorToWrite[] = [];
  let currentBytes = 0;
  for (const t of tensors) {
    const bytes = t.data.length * elementBytes;
    if (current.length > 0 && currentBytes + bytes > opts.maxShardBytes) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(t);
    currentBytes += bytes;
  }
  groups.push(current);
  const shardFiles = groups.map((group, i) => encodeSafetensors(hfFileNames.shard(i, groups.length), group, dtype));
  const weightMap: Record<string, string> = {};
  for (const [i, group] of groups.entries()) for (const t of group) weightMap[t.name] = shardFiles[i]!.name;
  const sortedMap = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
  const index = { metadata: { total_size: tensors.reduce((n, t) => n + t.data.length * elementBytes, 0) }, weight_map: sortedMap };
  return [config, ...shardFiles, textFile(hfFileNames.index, `${JSON.stringify(index, null, 2)}\n`)];
}

// The teacher cache on disk (docs/teacher-cache.md): one safetensors file per example under
// examples/ (topk_values F32 [positions, k], topk_ids I32 [positions, k], encoder_states F32
// [encoder_layers, S, d], decoder_states F32 [decoder_layers, positions, d]) and index.json,
// written last; every file is written atomically (writeFileAtomic).
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import type { TrainingExample } from '../data/examples.js';
import type { PreparedExample } from '../distill/batch.js';
import type { CachedKlForm, CachedTeacherOutputs } from '../distill/step.js';
import {
  assembleCachedOutputs, checkTeacherCacheRecord, parseTeacherCacheIndex, TEACHER_CACHE_INDEX,
  type TeacherCacheEntry, type TeacherCacheIndex, type TeacherCacheRecord, type TeacherCacheStatesDtype,
} from '../distill/teacher-cache.js';
import { decodeToF32, encodeFromF32 } from './float-codecs.js';
import type { TrainerTeacherCache } from '../distill/trainer.js';
import { textFile } from './byte-source.js';
import { fileSource, writeFileAtomic } from './node-files.js';
import { encodeSafetensorsEncoded, readSafetensorsHeader } from './safetensors.js';

/** sha256 over a model's weights: each name (sorted) and its float32 bytes. */
export function teacherWeightsDigest(weights: ReadonlyMap<string, Float32Array>): string {
  const h = createHash('sha256');
  for (const name of [...weights.keys()].sort()) {
    const w = weights.get(name)!;
    h.update(`${name}\n${w.length}\n`);
    h.update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
  }
  return h.digest('hex');
}

const bytesOf = (a: Float32Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Write one example's record to `<dir>/<file>` (atomically). */
export async function writeTeacherCacheRecord(
  dir: string,
  entry: TeacherCacheEntry,
  record: TeacherCacheRecord,
  config: { encoderLayers: number; decoderLayers: number; positions: number; d: number; topK: number; statesDtype: TeacherCacheStatesDtype },
): Promise<void> {
  const path = join(dir, entry.file);
  await mkdir(join(path, '..'), { recursive: true });
  const { encoderLayers, decoderLayers, positions, d, topK, statesDtype } = config;
  const states = (x: Float32Array) => encodeFromF32(statesDtype === 'F16' ? 'f16' : 'f32', x);
  const S = record.encoderStates.length / (encoderLayers * d);
  await writeFileAtomic(path, encodeSafetensorsEncoded(path, [
    { name: 'topk_values', dtype: 'F32', shape: [positions, topK], bytes: () => bytesOf(record.topkValues) },
    { name: 'topk_ids', dtype: 'I32', shape: [positions, topK], bytes: () => bytesOf(record.topkIds) },
    { name: 'teacher_logsumexp', dtype: 'F32', shape: [positions], bytes: () => bytesOf(record.teacherLogsumexp) },
    { name: 'encoder_states', dtype: statesDtype, shape: [encoderLayers, S, d], bytes: () => states(record.encoderStates) },
    { name: 'decoder_states', dtype: statesDtype, shape: [decoderLayers, positions, d], bytes: () => states(record.decoderStates) },
  ], { format: 'dqw-teacher-cache', line: String(entry.line) }));
}

/** Write index.json (atomically): the last file of a cache. */
export async function writeTeacherCacheIndex(dir: string, index: TeacherCacheIndex): Promise<void> {
  await writeFileAtomic(join(dir, TEACHER_CACHE_INDEX), textFile(TEACHER_CACHE_INDEX, `${JSON.stringify(index, null, 1)}\n`));
}

/** A cache folder opened for reading: its validated index and its records, checked as they are read. */
export interface TeacherCacheReader {
  readonly dir: string;
  /** Path of index.json (errors name it). */
  readonly indexFile: string;
  readonly index: TeacherCacheIndex;
  read(entry: TeacherCacheEntry): Promise<TeacherCacheRecord>;
}

/** Open a cache folder: index.json parsed and validated; a missing or damaged file is named. */
export async function openTeacherCache(dir: string): Promise<TeacherCacheReader> {
  const indexFile = join(dir, TEACHER_CACHE_INDEX);
  let text: string;
  try {
    text = await readFile(indexFile, 'utf8');
  } catch {
    throw new ConfigError(`--teacher-cache ${dir}: no ${TEACHER_CACHE_INDEX}; build the cache with dqw teacher-cache (an interrupted build leaves none)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${indexFile}: not JSON (${(err as Error).message})`);
  }
  const index = parseTeacherCacheIndex(json, indexFile);
  return {
    dir,
    indexFile,
    index,
    async read(entry) {
      const path = join(dir, entry.file);
      const source = await fileSource(path).catch(() => {
        throw new ConfigError(`${path}: missing (listed in ${indexFile} for line ${entry.line})`);
      });
      try {
        const header = await readSafetensorsHeader(source);
        const tensor = async (name: string, dtype: 'F32' | 'F16' | 'I32') => {
          const e = header.tensors.find((t) => t.name === name);
          if (!e) throw new ConfigError(`${path}: tensor "${name}" is missing`);
          if (e.dtype !== dtype) throw new ConfigError(`${path}: tensor "${name}" is ${e.dtype}, expected ${dtype}`);
          const bytes = await source.read(e.begin, e.byteLength, new Uint8Array(e.byteLength));
          return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
        };
        // States in the index's dtype, widened to f32.
        const statesOf = async (name: string) => {
          const bytes = new Uint8Array(await tensor(name, index.statesDtype));
          const out = new Float32Array(bytes.byteLength / (index.statesDtype === 'F16' ? 2 : 4));
          decodeToF32(index.statesDtype === 'F16' ? 'f16' : 'f32', bytes, out);
          return out;
        };
        const record: TeacherCacheRecord = {
          topkValues: new Float32Array(await tensor('topk_values', 'F32')),
          topkIds: new Int32Array(await tensor('topk_ids', 'I32')),
          teacherLogsumexp: new Float32Array(await tensor('teacher_logsumexp', 'F32')),
          encoderStates: await statesOf('encoder_states'),
          decoderStates: await statesOf('decoder_states'),
        };
        checkTeacherCacheRecord(record, entry, index, path);
        return record;
      } finally {
        await source.close?.();
      }
    },
  };
}

/**
 * A Trainer's teacher cache over an opened cache folder: `entries` (matchTeacherCache) give each
 * training example's entry, by manifest line; each example's stored positions must be the ones
 * its prepared sequence has.
 */
export function teacherCacheSource(reader: TeacherCacheReader, entries: ReadonlyMap<TrainingExample, TeacherCacheEntry>, klForm: CachedKlForm): TrainerTeacherCache {
  const byLine = new Map([...entries].map(([x, e]) => [x.line, e]));
  const { index } = reader;
  return {
    config: index.teacher.config,
    topK: index.topK,
    klForm,
    async outputs(prepared: readonly PreparedExample[], batchSize: number): Promise<CachedTeacherOutputs> {
      const records: TeacherCacheRecord[] = [];
      const positions: number[] = [];
      for (const p of prepared) {
        const entry = byLine.get(p.example.line);
        if (!entry) throw new ConfigError(`${reader.indexFile}: examples has no entry for line ${p.example.line} of ${p.example.source}`);
        const n = p.sequence.length - 1;
        if (entry.positions !== n) throw new ConfigError(`${reader.indexFile}: examples[${index.examples.indexOf(entry)}].positions ${entry.positions} differs from the ${n} decoder positions of line ${p.example.line} here (another tokenizer or cut)`);
        records.push(await reader.read(entry));
        positions.push(n);
      }
      return assembleCachedOutputs(records, positions, batchSize, index.tokens, index.teacher.config, index.topK);
    },
  };
}

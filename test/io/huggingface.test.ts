import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { f16BitsToNumber, numberToF16Bits } from '../../src/gpu/gpu.js';
import { CheckpointError, ShapeError } from '../../src/errors.js';
import { blobSource, concatChunks, type FileOpener } from '../../src/io/byte-source.js';
import { hfCheckpointFiles, hfConfigText, readHfCheckpoint } from '../../src/io/huggingface.js';
import { loadHfCheckpoint, saveHfCheckpoint, writeFileAtomic } from '../../src/io/node-files.js';
import { encodeSafetensors } from '../../src/io/safetensors.js';
import { parseWhisperConfig, whisperParameters, type WhisperConfig } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { expectSameWeights, smallConfig, useTempDir, whisperAssets } from './fixtures.js';

const tempDir = useTempDir();
const model = { config: smallConfig, weights: initWhisperWeights(smallConfig, 11, { randomizeAll: true }) };

async function expectCheckpointError(promise: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<CheckpointError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(CheckpointError);
  for (const part of parts) expect((error as Error).message).toMatch(part);
  return error as CheckpointError;
}

/** Writes a checkpoint folder whose model.safetensors holds `tensors` (any names, shapes) and config `config`. */
async function writeCustom(name: string, config: WhisperConfig, tensors: { name: string; shape: readonly number[]; data: Float32Array }[]): Promise<string> {
  const dir = join(tempDir(), name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), hfConfigText(config));
  await writeFileAtomic(join(dir, 'model.safetensors'), encodeSafetensors('model.safetensors', tensors, 'F32'));
  return dir;
}

const specTensors = (weights: ReadonlyMap<string, Float32Array>, config = smallConfig) =>
  whisperParameters(config).map((p) => ({ name: p.name, shape: p.shape, data: weights.get(p.name)! }));

describe('Hugging Face checkpoints', () => {
  it('write then read is bit-exact (F32), config included, and reports progress per tensor', async () => {
    const dir = join(tempDir(), 'f32');
    const written = await saveHfCheckpoint(dir, model);
    expect(written.map((p) => p.slice(dir.length + 1))).toEqual(['config.json', 'model.safetensors']);
    const progress: [number, number, string][] = [];
    const loaded = await loadHfCheckpoint(dir, { onProgress: (done, total, name) => progress.push([done, total, name]) });
    expectSameWeights(loaded.weights, model.weights);
    // The config survives as transformers sees it (fields it adds on write come back in `extra`).
    expect(hfConfigText(loaded.config)).toBe(hfConfigText(model.config));
    expect({ ...loaded.config, extra: undefined }).toEqual({ ...model.config, extra: undefined });
    expect(loaded.metadata).toEqual({ format: 'pt' });
    expect(new Set(loaded.sourceDtypes.values())).toEqual(new Set(['F32']));
    expect(loaded.warnings).toEqual([]);
    const names = whisperParameters(smallConfig).map((p) => p.name);
    expect(progress.map(([, , n]) => n)).toEqual(names);
    const total = names.reduce((n, name) => n + 4 * model.weights.get(name)!.length, 0);
    expect(progress.every(([, t], i) => t === total && (i === 0 || progress[i - 1]![0] < progress[i]![0]))).toBe(true);
    expect(progress.at(-1)![0]).toBe(total);
  });

  it('writes F16 on request: values are the binary16 roundings, within half an f16 ulp of the originals', async () => {
    const dir = join(tempDir(), 'f16');
    await saveHfCheckpoint(dir, model, { dtype: 'F16' });
    const loaded = await loadHfCheckpoint(dir);
    expect(new Set(loaded.sourceDtypes.values())).toEqual(new Set(['F16']));
    for (const [name, original] of model.weights) {
      const back = loaded.weights.get(name)!;
      for (let i = 0; i < original.length; i++) {
        const x = original[i]!;
        // Relative 2^-11 for normal halves, absolute 2^-25 (half the subnormal step) below 2^-14.
        const tolerance = Math.max(Math.abs(x) * 2 ** -11, 2 ** -25);
        if (!(Math.abs(back[i]! - x) <= tolerance)) throw new Error(`${name}[${i}]: ${back[i]} is not within ${tolerance} of ${x}`);
        expect(back[i]).toBe(f16BitsToNumber(numberToF16Bits(x)));
      }
    }
  });

  it('shards by size with model.safetensors.index.json (≥ 2 shards) and reads them back bit-exactly', async () => {
    const dir = join(tempDir(), 'sharded');
    await saveHfCheckpoint(dir, model);
    await saveHfCheckpoint(dir, model, { maxShardBytes: 40_000 });
    const files = (await readdir(dir)).sort();
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    expect(shards.length).toBeGreaterThanOrEqual(2);
    expect(shards.every((f) => f.endsWith(`-of-${String(shards.length).padStart(5, '0')}.safetensors`))).toBe(true);
    // The earlier single-file save is gone: transformers would prefer it over the index.
    expect(files).not.toContain('model.safetensors');
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    expect(Object.keys(index.weight_map).sort()).toEqual(whisperParameters(smallConfig).map((p) => p.name).sort());
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shards));
    expect(index.metadata.total_size).toBe([...model.weights.values()].reduce((n, w) => n + 4 * w.length, 0));
    for (const shard of shards) expect((await readFile(join(dir, shard))).byteLength).toBeLessThan(40_000 + 8_000);
    const loaded = await loadHfCheckpoint(dir);
    expectSameWeights(loaded.weights, model.weights);
    expect(loaded.files.filter((f) => f.endsWith('.safetensors')).length).toBe(shards.length);
  });

  it('reads from browser-style sources (Blobs by name) exactly as from files', async () => {
    const files = new Map(hfCheckpointFiles(model, { maxShardBytes: 30_000 }).map((f) => [f.name, new Blob([concatChunks(f) as Uint8Array<ArrayBuffer>])]));
    const open: FileOpener = async (name) => (files.has(name) ? blobSource(files.get(name)!, name) : undefined);
    const loaded = await readHfCheckpoint(open);
    expectSameWeights(loaded.weights, model.weights);
  });

  it('writes a config.json with the same fields and values as the real openai/whisper-tiny one', async () => {
    const real = JSON.parse(await readFile(join(whisperAssets, 'hf-whisper-tiny/config.json'), 'utf8')) as Record<string, unknown>;
    const ours = JSON.parse(hfConfigText(parseWhisperConfig(real))) as Record<string, unknown>;
    expect(ours).toEqual(real);
  });

  it('accepts a stored proj_out.weight equal to the embedding, and warns when it differs', async () => {
    const embedding = model.weights.get('model.decoder.embed_tokens.weight')!;
    const tied = await writeCustom('tied', smallConfig, [...specTensors(model.weights), { name: 'proj_out.weight', shape: [300, 32], data: embedding }]);
    const loaded = await loadHfCheckpoint(tied);
    expect(loaded.warnings).toEqual([]);
    expect(loaded.weights.has('proj_out.weight')).toBe(false);
    const other = embedding.slice();
    other[5] = other[5]! + 0.25;
    const untied = await writeCustom('untied', smallConfig, [...specTensors(model.weights), { name: 'proj_out.weight', shape: [300, 32], data: other }]);
    const warned = await loadHfCheckpoint(untied);
    expect(warned.warnings).toHaveLength(1);
    expect(warned.warnings[0]).toMatch(/proj_out\.weight" differs from "model\.decoder\.embed_tokens\.weight" in 1 of 9600 values \(max \|diff\| 0\.2499/);
    expectSameWeights(warned.weights, model.weights);
  });

  it('names config/weights disagreements: config says d_model 48, weights are 32', async () => {
    const dir = await writeCustom('wide', { ...smallConfig, d_model: 48 }, specTensors(model.weights));
    const error = await expectCheckpointError(loadHfCheckpoint(dir), /config\.json says d_model 48 but the weights have 32 \(.*model\.safetensors: "model\.encoder\.conv1\.bias" \[32\]\)/);
    expect(error.file).toBe(join(dir, 'config.json'));
    expect(error.tensor).toBe('model.encoder.conv1.bias');
    const layers = await writeCustom('layers', { ...smallConfig, decoder_layers: 3 }, specTensors(model.weights));
    await expectCheckpointError(loadHfCheckpoint(layers), /says decoder_layers 3 but the weights have 2 decoder layers/, /missing tensor "model\.decoder\.layers\.2\.self_attn\.k_proj\.weight" \(expected shape \[32, 32\]\)/, /and 9 more/);
  });

  it('names missing, unexpected, misshapen and wrongly typed tensors', async () => {
    const tensors = specTensors(model.weights).filter((t) => t.name !== 'model.encoder.layers.1.fc2.bias');
    tensors.push({ name: 'model.encoder.extra.weight', shape: [2], data: new Float32Array(2) });
    const fc1 = tensors.findIndex((t) => t.name === 'model.decoder.layers.0.fc1.bias');
    tensors[fc1] = { ...tensors[fc1]!, shape: [6, 8] };
    const dir = await writeCustom('broken', smallConfig, tensors);
    await expectCheckpointError(
      loadHfCheckpoint(dir),
      /3 problem\(s\)/,
      /missing tensor "model\.encoder\.layers\.1\.fc2\.bias" \(expected shape \[32\]\)/,
      /model\.safetensors: tensor "model\.decoder\.layers\.0\.fc1\.bias" has shape \[6, 8\], expected \[48\]/,
      /model\.safetensors: unexpected tensor "model\.encoder\.extra\.weight" \[2\]/,
    );
    // An integer tensor where a float one belongs, built with the right byte size.
    const file = concatChunks(encodeSafetensors('model.safetensors', specTensors(model.weights), 'F32'));
    const headerLength = new DataView(file.buffer).getUint32(0, true);
    const header = new TextDecoder().decode(file.subarray(8, 8 + headerLength));
    const retyped = header.replace('"model.encoder.conv1.bias":{"dtype":"F32"', '"model.encoder.conv1.bias":{"dtype":"I32"');
    expect(retyped).not.toBe(header);
    file.set(new TextEncoder().encode(retyped), 8);
    await writeFile(join(dir, 'model.safetensors'), file);
    await expectCheckpointError(loadHfCheckpoint(dir), /tensor "model\.encoder\.conv1\.bias" has dtype I32, expected one of F32, F16, BF16/);
  });

  it('names a truncated weights file and the tensor cut off, before reading any data', async () => {
    const dir = join(tempDir(), 'truncated');
    await saveHfCheckpoint(dir, model);
    const path = join(dir, 'model.safetensors');
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.byteLength - 100));
    await expectCheckpointError(loadHfCheckpoint(dir), path, 'tensor "model.decoder.layer_norm.bias"', /truncated/);
  });

  it('checks the index against its shards', async () => {
    const dir = join(tempDir(), 'bad-index');
    await saveHfCheckpoint(dir, model, { maxShardBytes: 40_000 });
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexPath, 'utf8')) as { weight_map: Record<string, string> };
    const name = 'model.decoder.layer_norm.weight';
    const realShard = index.weight_map[name]!;
    const otherShard = Object.values(index.weight_map).find((f) => f !== realShard)!;
    await writeFile(indexPath, JSON.stringify({ ...index, weight_map: { ...index.weight_map, [name]: otherShard } }));
    await expectCheckpointError(loadHfCheckpoint(dir), /tensor "model\.decoder\.layer_norm\.weight" is (here but listed in model-\d+-of-\d+\.safetensors|listed here by .* but the shard does not hold it)/);
    await writeFile(indexPath, JSON.stringify({ ...index, weight_map: { ...index.weight_map, [name]: 'model-00009-of-00009.safetensors' } }));
    await expectCheckpointError(loadHfCheckpoint(dir), /model-00009-of-00009\.safetensors: not found \(listed in .*model\.safetensors\.index\.json\)/);
  });

  it('says what is missing in an empty folder, and refuses weights that do not match the config on save', async () => {
    const dir = join(tempDir(), 'empty');
    await mkdir(dir);
    await expectCheckpointError(loadHfCheckpoint(dir), /config\.json: not found/);
    await writeFile(join(dir, 'config.json'), hfConfigText(smallConfig));
    await writeFile(join(dir, 'pytorch_model.bin'), 'pickle');
    await expectCheckpointError(loadHfCheckpoint(dir), /model\.safetensors: not found, nor model\.safetensors\.index\.json; pytorch_model\.bin \(pickle\) is not read/);
    const short = new Map(model.weights);
    short.delete('model.encoder.conv2.bias');
    await expect(saveHfCheckpoint(join(tempDir(), 'never'), { config: smallConfig, weights: short })).rejects.toThrow(ShapeError);
    await expect(readdir(join(tempDir(), 'never'))).rejects.toThrow(/ENOENT/);
  });
});

import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointError } from '../../src/errors.js';
import { bufferSource, concatChunks } from '../../src/io/byte-source.js';
import {
  encodeGgml, ggmlCheckpointFile, ggmlToHfName, ggmlVocabFromTiktoken, hfToGgmlName, readGgmlCheckpoint, readGgmlHeader,
  type GgmlHeader,
} from '../../src/io/ggml.js';
import { fileSource, loadGgmlCheckpoint, loadHfCheckpoint, saveGgmlCheckpoint, saveHfCheckpoint, writeFileAtomic } from '../../src/io/node-files.js';
import { whisperParameters } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { expectSameWeights, ggmlConfig, useTempDir, whisperAssets } from './fixtures.js';
import { readNpzFloat32 } from './npz.js';

const tempDir = useTempDir();
const headerDir = join(whisperAssets, 'ggml-headers');

// hparams as shared/assets/whisper/README.md lists them for whisper.cpp's test files:
// n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype.
const readmeHparams: Record<string, number[]> = {
  tiny: [51865, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1],
  base: [51865, 1500, 512, 8, 6, 448, 512, 8, 6, 80, 1],
  small: [51865, 1500, 768, 12, 12, 448, 768, 12, 12, 80, 1],
  'tiny.en': [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1],
};

async function readHeaderFile(model: string): Promise<{ bytes: Uint8Array; header: GgmlHeader }> {
  const path = join(headerDir, `for-tests-ggml-${model}.bin`);
  const source = await fileSource(path);
  try {
    return { bytes: new Uint8Array(await readFile(path)), header: await readGgmlHeader(source) };
  } finally {
    await source.close?.();
  }
}

async function expectCheckpointError(promise: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<void> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(CheckpointError);
  for (const part of parts) expect((error as Error).message).toMatch(part);
}

const model = { config: ggmlConfig, weights: initWhisperWeights(ggmlConfig, 5, { randomizeAll: true }) };

describe('whisper.cpp ggml files', () => {
  it('parses whisper.cpp\'s four test headers: hparams as listed, 80x201 mel filters equal to OpenAI\'s mel_80, 50,257 tokens, no tensors', async () => {
    const npz = readNpzFloat32(new Uint8Array(await readFile(join(whisperAssets, 'mel_filters.npz'))));
    const mel80 = npz.get('mel_80')!;
    expect(mel80.shape).toEqual([80, 201]);
    for (const [model, expected] of Object.entries(readmeHparams)) {
      const { header } = await readHeaderFile(model);
      expect(Object.values(header.hparams), model).toEqual(expected);
      expect([header.melFilters.n_mel, header.melFilters.n_fft]).toEqual([80, 201]);
      // Equal as numbers (the npz's first weight is -0, the converter stored +0).
      expect(header.melFilters.data.every((v, i) => v === mel80.data[i]), model).toBe(true);
      expect(header.vocab.length).toBe(50257);
      expect(header.tensors).toEqual([]);
    }
  });

  it('reads the vocabulary as the tiktoken ranks, with invalid UTF-8 tokens stored as U+FFFD as in these files', async () => {
    // These test files hold each token as its UTF-8 text (invalid byte sequences replaced), while
    // the .tiktoken files hold raw bytes: the decoder below is an independent check of both parsers.
    const asText = (t: Uint8Array) => new TextEncoder().encode(new TextDecoder('utf-8').decode(t));
    const multilingual = ggmlVocabFromTiktoken(await readFile(join(whisperAssets, 'multilingual.tiktoken'), 'utf8'));
    const english = ggmlVocabFromTiktoken(await readFile(join(whisperAssets, 'gpt2.tiktoken'), 'utf8'));
    expect([multilingual.length, english.length]).toEqual([50257, 50256]);
    expect(new TextDecoder().decode(english[0])).toBe('!');
    expect(multilingual[50256]!.length).toBe(0);
    for (const [model, reference] of [['tiny', multilingual], ['tiny.en', [...english, new TextEncoder().encode('<|endoftext|>')]]] as const) {
      const { header } = await readHeaderFile(model);
      let replaced = 0;
      header.vocab.forEach((token, id) => {
        const expected = asText(reference[id]!);
        if (Buffer.compare(token, expected) !== 0) throw new Error(`${model} token ${id}: ${token} vs ${expected}`);
        if (Buffer.compare(expected, reference[id]!) !== 0) replaced++;
      });
      expect(replaced, `${model}: tokens whose bytes are not valid UTF-8`).toBeGreaterThan(300);
    }
  });

  it('writes header, filters and vocabulary byte-identical to whisper.cpp\'s files from the same inputs', async () => {
    for (const model of Object.keys(readmeHparams)) {
      const { bytes, header } = await readHeaderFile(model);
      const written = concatChunks(encodeGgml('copy.bin', { ...header, tensors: [] }));
      expect(written.byteLength).toBe(bytes.byteLength);
      expect(Buffer.compare(written, bytes), model).toBe(0);
    }
    // A whole model written with tiny's filters and vocabulary: the same bytes after the hparams.
    const { bytes, header } = await readHeaderFile('tiny');
    const file = concatChunks(ggmlCheckpointFile('m.bin', model, { fileType: 'f16', melFilters: header.melFilters, vocab: header.vocab }));
    expect(Buffer.compare(file.subarray(48, bytes.byteLength), bytes.subarray(48))).toBe(0);
    expect(new Int32Array(file.buffer, 0, 12)).toEqual(Int32Array.from([0x67676d6c, 51865, 1500, 64, 2, 2, 448, 64, 2, 3, 80, 1]));
  });

  it('maps Hugging Face names to whisper.cpp\'s and back for every tensor', () => {
    expect(hfToGgmlName('model.encoder.layers.0.self_attn.q_proj.weight')).toBe('encoder.blocks.0.attn.query.weight');
    expect(hfToGgmlName('model.encoder.layers.3.self_attn.k_proj.weight')).toBe('encoder.blocks.3.attn.key.weight');
    expect(hfToGgmlName('model.decoder.layers.1.encoder_attn.k_proj.weight')).toBe('decoder.blocks.1.cross_attn.key.weight');
    expect(hfToGgmlName('model.decoder.layers.1.encoder_attn_layer_norm.bias')).toBe('decoder.blocks.1.cross_attn_ln.bias');
    expect(hfToGgmlName('model.decoder.layers.0.fc1.weight')).toBe('decoder.blocks.0.mlp.0.weight');
    expect(hfToGgmlName('model.encoder.layers.1.fc2.bias')).toBe('encoder.blocks.1.mlp.2.bias');
    expect(hfToGgmlName('model.encoder.layers.1.final_layer_norm.weight')).toBe('encoder.blocks.1.mlp_ln.weight');
    expect(hfToGgmlName('model.encoder.layer_norm.weight')).toBe('encoder.ln_post.weight');
    expect(hfToGgmlName('model.decoder.layer_norm.bias')).toBe('decoder.ln.bias');
    expect(hfToGgmlName('model.decoder.embed_tokens.weight')).toBe('decoder.token_embedding.weight');
    expect(hfToGgmlName('model.encoder.embed_positions.weight')).toBe('encoder.positional_embedding');
    expect(hfToGgmlName('proj_out.weight')).toBeUndefined();
    expect(ggmlToHfName('decoder.blocks.0.attn.bogus.weight')).toBeUndefined();
    const names = whisperParameters(ggmlConfig).map((p) => p.name);
    const ggmlNames = names.map((n) => hfToGgmlName(n)!);
    expect(new Set(ggmlNames).size).toBe(names.length);
    expect(ggmlNames.map(ggmlToHfName)).toEqual(names);
  });

  it('f32 write then read is bit-exact, from memory and from a file', async () => {
    const { header } = await readHeaderFile('tiny');
    const opts = { fileType: 'f32' as const, melFilters: header.melFilters, vocab: header.vocab };
    const bytes = concatChunks(ggmlCheckpointFile('m.bin', model, opts));
    const loaded = await readGgmlCheckpoint(bufferSource(bytes, 'm.bin'));
    expectSameWeights(loaded.weights, model.weights);
    expect({ ...loaded.config, extra: undefined }).toEqual({ ...ggmlConfig, extra: undefined });
    expect(new Set(loaded.sourceDtypes.values())).toEqual(new Set(['f32']));
    expect(Buffer.compare(loaded.ggml.vocab[1000]!, header.vocab[1000]!)).toBe(0);
    const path = join(tempDir(), 'ggml-f32.bin');
    await saveGgmlCheckpoint(path, model, opts);
    expect(Buffer.compare(new Uint8Array(await readFile(path)), bytes)).toBe(0);
    const progress: string[] = [];
    expectSameWeights((await loadGgmlCheckpoint(path, { onProgress: (_d, _t, name) => progress.push(name) })).weights, model.weights);
    expect(progress).toEqual(whisperParameters(ggmlConfig).map((p) => p.name));
  });

  it('f16 files keep vectors, conv biases ([1, d]) and positional embeddings f32, as whisper.cpp\'s converters do', async () => {
    const { header } = await readHeaderFile('tiny');
    const bytes = concatChunks(ggmlCheckpointFile('m16.bin', model, { fileType: 'f16', melFilters: header.melFilters, vocab: header.vocab }));
    const written = await readGgmlHeader(bufferSource(bytes, 'm16.bin'));
    const byName = new Map(written.tensors.map((t) => [t.name, [t.type, t.ne]]));
    expect(byName.get('encoder.conv1.weight')).toEqual(['f16', [3, 80, 64]]);
    expect(byName.get('encoder.conv1.bias')).toEqual(['f32', [1, 64]]);
    expect(byName.get('encoder.conv2.bias')).toEqual(['f32', [1, 64]]);
    expect(byName.get('encoder.positional_embedding')).toEqual(['f32', [64, 1500]]);
    expect(byName.get('decoder.positional_embedding')).toEqual(['f32', [64, 448]]);
    expect(byName.get('decoder.token_embedding.weight')).toEqual(['f16', [64, 51865]]);
    expect(byName.get('encoder.blocks.1.mlp.0.weight')).toEqual(['f16', [64, 256]]);
    expect(byName.get('decoder.blocks.2.cross_attn.key.weight')).toEqual(['f16', [64, 64]]);
    expect(byName.get('decoder.blocks.2.cross_attn_ln.weight')).toEqual(['f32', [64]]);
    expect(byName.get('encoder.ln_post.bias')).toEqual(['f32', [64]]);
    const loaded = await readGgmlCheckpoint(bufferSource(bytes, 'm16.bin'));
    expect(loaded.sourceDtypes.get('model.decoder.embed_tokens.weight')).toBe('f16');
    for (const [name, original] of model.weights) {
      const back = loaded.weights.get(name)!;
      const exact = loaded.sourceDtypes.get(name) === 'f32';
      for (let i = 0; i < original.length; i++) {
        const x = original[i]!;
        const tolerance = exact ? 0 : Math.max(Math.abs(x) * 2 ** -11, 2 ** -25);
        if (!(Math.abs(back[i]! - x) <= tolerance)) throw new Error(`${name}[${i}]: ${back[i]} vs ${x} (tolerance ${tolerance})`);
      }
    }
  });

  it('Hugging Face → ggml → Hugging Face (f32) is bit-exact', async () => {
    const { header } = await readHeaderFile('tiny');
    const hfDir = join(tempDir(), 'hf-a');
    await saveHfCheckpoint(hfDir, model);
    const fromHf = await loadHfCheckpoint(hfDir);
    const ggmlPath = join(tempDir(), 'via.bin');
    await saveGgmlCheckpoint(ggmlPath, fromHf, { fileType: 'f32', melFilters: header.melFilters, vocab: header.vocab });
    const fromGgml = await loadGgmlCheckpoint(ggmlPath);
    const backDir = join(tempDir(), 'hf-b');
    await saveHfCheckpoint(backDir, fromGgml);
    const back = await loadHfCheckpoint(backDir);
    expectSameWeights(back.weights, model.weights);
    expect(Buffer.compare(await readFile(join(backDir, 'model.safetensors')), await readFile(join(hfDir, 'model.safetensors')))).toBe(0);
  });

  it('rejects what whisper.cpp cannot represent, naming the file and field', async () => {
    const { header } = await readHeaderFile('tiny');
    const opts = { fileType: 'f16' as const, melFilters: header.melFilters, vocab: header.vocab };
    const narrow = { ...ggmlConfig, decoder_ffn_dim: 128 };
    const narrowModel = { config: narrow, weights: initWhisperWeights(narrow, 1) };
    expect(() => ggmlCheckpointFile('n.bin', narrowModel, opts)).toThrow(/n\.bin: decoder_ffn_dim is 128; whisper\.cpp builds its MLPs as 4·d_model \(256\)/);
    const shifted = { config: { ...ggmlConfig, eos_token_id: 50256 }, weights: model.weights };
    expect(() => ggmlCheckpointFile('s.bin', shifted, opts)).toThrow(/eos_token_id 50256 .* differ from whisper\.cpp's 50257/);
    const mel128 = { n_mel: 128, n_fft: 201, data: new Float32Array(128 * 201) };
    expect(() => ggmlCheckpointFile('f.bin', model, { ...opts, melFilters: mel128 })).toThrow(/mel filters have 128 rows, expected num_mel_bins 80/);
  });

  it('rejects bad magic, GGUF, truncation, unknown and missing tensors with the file and tensor named', async () => {
    const { bytes: headerOnly, header } = await readHeaderFile('tiny');
    await expectCheckpointError(readGgmlCheckpoint(bufferSource(headerOnly, 'for-tests.bin')), /^for-tests\.bin: 16\d problem\(s\)/, /missing tensor "model\.encoder\.conv1\.weight" \(expected shape \[384, 80, 3\]\)/);
    const gguf = headerOnly.slice();
    gguf.set([0x47, 0x47, 0x55, 0x46]);
    await expectCheckpointError(readGgmlHeader(bufferSource(gguf, 'g.bin')), /magic 0x46554747 .* GGUF file/);
    const file = concatChunks(ggmlCheckpointFile('m.bin', model, { fileType: 'f16', melFilters: header.melFilters, vocab: header.vocab }));
    await expectCheckpointError(readGgmlHeader(bufferSource(file.subarray(0, file.byteLength - 10), 'cut.bin')), 'cut.bin', /tensor "decoder\.ln\.bias": data of 256 bytes .* the file is truncated/);
    const bogus = concatChunks(encodeGgml('b.bin', { ...header, tensors: [{ name: 'encoder.blocks.0.attn.bogus.weight', ne: [2], type: 'f32', data: new Float32Array(2) }] }));
    await expectCheckpointError(readGgmlCheckpoint(bufferSource(bogus, 'b.bin')), /b\.bin: tensor "encoder\.blocks\.0\.attn\.bogus\.weight": is not a whisper\.cpp Whisper tensor name/);
    const quantized = bogus.slice();
    const typeOffset = headerOnly.byteLength + 8;
    new DataView(quantized.buffer).setInt32(typeOffset, 2, true);
    await expectCheckpointError(readGgmlHeader(bufferSource(quantized, 'q.bin')), /type q4_0 is not supported; expected f32, f16, q8_0/);
  });

  it('writes files atomically: a write that fails midway leaves the previous file and no temporary', async () => {
    const dir = join(tempDir(), 'atomic');
    await mkdir(dir);
    const path = join(dir, 'model.bin');
    await writeFile(path, 'previous');
    const failing = {
      name: 'model.bin',
      byteLength: 8,
      *chunks() {
        yield new Uint8Array(4).fill(1);
        throw new Error('disk full (simulated)');
      },
    };
    await expect(writeFileAtomic(path, failing)).rejects.toThrow(/disk full/);
    expect(await readFile(path, 'utf8')).toBe('previous');
    expect(await readdir(dir)).toEqual(['model.bin']);
    await writeFileAtomic(path, { name: 'model.bin', byteLength: 3, *chunks() { yield new Uint8Array([1, 2, 3]); } });
    expect([...(await readFile(path))]).toEqual([1, 2, 3]);
    expect(await readdir(dir)).toEqual(['model.bin']);
  });
});

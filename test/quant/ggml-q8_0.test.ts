import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { transcribeCommand } from '../../src/cli/transcribe.js';
import { CheckpointError } from '../../src/errors.js';
import { bufferSource, concatChunks } from '../../src/io/byte-source.js';
import { encodeGgml, ggmlCheckpointFile, ggmlVocabFromTiktoken, hfToGgmlName, readGgmlCheckpoint, readGgmlHeader, type GgmlMelFilters } from '../../src/io/ggml.js';
import { fileSource, saveGgmlCheckpoint } from '../../src/io/node-files.js';
import { whisperParameters } from '../../src/model/config.js';
import { decodeQ8_0, encodeQ8_0, q8_0BlockBytes } from '../../src/quant/q8_0.js';
import { randomArray } from '../helpers.js';
import { ggmlConfig, programmedModel, useTempDir, whisperAssets } from '../io/fixtures.js';
import { loadInWhisperCpp, readWavPcm16, transcribeWithWhisperCpp } from '../io/whisper-cpp.js';

const tempDir = useTempDir();
const clip = new URL('../../../shared/data/speech-samples/leopard/test.wav', import.meta.url).pathname;

/** float64 q8_0 of one block: d = amax / 127, q = round(x / d) (halves away from zero), value q * f16(d). */
function q8_0BlockRef(x: ArrayLike<number>): { d: number; q: number[] } {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[j]!));
  const d = amax / 127;
  return { d, q: Array.from({ length: 32 }, (_, j) => (d === 0 ? 0 : Math.sign(x[j]!) * Math.round(Math.abs(x[j]! / d)) || 0)) };
}

/** The binary16 value nearest to v, ties to even (written here, independent of the engine's converter); |v| < 65504. */
function toF16(v: number): number {
  if (v === 0) return 0;
  let e = Math.floor(Math.log2(Math.abs(v)));
  while (2 ** e > Math.abs(v)) e--;
  while (2 ** (e + 1) <= Math.abs(v)) e++;
  e = Math.max(e, -14);
  const ulp = 2 ** (e - 10);
  const scaled = v / ulp;
  const r = Math.round(scaled);
  return (Math.abs(scaled % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r) * ulp;
}

describe('q8_0 blocks', () => {
  it('match a float64 reference on odd block counts, ties, zero blocks and tiny scales', () => {
    // 1, 7 and 33 blocks; scaled so that some blocks' scales are f16 subnormals.
    for (const [blocks, scale, seed] of [[1, 1, 1], [7, 0.02, 2], [33, 3e-6, 3]] as const) {
      const x = randomArray(32 * blocks, seed, scale);
      if (blocks === 7) {
        x.fill(0, 64, 96); // an all-zero block: d = 0, q = 0
        // exact ties x / d = k + 0.5 with d = 1 (amax 127): roundf goes away from zero
        x.set([127, 2.5, -2.5, 3.5, -0.5, 0.5, 126.5, -126.5], 96);
      }
      const bytes = encodeQ8_0(x);
      expect(bytes.byteLength).toBe(blocks * q8_0BlockBytes);
      const view = new DataView(bytes.buffer);
      const decoded = new Float32Array(x.length);
      decodeQ8_0(bytes, decoded);
      let exact = 0;
      for (let b = 0; b < blocks; b++) {
        const ref = q8_0BlockRef(x.subarray(32 * b, 32 * b + 32));
        const storedD = f16FromBits(view.getUint16(b * q8_0BlockBytes, true));
        expect(storedD, `block ${b} scale`).toBe(toF16(Math.fround(ref.d)));
        for (let j = 0; j < 32; j++) {
          const q = view.getInt8(b * q8_0BlockBytes + 2 + j);
          // ggml multiplies by an f32 reciprocal, so a value within 1e-5 of a half may round the
          // other way than float64 division; everywhere else q is the reference exactly.
          const v = Math.abs(x[32 * b + j]! / ref.d);
          const nearTie = ref.d > 0 && Math.abs(v - Math.floor(v) - 0.5) < 1e-5;
          if (nearTie) expect(Math.abs(q - ref.q[j]!), `block ${b} value ${j}`).toBeLessThanOrEqual(1);
          else {
            expect(q, `block ${b} value ${j}`).toBe(ref.q[j]);
            exact++;
          }
          expect(decoded[32 * b + j]).toBe(Math.fround(q * storedD));
        }
      }
      // Only the 7 ties set on purpose are near a half: random values never came within 1e-5 of one.
      expect(exact).toBe(32 * blocks - (blocks === 7 ? 7 : 0));
    }
    const ties = new Float32Array(32);
    ties.set([127, 2.5, -2.5, 3.5, -0.5, 0.5, 126.5, -126.5]);
    expect([...new Int8Array(encodeQ8_0(ties).buffer, 2, 8)]).toEqual([127, 3, -3, 4, -1, 1, 127, -127]);
  });

  it('rejects a tensor whose rows are not whole blocks, in the writer and the reader, naming the tensor', async () => {
    const header = await readTinyHeader();
    const tensor = { name: 'encoder.blocks.0.mlp.0.weight', ne: [48, 2], type: 'q8_0' as const, data: new Float32Array(96) };
    expect(() => encodeGgml('w.bin', { ...header, tensors: [tensor] })).toThrow(CheckpointError);
    expect(() => encodeGgml('w.bin', { ...header, tensors: [tensor] })).toThrow(/w\.bin: tensor "encoder\.blocks\.0\.mlp\.0\.weight": is q8_0 with ne\[0\] = 48, which must be a multiple of the 32-value q8_0 block/);
    // The same bytes with the header saying ne [64, 1] (valid), then patched to [48, 2].
    const file = concatChunks(encodeGgml('r.bin', { ...header, tensors: [{ ...tensor, ne: [32, 3] }] }));
    const at = file.byteLength - 3 * q8_0BlockBytes - tensor.name.length - 8;
    new DataView(file.buffer).setInt32(at, 48, true);
    new DataView(file.buffer).setInt32(at + 4, 2, true);
    await expect(readGgmlHeader(bufferSource(file, 'r.bin'))).rejects.toThrow(/r\.bin: tensor "encoder\.blocks\.0\.mlp\.0\.weight": is q8_0 with ne\[0\] = 48/);
    // A Whisper whose width is not a multiple of 32 cannot be written as q8_0.
    const narrow = { ...ggmlConfig, d_model: 48, encoder_ffn_dim: 192, decoder_ffn_dim: 192 };
    const weights = new Map(whisperParameters(narrow).map((p) => [p.name, new Float32Array(p.shape.reduce((a, b) => a * b, 1))]));
    expect(() => ggmlCheckpointFile('n.bin', { config: narrow, weights }, { fileType: 'q8_0', melFilters: header.melFilters, vocab: header.vocab }))
      .toThrow(/n\.bin: tensor "encoder\.blocks\.0\.attn\.key\.weight": is q8_0 with ne\[0\] = 48/);
  });
});

async function readTinyHeader() {
  const source = await fileSource(join(whisperAssets, 'ggml-headers/for-tests-ggml-tiny.bin'));
  try {
    return await readGgmlHeader(source);
  } finally {
    await source.close?.();
  }
}

function f16FromBits(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  return sign * (exp === 0 ? mant * 2 ** -24 : (1 + mant / 1024) * 2 ** (exp - 15));
}

describe('whisper.cpp runs the q8_0 files we write', async () => {
  const vocab = ggmlVocabFromTiktoken(await readFile(join(whisperAssets, 'multilingual.tiktoken'), 'utf8'));
  const melFilters: GgmlMelFilters = (await readTinyHeader()).melFilters;
  const idOf = (text: string) => vocab.findIndex((t) => Buffer.from(t).toString('utf8') === text);
  const words = [' Hello', ' world', ' from', ' a', ' random', ' model'].map(idOf);
  const expectedText = ' Hello world from a random model';
  const model = programmedModel(words, ggmlConfig.eos_token_id);

  it('whisper.cpp loads it as ftype q8_0 and transcribes the programmed text, as our engine does from the same file', async () => {
    const path = join(tempDir(), 'ggml-programmed-q8_0.bin');
    await saveGgmlCheckpoint(path, model, { fileType: 'q8_0', melFilters, vocab });
    const { whisper, info } = loadInWhisperCpp(path);
    // whisper.cpp strips the 1000 * GGML_QNT_VERSION from the stored 2007.
    expect(info.ftype).toBe(7);
    expect([info.nAudioState, info.nAudioLayer, info.nTextLayer, info.nVocab]).toEqual([64, 2, 3, 51865]);
    expect(transcribeWithWhisperCpp(whisper, readWavPcm16(clip))).toBe(expectedText);
    const out = join(tempDir(), 'ours');
    const quiet = () => new PassThrough().resume();
    await transcribeCommand([clip, '--model', path, '--language', 'en', '--no-timestamps', '--output', out], { stdout: quiet(), stderr: quiet() });
    expect(await readFile(join(out, 'test.txt'), 'utf8')).toBe(`${expectedText.trim()}\n`);
  });

  it('stores the tensor types whisper.cpp quantize leaves, and reads back as the dequantized blocks', async () => {
    const bytes = concatChunks(ggmlCheckpointFile('q.bin', model, { fileType: 'q8_0', melFilters, vocab }));
    const header = await readGgmlHeader(bufferSource(bytes, 'q.bin'));
    expect(header.hparams.ftype).toBe(2007);
    const types = Object.fromEntries(header.tensors.map((t) => [t.name, t.type]));
    expect(types['decoder.token_embedding.weight']).toBe('q8_0');
    expect(types['encoder.blocks.0.attn.query.weight']).toBe('q8_0');
    expect(types['decoder.blocks.2.mlp.2.weight']).toBe('q8_0');
    expect(types['encoder.conv1.weight']).toBe('f16');
    expect(types['encoder.conv2.weight']).toBe('f16');
    for (const name of ['encoder.positional_embedding', 'decoder.positional_embedding', 'encoder.conv1.bias', 'decoder.ln.weight', 'encoder.blocks.1.attn.query.bias']) {
      expect(types[name], name).toBe('f32');
    }
    const q8Count = header.tensors.filter((t) => t.type === 'q8_0').length;
    // 4 attention weights and 2 MLP weights per encoder layer, 8 + 2 per decoder layer, the embedding.
    expect(q8Count).toBe(2 * 6 + 3 * 10 + 1);
    const loaded = await readGgmlCheckpoint(bufferSource(bytes, 'q.bin'));
    for (const p of whisperParameters(ggmlConfig)) {
      const original = model.weights.get(p.name)!;
      const type = types[hfToGgmlName(p.name)!];
      let expected = original;
      if (type === 'q8_0') {
        expected = new Float32Array(original.length);
        decodeQ8_0(encodeQ8_0(original), expected);
      } else if (type === 'f16') {
        expected = Float32Array.from(original, (v) => toF16(v));
      }
      expect(Buffer.compare(Buffer.from(loaded.weights.get(p.name)!.buffer), Buffer.from(expected.buffer)), p.name).toBe(0);
      expect(loaded.sourceDtypes.get(p.name)).toBe(type);
    }
  });
});

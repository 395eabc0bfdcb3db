import { describe, expect, it } from 'vitest';
import { CheckpointError } from '../../src/errors.js';
import { bufferSource, concatChunks, type FileChunks, type FileOpener } from '../../src/io/byte-source.js';
import { encodeSafetensorsEncoded, readSafetensorsHeader, type EncodedTensorToWrite } from '../../src/io/safetensors.js';
import { whisperParameters } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { dequantizeCheckpoint, hfInt8CheckpointFiles, quantizeCheckpoint, readHfInt8Checkpoint } from '../../src/quant/hf-int8.js';
import { packInt8Weights } from '../../src/kernels/int8.js';
import { fullQuantizationPlan, packForInt8Kernels, quantizableModules } from '../../src/quant/weights.js';
import { expectSameWeights, smallConfig } from '../io/fixtures.js';
import { quantizeRowsRef } from '../ref/quant.js';
import { expectClose } from '../helpers.js';

const model = { config: smallConfig, weights: initWhisperWeights(smallConfig, 3, { randomizeAll: true }) };

function openerOf(files: FileChunks[]): FileOpener {
  const bytes = new Map(files.map((f) => [f.name, concatChunks(f)]));
  return async (name) => {
    const b = bytes.get(name);
    return b && bufferSource(b, name);
  };
}

/** The stored tensors of a model.safetensors, to rewrite with one changed. */
async function storedTensors(file: FileChunks): Promise<EncodedTensorToWrite[]> {
  const bytes = concatChunks(file);
  const header = await readSafetensorsHeader(bufferSource(bytes, file.name));
  return header.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: () => bytes.slice(t.begin, t.begin + t.byteLength) }));
}

describe('Hugging Face int8 checkpoints (dq-whisper-int8)', () => {
  for (const bits of [8, 4] as const) {
    it(`${bits}-bit round trip: quantize, write, read back: integers and scales bit-equal, dequantized = the f32 reference, float tensors untouched`, async () => {
      const plan = fullQuantizationPlan(smallConfig, bits);
      const qc = quantizeCheckpoint(model, plan);
      const files = hfInt8CheckpointFiles(qc);
      expect(files.map((f) => f.name)).toEqual(['config.json', 'model.safetensors']);
      const configJson = JSON.parse(new TextDecoder().decode(concatChunks(files[0]!)));
      expect(configJson.quantization_config).toEqual({ quant_method: 'dq-whisper-int8', bits, per_channel: true, symmetric: true, modules: plan.modules });
      expect(configJson.d_model).toBe(32);
      const header = await readSafetensorsHeader(bufferSource(concatChunks(files[1]!), 'model.safetensors'));
      const byName = new Map(header.tensors.map((t) => [t.name, t]));
      expect(byName.get('model.encoder.layers.0.fc1.weight')).toMatchObject({ dtype: bits === 8 ? 'I8' : 'U8', shape: bits === 8 ? [64, 32] : [64, 16] });
      expect(byName.get('model.encoder.layers.0.fc1.weight_scale')).toMatchObject({ dtype: 'F32', shape: [64] });
      expect(byName.get('model.decoder.embed_tokens.weight')).toMatchObject({ dtype: bits === 8 ? 'I8' : 'U8' });
      expect(byName.get('model.encoder.conv1.weight')).toMatchObject({ dtype: 'F32', shape: [32, 16, 3] });

      const loaded = await readHfInt8Checkpoint(openerOf(files));
      expect(loaded.bits).toBe(bits);
      expect(loaded.config).toEqual({ ...smallConfig, extra: { ...smallConfig.extra, architectures: ['WhisperForConditionalGeneration'], model_type: 'whisper', activation_function: 'gelu', scale_embedding: false, is_encoder_decoder: true, num_hidden_layers: 2 } });
      expect([...loaded.quantized.keys()]).toEqual(plan.modules);
      const qmax = 2 ** (bits - 1) - 1;
      const dequantized = dequantizeCheckpoint(loaded);
      for (const m of quantizableModules(smallConfig)) {
        const [rows, cols] = m.shape;
        const ref = quantizeRowsRef(model.weights.get(m.weight)!, rows, cols, qmax);
        const got = loaded.quantized.get(m.module)!;
        expect([...got.q], m.weight).toEqual([...ref.q]);
        expect([...got.scales], m.weight).toEqual([...ref.scales]);
        expect([...dequantized.weights.get(m.weight)!], m.weight).toEqual(Array.from(ref.q, (q, i) => Math.fround(q * ref.scales[Math.floor(i / cols)]!)));
      }
      for (const [name, values] of loaded.weights) expect(Buffer.compare(Buffer.from(values.buffer), Buffer.from(model.weights.get(name)!.buffer)), name).toBe(0);
      expect(loaded.weights.size + loaded.quantized.size).toBe(whisperParameters(smallConfig).length);
      // To the int8 kernels: the layout packInt8Weights gives the original float weight.
      const fc2 = loaded.quantized.get('model.decoder.layers.1.fc2')!;
      expect([...packForInt8Kernels(fc2).packed]).toEqual([...packInt8Weights(model.weights.get('model.decoder.layers.1.fc2.weight')!, 32, 48, bits).packed]);
    });
  }

  it('a partial plan with learned scales and F16 float tensors: only listed modules quantized, the rest F16', async () => {
    const scales = Float32Array.from({ length: 32 }, (_, i) => 0.001 * (i + 1));
    const plan = { modules: ['model.encoder.layers.1.self_attn.q_proj', 'model.decoder.layers.0.encoder_attn.out_proj'], bits: 8, scales: new Map([['model.encoder.layers.1.self_attn.q_proj', scales]]) };
    const files = hfInt8CheckpointFiles(quantizeCheckpoint(model, plan), { dtype: 'F16' });
    const loaded = await readHfInt8Checkpoint(openerOf(files));
    expect([...loaded.quantized.keys()]).toEqual(plan.modules);
    const q = loaded.quantized.get('model.encoder.layers.1.self_attn.q_proj')!;
    expect([...q.scales]).toEqual([...scales]);
    expect([...q.q]).toEqual([...quantizeRowsRef(model.weights.get('model.encoder.layers.1.self_attn.q_proj.weight')!, 32, 32, 127, scales).q]);
    expect(loaded.sourceDtypes.get('model.encoder.layers.0.fc1.weight')).toBe('F16');
    expect(loaded.sourceDtypes.has('model.encoder.layers.1.self_attn.q_proj.weight')).toBe(false);
    // F16 tensors come back as the nearest binary16: within half an f16 ulp (2^-11 relative; 2^-25 absolute for subnormals).
    const fc1 = dequantizeCheckpoint(loaded).weights.get('model.encoder.layers.0.fc1.weight')!;
    const original = model.weights.get('model.encoder.layers.0.fc1.weight')!;
    expectClose(fc1, original, { atol: 2 ** -25, rtol: 2 ** -11 }, 'fc1 (F16)');
    expect(fc1.some((v, i) => v !== original[i])).toBe(true);
  });

  it('a mixed plan: int8 by default, int4 for the modules moduleBits names; module_bits recorded and read back per module', async () => {
    const int4 = ['model.decoder.embed_tokens', 'model.encoder.layers.0.fc2'];
    const plan = { ...fullQuantizationPlan(smallConfig, 8), moduleBits: new Map(int4.map((m) => [m, 4])) };
    const files = hfInt8CheckpointFiles(quantizeCheckpoint(model, plan));
    const configJson = JSON.parse(new TextDecoder().decode(concatChunks(files[0]!)));
    expect(configJson.quantization_config.bits).toBe(8);
    expect(configJson.quantization_config.module_bits).toEqual({ 'model.encoder.layers.0.fc2': 4, 'model.decoder.embed_tokens': 4 });
    const header = await readSafetensorsHeader(bufferSource(concatChunks(files[1]!), 'model.safetensors'));
    const byName = new Map(header.tensors.map((t) => [t.name, t]));
    expect(byName.get('model.encoder.layers.0.fc2.weight')).toMatchObject({ dtype: 'U8', shape: [32, 32] });
    expect(byName.get('model.encoder.layers.0.fc1.weight')).toMatchObject({ dtype: 'I8', shape: [64, 32] });
    const loaded = await readHfInt8Checkpoint(openerOf(files));
    expect(loaded.bits).toBe(8);
    for (const m of quantizableModules(smallConfig)) {
      const bits = int4.includes(m.module) ? 4 : 8;
      const got = loaded.quantized.get(m.module)!;
      expect(got.bits, m.module).toBe(bits);
      expect([...got.q], m.weight).toEqual([...quantizeRowsRef(model.weights.get(m.weight)!, m.shape[0], m.shape[1], 2 ** (bits - 1) - 1).q]);
    }
  });

  it('an empty plan quantizes nothing: dequantized equals the original bit for bit', () => {
    const qc = quantizeCheckpoint(model, { modules: [] });
    expectSameWeights(dequantizeCheckpoint(qc).weights, model.weights);
  });

  describe('clear errors naming the tensor or field', () => {
    const plan = fullQuantizationPlan(smallConfig, 8);
    const good = hfInt8CheckpointFiles(quantizeCheckpoint(model, plan));
    const fc1 = 'model.encoder.layers.0.fc1.weight';
    async function withTensor(name: string, change: (t: EncodedTensorToWrite) => EncodedTensorToWrite | undefined): Promise<FileChunks[]> {
      const tensors = (await storedTensors(good[1]!)).flatMap((t) => (t.name === name ? [change(t)].filter((x) => x !== undefined) : [t]));
      return [good[0]!, encodeSafetensorsEncoded('model.safetensors', tensors)];
    }
    async function expectError(files: FileChunks[], tensor: string | undefined, pattern: RegExp) {
      const e = await readHfInt8Checkpoint(openerOf(files)).then(() => undefined, (err: unknown) => err);
      expect(e).toBeInstanceOf(CheckpointError);
      expect((e as CheckpointError).message).toMatch(pattern);
      if (tensor) expect((e as CheckpointError).tensor).toBe(tensor);
    }
    function withConfig(edit: (qc: Record<string, unknown>) => void): FileChunks[] {
      const json = JSON.parse(new TextDecoder().decode(concatChunks(good[0]!)));
      edit(json.quantization_config);
      const bytes = new TextEncoder().encode(JSON.stringify(json));
      return [{ name: 'config.json', byteLength: bytes.byteLength, *chunks() { yield bytes; } }, good[1]!];
    }

    it('wrong dtype, wrong shape, scale length, missing scale', async () => {
      await expectError(await withTensor(fc1, (t) => ({ ...t, dtype: 'U8' })), fc1, /tensor "model\.encoder\.layers\.0\.fc1\.weight" has dtype U8, expected I8 \(8-bit quantized module in config\.json\)/);
      await expectError(await withTensor(fc1, (t) => ({ ...t, shape: [32, 64] })), fc1, /has shape \[32, 64\], expected \[64, 32\]/);
      await expectError(await withTensor(`${fc1}_scale`, (t) => ({ ...t, shape: [63], bytes: () => t.bytes().subarray(0, 252) })), `${fc1}_scale`, /has shape \[63\], expected \[64\] \(one scale per output channel of "model\.encoder\.layers\.0\.fc1\.weight" \[64, 32\]\)/);
      await expectError(await withTensor(`${fc1}_scale`, (t) => ({ ...t, dtype: 'I32' })), `${fc1}_scale`, /has dtype I32, expected F32/);
      await expectError(await withTensor(`${fc1}_scale`, () => undefined), `${fc1}_scale`, /is missing: quantized "model\.encoder\.layers\.0\.fc1\.weight" needs F32 \[64\] scales/);
    });

    it('integers outside [-127, 127], non-finite scales, integer tensors of modules not listed', async () => {
      await expectError(await withTensor(fc1, (t) => ({ ...t, bytes: () => Object.assign(t.bytes(), { 5: 0x80 }) })), fc1, /holds -128 at \[0, 5\], outside \[-127, 127\]/);
      await expectError(await withTensor(`${fc1}_scale`, (t) => ({ ...t, bytes: () => new Uint8Array(Float32Array.from({ length: 64 }, (_, i) => (i === 9 ? NaN : 1)).buffer) })), `${fc1}_scale`, /holds NaN for output channel 9, expected a finite scale/);
      const notListed = withConfig((q) => {
        q.modules = (q.modules as string[]).filter((m) => m !== 'model.encoder.layers.0.fc1');
      });
      await expectError(notListed, fc1, /has dtype I8, but config\.json's quantization_config does not list its module/);
    });

    it('quantization_config: missing, wrong method, bits, unknown module', async () => {
      await expectError(withConfig((q) => { q.bits = 3; }), undefined, /config\.json: quantization_config bits is 3, expected 8 or 4/);
      await expectError(withConfig((q) => { q.quant_method = 'gptq'; }), undefined, /quant_method is "gptq", expected "dq-whisper-int8"/);
      await expectError(withConfig((q) => { q.modules = ['model.encoder.conv1']; }), undefined, /modules: "model\.encoder\.conv1" is not a quantizable module/);
      await expectError(withConfig((q) => { q.module_bits = { 'model.encoder.layers.0.fc1': 2 }; }), undefined, /quantization_config module_bits "model\.encoder\.layers\.0\.fc1" is 2, expected 8 or 4/);
      await expectError(withConfig((q) => { q.module_bits = [4]; }), undefined, /quantization_config module_bits is \[4\], expected an object/);
      await expectError(withConfig((q) => { q.modules = ['model.encoder.layers.0.fc1']; q.module_bits = { 'model.encoder.layers.0.fc2': 4 }; }), undefined, /modules: bits given for "model\.encoder\.layers\.0\.fc2", which the plan does not quantize/);
      // The stored int8 tensor of a module module_bits declares 4-bit is refused by dtype.
      await expectError(withConfig((q) => { q.module_bits = { 'model.encoder.layers.0.fc1': 4 }; }), fc1, /has dtype I8, expected U8 \(4-bit quantized module in config\.json\)/);
      const floatConfig = new TextEncoder().encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(concatChunks(good[0]!))), quantization_config: undefined }));
      await expectError([{ name: 'config.json', byteLength: floatConfig.byteLength, *chunks() { yield floatConfig; } }, good[1]!], undefined, /quantization_config is missing: not a dq-whisper-int8 checkpoint/);
    });
  });
});

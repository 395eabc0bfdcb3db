import { describe, expect, it } from 'vitest';
import { bufferSource, concatChunks } from '../../src/io/byte-source.js';
import { readSafetensorsHeader } from '../../src/io/safetensors.js';
import { parameterCount, presetConfig } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { hfInt8CheckpointFiles, quantizeCheckpoint } from '../../src/quant/hf-int8.js';
import { checkpointBytes, formatSizeTable, sizeTable } from '../../src/quant/size.js';
import { fullQuantizationPlan, quantizableModules } from '../../src/quant/weights.js';
import { smallConfig } from '../io/fixtures.js';

describe('size table', () => {
  it('bytes equal the tensor data of the safetensors file hf-int8 writes (8-bit, 4-bit with odd rows, partial, F16)', async () => {
    // decoder fc2 rows of 45 values: 4-bit rows padded to 23 bytes.
    const config = { ...smallConfig, decoder_ffn_dim: 45 };
    const model = { config, weights: initWhisperWeights(config, 4, { randomizeAll: true }) };
    const partial = { modules: ['model.decoder.embed_tokens', 'model.decoder.layers.1.fc2'], bits: 4 };
    const mixed = { ...fullQuantizationPlan(config, 8), moduleBits: new Map([['model.decoder.layers.0.fc2', 4], ['model.decoder.embed_tokens', 4]]) };
    for (const [plan, floatDtype] of [[fullQuantizationPlan(config, 8), 'F32'], [fullQuantizationPlan(config, 4), 'F32'], [partial, 'F16'], [mixed, 'F16'], [{ modules: [] }, 'F32']] as const) {
      const file = hfInt8CheckpointFiles(quantizeCheckpoint(model, plan), { dtype: floatDtype })[1]!;
      const bytes = concatChunks(file);
      const header = await readSafetensorsHeader(bufferSource(bytes, file.name));
      const dataBytes = header.tensors.reduce((n, t) => n + t.byteLength, 0);
      expect(checkpointBytes({ config, plan, floatDtype }), `${plan.bits ?? 'float'} ${floatDtype}`).toBe(dataBytes);
    }
  });

  it('rows: parameters, bytes and compression against the teacher in float32, counted independently', () => {
    const small = presetConfig('small');
    const tiny = presetConfig('tiny');
    const modules = quantizableModules(tiny);
    const quantizedValues = modules.reduce((n, m) => n + m.shape[0] * m.shape[1], 0);
    const channels = modules.reduce((n, m) => n + m.shape[0], 0);
    const rows = sizeTable({ label: 'teacher small', config: small }, [
      { label: 'tiny f32', config: tiny },
      { label: 'tiny int8', config: tiny, plan: fullQuantizationPlan(tiny, 8) },
      { label: 'tiny int4 + f16', config: tiny, plan: fullQuantizationPlan(tiny, 4), floatDtype: 'F16' },
    ]);
    const P = parameterCount(tiny);
    const teacherBytes = 4 * parameterCount(small);
    expect(rows.map((r) => r.bytes)).toEqual([
      teacherBytes,
      4 * P,
      4 * (P - quantizedValues) + quantizedValues + 4 * channels,
      2 * (P - quantizedValues) + quantizedValues / 2 + 4 * channels, // every tiny row has an even length
    ]);
    expect(rows[0]!.compression).toBe(1);
    expect(rows[2]!.compression).toBe(teacherBytes / rows[2]!.bytes);
    expect(rows.every((r, i) => r.parameters === (i === 0 ? parameterCount(small) : P))).toBe(true);
    const text = formatSizeTable(rows);
    expect(text.split('\n')[2]).toBe(`| teacher small | ${(parameterCount(small) / 1e6).toFixed(2)} M | ${(teacherBytes / 1e6).toFixed(2)} | 1.00 |`);
    expect(text.trimEnd().split('\n')).toHaveLength(6);
  });
});

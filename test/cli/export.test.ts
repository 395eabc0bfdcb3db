// dqw export end to end on a random model in Hugging Face format: an int8 folder, a q8_0 ggml
// file, and arguments the command refuses. The written files are read back with the loaders
// and checked against the original weights by the quantizers' error bounds, and the size table
// against the bytes on disk.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportCommand } from '../../src/cli/export.js';
import { DqwError } from '../../src/errors.js';
import { loadGgmlCheckpoint, loadHfInt8Checkpoint, saveHfCheckpoint } from '../../src/io/node-files.js';
import { presetConfig, type WhisperConfig } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { dequantizeCheckpoint } from '../../src/quant/hf-int8.js';

const config: WhisperConfig = {
  ...presetConfig('tiny'),
  d_model: 64, encoder_layers: 2, encoder_attention_heads: 2, encoder_ffn_dim: 256,
  decoder_layers: 2, decoder_attention_heads: 2, decoder_ffn_dim: 256, max_source_positions: 150, max_target_positions: 32,
};
const weights = initWhisperWeights(config, 5, { std: 0.2, randomizeAll: true });

let dir = '';
let model = '';
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dqw-export-'));
  model = join(dir, 'model');
  await saveHfCheckpoint(model, { config, weights });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(argv: string[]): Promise<string> {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => chunks.push(c));
  await exportCommand(argv, { stdout, stderr: new PassThrough().resume() });
  return Buffer.concat(chunks).toString('utf8');
}

/** The largest |a - b| of a row relative to the row's max |a|: quantization error in units of max|row|. */
function worstRowError(a: Float32Array, b: Float32Array, cols: number): number {
  let worst = 0;
  for (let r = 0; r < a.length / cols; r++) {
    const row = a.subarray(r * cols, (r + 1) * cols);
    const max = row.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (let c = 0; c < cols; c++) worst = Math.max(worst, Math.abs(row[c]! - b[r * cols + c]!) / max);
  }
  return worst;
}

describe('dqw export', () => {
  it('hf int8: every Linear and the embedding within half a step of per-channel int8; the table gives the bytes on disk', async () => {
    const out = join(dir, 'int8');
    const table = await run(['--model', model, '--format', 'hf', '--quant', 'int8', '--output', out]);
    const loaded = await loadHfInt8Checkpoint(out);
    expect(loaded.bits).toBe(8);
    expect(loaded.quantized.has('model.decoder.embed_tokens')).toBe(true);
    expect(loaded.quantized.has('model.encoder.layers.1.fc2')).toBe(true);
    const back = dequantizeCheckpoint(loaded).weights;
    // Symmetric per-channel int8: |w - w_hat| <= scale / 2 = max|row| / 254 (plus f32 rounding).
    for (const name of ['model.encoder.layers.0.self_attn.q_proj.weight', 'model.decoder.layers.1.fc1.weight', 'model.decoder.embed_tokens.weight']) {
      expect(worstRowError(weights.get(name)!, back.get(name)!, config.d_model), name).toBeLessThanOrEqual(1 / 254 + 1e-6);
    }
    // Tensors that stay float are bit-identical.
    expect(back.get('model.encoder.layers.0.self_attn_layer_norm.weight')).toEqual(weights.get('model.encoder.layers.0.self_attn_layer_norm.weight'));
    // Table: the teacher row (the model in f32), then the export, whose MB is the file's data.
    const rows = table.trim().split('\n').slice(2).map((line) => line.split('|').map((c) => c.trim()));
    expect(rows).toHaveLength(2);
    const fileMb = statSync(join(out, 'model.safetensors')).size / 1e6;
    expect(Number(rows[1]![3])).toBeLessThanOrEqual(fileMb);
    expect(fileMb - Number(rows[1]![3])).toBeLessThan(0.1); // the safetensors JSON header
    expect(Number(rows[0]![3]) / Number(rows[1]![3])).toBeCloseTo(Number(rows[1]![4]), 1);
    expect(Number(rows[1]![4])).toBeGreaterThan(3.5);
  });

  it('ggml q8_0: loads back with its header type, every 2-D weight within half a q8_0 step', async () => {
    const out = join(dir, 'model-q8_0.bin');
    await run(['--model', model, '--format', 'ggml', '--quant', 'q8_0', '--output', out]);
    const loaded = await loadGgmlCheckpoint(out);
    expect(loaded.ggml.hparams.ftype % 1000).toBe(7);
    // q8_0 scales per 32 values, so the per-row bound above holds a fortiori (f16 scales: a little slack).
    const name = 'model.encoder.layers.1.fc1.weight';
    expect(worstRowError(weights.get(name)!, loaded.weights.get(name)!, config.d_model)).toBeLessThanOrEqual(1 / 254 + 1e-3);
    expect(loaded.weights.get('model.encoder.layers.1.fc1.bias')).toEqual(weights.get('model.encoder.layers.1.fc1.bias'));
  });

  it('refuses what the formats cannot hold and missing arguments, naming them', async () => {
    await expect(run(['--model', model, '--format', 'ggml', '--quant', 'int8', '--output', join(dir, 'x.bin')])).rejects.toThrow(/--quant int8 is not available with --format ggml \(choose none, q8_0\)/);
    await expect(run(['--model', model, '--format', 'hf', '--quant', 'q8_0', '--output', join(dir, 'x')])).rejects.toThrow(DqwError);
    await expect(run(['--model', model, '--format', 'onnx', '--output', join(dir, 'x')])).rejects.toThrow(/--format must be hf or ggml, got "onnx"/);
    await expect(run(['--model', model, '--format', 'hf'])).rejects.toThrow(/--output is required/);
    await expect(run(['--model', join(dir, 'nothing'), '--format', 'hf', '--output', join(dir, 'x')])).rejects.toThrow(/--model .*nothing: no such file or folder/);
  });
});

import { describe, expect, it } from 'vitest';
import { ConfigError, ShapeError } from '../../src/errors.js';
import { packInt8Weights } from '../../src/kernels/int8.js';
import { matmul, rowScales } from '../../src/kernels/matmul.js';
import { presetConfig } from '../../src/model/config.js';
import {
  dequantizeWeight, fullQuantizationPlan, packForInt8Kernels, packNibbles, quantizableModules, quantizeWeight, resolvePlan, unpackNibbles,
} from '../../src/quant/weights.js';
import { randomArray, useGpu } from '../helpers.js';
import { quantizeRowsRef } from '../ref/quant.js';

const gpu = useGpu();

/** Rows with an exact tie (x / scale = k + 0.5), an all-zero row and a negative maximum. */
function awkwardWeight(rows: number, cols: number, qmax: number, seed: number): Float32Array {
  const w = randomArray(rows * cols, seed, 0.3);
  // Row 0: max 1 so scale = 1/qmax rounded to f32; put values whose quotient is a tie when scale is exact.
  w[0] = qmax; // scale 1 exactly
  w[1] = 2.5;
  w[2] = -3.5;
  w[3] = 0.5;
  w.fill(0, cols, 2 * cols); // row 1 all zero
  w[2 * cols + 1] = -5; // row 2: negative max
  return w;
}

describe('per-channel weight quantization', () => {
  for (const bits of [8, 4] as const) {
    const qmax = 2 ** (bits - 1) - 1;
    it(`${bits}-bit: q and scales equal the f32-exact reference (round half to even) on odd shapes, dequantized = fround(q * s)`, () => {
      for (const [rows, cols, seed] of [[7, 13, 1], [3, 5, 2], [11, 64, 3]] as const) {
        const w = awkwardWeight(rows, cols, qmax, seed);
        const qw = quantizeWeight(w, rows, cols, { bits });
        const ref = quantizeRowsRef(w, rows, cols, qmax);
        expect([...qw.scales]).toEqual([...ref.scales]);
        expect([...qw.q]).toEqual([...ref.q]);
        expect(qw.scales[0]).toBe(1);
        expect([...qw.q.subarray(0, 4)]).toEqual([qmax, 2, -4, 0]); // ties to even
        expect(qw.scales[1]).toBe(1); // all-zero row
        const deq = dequantizeWeight(qw);
        expect([...deq]).toEqual(Array.from(ref.q, (q, i) => Math.fround(q * ref.scales[Math.floor(i / cols)]!)));
      }
    });
  }

  it('given (learned) scales are used as they are; a scale <= 0 gives a zero channel', () => {
    const w = randomArray(4 * 9, 5, 2);
    const scales = Float32Array.from([0.01, 0.5, 0, -1]);
    const qw = quantizeWeight(w, 4, 9, { scales });
    const ref = quantizeRowsRef(w, 4, 9, 127, scales);
    expect([...qw.q]).toEqual([...ref.q]);
    expect([...qw.scales]).toEqual([...scales]);
    expect(qw.q.subarray(0, 9).some((q) => Math.abs(q) === 127)).toBe(true); // clamped
    expect([...dequantizeWeight(qw).subarray(18)].every((v) => v === 0)).toBe(true);
  });

  it('equal the fake-quant forward of the engine: a matmul with fused fake quantization by identity gives the dequantized weight bit for bit', async () => {
    const g = gpu();
    for (const bits of [8, 4]) {
      const [N, K] = [21, 19];
      const w = awkwardWeight(N, K, 2 ** (bits - 1) - 1, 7 + bits);
      const eye = new Float32Array(K * K);
      for (let k = 0; k < K; k++) eye[k * K + k] = 1;
      const wt = g.upload(w, [N, K], 'f32', 'w');
      const scale = g.empty([N], 'f32', 'scale');
      const out = g.empty([K, N], 'f32', 'w_hat^T');
      await g.run((rec) => {
        rowScales(rec, wt, scale, { bits });
        matmul(rec, g.upload(eye, [K, K], 'f32', 'eye'), wt, out, { transB: true, quantB: { scale, bits } });
      });
      const qw = quantizeWeight(w, N, K, { bits });
      expect([...(await g.readF32(scale))]).toEqual([...qw.scales]);
      const wHatT = await g.readF32(out);
      const deq = dequantizeWeight(qw);
      const transposed = Float32Array.from({ length: K * N }, (_, i) => deq[(i % N) * K + Math.floor(i / N)]!);
      expect([...wHatT]).toEqual([...transposed]);
    }
  });

  it('packs for the int8 kernels exactly as packInt8Weights does', () => {
    for (const [rows, cols, bits] of [[5, 7, 8], [3, 12, 4], [2, 1, 8]] as const) {
      const w = randomArray(rows * cols, rows + cols, 1);
      const { packed, scales } = packForInt8Kernels(quantizeWeight(w, rows, cols, { bits }));
      const engine = packInt8Weights(w, rows, cols, bits);
      expect([...packed]).toEqual([...engine.packed]);
      expect([...scales]).toEqual([...engine.scales]);
    }
  });

  it('packs 4-bit values two per byte, low nibble first, odd rows padded', () => {
    const qw = { q: Int8Array.from([1, -1, 7, -7, 0, 3]), scales: new Float32Array(2), rows: 2, cols: 3, bits: 4 };
    // row 0: (1, -1) -> 0xF1, (7, pad) -> 0x07; row 1: (-7, 0) -> 0x09, (3, pad) -> 0x03
    expect([...packNibbles(qw)]).toEqual([0xf1, 0x07, 0x09, 0x03]);
    expect([...unpackNibbles(packNibbles(qw), 2, 3)]).toEqual([...qw.q]);
  });

  it('plans: the quantizable layers of a Whisper, and clear errors', () => {
    const tiny = presetConfig('tiny');
    const modules = quantizableModules(tiny);
    // 6 Linear per encoder layer, 10 per decoder layer, the token embedding.
    expect(modules.length).toBe(4 * 6 + 4 * 10 + 1);
    expect(modules.find((m) => m.module === 'model.decoder.embed_tokens')?.shape).toEqual([51865, 384]);
    expect(modules.find((m) => m.module === 'model.encoder.layers.3.fc2')?.shape).toEqual([384, 1536]);
    expect(modules.some((m) => /embed_positions|conv|layer_norm/.test(m.module))).toBe(false);
    expect(resolvePlan(tiny, fullQuantizationPlan(tiny, 4)).bits).toBe(4);
    expect(() => resolvePlan(tiny, { modules: ['model.encoder.conv1'] })).toThrow(ConfigError);
    expect(() => resolvePlan(tiny, { modules: ['model.encoder.conv1'] })).toThrow(/"model\.encoder\.conv1" is not a quantizable module/);
    expect(() => resolvePlan(tiny, { modules: ['model.encoder.layers.0.fc1', 'model.encoder.layers.0.fc1'] })).toThrow(/listed twice/);
    expect(() => resolvePlan(tiny, { modules: [], bits: 3 })).toThrow(/bits must be 8 or 4, got 3/);
    const fc1 = 'model.encoder.layers.0.fc1';
    expect(resolvePlan(tiny, { modules: [fc1, 'model.encoder.layers.0.fc2'], moduleBits: new Map([[fc1, 4]]) }).modules.map((m) => m.bits)).toEqual([4, 8]);
    expect(() => resolvePlan(tiny, { modules: [fc1], moduleBits: new Map([[fc1, 2]]) })).toThrow(/quantization plan: module "model\.encoder\.layers\.0\.fc1": bits must be 8 or 4, got 2/);
    expect(() => resolvePlan(tiny, { modules: [], moduleBits: new Map([[fc1, 4]]) })).toThrow(/bits given for "model\.encoder\.layers\.0\.fc1", which the plan does not quantize/);
    expect(() => resolvePlan(tiny, { modules: [], scales: new Map([['model.encoder.layers.0.fc1', new Float32Array(1536)]]) })).toThrow(/scales given for "model\.encoder\.layers\.0\.fc1", which the plan does not quantize/);
    expect(() => quantizeWeight(new Float32Array(6), 2, 4, { name: 'x.weight' })).toThrow(ShapeError);
    expect(() => quantizeWeight(new Float32Array(8), 2, 4, { name: 'x.weight', scales: new Float32Array(3) })).toThrow(/tensor "x\.weight": 3 scales given for 2 output channels/);
  });
});

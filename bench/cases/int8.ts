// Int8 inference on Whisper-tiny shapes (width 384, MLP 1536, 1500 encoder frames, 448 decoder
// tokens, 51865-word vocabulary), weights stored [out, in] as Whisper keeps them and quantized
// per output channel, activations per token: the int8 matmul with dot4I8Packed and with the
// core-WGSL fallback, per-token activation quantization, and quantize-and-pack of the
// largest weight (the tied token embedding / output projection) at export.
import type { Gpu } from '../../src/gpu/gpu.js';
import { int8Matmul, packedWords, quantizeRows, type Int8Matrix } from '../../src/kernels/int8.js';
import type { BenchCase } from '../types.js';

const shapes = [
  { label: 'enc fc1', M: 1500, K: 384, N: 1536, gelu: true },
  { label: 'logits', M: 448, K: 384, N: 51865, gelu: false },
];

function int8Matrix(gpu: Gpu, rows: number, cols: number, label: string): Int8Matrix {
  return { packed: gpu.empty([rows, packedWords(cols)], 'u32', `${label} packed`), scales: gpu.empty([rows], 'f32', `${label} scales`), cols };
}

function matmulCase(s: (typeof shapes)[number], dot4: boolean): BenchCase {
  const { M, K, N } = s;
  const words = packedWords(K);
  return {
    family: 'int8',
    name: `${s.label} ${M}x${K} @ (${N}x${K})^T int8${s.gelu ? ' +bias+GELU' : ''} ${dot4 ? 'dot4I8Packed' : 'fallback'}`,
    // Integer multiply-adds counted as flops.
    flops: 2 * M * N * K,
    bytes: 4 * ((M + N) * words + M + N + M * N + (s.gelu ? N : 0)),
    ...(dot4 ? { requires: ['dot4I8Packed'] as const } : {}),
    setup(gpu: Gpu) {
      const x = int8Matrix(gpu, M, K, 'x');
      const w = int8Matrix(gpu, N, K, 'w');
      const bias = gpu.empty([N], 'f32', 'bias');
      const out = gpu.empty([M, N], 'f32', 'y');
      return {
        run: (rec) => int8Matmul(rec, x, w, out, { ...(s.gelu ? { bias, gelu: true } : {}), dot4, label: s.label }),
        dispose: () => gpu.free(x.packed, x.scales, w.packed, w.scales, bias, out),
      };
    },
  };
}

function quantizeCase(label: string, rows: number, cols: number): BenchCase {
  return {
    family: 'int8',
    name: `${label} quantize+pack [${rows},${cols}] int8`,
    // |x| and max, then divide, round, clamp and pack, per element.
    flops: 6 * rows * cols,
    bytes: 4 * (rows * cols + rows * packedWords(cols) + rows),
    setup(gpu: Gpu) {
      const x = gpu.empty([rows, cols], 'f32', label);
      const q = int8Matrix(gpu, rows, cols, label);
      return {
        run: (rec) => quantizeRows(rec, x, q, { label }),
        dispose: () => gpu.free(x, q.packed, q.scales),
      };
    },
  };
}

export const cases: BenchCase[] = [
  ...shapes.flatMap((s) => [matmulCase(s, true), matmulCase(s, false)]),
  quantizeCase('enc activations', 1500, 384),
  quantizeCase('token embedding weight', 51865, 384),
];

// Matmul on Whisper-tiny shapes (width 384, MLP 1536, 1500 encoder frames, 448 decoder tokens,
// 51865-word vocabulary), weights stored [out, in] as Whisper keeps them: f32 and f16 storage,
// plain and with the weight fake-quantized (int8, per output channel) in the operand load.
import type { Gpu } from '../../src/gpu/gpu.js';
import { matmul } from '../../src/kernels/matmul.js';
import type { BenchCase } from '../types.js';

const shapes = [
  { label: 'enc fc1', M: 1500, K: 384, N: 1536 },
  { label: 'enc fc2', M: 1500, K: 1536, N: 384 },
  { label: 'logits', M: 448, K: 384, N: 51865 },
];

function matmulCase(s: (typeof shapes)[number], dtype: 'f32' | 'f16', quant: boolean): BenchCase {
  const { M, K, N } = s;
  const el = dtype === 'f16' ? 2 : 4;
  return {
    family: 'matmul',
    name: `${s.label} ${M}x${K} @ (${N}x${K})^T ${dtype}${quant ? ' fake-quant int8 W' : ''}`,
    // The product, plus divide/round/clamp/multiply once per weight element when quantizing.
    flops: 2 * M * N * K + (quant ? 4 * N * K : 0),
    bytes: (M * K + N * K) * el + M * N * 4 + (quant ? N * 4 : 0),
    ...(dtype === 'f16' ? { requires: ['shaderF16'] as const } : {}),
    setup(gpu: Gpu) {
      const x = gpu.empty([M, K], dtype, 'x');
      const w = gpu.empty([N, K], dtype, 'w');
      const out = gpu.empty([M, N], 'f32', 'out');
      const scale = gpu.upload(new Float32Array(N).fill(1 / 127), [N], 'f32', 'w scale');
      return {
        run: (rec) => matmul(rec, x, w, out, { transB: true, ...(quant ? { quantB: { scale, bits: 8 } } : {}), label: s.label }),
        dispose: () => gpu.free(x, w, out, scale),
      };
    },
  };
}

export const cases: BenchCase[] = shapes.flatMap((s) => [
  matmulCase(s, 'f32', false),
  matmulCase(s, 'f32', true),
  matmulCase(s, 'f16', false),
  matmulCase(s, 'f16', true),
]);

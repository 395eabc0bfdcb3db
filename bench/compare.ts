// Side-by-side problems for TF.js's WebGPU backend, on a second device from the same adapter in
// the same process. Each comparison computes the same result both ways.
import * as tf from '@tensorflow/tfjs-core';
import { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { Gpu } from '../src/gpu/gpu.js';
import { attention } from '../src/kernels/attention.js';
import { layerNorm } from '../src/kernels/layernorm.js';
import { matmul } from '../src/kernels/matmul.js';
import { softmax } from '../src/kernels/softmax.js';
import type { BenchInstance } from './types.js';

export interface Comparison {
  name: string;
  ours(gpu: Gpu): BenchInstance;
  /** Build TF.js inputs once and return the computation to time. */
  tfjs(t: typeof tf): { run: () => tf.Tensor; dispose: () => void };
}

function matmulComparison(M: number, K: number, N: number, label: string, transB = false): Comparison {
  return {
    name: `matmul ${label} ${M}x${K} @ ${transB ? `(${N}x${K})^T` : `${K}x${N}`}`,
    ours(gpu) {
      const a = gpu.empty([M, K], 'f32', 'a');
      const b = gpu.empty(transB ? [N, K] : [K, N], 'f32', 'b');
      const c = gpu.empty([M, N], 'f32', 'c');
      return { run: (rec) => matmul(rec, a, b, c, { transB }), dispose: () => gpu.free(a, b, c) };
    },
    tfjs(t) {
      const a = t.randomUniform([M, K]);
      const b = t.randomUniform(transB ? [N, K] : [K, N]);
      return { run: () => t.matMul(a, b, false, transB), dispose: () => t.dispose([a, b]) };
    },
  };
}

function softmaxComparison(rows: number, cols: number, label: string): Comparison {
  return {
    name: `softmax ${label} [${rows}, ${cols}]`,
    ours(gpu) {
      const x = gpu.empty([rows, cols], 'f32', 'x');
      const y = gpu.empty([rows, cols], 'f32', 'y');
      return { run: (rec) => softmax(rec, x, y), dispose: () => gpu.free(x, y) };
    },
    tfjs(t) {
      const x = t.randomUniform([rows, cols]);
      return { run: () => t.softmax(x), dispose: () => t.dispose(x) };
    },
  };
}

function layerNormComparison(rows: number, cols: number, label: string): Comparison {
  return {
    name: `layernorm ${label} [${rows}, ${cols}]`,
    ours(gpu) {
      const x = gpu.empty([rows, cols], 'f32', 'x');
      const y = gpu.empty([rows, cols], 'f32', 'y');
      const gamma = gpu.empty([cols], 'f32', 'gamma');
      const beta = gpu.empty([cols], 'f32', 'beta');
      const mean = gpu.empty([rows], 'f32', 'mean');
      const rstd = gpu.empty([rows], 'f32', 'rstd');
      return { run: (rec) => layerNorm(rec, x, { gamma, beta }, { y, mean, rstd }), dispose: () => gpu.free(x, y, gamma, beta, mean, rstd) };
    },
    tfjs(t) {
      const x = t.randomUniform([rows, cols]);
      const gamma = t.randomUniform([cols]);
      const beta = t.randomUniform([cols]);
      // TF.js has no fused layer norm: the usual composition from moments.
      const run = () => t.tidy(() => {
        const { mean, variance } = t.moments(x, -1, true);
        return t.add(t.mul(t.mul(t.sub(x, mean), t.rsqrt(t.add(variance, 1e-5))), gamma), beta);
      });
      return { run, dispose: () => t.dispose([x, gamma, beta]) };
    },
  };
}

/** Attention over head-major [1, H, L, D] operands; TF.js composes it from matMul and softmax. */
function attentionComparison(Lq: number, Lk: number, H: number, D: number, label: string): Comparison {
  return {
    name: `attention ${label} Lq=${Lq} Lk=${Lk} H=${H} D=${D}`,
    ours(gpu) {
      const q = gpu.empty([1, H, Lq, D], 'f32', 'q');
      const k = gpu.empty([1, H, Lk, D], 'f32', 'k');
      const v = gpu.empty([1, H, Lk, D], 'f32', 'v');
      const out = gpu.empty([1, H, Lq, D], 'f32', 'out');
      const lse = gpu.empty([1, H, Lq], 'f32', 'lse');
      return { run: (rec) => attention(rec, q, k, v, out, lse), dispose: () => gpu.free(q, k, v, out, lse) };
    },
    tfjs(t) {
      const q = t.randomUniform([H, Lq, D]);
      const k = t.randomUniform([H, Lk, D]);
      const v = t.randomUniform([H, Lk, D]);
      const run = () => t.tidy(() => t.matMul(t.softmax(t.mul(t.matMul(q, k, false, true), 1 / Math.sqrt(D))), v));
      return { run, dispose: () => t.dispose([q, k, v]) };
    },
  };
}

export const comparisons: Comparison[] = [
  matmulComparison(1024, 1024, 1024, 'square'),
  matmulComparison(1500, 384, 1536, 'enc fc1 (tiny)', true),
  matmulComparison(1500, 1536, 384, 'enc fc2 (tiny)', true),
  matmulComparison(448, 384, 51865, 'logits (tiny)', true),
  softmaxComparison(448, 51865, 'logits'),
  softmaxComparison(6 * 1500, 1500, 'enc scores (tiny)'),
  layerNormComparison(1500, 384, 'enc (tiny)'),
  layerNormComparison(1500, 768, 'enc (small)'),
  attentionComparison(1500, 1500, 6, 64, 'enc self (tiny)'),
  attentionComparison(448, 1500, 6, 64, 'cross (tiny)'),
];

/** Start TF.js's WebGPU backend on a new device from `gpu`'s WebGPU instance. */
export async function startTfjs(gpu: Gpu): Promise<{ time: (make: Comparison['tfjs'], repeat: number) => Promise<number>; dispose: () => void }> {
  const instance = gpu.gpuDevice.origin.instance;
  if (!instance) throw new Error('TF.js comparison needs a Gpu created by Gpu.create(), not an application device');
  // TF.js checks navigator.gpu before it will construct its backend.
  const g = globalThis as { navigator?: { gpu?: GPU } };
  if (!g.navigator?.gpu) Object.defineProperty(globalThis, 'navigator', { value: { ...(g.navigator ?? {}), gpu: instance }, configurable: true });
  const adapter = await instance.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no adapter for TF.js');
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    },
  });
  // Registered as 'webgpu' because TF.js registers its kernels under that backend name.
  tf.registerBackend('webgpu', () => new WebGPUBackend(device, adapter.info));
  await tf.setBackend('webgpu');
  return {
    async time(make, repeat) {
      const job = make(tf);
      try {
        const once = async () => {
          const info = await tf.time(() => {
            job.run().dispose();
          });
          return info.kernelMs as number;
        };
        await once(); // warm-up: shader compiles
        let best = Infinity;
        for (let i = 0; i < repeat; i++) best = Math.min(best, await once());
        return best;
      } finally {
        job.dispose();
      }
    },
    dispose() {
      tf.removeBackend('webgpu');
      device.destroy();
    },
  };
}

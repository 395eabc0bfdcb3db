// Side-by-side problems for TF.js's WebGPU backend, on a second device from the same adapter in
// the same process. Each comparison computes the same result both ways.
import * as tf from '@tensorflow/tfjs-core';
import { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { Gpu } from '../src/gpu/gpu.js';
import { matmul } from '../src/kernels/matmul.js';
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

export const comparisons: Comparison[] = [
  matmulComparison(1024, 1024, 1024, 'square'),
  matmulComparison(1500, 384, 1536, 'enc fc1 (tiny)', true),
  matmulComparison(1500, 1536, 384, 'enc fc2 (tiny)', true),
  matmulComparison(448, 384, 51865, 'logits (tiny)', true),
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

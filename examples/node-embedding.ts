// Node application with its own WebGPU device (Dawn, npm package `webgpu`) running dq-whisper's
// attention, int8 matmul and cross-entropy kernels on its own buffers.
// Run: npx tsx examples/node-embedding.ts
import { fileURLToPath } from 'node:url';
import { create, globals } from 'webgpu';
import { exampleInputs, runKernelsOnAppDevice, type ExampleInputs, type ExampleOutputs } from './embedding-kernels.js';

/** Acquire a device the way the application would, run the example on it, destroy the device. */
export async function runNodeExample(inputs: ExampleInputs = exampleInputs()): Promise<ExampleOutputs> {
  Object.assign(globalThis, globals); // GPUBufferUsage, GPUMapMode, ... as in a browser
  // Keep the instance referenced while its device lives: Dawn tears the device down with it.
  const instance = create([]);
  const adapter = await instance.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter: install a Vulkan driver (see README: scripts/setup.sh)');
  const device = await adapter.requestDevice(); // default limits are enough for these kernels
  try {
    const dot4I8Packed = instance.wgslLanguageFeatures?.has('packed_4x8_integer_dot_product') ?? false;
    return await runKernelsOnAppDevice(device, inputs, { runtime: 'node', dot4I8Packed });
  } finally {
    device.destroy();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = await runNodeExample();
  const head = (a: Float32Array) => [...a.slice(0, 4)].map((v) => v.toFixed(4)).join(', ');
  console.log(`attention out[0..3]: ${head(out.attention.out)}; lse[0..3]: ${head(out.attention.lse)}`);
  console.log(`int8 layer y[0..3]: ${head(out.int8.y)}`);
  console.log(`cross-entropy: mean ${out.loss.mean.toFixed(4)} over ${out.loss.validRows} rows; row losses ${head(out.loss.rowLoss)}`);
  // Dawn's bindings can keep the event loop alive after the device is gone.
  process.exit(0);
}

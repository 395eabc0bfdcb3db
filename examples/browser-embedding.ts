// Browser application with its own WebGPU device (navigator.gpu) running dq-whisper's attention,
// int8 matmul and cross-entropy kernels on its own buffers. The demo page (web/, "Embedding"
// tab) runs it; in an app, call runBrowserExample() from any module.
import { exampleInputs, runKernelsOnAppDevice, type ExampleInputs, type ExampleOutputs } from './embedding-kernels.js';

/** Acquire a device the way a page would, run the example on it, destroy the device. */
export async function runBrowserExample(inputs: ExampleInputs = exampleInputs()): Promise<ExampleOutputs> {
  if (!navigator.gpu) throw new Error('this browser exposes no WebGPU (navigator.gpu is undefined)');
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error('navigator.gpu.requestAdapter() found no adapter');
  const device = await adapter.requestDevice(); // default limits are enough for these kernels
  try {
    const dot4I8Packed = navigator.gpu.wgslLanguageFeatures.has('packed_4x8_integer_dot_product');
    return await runKernelsOnAppDevice(device, inputs, { runtime: 'browser', dot4I8Packed });
  } finally {
    device.destroy();
  }
}

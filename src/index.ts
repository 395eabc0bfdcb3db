// Public API of dq-whisper's engine core. Everything here runs unchanged in Node and browsers.
export * from './errors.js';
export { Gpu, Recorder, BufferPool, numberToF16Bits, f16BitsToNumber } from './gpu/gpu.js';
export { GpuDevice, type GpuFeatures, type GpuLimits, type GpuOptions, type AdapterDescription } from './gpu/device.js';
export { KernelCache, type Kernel, type KernelSpec, type ShaderVariant, type DispatchArgs, type BindingInfo } from './gpu/kernel.js';
export { Profiler, type ProfileEvent, type KernelSummary } from './gpu/profiler.js';
export { numel, byteSize, dtypeBytes, type DType, type Tensor } from './gpu/tensor.js';
export * from './kernels/matmul.js';
export * from './kernels/int8.js';
export * from './kernels/attention.js';
export * from './kernels/layernorm.js';
export * from './kernels/softmax.js';
export * from './kernels/reduce.js';
export * from './kernels/activation.js';
export * from './kernels/conv1d.js';
export * from './kernels/embedding.js';
export * from './kernels/losses.js';
export * from './kernels/adamw.js';
export * from './model/config.js';

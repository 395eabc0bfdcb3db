// Public API of dq-whisper's engine core. Everything here runs unchanged in Node and browsers.
export * from './errors.js';
export { Gpu, Recorder, BufferPool, numberToF16Bits, f16BitsToNumber } from './gpu/gpu.js';
export { GpuDevice, type GpuFeatures, type GpuLimits, type GpuOptions, type AdapterDescription } from './gpu/device.js';
export { KernelCache, type Kernel, type KernelSpec, type ShaderVariant, type DispatchArgs, type BindingInfo } from './gpu/kernel.js';
export { Profiler, type ProfileEvent, type KernelSummary } from './gpu/profiler.js';
export { numel, byteSize, dtypeBytes, type DType, type Tensor } from './gpu/tensor.js';
export * from './kernels/matmul.js';

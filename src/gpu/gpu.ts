import { GpuOutOfMemoryError, ShapeError } from '../errors.js';
import { GpuDevice, type GpuOptions } from './device.js';
import { KernelCache } from './kernel.js';
import type { Profiler } from './profiler.js';
import { Recorder, type Program } from './program.js';
import { byteSize, numel, type DType, type Tensor } from './tensor.js';

export { Program, Recorder } from './program.js';

type HostArray = Float32Array | Int32Array | Uint32Array | Uint16Array;

/** Reuses GPU buffers by size class so repeated ad-hoc tensors do not allocate each time. */
export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  /** Every buffer this pool made and has not destroyed, free or in use. */
  private readonly live = new Set<GPUBuffer>();
  /** Bytes currently allocated from the device by this pool (free or in use). */
  allocatedBytes = 0;

  constructor(private readonly device: GPUDevice) {}

  /** Size classes: powers of two up to 1 MiB, then whole MiB, so reuse is likely and waste bounded. */
  static sizeClass(bytes: number): number {
    const b = Math.max(256, bytes);
    if (b <= 1 << 20) return 2 ** Math.ceil(Math.log2(b));
    return Math.ceil(b / (1 << 20)) * (1 << 20);
  }

  acquire(bytes: number, label: string): GPUBuffer {
    const size = BufferPool.sizeClass(bytes);
    const reused = this.free.get(size)?.pop();
    if (reused) return reused;
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    this.allocatedBytes += size;
    const buffer = this.device.createBuffer({ label, size, usage });
    this.live.add(buffer);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const list = this.free.get(buffer.size) ?? [];
    list.push(buffer);
    this.free.set(buffer.size, list);
  }

  /** Destroy every buffer not in use. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) {
      this.allocatedBytes -= b.size;
      this.live.delete(b);
      b.destroy();
    }
    this.free.clear();
  }

  /**
   * Destroy every buffer this pool made, in use or not: the end of the Gpu. Matters for a device
   * the application owns (Gpu.fromDevice), which outlives the Gpu and would keep them otherwise.
   */
  destroyAll(): void {
    for (const b of this.live) b.destroy();
    this.live.clear();
    this.free.clear();
    this.allocatedBytes = 0;
  }
}

/**
 * The engine's handle on a GPU: device and negotiated capabilities, kernel cache, buffer pool,
 * tensor upload/readback and command recording. One per device.
 */
export class Gpu {
  readonly kernels: KernelCache;
  readonly pool: BufferPool;
  /** When set, every Recorder created by `record()` times its dispatches into it. */
  profiler: Profiler | null = null;
  /**
   * The dot product the int8 kernels run (src/kernels/int8.ts int8DotPath): 'auto' (default)
   * dot4I8Packed where the device has it and it is not measured slower than the core-WGSL
   * arithmetic; 'dot4I8Packed' wherever the device has it (e.g. to test both paths); 'core-wgsl'.
   */
  int8Dot: 'auto' | 'dot4I8Packed' | 'core-wgsl' = 'auto';

  private constructor(readonly gpuDevice: GpuDevice) {
    this.kernels = new KernelCache(gpuDevice);
    this.pool = new BufferPool(gpuDevice.device);
  }

  static async create(options?: GpuOptions): Promise<Gpu> {
    return new Gpu(await GpuDevice.create(options));
  }

  /** Use a device the application already owns (embedding); see GpuDevice.fromDevice. */
  static fromDevice(device: GPUDevice, options?: Parameters<typeof GpuDevice.fromDevice>[1]): Gpu {
    return new Gpu(GpuDevice.fromDevice(device, options));
  }

  get device(): GPUDevice {
    return this.gpuDevice.device;
  }
  get features() {
    return this.gpuDevice.features;
  }
  get limits() {
    return this.gpuDevice.limits;
  }
  get adapter() {
    return this.gpuDevice.adapter;
  }
  /**
   * The smallest subgroup size the adapter may run (GPUAdapterInfo.subgroupMinSize: 8 on
   * lavapipe, 4 on SwiftShader, 32 on NVIDIA), or undefined where the device does not say.
   * Kernels that treat a small workgroup as one subgroup check it.
   */
  get subgroupMinSize(): number | undefined {
    const size = (this.device as GPUDevice & { adapterInfo?: { subgroupMinSize?: number } }).adapterInfo?.subgroupMinSize;
    return size !== undefined && size > 0 ? size : undefined;
  }

  /**
   * Whether a workgroup of `invocations` invocations is guaranteed to be one subgroup (subgroups
   * enabled and at least that wide), as the subgroup kernel variants that exchange values by
   * shuffles or reduce with one subgroup operation require.
   */
  workgroupIsOneSubgroup(invocations: number): boolean {
    return this.features.subgroups && (this.subgroupMinSize ?? 0) >= invocations;
  }

  /** A new uninitialised tensor from the pool. Call `free` when done. */
  empty(shape: readonly number[], dtype: DType = 'f32', label = 'tensor'): Tensor {
    const bytes = byteSize({ dtype, shape });
    if (bytes > this.limits.maxStorageBufferBindingSize) {
      throw new GpuOutOfMemoryError(
        `tensor "${label}" [${shape.join(', ')}] ${dtype} needs ${bytes} bytes, more than one storage binding may hold on this device (${this.limits.maxStorageBufferBindingSize})`,
        label,
      );
    }
    return { buffer: this.pool.acquire(bytes, label), offset: 0, dtype, shape: [...shape], label };
  }

  /** Upload host data as a new tensor. f16 data is given as raw Uint16Array bits. */
  upload(data: HostArray | readonly number[], shape: readonly number[], dtype: DType = 'f32', label = 'tensor'): Tensor {
    const n = numel(shape);
    if (data.length !== n) throw new ShapeError(`upload of "${label}": ${data.length} values for shape [${shape.join(', ')}] (${n} elements)`);
    const t = this.empty(shape, dtype, label);
    const host = toHost(data, dtype);
    const bytes = new Uint8Array(host.buffer as ArrayBuffer, host.byteOffset, host.byteLength);
    const padded = bytes.byteLength % 4 === 0 ? bytes : concatPad(bytes);
    this.device.queue.writeBuffer(t.buffer, t.offset, padded);
    return t;
  }

  /** Overwrite a tensor's contents from host data. */
  write(t: Tensor, data: HostArray | readonly number[]): void {
    if (data.length !== numel(t.shape)) throw new ShapeError(`write to "${t.label}": ${data.length} values for ${numel(t.shape)} elements`);
    const host = toHost(data, t.dtype);
    const bytes = new Uint8Array(host.buffer as ArrayBuffer, host.byteOffset, host.byteLength);
    this.device.queue.writeBuffer(t.buffer, t.offset, bytes.byteLength % 4 === 0 ? bytes : concatPad(bytes));
  }

  /** Read a tensor back: Float32Array for f32, Int32Array, Uint32Array, or Uint16Array (f16 bits). */
  async read(t: Tensor): Promise<HostArray> {
    const size = byteSize(t);
    const staging = this.device.createBuffer({ label: `readback ${t.label}`, size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(t.buffer, t.offset, staging, 0, size);
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const copy = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    this.gpuDevice.throwIfFailed();
    const n = numel(t.shape);
    switch (t.dtype) {
      case 'f32':
        return new Float32Array(copy, 0, n);
      case 'i32':
        return new Int32Array(copy, 0, n);
      case 'u32':
        return new Uint32Array(copy, 0, n);
      case 'f16':
        return new Uint16Array(copy, 0, n);
    }
  }

  /** Read an f32 tensor (or f16, widened) as Float32Array. */
  async readF32(t: Tensor): Promise<Float32Array> {
    const raw = await this.read(t);
    if (raw instanceof Float32Array) return raw;
    if (raw instanceof Uint16Array) return Float32Array.from(raw, f16BitsToNumber);
    return Float32Array.from(raw);
  }

  /** Return a tensor's buffer to the pool. */
  free(...tensors: Tensor[]): void {
    for (const t of tensors) this.pool.release(t.buffer);
  }

  /** A recorder that batches dispatches into one submit. */
  record(): Recorder {
    return new Recorder(this, this.profiler);
  }

  /** Record with `fn` and submit; resolves when the GPU is done. */
  async run(fn: (rec: Recorder) => void): Promise<void> {
    const rec = this.record();
    fn(rec);
    await rec.submit();
  }

  /**
   * Record with `fn` once and keep the result as a Program to replay with `program.run()`;
   * its bind groups and uniform buffer are made here, so a replay allocates nothing.
   */
  async compile(fn: (rec: Recorder) => void): Promise<Program> {
    const rec = this.record();
    fn(rec);
    return rec.finish();
  }

  /**
   * Destroy every buffer the engine allocated (tensors from `empty`/`upload` included) and the
   * device, unless it came from `fromDevice`: the application's device and buffers stay alive.
   * Under Node, required for the process to exit.
   */
  destroy(): void {
    this.pool.destroyAll();
    this.gpuDevice.destroy();
  }
}

function toHost(data: HostArray | readonly number[], dtype: DType): HostArray {
  switch (dtype) {
    case 'f32':
      return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    case 'i32':
      return data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
    case 'u32':
      return data instanceof Uint32Array ? data : Uint32Array.from(data as ArrayLike<number>);
    case 'f16':
      return data instanceof Uint16Array ? data : Uint16Array.from(data as ArrayLike<number>, numberToF16Bits);
  }
}

function concatPad(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE binary16 bits of `x`, rounded to nearest even. */
export function numberToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const f = u32Scratch[0]!;
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  let mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** The number an IEEE binary16 bit pattern encodes. */
export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

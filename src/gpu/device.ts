import { DeviceLostError, GpuOutOfMemoryError, GpuValidationError, NoAdapterError } from '../errors.js';

/** Optional capabilities the engine uses when present; each has a plain fallback. */
export interface GpuFeatures {
  /** `shader-f16`: f16 storage and arithmetic in WGSL. */
  shaderF16: boolean;
  /** `subgroups`: subgroup reductions and shuffles. */
  subgroups: boolean;
  /** `timestamp-query`: per-dispatch GPU timing. */
  timestampQuery: boolean;
  /** WGSL language feature `packed_4x8_integer_dot_product` (dot4I8Packed). */
  dot4I8Packed: boolean;
}

/** The limits the engine negotiated (requested up to what the adapter offers). */
export interface GpuLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxStorageBuffersPerShaderStage: number;
  maxComputeWorkgroupsPerDimension: number;
  minStorageBufferOffsetAlignment: number;
  minUniformBufferOffsetAlignment: number;
}

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** 'node' (Dawn via the `webgpu` package) or 'browser' (navigator.gpu). */
  runtime: 'node' | 'browser';
}

export interface GpuOptions {
  powerPreference?: GPUPowerPreference;
  /** Turn optional features off, e.g. to test fallback paths: `{ shaderF16: true }`. */
  disable?: Partial<Record<keyof GpuFeatures, boolean>>;
  /**
   * 'adapter' (default) requests the adapter's own limits; 'webgpu-defaults' requests none, so the
   * device has the limits every WebGPU implementation guarantees (256 invocations per workgroup,
   * 16 KiB workgroup memory, 8 storage buffers per stage): what a kernel must fit to run anywhere.
   */
  limits?: 'adapter' | 'webgpu-defaults';
}

const limitNames: (keyof GpuLimits)[] = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupsPerDimension',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
];

const noAdapterHelp =
  'No WebGPU adapter was found. On Debian bookworm without a GPU install the software Vulkan driver ' +
  'from backports: add "bookworm-backports" to the apt sources, then ' +
  '`apt-get install -t bookworm-backports mesa-vulkan-drivers` (Mesa 22 from bookworm itself is rejected by Dawn). ' +
  'With a GPU, install its Vulkan driver (NVIDIA: the proprietary driver; AMD/Intel: mesa-vulkan-drivers).';

const browserNoAdapterHelp =
  'This browser has WebGPU, but navigator.gpu.requestAdapter() found no adapter: the GPU or its driver is blocklisted, ' +
  'or software rendering is not allowed. Chromium on Linux without a usable GPU needs --enable-unsafe-webgpu ' +
  '(then it uses its SwiftShader software adapter); chrome://gpu says what is blocked.';

const browserHelp =
  'WebGPU ships in Chrome and Edge (113+ on Windows, macOS and ChromeOS, 121+ on Android), Safari 26 and Firefox 141+ on Windows; ' +
  'on Linux start Chromium with --enable-unsafe-webgpu (or enable chrome://flags/#enable-unsafe-webgpu).';

async function getGpu(): Promise<{ gpu: GPU; runtime: 'node' | 'browser' }> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, runtime: 'browser' };
  const scope = globalThis as { process?: { versions?: { node?: string } }; isSecureContext?: boolean };
  if (!scope.process?.versions?.node) {
    const insecure = scope.isSecureContext === false ? ' This page is not a secure context, and WebGPU needs one: serve it over https or from localhost / 127.0.0.1.' : '';
    throw new NoAdapterError(`This browser exposes no WebGPU (navigator.gpu is undefined).${insecure} ${browserHelp}`);
  }
  // Node: Dawn's bindings. Imported lazily so browser bundles never see the module.
  const moduleName = 'webgpu';
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    mod = (await import(/* @vite-ignore */ moduleName)) as typeof mod;
  } catch (err) {
    throw new NoAdapterError(`WebGPU is not available: neither navigator.gpu nor the "webgpu" package could be loaded (${String(err)}). Run \`npm ci\`.`, { cause: err });
  }
  Object.assign(globalThis, mod.globals);
  return { gpu: mod.create([]), runtime: 'node' };
}

/**
 * A WebGPU device with what the engine negotiated, and the error plumbing that turns WebGPU's
 * asynchronous errors into typed exceptions naming the kernel or tensor involved.
 */
export class GpuDevice {
  private lost: DeviceLostError | null = null;
  private destroyedHere = false;
  private pendingError: Error | null = null;

  private constructor(
    // Held for the device's lifetime: under Node, if the GPU instance from create() is garbage
    // collected while its device is alive, Dawn tears down state the device's threads still use
    // and the process crashes (seen on lavapipe during slow first-time shader compiles).
    private readonly instance: GPU | null,
    private readonly adapterObject: GPUAdapter | null,
    readonly device: GPUDevice,
    readonly features: Readonly<GpuFeatures>,
    readonly limits: Readonly<GpuLimits>,
    readonly adapter: Readonly<AdapterDescription>,
    private readonly ownsDevice: boolean,
  ) {
    device.lost.then((info) => {
      if (this.destroyedHere) return;
      this.lost = new DeviceLostError(`GPU device lost (${info.reason}): ${info.message || 'no message'}; create a new Gpu to continue`, info.reason);
    });
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.pendingError ??= toTypedError(ev.error, 'uncaptured');
    };
  }

  /** Acquire an adapter and device (Node: Dawn; browser: navigator.gpu), enabling the optional features. */
  static async create(options: GpuOptions = {}): Promise<GpuDevice> {
    const { gpu, runtime } = await getGpu();
    const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
    if (!adapter) throw new NoAdapterError(runtime === 'browser' ? browserNoAdapterHelp : noAdapterHelp);
    const off = options.disable ?? {};
    const want: [keyof GpuFeatures, GPUFeatureName][] = [
      ['shaderF16', 'shader-f16'],
      ['subgroups', 'subgroups' as GPUFeatureName],
      ['timestampQuery', 'timestamp-query'],
    ];
    const requiredFeatures = want.filter(([k, f]) => !off[k] && adapter.features.has(f)).map(([, f]) => f);
    const requiredLimits: Record<string, number> = {};
    if (options.limits !== 'webgpu-defaults') {
      for (const name of limitNames) {
        if (name.startsWith('min')) continue;
        requiredLimits[name] = adapter.limits[name];
      }
    }
    const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
    const features: GpuFeatures = {
      shaderF16: device.features.has('shader-f16'),
      subgroups: device.features.has('subgroups'),
      timestampQuery: device.features.has('timestamp-query'),
      dot4I8Packed: !off.dot4I8Packed && (gpu.wgslLanguageFeatures?.has('packed_4x8_integer_dot_product') ?? false),
    };
    const info = adapter.info;
    return new GpuDevice(gpu, adapter, device, features, readLimits(device), describe(info, runtime), true);
  }

  /**
   * Wrap a device the application already owns (embedding). Features are read from the device;
   * `dot4I8Packed` must be stated by the caller, since only `navigator.gpu` knows it.
   */
  static fromDevice(device: GPUDevice, options: { dot4I8Packed?: boolean; runtime?: 'node' | 'browser' } = {}): GpuDevice {
    const features: GpuFeatures = {
      shaderF16: device.features.has('shader-f16'),
      subgroups: device.features.has('subgroups'),
      timestampQuery: device.features.has('timestamp-query'),
      dot4I8Packed: options.dot4I8Packed ?? false,
    };
    const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    return new GpuDevice(null, null, device, features, readLimits(device), describe(info, options.runtime ?? 'browser'), false);
  }

  /** Throw the first asynchronous error or device loss seen so far, if any. */
  throwIfFailed(): void {
    if (this.lost) throw this.lost;
    const err = this.pendingError;
    if (err) {
      this.pendingError = null;
      throw err;
    }
  }

  /**
   * Run `fn` inside validation and out-of-memory error scopes and throw a typed error that names
   * `context` (a kernel, tensor or step) if WebGPU reports one.
   */
  async scoped<T>(context: string, fn: () => T): Promise<T> {
    this.throwIfFailed();
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    let result: T;
    try {
      result = fn();
    } finally {
      const validation = await this.device.popErrorScope();
      const oom = await this.device.popErrorScope();
      const err = validation ?? oom;
      if (err) throw toTypedError(err, context);
    }
    return result;
  }

  /** Release the device. Required under Node: Dawn keeps the process alive until it is destroyed. */
  destroy(): void {
    this.destroyedHere = true;
    if (this.ownsDevice) this.device.destroy();
  }

  /** The WebGPU instance and adapter this device came from (null for an application's own device). */
  get origin(): { instance: GPU | null; adapter: GPUAdapter | null } {
    return { instance: this.instance, adapter: this.adapterObject };
  }
}

function toTypedError(err: GPUError, context: string): Error {
  if (err instanceof GPUOutOfMemoryError || err.constructor.name === 'GPUOutOfMemoryError') {
    return new GpuOutOfMemoryError(`GPU out of memory in ${context}: ${err.message}`, context);
  }
  return new GpuValidationError(`WebGPU validation error in ${context}: ${err.message}`, context);
}

function readLimits(device: GPUDevice): GpuLimits {
  const out = {} as GpuLimits;
  for (const name of limitNames) out[name] = device.limits[name];
  return out;
}

function describe(info: GPUAdapterInfo | undefined, runtime: 'node' | 'browser'): AdapterDescription {
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    runtime,
  };
}

// Device tab: the adapter, the optional features the engine uses, and the negotiated limits.
import type { GpuFeatures, GpuLimits } from '../../src/index.js';
import { tableOf, type Tab } from './tabs.js';

const featureUse: Record<keyof GpuFeatures, string> = {
  shaderF16: 'f16 storage for weights and activations (shader-f16)',
  subgroups: 'subgroup reductions in softmax, layer norm, losses and reductions',
  timestampQuery: 'per-kernel GPU timing in the profiler (wall time otherwise)',
  dot4I8Packed: 'int8 matmul with dot4I8Packed (WGSL packed_4x8_integer_dot_product)',
};

const limitUse: Record<keyof GpuLimits, string> = {
  maxStorageBufferBindingSize: 'largest tensor one kernel can bind',
  maxBufferSize: 'largest buffer',
  maxComputeWorkgroupStorageSize: 'workgroup memory (attention and matmul tiles)',
  maxComputeInvocationsPerWorkgroup: 'threads per workgroup',
  maxStorageBuffersPerShaderStage: 'tensors one kernel can bind',
  maxComputeWorkgroupsPerDimension: 'grid size before folding into 2-D',
  minStorageBufferOffsetAlignment: 'alignment of tensors inside a buffer',
  minUniformBufferOffsetAlignment: 'alignment of kernel parameters',
};

const bytes = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(0)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(0)} KiB` : `${n}`);

export const deviceTab: Tab = {
  id: 'device',
  title: 'Device',
  mount(panel, { gpu }) {
    const a = gpu.adapter;
    const name = [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' · ') || 'unnamed adapter';
    panel.innerHTML = '<h2>Adapter</h2><p id="adapter-name" class="adapter"></p><h2>Optional features</h2><div id="features"></div><h2>Limits the engine negotiated</h2><div id="limits"></div><details><summary>Everything the device reports</summary><div id="all-features"></div><div id="all-limits"></div></details>';
    panel.querySelector('#adapter-name')!.textContent = `${name} (${a.runtime})`;
    panel.querySelector('#features')!.append(
      tableOf(['feature', 'available', 'used for'], (Object.keys(featureUse) as (keyof GpuFeatures)[]).map((k) => [k, gpu.features[k] ? 'yes' : 'no', featureUse[k]])),
    );
    panel.querySelector('#limits')!.append(
      tableOf(['limit', 'value', 'means'], (Object.keys(limitUse) as (keyof GpuLimits)[]).map((k) => [k, k.endsWith('Size') ? bytes(gpu.limits[k]) : String(gpu.limits[k]), limitUse[k]]), [1]),
    );
    const deviceFeatures = [...gpu.device.features].sort();
    const wgsl = [...(navigator.gpu?.wgslLanguageFeatures ?? [])].sort();
    const all = panel.querySelector('#all-features')!;
    all.append(tableOf(['device features', 'WGSL language features'], Array.from({ length: Math.max(deviceFeatures.length, wgsl.length) }, (_, i) => [deviceFeatures[i] ?? '', wgsl[i] ?? ''])));
    const limits: [string, string][] = [];
    for (const key in gpu.device.limits) limits.push([key, String(gpu.device.limits[key as keyof GPUSupportedLimits])]);
    panel.querySelector('#all-limits')!.append(tableOf(['device limit', 'value'], limits.sort(), [1]));
  },
};

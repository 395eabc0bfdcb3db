import { describe, expect, it } from 'vitest';
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { Gpu } from '../../src/gpu/gpu.js';
import type { ShaderVariant } from '../../src/gpu/kernel.js';
import { shaderSources } from '../../src/shaders.gen.js';
import { useGpu } from '../helpers.js';

// Every entry point of every shader must compile on a device that has only the limits WebGPU
// guarantees everywhere, in each variant the device supports.
const gpu = useGpu({ limits: 'webgpu-defaults' });

/**
 * Variants a shader can be built in on this device: plain; f16 storage where it declares
 * `alias S`; and each optional extension or language feature it has `// #if <name>` blocks for.
 */
function variantsOf(source: string, g: Gpu): { name: string; variant?: ShaderVariant }[] {
  // Extensions are turned on with `enable`, WGSL language features with `requires`.
  const supported: Record<string, { has: boolean; variant: ShaderVariant }> = {
    f16: { has: g.features.shaderF16, variant: { enable: ['f16'] } },
    subgroups: { has: g.features.subgroups, variant: { enable: ['subgroups'] } },
    packed_4x8_integer_dot_product: { has: g.features.dot4I8Packed, variant: { requires: ['packed_4x8_integer_dot_product'] } },
  };
  const out: { name: string; variant?: ShaderVariant }[] = [{ name: 'plain' }];
  if (/^alias S\s*=/m.test(source) && supported.f16!.has) out.push({ name: 'f16', variant: { enable: ['f16'], aliases: { S: 'f16' } } });
  for (const ext of new Set([...source.matchAll(/^\/\/ #if (\w+)$/gm)].map((m) => m[1]!))) {
    const feature = supported[ext];
    if (!feature) throw new Error(`// #if ${ext}: unknown feature; the test must learn how to enable it`);
    if (feature.has) out.push({ name: ext, variant: feature.variant });
  }
  return out;
}

describe('kernels fit the WebGPU default limits', () => {
  it('the device really has the default limits', () => {
    const g = gpu();
    expect(g.limits.maxComputeInvocationsPerWorkgroup).toBe(256);
    expect(g.limits.maxComputeWorkgroupStorageSize).toBe(16384);
    expect(g.limits.maxStorageBuffersPerShaderStage).toBe(8);
  });

  for (const [shader, source] of Object.entries(shaderSources)) {
    it(`${shader}.wgsl: every entry point compiles`, async () => {
      const g = gpu();
      // Entry points that need an optional feature declare it with `enable`; those compile only
      // where the device has it.
      const needs = [...source.matchAll(/^enable\s+(\w+)\s*;/gm)].map((m) => m[1]);
      if (needs.includes('f16') && !g.features.shaderF16) return;
      if (needs.includes('subgroups') && !g.features.subgroups) return;
      const entries = new WgslReflect(source).entry.compute.map((f) => f.name);
      expect(entries.length).toBeGreaterThan(0);
      for (const { name, variant } of variantsOf(source, g)) {
        for (const entry of entries) {
          await g.gpuDevice.scoped(`${shader}.${entry} (${name})`, () => g.kernels.get({ shader, entry, ...(variant ? { variant } : {}) }));
        }
      }
    });
  }
});

import { describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/gpu.js';
import { matmul } from '../../src/kernels/matmul.js';
import { DeviceLostError } from '../../src/errors.js';

describe('device acquisition', () => {
  it('reports features and limits within what WebGPU allows', async () => {
    const g = await Gpu.create();
    try {
      expect(g.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
      expect(g.limits.maxComputeWorkgroupStorageSize).toBeGreaterThanOrEqual(16384);
      expect(g.limits.maxStorageBuffersPerShaderStage).toBeGreaterThanOrEqual(8);
      expect(['node', 'browser']).toContain(g.adapter.runtime);
      expect(typeof g.features.shaderF16).toBe('boolean');
    } finally {
      g.destroy();
    }
  });

  it('disabling a feature is honoured, so fallbacks can be tested', async () => {
    const g = await Gpu.create({ disable: { shaderF16: true, subgroups: true, dot4I8Packed: true } });
    try {
      expect(g.features).toMatchObject({ shaderF16: false, subgroups: false, dot4I8Packed: false });
      expect(g.device.features.has('shader-f16')).toBe(false);
    } finally {
      g.destroy();
    }
  });

  // Regression: the Dawn GPU instance used to be collectable while its device lived, which
  // crashed the process during slow first-time shader compiles. Node only: a browser holds
  // navigator.gpu itself, and pages cannot force a collection.
  it.runIf(typeof window === 'undefined')('survives garbage collection between device creation and first compile', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc, 'tests run with --expose-gc (vitest.config.ts)').toBeTypeOf('function');
    const g = await Gpu.create();
    try {
      for (let i = 0; i < 3; i++) {
        gc!();
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(g.gpuDevice.origin.instance).not.toBeNull();
      const a = g.upload([1, 2, 3, 4, 5, 6], [2, 3]);
      const b = g.upload([1, 0, 0, 1, 1, 1], [3, 2]);
      const c = g.empty([2, 2]);
      await g.run((rec) => matmul(rec, a, b, c));
      expect([...(await g.readF32(c))]).toEqual([4, 5, 10, 11]);
    } finally {
      g.destroy();
    }
  });

  it('reports a device lost behind its back as DeviceLostError on the next submit', async () => {
    const g = await Gpu.create();
    const a = g.upload([1, 2, 3, 4], [2, 2]);
    const c = g.empty([2, 2]);
    g.device.destroy(); // as a driver reset or an embedding application would
    await g.device.lost;
    await expect(g.run((rec) => matmul(rec, a, a, c))).rejects.toThrow(DeviceLostError);
    g.destroy();
  });
});

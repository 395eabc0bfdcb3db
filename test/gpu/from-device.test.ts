import { describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/gpu.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { crossEntropy } from '../../src/kernels/losses.js';
import { useGpu } from '../helpers.js';
import { crossEntropyRef } from '../ref/losses.js';

// The application's device: a Gpu of its own stands in for whatever made it.
const appGpu = useGpu();

async function validationErrorOf(device: GPUDevice, fn: () => void): Promise<string | null> {
  device.pushErrorScope('validation');
  fn();
  return (await device.popErrorScope())?.message ?? null;
}

describe('Gpu.fromDevice (embedding)', () => {
  it('runs kernels on the application\'s buffers; destroy() frees only what the engine allocated', async () => {
    const device = appGpu().device;
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const logitsData = new Float32Array([1, 2, 0.5, -1, 3, 0]);
    const appLogits = device.createBuffer({ label: 'app logits', size: logitsData.byteLength, usage });
    device.queue.writeBuffer(appLogits, 0, logitsData);
    const appTargets = device.createBuffer({ label: 'app targets', size: 8, usage });
    device.queue.writeBuffer(appTargets, 0, new Int32Array([2, 0]));
    const view = (buffer: GPUBuffer, dtype: Tensor['dtype'], shape: number[]): Tensor => ({ buffer, offset: 0, dtype, shape, label: buffer.label });

    const gpu = Gpu.fromDevice(device);
    // The engine's own tensor, still in use when destroy() comes, and a loss without a gradient
    // (its unused binding gets one of the engine's placeholder buffers).
    const rowLoss = gpu.empty([2], 'f32', 'row loss');
    await gpu.run((rec) => crossEntropy(rec, view(appLogits, 'f32', [2, 3]), view(appTargets, 'i32', [2]), rowLoss));
    const ref = crossEntropyRef(logitsData, [2, 0], 2, 3);
    const got = await gpu.readF32(rowLoss);
    expect(Math.max(...got.map((v, i) => Math.abs(v - ref.rowLoss[i]!)))).toBeLessThan(1e-5);

    gpu.destroy();
    expect(gpu.pool.allocatedBytes).toBe(0);
    // The engine's buffer is gone; the application's buffers and device still work.
    expect(await validationErrorOf(device, () => device.queue.writeBuffer(rowLoss.buffer, 0, new Float32Array(2)))).toMatch(/destroyed/i);
    expect(await validationErrorOf(device, () => device.queue.writeBuffer(appLogits, 0, logitsData))).toBeNull();
    const again = Gpu.fromDevice(device);
    const out = again.empty([2], 'f32', 'row loss again');
    await again.run((rec) => crossEntropy(rec, view(appLogits, 'f32', [2, 3]), view(appTargets, 'i32', [2]), out));
    expect(Array.from(await again.readF32(out))).toEqual(Array.from(got));
    again.destroy();
    appLogits.destroy();
    appTargets.destroy();
  });
});

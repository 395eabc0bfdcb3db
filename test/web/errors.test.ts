import { describe, expect, it } from 'vitest';
import { DeviceLostError, GpuOutOfMemoryError, KernelBindingError, NoAdapterError } from '../../src/errors.js';
import { describeError } from '../../web/src/errors.js';

describe('demo page error messages', () => {
  it('out of GPU memory: says so, keeps the engine message naming the tensor, suggests what to do', () => {
    const err = new GpuOutOfMemoryError('GPU out of memory in matmul (logits): tensor "logits" needs 92 MB', 'matmul');
    const r = describeError(err, 'running matmul: logits');
    expect(r.title).toBe('Out of memory while running matmul: logits');
    expect(r.detail).toBe(err.message);
    expect(r.hint).toMatch(/fewer or smaller cases/);
  });

  it('host allocation failure reads as out of memory too', () => {
    expect(describeError(new RangeError('Array buffer allocation failed')).title).toBe('Out of memory');
  });

  it('no WebGPU, device lost, engine bugs and foreign errors each get their own title', () => {
    expect(describeError(new NoAdapterError('navigator.gpu is undefined')).title).toBe('WebGPU is not available');
    expect(describeError(new DeviceLostError('lost', 'unknown')).hint).toMatch(/Reload/);
    expect(describeError(new KernelBindingError('binding x'), 'profiling').title).toBe('Engine error while profiling');
    expect(describeError(new TypeError('x is not a function'))).toEqual({ title: 'Unexpected error', detail: 'TypeError: x is not a function' });
    expect(describeError('plain string')).toEqual({ title: 'Unexpected error', detail: 'plain string' });
  });
});

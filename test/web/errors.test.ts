import { describe, expect, it } from 'vitest';
import { AudioDecodeError, CheckpointError, ConfigError, DeviceLostError, GpuOutOfMemoryError, KernelBindingError, NoAdapterError } from '../../src/errors.js';
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

  it('unreadable audio and unloadable models say which, keep the message naming the file, and say what is accepted', () => {
    const audio = describeError(new AudioDecodeError('notes.wav: not a recognised audio format', 'notes.wav'), 'decoding notes.wav');
    expect(audio).toEqual({
      title: 'Could not read the audio while decoding notes.wav',
      detail: 'notes.wav: not a recognised audio format',
      hint: expect.stringContaining('WAV, AIFF, FLAC, MP3 and Ogg'),
    });
    const model = describeError(new CheckpointError('model.safetensors: not found', 'model.safetensors'), 'loading config.json');
    expect(model.title).toBe('Could not load the model while loading config.json');
    expect(model.hint).toContain('config.json with its model.safetensors');
    expect(describeError(new ConfigError('config.json: missing field "d_model"')).title).toBe('Could not load the model');
  });
});

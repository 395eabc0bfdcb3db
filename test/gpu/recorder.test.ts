import { describe, expect, it } from 'vitest';
import { Gpu, f16BitsToNumber, numberToF16Bits } from '../../src/gpu/gpu.js';
import { Profiler } from '../../src/gpu/profiler.js';
import { GpuOutOfMemoryError, GpuValidationError } from '../../src/errors.js';
import { matmul } from '../../src/kernels/matmul.js';
import { expectClose, randomArray, useGpu } from '../helpers.js';
import { matmulRef } from '../ref/matmul.js';

const gpu = useGpu();

describe('Recorder', () => {
  it('orders dependent dispatches inside one submit', async () => {
    const g = gpu();
    const n = 19;
    const x = randomArray(n * n, 1);
    const w = randomArray(n * n, 2);
    const a = g.upload(x, [n, n]);
    const b = g.upload(w, [n, n]);
    const c = g.empty([n, n]);
    const d = g.empty([n, n]);
    const e = g.empty([n, n]);
    // c = a@b, d = c@b, e = d@b: each reads what the previous dispatch wrote.
    await g.run((rec) => {
      matmul(rec, a, b, c);
      matmul(rec, c, b, d);
      matmul(rec, d, b, e);
    });
    const shape = { batch: 1, M: n, N: n, K: n, batchA: false, batchB: false };
    const ref = matmulRef(matmulRef(matmulRef(x, w, shape), w, shape), w, shape);
    expectClose(await g.readF32(e), ref, { atol: 1e-4, rtol: 1e-4 });
  });

  it('copies and zeroes tensors in order with dispatches', async () => {
    const g = gpu();
    const src = g.upload([1, 2, 3, 4], [2, 2]);
    const dst = g.upload([9, 9, 9, 9], [2, 2]);
    const z = g.upload([5, 5, 5], [3]);
    await g.run((rec) => {
      rec.copy(src, dst);
      rec.zero(z);
    });
    expect([...(await g.readF32(dst))]).toEqual([1, 2, 3, 4]);
    expect([...(await g.readF32(z))]).toEqual([0, 0, 0]);
  });

  it('surfaces a WebGPU validation error at submit, naming the kernel', async () => {
    const g = gpu();
    const a = g.upload([1, 2, 3, 4], [2, 2], 'f32', 'a');
    const gone = g.empty([2, 2], 'f32', 'destroyed');
    gone.buffer.destroy();
    const rec = g.record();
    matmul(rec, a, a, gone);
    await expect(rec.submit()).rejects.toThrow(GpuValidationError);
    // The device stays usable afterwards.
    const ok = g.empty([2, 2]);
    await g.run((r) => matmul(r, a, a, ok));
    expect([...(await g.readF32(ok))]).toEqual([7, 10, 15, 22]);
  });

  it('names the tensor when it exceeds what one binding may hold', () => {
    const g = gpu();
    const tooMany = Math.floor(g.limits.maxStorageBufferBindingSize / 4) + 1;
    expect(() => g.empty([tooMany], 'f32', 'huge logits')).toThrow(GpuOutOfMemoryError);
    expect(() => g.empty([tooMany], 'f32', 'huge logits')).toThrow(/"huge logits"/);
  });

  it('round-trips f16 tensors through upload and read', async () => {
    const g = gpu();
    const values = [0, 1, -2.5, 65504, 6.103515625e-5, 5.960464477539063e-8];
    const t = g.upload(values, [values.length], 'f16');
    expect([...(await g.readF32(t))]).toEqual(values);
  });
});

describe('f16 conversion', () => {
  it('rounds to nearest even and handles subnormals, overflow and NaN', () => {
    expect(numberToF16Bits(1)).toBe(0x3c00);
    expect(numberToF16Bits(-2)).toBe(0xc000);
    expect(numberToF16Bits(65504)).toBe(0x7bff);
    expect(numberToF16Bits(1e6)).toBe(0x7c00);
    expect(numberToF16Bits(2 ** -24)).toBe(0x0001);
    expect(numberToF16Bits(2 ** -26)).toBe(0x0000);
    // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
    expect(numberToF16Bits(1 + 2 ** -11)).toBe(0x3c00);
    expect(numberToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(Number.isNaN(f16BitsToNumber(numberToF16Bits(NaN)))).toBe(true);
    for (let h = 0; h < 0x7c00; h += 37) expect(numberToF16Bits(f16BitsToNumber(h))).toBe(h);
  });
});

describe('Profiler', () => {
  it('times each dispatch with timestamp queries and summarises per kernel', async (ctx) => {
    const g = gpu();
    if (!g.features.timestampQuery) ctx.skip();
    const a = g.upload(randomArray(64 * 64, 3), [64, 64]);
    const c = g.empty([64, 64]);
    const profiler = new Profiler();
    g.profiler = profiler;
    try {
      await g.run((rec) => {
        matmul(rec, a, a, c, { label: 'first' });
        matmul(rec, a, a, c, { label: 'second' });
        matmul(rec, a, a, c, { transB: true, label: 'third' });
      });
    } finally {
      g.profiler = null;
    }
    expect(profiler.events.map((e) => e.label)).toEqual(['first', 'second', 'third']);
    expect(profiler.events.every((e) => e.clock === 'gpu' && e.durationNs > 0)).toBe(true);
    // Dispatches run in order on one queue: each starts no earlier than the previous one.
    for (let i = 1; i < 3; i++) expect(profiler.events[i]!.startNs).toBeGreaterThanOrEqual(profiler.events[i - 1]!.startNs);
    const summary = profiler.summary();
    const plain = summary.find((s) => s.kernel.includes('TRANS_B=0'))!;
    expect(plain.calls).toBe(2);
    expect(plain.gflops).toBeCloseTo((2 * 2 * 64 ** 3) / (plain.totalMs * 1e6), 6);
    expect(profiler.table()).toMatch(/^kernel\s+calls\s+total ms/);
    const trace = profiler.toChromeTrace();
    const spans = trace.traceEvents.filter((e) => (e as { ph: string }).ph === 'X') as { name: string; ts: number; dur: number }[];
    expect(spans.map((s) => s.name)).toEqual(['first', 'second', 'third']);
    expect(spans[0]!.ts).toBe(0);
    expect(JSON.parse(JSON.stringify(trace))).toEqual(trace);
  });

  it('falls back to wall time without timestamp-query', async () => {
    const g = await Gpu.create({ disable: { timestampQuery: true } });
    try {
      expect(g.features.timestampQuery).toBe(false);
      const a = g.upload(randomArray(32 * 32, 4), [32, 32]);
      const c = g.empty([32, 32]);
      g.profiler = new Profiler();
      await g.run((rec) => {
        matmul(rec, a, a, c);
        matmul(rec, a, a, c);
      });
      const events = g.profiler.events;
      expect(events).toHaveLength(2);
      expect(events.every((e) => e.clock === 'cpu' && e.durationNs > 0)).toBe(true);
      expect(events[1]!.startNs).toBe(events[0]!.durationNs);
    } finally {
      g.destroy();
    }
  });
});

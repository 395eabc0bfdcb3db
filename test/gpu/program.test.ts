import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.js';
import { Profiler } from '../../src/gpu/profiler.js';
import { matmul } from '../../src/kernels/matmul.js';
import { axpy } from '../../src/kernels/activation.js';
import { expectClose, randomArray, useGpu } from '../helpers.js';
import { matmulRef } from '../ref/matmul.js';
import { countDeviceObjects } from '../graph/counting.js';

const gpu = useGpu();

describe('Program (record once, replay)', () => {
  it('replays a recorded sequence with fresh input data and allocates nothing on replay', async () => {
    const g = gpu();
    const n = 13;
    const a = g.upload(randomArray(n * n, 1), [n, n], 'f32', 'a');
    const b = g.upload(randomArray(n * n, 2), [n, n], 'f32', 'b');
    const c = g.empty([n, n], 'f32', 'c');
    const d = g.empty([n, n], 'f32', 'd');
    const program = await g.compile((rec) => {
      matmul(rec, a, b, c);
      rec.copy(c, d);
      axpy(rec, d, a, 0.5);
    });
    expect(program.dispatchCount).toBe(2);
    expect(program.commandCount).toBe(3);
    const shape = { batch: 1, M: n, N: n, K: n, batchA: false, batchB: false };
    for (const seed of [3, 4]) {
      const x = randomArray(n * n, seed);
      g.write(a, x);
      const counts = countDeviceObjects(g.device);
      try {
        await program.run();
      } finally {
        counts.restore();
      }
      // Nothing is created by a replay: no buffers, bind groups, pipelines or encoders beyond one.
      expect(counts.buffers).toBe(0);
      expect(counts.bindGroups).toBe(0);
      expect(counts.encoders).toBe(1);
      const ref = matmulRef(x, randomArray(n * n, 2), shape);
      expectClose(await g.readF32(d), ref.map((v, i) => v + 0.5 * x[i]!), { atol: 1e-5, rtol: 1e-5 }, `replay with seed ${seed}`);
    }
    program.destroy();
    g.free(a, b, c, d);
  });

  it('rewrites uniform values of recorded dispatches and rejects other changes', async () => {
    const g = gpu();
    const y = g.upload([1, 2, 3, 4], [4], 'f32', 'y');
    const x = g.upload([1, 1, 1, 1], [4], 'f32', 'x');
    const other = g.upload([0, 0, 0, 0], [4], 'f32', 'other');
    const program = await g.compile((rec) => axpy(rec, y, x, 1));
    await program.run();
    expect([...(await g.readF32(y))]).toEqual([2, 3, 4, 5]);
    program.rewrite(0, (rec) => axpy(rec, y, x, 10));
    await program.run();
    expect([...(await g.readF32(y))]).toEqual([12, 13, 14, 15]);
    expect(() => program.rewrite(0, (rec) => axpy(rec, other, x, 1))).toThrow(ShapeError);
    expect(() => program.rewrite(0, (rec) => rec.zero(y))).toThrow(/command 0 is a dispatch/);
    program.destroy();
    g.free(x, y, other);
  });

  it('times every dispatch of a replay into the profiler', async () => {
    const g = gpu();
    const a = g.upload(randomArray(16 * 16, 5), [16, 16]);
    const c = g.empty([16, 16]);
    const program = await g.compile((rec) => {
      matmul(rec, a, a, c, { label: 'first' });
      matmul(rec, a, a, c, { label: 'second' });
    });
    const profiler = new Profiler();
    await program.run(profiler);
    await program.run(profiler);
    expect(profiler.events.map((e) => e.label)).toEqual(['first', 'second', 'first', 'second']);
    expect(profiler.events.every((e) => e.durationNs >= 0)).toBe(true);
    program.destroy();
    g.free(a, c);
  });
});

import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.js';
import { copyRows, gatherSequences, validateParents } from '../../src/kernels/kvcache.js';
import { expectClose, randomArray, useGpu } from '../helpers.js';
import { copyRowsRef, gatherSequencesRef } from '../ref/kvcache.js';

const gpu = useGpu();
// Row moves copy f32 values bit for bit.
const exact = { atol: 0, rtol: 0 };

describe('copyRows', () => {
  it('writes rows at a position, leaves the other rows alone (odd width, several sequences)', async () => {
    const g = gpu();
    const [S, Ls, Ld, W] = [3, 4, 9, 67];
    const srcHost = randomArray(S * Ls * W, 1);
    const dstHost = randomArray(S * Ld * W, 2);
    for (const [count, srcStart, dstStart] of [[1, 3, 5], [4, 0, 0], [2, 1, 7], [0, 0, 9]] as const) {
      const dst = g.upload(dstHost, [S, Ld, W], 'f32', 'cache');
      await g.run((rec) => copyRows(rec, g.upload(srcHost, [S, Ls, W], 'f32', 'new rows'), dst, { count, srcStart, dstStart }));
      expectClose(await g.readF32(dst), copyRowsRef(srcHost, dstHost, { S, Ls, Ld, W }, count, srcStart, dstStart), exact, `count ${count} from ${srcStart} to ${dstStart}`);
    }
  });

  it('a replayed Program moves rows to a new position after rewriting only the uniform', async () => {
    const g = gpu();
    const [S, L, W] = [2, 6, 5];
    const srcHost = randomArray(S * W, 3);
    const src = g.upload(srcHost, [S, 1, W], 'f32', 'step rows');
    const dst = g.upload(new Float32Array(S * L * W), [S, L, W], 'f32', 'cache');
    const record = (position: number) => (rec: Parameters<typeof copyRows>[0]) => copyRows(rec, src, dst, { count: 1, dstStart: position });
    const program = await g.compile(record(0));
    let expected: Float64Array = new Float64Array(S * L * W);
    for (const position of [0, 3, 5]) {
      program.rewrite(0, record(position));
      await program.run();
      expected = copyRowsRef(srcHost, expected, { S, Ls: 1, Ld: L, W }, 1, 0, position);
    }
    expectClose(await g.readF32(dst), expected, exact);
    program.destroy();
  });

  it('rejects rows outside either tensor and mismatched shapes, naming the tensor', () => {
    const g = gpu();
    const src = g.empty([2, 3, 4], 'f32', 'k new');
    const dst = g.empty([2, 5, 4], 'f32', 'k cache');
    const rec = g.record();
    expect(() => copyRows(rec, src, dst, { count: 1, dstStart: 5 })).toThrow(/rows \[5, 6\) are outside the 5 rows of "k cache"/);
    expect(() => copyRows(rec, src, dst, { count: 2, srcStart: 2 })).toThrow(/outside the 3 rows of "k new"/);
    expect(() => copyRows(rec, src, g.empty([3, 5, 4], 'f32', 'wrong'), { count: 1 })).toThrow(ShapeError);
    expect(() => copyRows(rec, src, dst, { count: -1 })).toThrow(/count must be a non-negative integer/);
  });
});

describe('gatherSequences', () => {
  it('reorders the sequences of every layer, repeated and dropped parents, only the rows in use', async () => {
    const g = gpu();
    const [G, S, R, W] = [3, 4, 5, 33];
    const srcHost = randomArray(G * S * R * W, 4);
    const dstHost = randomArray(G * S * R * W, 5);
    for (const [parents, rows] of [[[2, 2, 0, 3], 3], [[3, 2, 1, 0], 5], [[1, 1, 1, 1], 1]] as const) {
      const dst = g.upload(dstHost, [G, S, R, W], 'f32', 'scratch');
      await g.run((rec) => gatherSequences(rec, g.upload(srcHost, [G, S, R, W], 'f32', 'cache'), dst, g.upload([...parents], [S], 'u32', 'parents'), { rows }));
      expectClose(await g.readF32(dst), gatherSequencesRef(srcHost, dstHost, { G, S, R, W }, parents, rows), exact, `parents ${parents}`);
    }
  });

  it('a recorded reorder replays with a rewritten row count', async () => {
    const g = gpu();
    const [G, S, R, W] = [2, 3, 4, 6];
    const srcHost = randomArray(G * S * R * W, 6);
    const src = g.upload(srcHost, [G, S, R, W], 'f32', 'cache');
    const dst = g.upload(new Float32Array(G * S * R * W), [G, S, R, W], 'f32', 'scratch');
    const parents = g.upload([1, 2, 0], [S], 'u32', 'parents');
    const record = (rows: number) => (rec: Parameters<typeof gatherSequences>[0]) => gatherSequences(rec, src, dst, parents, { rows });
    const program = await g.compile(record(1));
    await program.run();
    expectClose(await g.readF32(dst), gatherSequencesRef(srcHost, new Float32Array(G * S * R * W), { G, S, R, W }, [1, 2, 0], 1), exact, '1 row');
    program.rewrite(0, record(3));
    await program.run();
    expectClose(await g.readF32(dst), gatherSequencesRef(srcHost, new Float32Array(G * S * R * W), { G, S, R, W }, [1, 2, 0], 3), exact, '3 rows');
    program.destroy();
  });

  it('rejects bad parents on the host and wrong dtypes', () => {
    const g = gpu();
    expect(() => validateParents([0, 2], 2)).toThrow(/parent 2 of sequence 1 is outside \[0, 2\)/);
    expect(() => validateParents([0], 2)).toThrow(/1 parents for 2 sequences/);
    expect(() => validateParents([0, 1.5], 2)).toThrow(ShapeError);
    const t = g.empty([1, 2, 3, 4], 'f32', 'cache');
    const rec = g.record();
    expect(() => gatherSequences(rec, t, g.empty([1, 2, 3, 4], 'f32', 'scratch'), g.empty([2], 'i32', 'parents'))).toThrow(/"parents" has dtype i32/);
    expect(() => gatherSequences(rec, t, g.empty([1, 2, 3, 4], 'f32', 'scratch'), g.empty([2], 'u32', 'parents'), { rows: 4 })).toThrow(/rows must be an integer in \[0, 3\]/);
  });
});

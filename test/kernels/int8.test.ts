import { afterAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { specializeSource } from '../../src/gpu/kernel.js';
import { int8DotDescription, int8DotPath, int8Matmul, int8MatmulSpec, packInt8Weights, packedWords, quantizeRows, unpackInt8, type Int8Matrix } from '../../src/kernels/int8.js';
import { matmul, quantMax, rowScales } from '../../src/kernels/matmul.js';
import { shaderSources } from '../../src/shaders.gen.js';
import { expectClose, maxAbsDiff, randomArray, useGpu } from '../helpers.js';
import { fakeQuantLinearRef, quantizeRowsRef } from '../ref/quant.js';

// The device's own choice (dot4I8Packed where the WGSL language feature exists) and a device
// with the feature switched off, which must run the core-WGSL fallback.
const deviceGpu = useGpu();
// dot4I8Packed wherever the device has it (lavapipe's default is the core-WGSL path, measured
// faster there), so that comparisons with fallbackGpu exercise both dot products.
const gpu = () => Object.assign(deviceGpu(), { int8Dot: 'dot4I8Packed' as const });
const fallbackGpu = useGpu({ disable: { dot4I8Packed: true } });

/** Largest error seen per check, printed at the end for the report. */
const measured: Record<string, number> = {};
function note(what: string, err: number): void {
  measured[what] = Math.max(measured[what] ?? 0, err);
}
afterAll(() => console.log('int8 measured max errors:', measured));

/** GPU row quantization of a host [rows, cols] matrix; returns the tensors and the host copies. */
async function quantizeOnGpu(g: Gpu, host: Float32Array, rows: number, cols: number, bits: number, label: string) {
  const x = g.upload(host, [rows, cols], 'f32', label);
  const q: Int8Matrix = { packed: g.empty([rows, packedWords(cols)], 'u32', `${label} packed`), scales: g.empty([rows], 'f32', `${label} scales`), cols };
  await g.run((rec) => quantizeRows(rec, x, q, { bits, label }));
  const packed = (await g.read(q.packed)) as Uint32Array;
  const scales = await g.readF32(q.scales);
  g.free(x);
  return { q, packed, scales };
}

/** Bit-exact equality of two arrays, naming the first differing element. */
function expectSameBits(actual: Uint32Array | Float32Array, expected: Uint32Array | Float32Array, what: string): void {
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  expect(a.length, `${what}: length`).toBe(e.length);
  const i = a.findIndex((v, j) => v !== e[j]);
  if (i >= 0) throw new Error(`${what}: element ${i} is ${actual[i]} (0x${a[i]!.toString(16)}), expected ${expected[i]} (0x${e[i]!.toString(16)})`);
}

describe('host packing', () => {
  it('layout: element k+0 in the low byte, two-complement bytes, K padded with zeros', () => {
    // Row max 127 gives scale 1, so q = round(w); 2.5 and -2.5 are ties (round half to even).
    const w = Float32Array.from([127, -1, 2.5, -127, 5, -2.5]);
    const { packed, scales } = packInt8Weights(w, 1, 6);
    expect(Array.from(scales)).toEqual([1]);
    expect(Array.from(packed)).toEqual([0x81_02_ff_7f, 0x0000_fe_05]);
  });

  for (const [bits, N, K] of [
    [8, 13, 30],
    [4, 13, 30],
    [8, 70, 129],
    [4, 5, 1],
  ] as const) {
    it(`round trip, ${bits} bits, [${N}, ${K}] with an all-zero channel`, () => {
      const qmax = quantMax(bits);
      const w = randomArray(N * K, 100 + K, 0.3);
      w.fill(0, 2 * K, 3 * K);
      const { packed, scales } = packInt8Weights(w, N, K, bits);
      expect(packed.length).toBe(N * packedWords(K));
      const ref = quantizeRowsRef(w, N, K, qmax);
      expectSameBits(scales, ref.scales, 'scales');
      const q = unpackInt8(packed, N, K);
      expect(Array.from(q)).toEqual(Array.from(ref.q));
      expect(Math.max(...Array.from(q, Math.abs))).toBeLessThanOrEqual(qmax);
      expect(scales[2]).toBe(1);
      expect(Array.from(q.subarray(2 * K, 3 * K)).every((v) => v === 0)).toBe(true);
      // Dequantized weights are within half a step of the originals (no clamping happens with
      // scale = max / qmax), and padding lanes are zero.
      for (let i = 0; i < N * K; i++) expect(Math.abs(q[i]! * scales[Math.floor(i / K)]! - w[i]!)).toBeLessThanOrEqual(scales[Math.floor(i / K)]! * 0.5 * (1 + 1e-6));
      if (K % 4) for (let n = 0; n < N; n++) expect(packed[n * packedWords(K) + packedWords(K) - 1]! >>> (8 * (K % 4))).toBe(0);
    });
  }

  it('given scales are used as they are; values beyond qmax clamp; a scale <= 0 zeroes its channel', () => {
    const [N, K] = [3, 9];
    const w = randomArray(N * K, 7, 2);
    const given = Float32Array.from([0.01, 0, 0.005]);
    const { packed, scales } = packInt8Weights(w, N, K, 8, given);
    expectSameBits(scales, given, 'scales');
    const q = unpackInt8(packed, N, K);
    expect(Array.from(q)).toEqual(Array.from(quantizeRowsRef(w, N, K, 127, given).q));
    expect(q.filter((v) => Math.abs(v) === 127).length).toBeGreaterThan(0);
    expect(Array.from(q.subarray(K, 2 * K)).every((v) => v === 0)).toBe(true);
  });

  it('rejects inconsistent sizes', () => {
    expect(() => packInt8Weights(new Float32Array(10), 3, 4)).toThrow(ShapeError);
    expect(() => packInt8Weights(new Float32Array(12), 3, 4, 8, new Float32Array(2))).toThrow(ShapeError);
    expect(() => unpackInt8(new Uint32Array(5), 3, 4)).toThrow(ShapeError);
  });
});

describe('GPU quantize-and-pack equals the host packing bit for bit', () => {
  for (const [bits, rows, cols] of [
    [8, 13, 30],
    [4, 70, 129],
    [8, 3, 1],
  ] as const) {
    it(`${bits} bits, [${rows}, ${cols}], with an all-zero row`, async () => {
      const g = gpu();
      const w = randomArray(rows * cols, 200 + cols, 0.05);
      w.fill(0, 0, cols);
      const host = packInt8Weights(w, rows, cols, bits);
      const dev = await quantizeOnGpu(g, w, rows, cols, bits, 'w');
      expectSameBits(dev.scales, host.scales, 'scales');
      expectSameBits(dev.packed, host.packed, 'packed');
      g.free(dev.q.packed, dev.q.scales);
    });
  }

  it('with given scales (learned scales at export), including one <= 0', async () => {
    const g = gpu();
    const [rows, cols] = [9, 21];
    const w = randomArray(rows * cols, 300, 1);
    const given = Float32Array.from(randomArray(rows, 301), (u, r) => (r === 4 ? -0.5 : (1.2 + u) / 127));
    const host = packInt8Weights(w, rows, cols, 8, given);
    const q: Int8Matrix = { packed: g.empty([rows, packedWords(cols)], 'u32', 'packed'), scales: g.upload(given, [rows], 'f32', 'given'), cols };
    await g.run((rec) => quantizeRows(rec, g.upload(w, [rows, cols], 'f32', 'w'), q, { givenScales: true }));
    expectSameBits((await g.read(q.packed)) as Uint32Array, host.packed, 'packed');
    expectSameBits(await g.readF32(q.scales), given, 'scales left unchanged');
  });
});

describe('int8 matmul: integer sum, then scales, bias, GELU', () => {
  const cases: { name: string; M: number; N: number; K: number; bits: number; bias?: boolean; gelu?: boolean; zeros?: boolean }[] = [
    { name: '7x13x30 (K not a multiple of 4), int8, bias', M: 7, N: 13, K: 30, bits: 8, bias: true },
    { name: '37x70x129, int8, no bias, zero token row and zero channel', M: 37, N: 70, K: 129, bits: 8, zeros: true },
    { name: '37x70x129, int4 weights, bias + GELU', M: 37, N: 70, K: 129, bits: 4, bias: true, gelu: true },
    { name: '9x65x4, int4 weights, GELU, zero row and channel', M: 9, N: 65, K: 4, bits: 4, gelu: true, zeros: true },
    // M <= MATMUL_ROWS_MAX_M: the one-row kernel of decoding steps.
    { name: '1x70x129 (a decoding step), int8, bias + GELU', M: 1, N: 70, K: 129, bits: 8, bias: true, gelu: true },
    { name: '2x13x30, int4 weights, bias', M: 2, N: 13, K: 30, bits: 4, bias: true },
  ];
  for (const c of cases) {
    it(`${c.name}: equals the float64 fake-quant forward; dot4I8Packed and fallback identical`, async () => {
      const { M, N, K, bits } = c;
      const xHost = randomArray(M * K, 400 + K, 2);
      const wHost = randomArray(N * K, 500 + K, 0.1);
      const biasHost = randomArray(N, 600 + N, 0.5);
      if (c.zeros) {
        xHost.fill(0, 3 * K, 4 * K);
        wHost.fill(0, 5 * K, 6 * K);
      }
      const xRef = quantizeRowsRef(xHost, M, K, 127);
      const wRef = quantizeRowsRef(wHost, N, K, quantMax(bits));
      const ref = fakeQuantLinearRef(xRef.q, xRef.scales, wRef.q, wRef.scales, { M, N, K }, { bias: c.bias ? biasHost : undefined, gelu: c.gelu });

      const outputs: Float32Array[] = [];
      for (const g of [gpu(), fallbackGpu()]) {
        const x = await quantizeOnGpu(g, xHost, M, K, 8, 'x');
        expectSameBits(x.scales, xRef.scales, 'token scales');
        expect(Array.from(unpackInt8(x.packed, M, K))).toEqual(Array.from(xRef.q));
        const host = packInt8Weights(wHost, N, K, bits);
        const w: Int8Matrix = { packed: g.upload(host.packed, [N, packedWords(K)], 'u32', 'w packed'), scales: g.upload(host.scales, [N], 'f32', 'w scales'), cols: K };
        const bias = c.bias ? g.upload(biasHost, [N], 'f32', 'bias') : undefined;
        const out = g.empty([M, N], 'f32', 'y');
        await g.run((rec) => int8Matmul(rec, x.q, w, out, { bias, gelu: c.gelu }));
        outputs.push(await g.readF32(out));
        g.free(x.q.packed, x.q.scales, w.packed, w.scales, out, ...(bias ? [bias] : []));
      }
      const [y, yFallback] = outputs as [Float32Array, Float32Array];
      expect(y.every(Number.isFinite)).toBe(true);
      if (c.zeros) {
        // (The zero cases have no bias.) A zero token row and a zero channel give exact zeros.
        for (let n = 0; n < N; n++) expect(y[3 * N + n]).toBe(0);
        for (let m = 0; m < M; m++) expect(y[m * N + 5]).toBe(0);
      }
      // The integer sum is exact and converts to f32 exactly while |sum| < 2^24; what remains is
      // f32 rounding of the sum (beyond 2^24), of a * s, of the product and of the bias add:
      // 4 half-ulps, < 2.4e-7 of |a s sum| + |bias|. GELU adds the erf approximation
      // (|err| < 1.2e-7, times |v| / 2) and a few ulps of its own arithmetic.
      for (let i = 0; i < M * N; i++) {
        const err = Math.abs(y[i]! - ref.y[i]!);
        const relative = err / Math.max(ref.magnitude[i]!, 1e-30);
        note(c.gelu ? 'vs reference with GELU (|err| / (|pre| + 1e-7))' : 'vs reference (|err| / (|a s sum| + |bias|))', c.gelu ? err / (ref.magnitude[i]! + 1e-7) : relative);
        const bound = c.gelu ? 1e-6 * ref.magnitude[i]! + 1e-7 : 1e-6 * ref.magnitude[i]!;
        if (!(err <= bound)) throw new Error(`${c.name}: y[${Math.floor(i / N)}, ${i % N}] = ${y[i]}, reference ${ref.y[i]} (|err| ${err} > ${bound})`);
      }
      if (gpu().features.dot4I8Packed) expectSameBits(y, yFallback, 'dot4I8Packed vs fallback');
    });
  }

  it('agrees with the training matmul fake-quant forward (shaders/matmul.wgsl, quantA + quantB)', async () => {
    const g = gpu();
    const [M, N, K] = [21, 46, 77];
    const xHost = randomArray(M * K, 700, 1.5);
    const wHost = randomArray(N * K, 701, 0.2);
    const biasHost = randomArray(N, 702);
    const xf = g.upload(xHost, [M, K], 'f32', 'x');
    const wf = g.upload(wHost, [N, K], 'f32', 'w');
    const bias = g.upload(biasHost, [N], 'f32', 'bias');
    const xScale = g.empty([M], 'f32', 'x scale');
    const wScale = g.empty([N], 'f32', 'w scale');
    const fake = g.empty([M, N], 'f32', 'fake-quant y');
    const xq: Int8Matrix = { packed: g.empty([M, packedWords(K)], 'u32', 'xq'), scales: g.empty([M], 'f32', 'xq scales'), cols: K };
    const wq: Int8Matrix = { packed: g.empty([N, packedWords(K)], 'u32', 'wq'), scales: g.empty([N], 'f32', 'wq scales'), cols: K };
    const y = g.empty([M, N], 'f32', 'int8 y');
    await g.run((rec) => {
      rowScales(rec, xf, xScale);
      rowScales(rec, wf, wScale);
      matmul(rec, xf, wf, fake, { transB: true, bias, gelu: true, quantA: { scale: xScale }, quantB: { scale: wScale } });
      quantizeRows(rec, xf, xq);
      quantizeRows(rec, wf, wq);
      int8Matmul(rec, xq, wq, y, { bias, gelu: true });
    });
    // Same scales by construction; the results differ only by the f32 accumulation of the
    // float kernel (K products of magnitude <= max|x| max|w|, ~sqrt(K) half-ulps of the sum).
    expectSameBits(await g.readF32(wq.scales), await g.readF32(wScale), 'weight scales');
    expectSameBits(await g.readF32(xq.scales), await g.readF32(xScale), 'token scales');
    const yInt8 = await g.readF32(y);
    const yFake = await g.readF32(fake);
    note('vs fake-quant f32 matmul (abs)', maxAbsDiff(yInt8, yFake));
    expectClose(yInt8, yFake, { atol: 2e-5, rtol: 1e-5 }, 'int8 vs fake-quant matmul');
  });
});

describe('kernel variants and argument checks', () => {
  it('the fallback source uses only core WGSL; the dot4 variant uses dot4I8Packed', () => {
    const builtins = /\b(dot4[IU]8Packed|pack4x[IU]8(Clamp)?|unpack4x[IU]8)\s*\(/;
    const plain = specializeSource('int8', shaderSources.int8!, undefined);
    expect(plain).not.toMatch(builtins);
    const dot4 = specializeSource('int8', shaderSources.int8!, { requires: ['packed_4x8_integer_dot_product'] });
    expect(dot4).toMatch(/^requires packed_4x8_integer_dot_product;/);
    expect(dot4).toMatch(/dot4I8Packed\(/);
  });

  it('int8Matmul picks the variant of int8DotPath on this machine\'s devices (with and without the feature)', async () => {
    const fallback = fallbackGpu();
    expect(fallback.features.dot4I8Packed).toBe(false);
    expect(int8MatmulSpec(fallback).variant).toBeUndefined();
    expect(() => int8MatmulSpec(fallback, { dot4: true })).toThrow(/packed_4x8_integer_dot_product/);
    const g = gpu();
    expect(int8MatmulSpec(g).variant?.requires ?? []).toEqual(int8DotPath(g) === 'dot4I8Packed' ? ['packed_4x8_integer_dot_product'] : []);
    if (g.features.dot4I8Packed) expect(int8MatmulSpec(g, { dot4: true }).variant?.requires).toEqual(['packed_4x8_integer_dot_product']);
    expect(int8MatmulSpec(g, { dot4: false }).variant).toBeUndefined();
  });

  it('wrong shapes throw ShapeError naming the tensors', async () => {
    const g = gpu();
    const mk = (rows: number, cols: number, label: string): Int8Matrix => ({
      packed: g.empty([rows, packedWords(cols)], 'u32', `${label} packed`),
      scales: g.empty([rows], 'f32', `${label} scales`),
      cols,
    });
    const x = mk(5, 30, 'x');
    const w = mk(7, 30, 'w');
    const rec = g.record();
    expect(() => int8Matmul(rec, x, mk(7, 31, 'w31'), g.empty([5, 7]))).toThrow(/"x packed" has K=30, "w31 packed" has K=31/);
    expect(() => int8Matmul(rec, x, w, g.empty([5, 8], 'f32', 'y wrong'))).toThrow(/"y wrong"/);
    expect(() => int8Matmul(rec, x, w, g.empty([5, 7]), { bias: g.empty([6], 'f32', 'short bias') })).toThrow(/"short bias"/);
    const badPacked = { ...w, packed: g.empty([7, 7], 'u32', 'w truncated') };
    expect(() => int8Matmul(rec, x, badPacked, g.empty([5, 7]))).toThrow(/"w truncated"/);
    expect(() => int8Matmul(rec, x, w, g.empty([5, 7]))).not.toThrow();
    expect(() => quantizeRows(rec, g.empty([5, 29], 'f32', 'x29'), x)).toThrow(/"x packed" holds rows of 30 values, "x29" has 29/);
    expect(() => quantizeRows(rec, g.empty([6, 30], 'f32', 'x6'), x)).toThrow(ShapeError);
    const hugeK = 200_000;
    expect(() => int8Matmul(rec, mk(1, hugeK, 'a'), mk(1, hugeK, 'b'), g.empty([1, 1]))).toThrow(/overflow/);
    await rec.submit();
  });
});

describe('which dot product int8Matmul runs by default', () => {
  // Adapters as their GPUAdapterInfo describes them (only what the choice reads).
  const adapter = (description: string, dot4I8Packed: boolean) =>
    ({ features: { dot4I8Packed }, adapter: { description, device: '' } }) as unknown as Gpu;
  const lavapipe = adapter('llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1', true);
  const swiftshader = adapter('', true);
  const noFeature = adapter('NVIDIA GeForce', false);
  it('dot4I8Packed where it exists, except on lavapipe where the fallback measured faster; dot4 says otherwise', () => {
    expect(int8DotPath(swiftshader)).toBe('dot4I8Packed');
    expect(int8DotPath(lavapipe)).toBe('core-wgsl');
    expect(int8DotPath(noFeature)).toBe('core-wgsl');
    expect(int8MatmulSpec(swiftshader).variant?.requires).toEqual(['packed_4x8_integer_dot_product']);
    expect(int8MatmulSpec(lavapipe).variant).toBeUndefined();
    expect(int8MatmulSpec(lavapipe, { dot4: true }).variant?.requires).toEqual(['packed_4x8_integer_dot_product']);
    expect(int8MatmulSpec(swiftshader, { dot4: false }).variant).toBeUndefined();
    expect(() => int8MatmulSpec(noFeature, { dot4: true })).toThrow(/lacks the WGSL language feature packed_4x8_integer_dot_product/);
    expect([1, 2, 3, undefined].map((rows) => int8MatmulSpec(swiftshader, { rows }).entry)).toEqual(['int8_matmul_rows', 'int8_matmul_rows', 'int8_matmul', 'int8_matmul']);
    expect([swiftshader, lavapipe, noFeature].map(int8DotDescription)).toEqual([
      'dot4I8Packed', 'core-WGSL fallback, faster than dot4I8Packed on this adapter', 'core-WGSL fallback, no dot4I8Packed',
    ]);
  });
});

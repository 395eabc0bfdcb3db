import { afterAll, beforeAll } from 'vitest';
import { Gpu } from '../src/gpu/gpu.js';
import type { GpuOptions } from '../src/gpu/device.js';

/** One Gpu per test file, destroyed afterwards so the process can exit. */
export function useGpu(options?: GpuOptions): () => Gpu {
  let gpu: Gpu | undefined;
  beforeAll(async () => {
    gpu = await Gpu.create(options);
  });
  afterAll(() => gpu?.destroy());
  return () => {
    if (!gpu) throw new Error('GPU not initialised');
    return gpu;
  };
}

/** Deterministic uniform [-scale, scale) values (mulberry32), so failures reproduce. */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = (2 * u - 1) * scale;
  }
  return out;
}

/**
 * Assert |actual - expected| <= atol + rtol * |expected| elementwise; the message names the
 * worst element so a failure says where and by how much.
 */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: { atol: number; rtol: number }, what = 'values'): void {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length}, expected ${expected.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const excess = Math.abs(a - e) - (tol.atol + tol.rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(a))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    throw new Error(`${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (atol ${tol.atol}, rtol ${tol.rtol})`);
  }
}

/** Largest absolute difference, for reporting measured error. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Central finite differences of a scalar function f at x, for the coordinates in `indices`
 * (all when omitted). f is evaluated in float64.
 */
export function finiteDifference(f: (x: Float64Array) => number, x: ArrayLike<number>, eps = 1e-3, indices?: number[]): Float64Array {
  const xs = Float64Array.from(x);
  const idx = indices ?? [...xs.keys()];
  const g = new Float64Array(xs.length);
  for (const i of idx) {
    const x0 = xs[i]!;
    xs[i] = x0 + eps;
    const fp = f(xs);
    xs[i] = x0 - eps;
    const fm = f(xs);
    xs[i] = x0;
    g[i] = (fp - fm) / (2 * eps);
  }
  return g;
}

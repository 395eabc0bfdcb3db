import { ConfigError } from '../errors.js';

// A seeded generator for weight initialisation and training (data order, dropout-free noise).
// Hand-written rather than an npm package: it is ~40 lines, and its whole state must serialise
// into training checkpoints as plain JSON so a resumed run draws exactly the numbers it would have.

/** The complete state of an {@link Rng}: JSON-serialisable, restored by {@link Rng.restore}. */
export interface RngState {
  /** The four 32-bit words of xoshiro128**. */
  readonly words: readonly [number, number, number, number];
  /** The second normal of the last Box–Muller pair, not yet returned; null when none is pending. */
  readonly spareNormal: number | null;
}

const TWO_POW_26 = 67108864;
const TWO_POW_53 = 9007199254740992;

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** MurmurHash3's 32-bit finaliser: a bijection that spreads every input bit over the output. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Deterministic pseudo-random numbers: xoshiro128** (Blackman & Vigna) for uniform bits and
 * Box–Muller for normals. The same seed gives the same sequence on every platform.
 */
export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spare: number | null = null;

  /** @param seed a non-negative safe integer (e.g. 0, 42, Date.now()). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new ConfigError(`Rng seed must be a non-negative safe integer, got ${seed}`);
    }
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 4294967296) >>> 0;
    const words = [0, 1, 2, 3].map((i) => fmix32((lo + Math.imul(i + 1, 0x9e3779b9)) ^ fmix32(hi + i)));
    // xoshiro must not start from the all-zero state (it would stay there).
    if (!words.some((w) => w !== 0)) words[0] = 1;
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  uniform(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * TWO_POW_26 + b) / TWO_POW_53;
  }

  /** A normal sample N(mean, std²). Box–Muller yields pairs; the second is kept for the next call. */
  normal(mean = 0, std = 1): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return mean + std * z;
    }
    const u1 = 1 - this.uniform(); // (0, 1]: log(u1) is finite
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const angle = 2 * Math.PI * u2;
    this.spare = r * Math.sin(angle);
    return mean + std * r * Math.cos(angle);
  }

  /** Fill `out` with N(mean, std²) samples, in index order; returns `out`. */
  fillNormal<T extends Float32Array | Float64Array>(out: T, std = 1, mean = 0): T {
    // Same sequence as repeated normal() calls, with both values of each pair stored directly
    // (about twice as fast, which matters for the tens of millions of weights of a real model).
    let i = 0;
    if (out.length > 0 && this.spare !== null) out[i++] = this.normal(mean, std);
    for (; i + 1 < out.length; i += 2) {
      const u1 = 1 - this.uniform();
      const u2 = this.uniform();
      const r = Math.sqrt(-2 * Math.log(u1));
      const angle = 2 * Math.PI * u2;
      out[i] = mean + std * r * Math.cos(angle);
      out[i + 1] = mean + std * (r * Math.sin(angle));
    }
    if (i < out.length) out[i] = this.normal(mean, std);
    return out;
  }

  /** A copy of the generator's state, for checkpoints. */
  state(): RngState {
    return { words: [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0], spareNormal: this.spare };
  }

  /** Continue from a state taken by {@link Rng.state}; the sequence then repeats exactly. */
  restore(state: RngState): void {
    // Checked at run time: the state usually comes from a parsed checkpoint.
    const words: unknown = state.words;
    const spareNormal: unknown = state.spareNormal;
    const isWord = (w: unknown): w is number => Number.isInteger(w) && (w as number) >= 0 && (w as number) <= 0xffffffff;
    if (!Array.isArray(words) || words.length !== 4 || !words.every(isWord) || !words.some((w) => w !== 0)) {
      throw new ConfigError(`Rng state: "words" must be four 32-bit unsigned integers, not all zero; got ${JSON.stringify(words)}`);
    }
    if (spareNormal !== null && !(typeof spareNormal === 'number' && Number.isFinite(spareNormal))) {
      throw new ConfigError(`Rng state: "spareNormal" must be a finite number or null, got ${String(spareNormal)}`);
    }
    [this.s0, this.s1, this.s2, this.s3] = words.map((w) => w | 0) as [number, number, number, number];
    this.spare = spareNormal as number | null;
  }

  /** A generator that continues from `state`. */
  static fromState(state: RngState): Rng {
    const rng = new Rng(0);
    rng.restore(state);
    return rng;
  }
}

import { ShapeError } from '../errors.js';

/** Element types a kernel binding can hold. Packed int8 weights travel as 'u32' (4 per word). */
export type DType = 'f32' | 'f16' | 'i32' | 'u32';

export const dtypeBytes: Readonly<Record<DType, number>> = { f32: 4, f16: 2, i32: 4, u32: 4 };

/**
 * A typed view into a GPU buffer: the unit every kernel binds. Several tensors may share one
 * buffer at different offsets (the memory planner's arenas).
 */
export interface Tensor {
  readonly buffer: GPUBuffer;
  /** Byte offset into `buffer`; a multiple of the device's minStorageBufferOffsetAlignment. */
  readonly offset: number;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** A name for error messages and traces, e.g. "enc.3.attn.q.weight". */
  readonly label: string;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Bytes of a tensor's data; f16 tensors of odd length are padded to whole 32-bit words. */
export function byteSize(t: { dtype: DType; shape: readonly number[] }): number {
  const raw = numel(t.shape) * dtypeBytes[t.dtype];
  return Math.ceil(raw / 4) * 4;
}

/** Throw a ShapeError naming `what` unless `t.shape` equals `expected`. */
export function expectShape(t: Tensor, expected: readonly number[], what: string): void {
  if (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
    throw new ShapeError(`${what}: tensor "${t.label}" has shape [${t.shape.join(', ')}], expected [${expected.join(', ')}]`);
  }
}

/** Throw a ShapeError naming `what` unless `t.dtype` is one of `allowed`. */
export function expectDType(t: Tensor, allowed: readonly DType[], what: string): void {
  if (!allowed.includes(t.dtype)) {
    throw new ShapeError(`${what}: tensor "${t.label}" has dtype ${t.dtype}, expected ${allowed.join(' or ')}`);
  }
}

import { ShapeError } from '../errors.js';
import type { Recorder } from '../gpu/gpu.js';
import { expectDType, expectShape, type Tensor } from '../gpu/tensor.js';

const WORKGROUP = 64;
const MAX_WORKGROUPS = 65535;

/** Grid for `width` columns and `rows` moved rows: rows fold into y and z past 65535. */
function grid(width: number, rows: number): [number, number, number] {
  const y = Math.min(rows, MAX_WORKGROUPS);
  return [Math.ceil(width / WORKGROUP), y, y === 0 ? 0 : Math.ceil(rows / y)];
}

export interface CopyRowsOptions {
  /** Rows copied per sequence. */
  count: number;
  /** First source row of each sequence (default 0). */
  srcStart?: number;
  /** First destination row of each sequence, e.g. the decoding position (default 0). */
  dstStart?: number;
  label?: string;
}

/**
 * dst[s, dstStart + r, :] = src[s, srcStart + r, :] for r < count: write new key/value rows
 * into a cache at a position, or pick rows (a prefill's last position). src: [S, Ls, W];
 * dst: [S, Ld, W]; f32, exact copies. The positions are uniform values, so a recorded Program
 * changes them with `rewrite` and nothing else.
 */
export function copyRows(rec: Recorder, src: Tensor, dst: Tensor, opts: CopyRowsOptions): void {
  const what = `copyRows${opts.label ? ` (${opts.label})` : ''}`;
  if (src.shape.length !== 3) throw new ShapeError(`${what}: source "${src.label}" must be [sequences, rows, width], has shape [${src.shape.join(', ')}]`);
  const [S, Ls, W] = src.shape as [number, number, number];
  if (dst.shape.length !== 3) throw new ShapeError(`${what}: destination "${dst.label}" must be [${S}, rows, ${W}], has shape [${dst.shape.join(', ')}]`);
  const Ld = dst.shape[1]!;
  expectShape(dst, [S, Ld, W], what);
  expectDType(src, ['f32'], what);
  expectDType(dst, ['f32'], what);
  const { count, srcStart = 0, dstStart = 0 } = opts;
  for (const [name, v] of [['count', count], ['srcStart', srcStart], ['dstStart', dstStart]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new ShapeError(`${what}: ${name} must be a non-negative integer, got ${v}`);
  }
  if (srcStart + count > Ls) throw new ShapeError(`${what}: rows [${srcStart}, ${srcStart + count}) are outside the ${Ls} rows of "${src.label}"`);
  if (dstStart + count > Ld) throw new ShapeError(`${what}: rows [${dstStart}, ${dstStart + count}) are outside the ${Ld} rows of "${dst.label}"`);
  rec.dispatch(
    { shader: 'kvcache', entry: 'copy_rows' },
    {
      tensors: { src, dst },
      uniforms: { groups: 1, seqs: S, width: W, count, src_rows: Ls, dst_rows: Ld, src_start: srcStart, dst_start: dstStart },
      sizes: { src: S * Ls * W, dst: S * Ld * W },
      workgroups: grid(W, S * count),
      flops: 0,
      bytes: 8 * S * count * W,
    },
    opts.label,
  );
}

/** Throw a ShapeError unless every parent is a sequence index in [0, sequences). */
export function validateParents(parents: ArrayLike<number>, sequences: number, label = 'parents'): void {
  if (parents.length !== sequences) throw new ShapeError(`${label}: ${parents.length} parents for ${sequences} sequences`);
  for (let i = 0; i < parents.length; i++) {
    const p = parents[i]!;
    if (!Number.isInteger(p) || p < 0 || p >= sequences) throw new ShapeError(`${label}: parent ${p} of sequence ${i} is outside [0, ${sequences})`);
  }
}

/**
 * dst[g, s, r, :] = src[g, parents[s], r, :] for r < rows: reorder the sequences of every layer
 * (group) of a cache after a beam-search step. src, dst: [G, S, R, W] f32 (different buffers;
 * WebGPU forbids binding one buffer both ways); parents: u32 [S], each in [0, S) (check host
 * values with validateParents; the kernel cannot report bad ones). `rows` (default R) limits
 * the copy to the rows in use; it is a uniform value (the grid covers all R rows), so a recorded
 * reorder changes it with `rewrite`.
 */
export function gatherSequences(rec: Recorder, src: Tensor, dst: Tensor, parents: Tensor, opts: { rows?: number; label?: string } = {}): void {
  const what = `gatherSequences${opts.label ? ` (${opts.label})` : ''}`;
  if (src.shape.length !== 4) throw new ShapeError(`${what}: source "${src.label}" must be [groups, sequences, rows, width], has shape [${src.shape.join(', ')}]`);
  const [G, S, R, W] = src.shape as [number, number, number, number];
  expectShape(dst, src.shape, what);
  expectShape(parents, [S], what);
  expectDType(src, ['f32'], what);
  expectDType(dst, ['f32'], what);
  expectDType(parents, ['u32'], what);
  const rows = opts.rows ?? R;
  if (!Number.isInteger(rows) || rows < 0 || rows > R) throw new ShapeError(`${what}: rows must be an integer in [0, ${R}], got ${rows}`);
  rec.dispatch(
    { shader: 'kvcache', entry: 'gather_sequences' },
    {
      tensors: { src, dst, parents },
      uniforms: { groups: G, seqs: S, width: W, count: rows, src_rows: R, dst_rows: R, src_start: 0, dst_start: 0 },
      sizes: { src: G * S * R * W, dst: G * S * R * W, parents: S },
      workgroups: grid(W, G * S * R),
      flops: 0,
      bytes: 8 * G * S * rows * W + 4 * S,
    },
    opts.label,
  );
}

import { ShapeError } from '../errors.js';
import type { Recorder } from '../gpu/gpu.js';
import { expectDType, expectShape, numel, type Tensor } from '../gpu/tensor.js';
import type { KernelSpec } from '../gpu/kernel.js';

const WORKGROUP = 64;
const MAX_WORKGROUPS = 65535;

/** Grid for C columns and N positions: positions fold into y and z past 65535. */
function grid(C: number, N: number): [number, number, number] {
  const y = Math.min(N, MAX_WORKGROUPS);
  return [Math.ceil(C / WORKGROUP), y, y === 0 ? 0 : Math.ceil(N / y)];
}

function spec(entry: string, ids: Tensor, table?: Tensor): KernelSpec {
  const aliases: Record<string, string> = {};
  if (ids.dtype === 'u32') aliases.Id = 'u32';
  if (table?.dtype === 'f16') aliases.S = 'f16';
  if (!Object.keys(aliases).length) return { shader: 'embedding', entry };
  return { shader: 'embedding', entry, variant: { ...(aliases.S ? { enable: ['f16'] } : {}), aliases } };
}

/**
 * Throw a ShapeError naming the first position whose id is outside [0, V). The GPU kernels
 * cannot report bad ids (they read a zero row and drop the gradient), so call this on host-side
 * ids when an out-of-range id should be an error.
 */
export function validateIds(ids: Int32Array | Uint32Array, V: number, label = 'ids'): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= V) throw new ShapeError(`${label}: id ${id} at position ${i} is outside the vocabulary [0, ${V})`);
  }
}

/**
 * out[..., :] = table[ids[...], :]. ids: any shape, i32 or u32; table: [V, C], f32 (or f16 when
 * the device has shader-f16); out: [...ids.shape, C], f32. Ids outside [0, V) give zero rows.
 */
export function embedding(rec: Recorder, ids: Tensor, table: Tensor, out: Tensor, opts: { label?: string } = {}): void {
  const what = `embedding${opts.label ? ` (${opts.label})` : ''}`;
  if (table.shape.length !== 2) throw new ShapeError(`${what}: table "${table.label}" must be [V, C], has shape [${table.shape.join(', ')}]`);
  const [V, C] = table.shape as [number, number];
  expectDType(ids, ['i32', 'u32'], what);
  expectDType(table, ['f32', 'f16'], what);
  expectDType(out, ['f32'], what);
  expectShape(out, [...ids.shape, C], what);
  const N = numel(ids.shape);
  rec.dispatch(
    spec('embedding', ids, table),
    {
      tensors: { ids, table, out },
      uniforms: { N, V, C, accumulate: 0 },
      sizes: { ids: N, table: V * C, out: N * C },
      workgroups: grid(C, N),
      flops: 0,
      bytes: 4 * N + N * C * ((table.dtype === 'f16' ? 2 : 4) + 4),
    },
    opts.label,
  );
}

/**
 * gradTable[v, :] = sum of gradOut[n, :] over positions n with ids[n] == v (repeated ids add up;
 * out-of-range ids contribute nothing). ids: any shape, i32 or u32; gradOut: [...ids.shape, C];
 * gradTable: [V, C]; f32. Without `accumulate` gradTable is zeroed first (a whole-buffer clear in
 * the same recorder); with it the sums are added to what it holds. Deterministic, no atomics.
 */
export function embeddingBackward(rec: Recorder, ids: Tensor, gradOut: Tensor, gradTable: Tensor, opts: { accumulate?: boolean; label?: string } = {}): void {
  const what = `embeddingBackward${opts.label ? ` (${opts.label})` : ''}`;
  if (gradTable.shape.length !== 2) throw new ShapeError(`${what}: gradient "${gradTable.label}" must be [V, C], has shape [${gradTable.shape.join(', ')}]`);
  const [V, C] = gradTable.shape as [number, number];
  expectDType(ids, ['i32', 'u32'], what);
  expectDType(gradOut, ['f32'], what);
  expectDType(gradTable, ['f32'], what);
  expectShape(gradOut, [...ids.shape, C], what);
  const N = numel(ids.shape);
  if (!opts.accumulate) rec.zero(gradTable);
  rec.dispatch(
    spec('embedding_backward', ids),
    {
      tensors: { ids, dy: gradOut, dtable: gradTable },
      uniforms: { N, V, C, accumulate: opts.accumulate ? 1 : 0 },
      sizes: { ids: N, dy: N * C, dtable: V * C },
      workgroups: grid(C, N),
      flops: N * C,
      // Ids are rescanned per position (N^2, from cache); dy read once, owned rows written once.
      bytes: 4 * N + 4 * N * C * (opts.accumulate ? 3 : 2),
    },
    opts.label,
  );
}

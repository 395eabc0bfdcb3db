import { ShapeError } from '../errors.js';
import type { Recorder } from '../gpu/gpu.js';
import { expectDType, expectShape, numel, type Tensor } from '../gpu/tensor.js';
import type { KernelSpec } from '../gpu/kernel.js';
import { quantMax, unusedScale, type FakeQuant } from './matmul.js';

const WORKGROUP = 64;
const MAX_WORKGROUPS = 65535;

/** Grid for C columns and N positions: positions fold into y and z past 65535. */
function grid(C: number, N: number): [number, number, number] {
  const y = Math.min(N, MAX_WORKGROUPS);
  return [Math.ceil(C / WORKGROUP), y, y === 0 ? 0 : Math.ceil(N / y)];
}

function spec(entry: string, ids: Tensor, table: Tensor | undefined, quant: boolean): KernelSpec {
  const aliases: Record<string, string> = {};
  if (ids.dtype === 'u32') aliases.Id = 'u32';
  if (table?.dtype === 'f16') aliases.S = 'f16';
  const constants = { QUANT: quant ? 1 : 0 };
  if (!Object.keys(aliases).length) return { shader: 'embedding', entry, constants };
  return { shader: 'embedding', entry, constants, variant: { ...(aliases.S ? { enable: ['f16'] } : {}), aliases } };
}

/** Check fake-quant scales for a [V, C] table: f32 [V]. */
function checkScales(quant: FakeQuant | undefined, V: number, what: string): void {
  if (!quant) return;
  expectShape(quant.scale, [V], `${what}: scales`);
  expectDType(quant.scale, ['f32'], what);
  quantMax(quant.bits);
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
 * With `quant` each row read is fake-quantized with its scale (scale: f32 [V]; see matmul's
 * `FakeQuant`, the same rounding), as a tied logits projection with `quantB` sees the table.
 */
export function embedding(rec: Recorder, ids: Tensor, table: Tensor, out: Tensor, opts: { quant?: FakeQuant; label?: string } = {}): void {
  const what = `embedding${opts.label ? ` (${opts.label})` : ''}`;
  if (table.shape.length !== 2) throw new ShapeError(`${what}: table "${table.label}" must be [V, C], has shape [${table.shape.join(', ')}]`);
  const [V, C] = table.shape as [number, number];
  expectDType(ids, ['i32', 'u32'], what);
  expectDType(table, ['f32', 'f16'], what);
  expectDType(out, ['f32'], what);
  expectShape(out, [...ids.shape, C], what);
  checkScales(opts.quant, V, what);
  const N = numel(ids.shape);
  rec.dispatch(
    spec('embedding', ids, table, !!opts.quant),
    {
      // Without quant the scale binding still exists in the WGSL; the stand-in is never read.
      tensors: { ids, table, out, scale: opts.quant?.scale ?? unusedScale(rec.gpu) },
      uniforms: { N, V, C, accumulate: 0, qmax: opts.quant ? quantMax(opts.quant.bits) : 0 },
      sizes: { ids: N, table: V * C, out: N * C },
      workgroups: grid(C, N),
      flops: opts.quant ? 3 * N * C : 0,
      bytes: 4 * N + N * C * ((table.dtype === 'f16' ? 2 : 4) + 4) + (opts.quant ? 4 * N : 0),
    },
    opts.label,
  );
}

/**
 * gradTable[v, :] = sum of gradOut[n, :] over positions n with ids[n] == v (repeated ids add up;
 * out-of-range ids contribute nothing). ids: any shape, i32 or u32; gradOut: [...ids.shape, C];
 * gradTable: [V, C]; f32. Without `accumulate` gradTable is zeroed first (a whole-buffer clear in
 * the same recorder); with it the sums are added to what it holds. Deterministic, no atomics.
 * With `quant` (the forward's table and scales) the sums pass the straight-through estimator
 * first, as `fakeQuantGrad` would mask them: 0 where the forward's clamp saturated (or the scale
 * is <= 0); only this call's sums are masked, never what gradTable already holds.
 */
export function embeddingBackward(
  rec: Recorder,
  ids: Tensor,
  gradOut: Tensor,
  gradTable: Tensor,
  opts: { accumulate?: boolean; quant?: FakeQuant & { table: Tensor }; label?: string } = {},
): void {
  const what = `embeddingBackward${opts.label ? ` (${opts.label})` : ''}`;
  if (gradTable.shape.length !== 2) throw new ShapeError(`${what}: gradient "${gradTable.label}" must be [V, C], has shape [${gradTable.shape.join(', ')}]`);
  const [V, C] = gradTable.shape as [number, number];
  expectDType(ids, ['i32', 'u32'], what);
  expectDType(gradOut, ['f32'], what);
  expectDType(gradTable, ['f32'], what);
  expectShape(gradOut, [...ids.shape, C], what);
  const quant = opts.quant;
  if (quant) {
    expectShape(quant.table, [V, C], what);
    expectDType(quant.table, ['f32', 'f16'], what);
  }
  checkScales(quant, V, what);
  const N = numel(ids.shape);
  if (!opts.accumulate) rec.zero(gradTable);
  rec.dispatch(
    spec('embedding_backward', ids, quant?.table, !!quant),
    {
      // Without quant the table and scale bindings still exist in the WGSL; stand-ins are never read.
      tensors: { ids, dy: gradOut, dtable: gradTable, table: quant?.table ?? gradOut, scale: quant?.scale ?? unusedScale(rec.gpu) },
      uniforms: { N, V, C, accumulate: opts.accumulate ? 1 : 0, qmax: quant ? quantMax(quant.bits) : 0 },
      sizes: { ids: N, dy: N * C, dtable: V * C, ...(quant ? { table: V * C } : {}) },
      workgroups: grid(C, N),
      flops: N * C,
      // Ids are rescanned per position (N^2, from cache); dy read once, owned rows written once
      // (with quant, their table values read once too).
      bytes: 4 * N + 4 * N * C * (opts.accumulate ? 3 : 2) + (quant ? N * C * (quant.table.dtype === 'f16' ? 2 : 4) : 0),
    },
    opts.label,
  );
}

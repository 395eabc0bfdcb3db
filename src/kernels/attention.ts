import { ShapeError } from '../errors.js';
import type { Recorder } from '../gpu/gpu.js';
import type { KernelSpec } from '../gpu/kernel.js';
import { expectDType, expectShape, numel, type Tensor } from '../gpu/tensor.js';

export interface AttentionOptions {
  /** Multiplies q . k before the softmax; default 1 / sqrt(headDim). */
  scale?: number;
  /**
   * Mask keys after the query's position: query i sees key j only if j <= i + (Lk - Lq), so the
   * last query sees the last key (Lq = Lk: ordinary decoder self-attention).
   */
  causal?: boolean;
  /** u32 [B]: batch b attends only to keys j < keyLengths[b] (key padding). */
  keyLengths?: Tensor;
  label?: string;
}

/** One operand's geometry: sizes plus element strides of (batch, head, row); head dims are contiguous. */
interface Operand {
  rows: number;
  headDim: number;
  strides: { sb: number; sh: number; sl: number };
}

/**
 * Geometry of a tensor that is either head-major [B, H, L, D] or token-major [B, L, H*D] (the
 * rank says which); `heads` comes from lse, which is always [B, H, Lq].
 */
function operand(t: Tensor, heads: number, what: string): Operand {
  if (t.shape.length === 4) {
    const [B, H, L, D] = t.shape as [number, number, number, number];
    if (H !== heads) throw new ShapeError(`${what}: tensor "${t.label}" [${t.shape.join(', ')}] has ${H} heads, lse says ${heads}`);
    return { rows: L, headDim: D, strides: { sb: H * L * D, sh: L * D, sl: D } };
  }
  if (t.shape.length === 3) {
    const [B, L, HD] = t.shape as [number, number, number];
    if (HD % heads !== 0) throw new ShapeError(`${what}: tensor "${t.label}" [${t.shape.join(', ')}]: last dim ${HD} is not a multiple of ${heads} heads`);
    return { rows: L, headDim: HD / heads, strides: { sb: L * HD, sh: HD / heads, sl: HD } };
  }
  throw new ShapeError(`${what}: tensor "${t.label}" must be [B, H, L, D] or [B, L, H*D], has shape [${t.shape.join(', ')}]`);
}

/** Rows a workgroup owns in each entry point (the *_ROWS of the shader that runs). */
interface Tiles {
  fwd: number;
  dkdv: number;
  dq: number;
}

/** Which shader runs: its name, variant, tiles and override constants beyond the problem's. */
interface Variant {
  shader: 'attention' | 'attention_subgroups';
  tiles: Tiles;
  constants: Record<string, number>;
}

/** Subgroup variant: accumulators per lane hold head dims lane, lane + 8, ...: at most 16 of them. */
const SUBGROUP_MAX_HEAD_DIM = 128;

/**
 * Workgroup memory (bytes) of the plain variant's largest entry point (the dK/dV one) for `rows`
 * owned rows, as WebGPU counts it: each variable rounded up to 16 bytes.
 */
function plainWorkgroupBytes(rows: number, headDim: number): number {
  const pitch = headDim | 1;
  const lanes = 8;
  const round16 = (floats: number) => Math.ceil((4 * floats) / 16) * 16;
  const own = round16(rows * pitch + lanes);
  const tile = round16(lanes * pitch + lanes);
  return 2 * own + 2 * tile + 2 * round16(rows * lanes) + round16(2 * rows) + round16(1);
}

/**
 * shaders/attention_subgroups.wgsl where each 8-invocation workgroup is one subgroup (subgroups
 * of at least 8 lanes: lavapipe, GPUs); else shaders/attention.wgsl, whose owned rows per
 * workgroup are 16 (head dims up to 77, so 64) or 8 (up to 121) within 16 KiB of workgroup memory.
 */
function pickVariant(rec: Recorder, D: number, q: Tensor, what: string): Variant {
  if (rec.gpu.workgroupIsOneSubgroup(8)) {
    if (D > SUBGROUP_MAX_HEAD_DIM) throw new ShapeError(`${what}: head dim ${D} of "${q.label}" is above the ${SUBGROUP_MAX_HEAD_DIM} supported`);
    return { shader: 'attention_subgroups', tiles: { fwd: 16, dkdv: 8, dq: 16 }, constants: {} };
  }
  const maxBytes = 16384;
  const rows = [16, 8].find((r) => plainWorkgroupBytes(r, D) <= maxBytes);
  if (rows === undefined) {
    throw new ShapeError(`${what}: head dim ${D} of "${q.label}" needs more than ${maxBytes} bytes of workgroup memory without subgroups (at most 121 is supported)`);
  }
  return { shader: 'attention', tiles: { fwd: rows, dkdv: rows, dq: rows }, constants: { ROWS: rows } };
}

interface Problem {
  B: number;
  H: number;
  Lq: number;
  Lk: number;
  D: number;
  tiles: Tiles;
  spec: (entry: string) => KernelSpec;
  uniforms: Record<string, number>;
  klen: Tensor;
}

/** Validate shapes of the forward operands and derive everything the dispatches need. */
function problem(rec: Recorder, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, opts: AttentionOptions, what: string): Problem {
  if (lse.shape.length !== 3) throw new ShapeError(`${what}: lse "${lse.label}" must be [B, H, Lq], has shape [${lse.shape.join(', ')}]`);
  const [B, H, Lq] = lse.shape as [number, number, number];
  const oq = operand(q, H, what);
  const ok = operand(k, H, what);
  const ov = operand(v, H, what);
  const oo = operand(out, H, what);
  const D = oq.headDim;
  expectShape(q, q.shape.length === 4 ? [B, H, Lq, D] : [B, Lq, H * D], what);
  const Lk = ok.rows;
  expectShape(k, k.shape.length === 4 ? [B, H, Lk, D] : [B, Lk, H * D], what);
  expectShape(v, v.shape.length === 4 ? [B, H, Lk, D] : [B, Lk, H * D], what);
  expectShape(out, out.shape.length === 4 ? [B, H, Lq, D] : [B, Lq, H * D], what);
  for (const t of [q, k, v, out, lse]) expectDType(t, ['f32'], what);
  if (opts.keyLengths) {
    expectShape(opts.keyLengths, [B], what);
    expectDType(opts.keyLengths, ['u32'], what);
  }
  if (D < 1) throw new ShapeError(`${what}: head dim of "${q.label}" is 0`);
  const variant = pickVariant(rec, D, q, what);
  const s = { q: oq.strides, k: ok.strides, v: ov.strides, o: oo.strides };
  const uniforms: Record<string, number> = {
    heads: H,
    lq: Lq,
    lk: Lk,
    scale: opts.scale ?? 1 / Math.sqrt(D),
    causal_offset: Lk - Lq,
  };
  for (const [name, st] of Object.entries(s)) {
    uniforms[`${name}_sb`] = st.sb;
    uniforms[`${name}_sh`] = st.sh;
    uniforms[`${name}_sl`] = st.sl;
  }
  const constants = { HEAD_DIM: D, CAUSAL: opts.causal ? 1 : 0, HAS_KLEN: opts.keyLengths ? 1 : 0, ...variant.constants };
  return {
    B,
    H,
    Lq,
    Lk,
    D,
    tiles: variant.tiles,
    spec: (entry) => ({ shader: variant.shader, entry, constants }),
    uniforms,
    // Without key lengths the binding still exists in the WGSL; a u32 view of q stands in, never read.
    klen: opts.keyLengths ?? { ...q, dtype: 'u32', label: `${q.label} (no key lengths)` },
  };
}

/** Score pairs (i, j) computed: all Lq x Lk, about half with a causal mask. */
function pairs(p: Problem, causal: boolean | undefined): number {
  return p.B * p.H * (causal ? causalPairs(p.Lq, p.Lk) : p.Lq * p.Lk);
}

function causalPairs(Lq: number, Lk: number): number {
  let n = 0;
  for (let i = 0; i < Lq; i++) n += Math.min(Lk, Math.max(0, i + Lk - Lq + 1));
  return n;
}

/**
 * Fused attention forward: out = softmax(scale * q k^T + mask) v, never materialising the
 * scores; also writes lse = log-sum-exp of each query row's masked, scaled scores (for the
 * backward). q, out: [B, H, Lq, D] or token-major [B, Lq, H*D]; k, v: [B, H, Lk, D] or
 * [B, Lk, H*D] (each tensor's rank picks its layout independently); lse: [B, H, Lq]; all f32.
 * Rows whose keys are all masked get out = 0 and lse = -3.4028235e38 (standing for -inf).
 * Head dims 1..128 with subgroups of at least 8 lanes (shaders/attention_subgroups.wgsl, about
 * 3x faster on lavapipe), else 1..121 (shaders/attention.wgsl); 64 is the tuned case.
 */
export function attention(rec: Recorder, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, opts: AttentionOptions = {}): void {
  const what = `attention${opts.label ? ` (${opts.label})` : ''}`;
  const p = problem(rec, q, k, v, out, lse, opts, what);
  const n = pairs(p, opts.causal);
  rec.dispatch(
    p.spec('attention_fwd'),
    {
      tensors: { q, k, v, klen: p.klen, out, lse },
      uniforms: p.uniforms,
      sizes: { q: numel(q.shape), k: numel(k.shape), v: numel(v.shape), out: numel(out.shape), lse: p.B * p.H * p.Lq },
      workgroups: [Math.ceil(p.Lq / p.tiles.fwd), p.H, p.B],
      flops: 4 * n * p.D,
      bytes: 4 * (numel(q.shape) + numel(k.shape) + numel(v.shape) + numel(out.shape) + p.B * p.H * p.Lq),
    },
    opts.label,
  );
}

/** Gradients of attention, one per input, each the shape (and layout) of its input. */
export interface AttentionGrads {
  q: Tensor;
  k: Tensor;
  v: Tensor;
}

/**
 * Backward of `attention` from the saved out and lse: writes grads.q, grads.k, grads.v (f32,
 * overwritten, not accumulated) given dOut (the shape and layout of out). Three dispatches:
 * delta = rowsum(dOut * out) (kept with lse in the first two elements of each row of grads.q,
 * which serves as scratch until its own kernel overwrites it; so head dim >= 2), then dK and dV
 * parallel over key blocks, then dQ parallel over query blocks: no float atomics. opts must
 * match the forward's (scale, causal, keyLengths).
 */
export function attentionBackward(
  rec: Recorder,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  lse: Tensor,
  dOut: Tensor,
  grads: AttentionGrads,
  opts: AttentionOptions = {},
): void {
  const what = `attentionBackward${opts.label ? ` (${opts.label})` : ''}`;
  const p = problem(rec, q, k, v, out, lse, opts, what);
  expectShape(dOut, out.shape, what);
  expectShape(grads.q, q.shape, what);
  expectShape(grads.k, k.shape, what);
  expectShape(grads.v, v.shape, what);
  for (const t of [dOut, grads.q, grads.k, grads.v]) expectDType(t, ['f32'], what);
  if (p.D < 2) throw new ShapeError(`${what}: head dim ${p.D} of "${q.label}" is below 2, too small to hold the backward's (lse, delta) scratch in "${grads.q.label}"`);
  const n = pairs(p, opts.causal);
  const [nq, nk, no, rowStats] = [numel(q.shape), numel(k.shape), numel(out.shape), p.B * p.H * p.Lq];
  const label = opts.label ? `${opts.label} backward` : 'backward';
  rec.dispatch(
    p.spec('attention_bwd_prep'),
    {
      tensors: { saved_out: out, saved_lse: lse, d_out: dOut, dq: grads.q },
      uniforms: p.uniforms,
      sizes: { saved_out: no, saved_lse: rowStats, d_out: no, dq: nq },
      workgroups: [Math.ceil(p.Lq / 64), p.H, p.B],
      flops: 2 * rowStats * p.D,
      bytes: 4 * (2 * no + 3 * rowStats),
    },
    label,
  );
  const keyBlocks = Math.ceil(p.Lk / p.tiles.dkdv);
  const queryBlocks = Math.ceil(p.Lq / p.tiles.dq);
  rec.dispatch(
    p.spec('attention_bwd_dkdv'),
    {
      tensors: { q, k, v, klen: p.klen, d_out: dOut, stats: grads.q, dk: grads.k, dv: grads.v },
      uniforms: p.uniforms,
      sizes: { q: nq, k: nk, v: nk, d_out: no, stats: nq, dk: nk, dv: nk },
      workgroups: [keyBlocks, p.H, p.B],
      // Recompute S and dP, then dV and dK: four products per score pair and head dim.
      flops: 8 * n * p.D,
      bytes: 4 * (nq + no + 2 * rowStats + 4 * nk),
    },
    label,
  );
  rec.dispatch(
    p.spec('attention_bwd_dq'),
    {
      tensors: { q, k, v, klen: p.klen, d_out: dOut, dq: grads.q },
      uniforms: p.uniforms,
      sizes: { q: nq, k: nk, v: nk, d_out: no, dq: nq },
      workgroups: [queryBlocks, p.H, p.B],
      // Recompute S and dP, then dQ: three products per score pair and head dim.
      flops: 6 * n * p.D,
      bytes: 4 * (2 * nq + no + 2 * rowStats + 2 * nk),
    },
    label,
  );
}

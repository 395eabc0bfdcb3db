// Graph ops: each function adds a node that records dispatches of the existing kernels, next to
// the gradient rule that adds the nodes of its backward (llm.c style: forward and backward of an
// op read side by side).
import { ShapeError } from '../errors.js';
import { byteSize, numel, type Tensor } from '../gpu/tensor.js';
import { add as addKernel, axpy, gelu as geluKernel, geluBackward } from '../kernels/activation.js';
import { attention as attentionKernel, attentionBackward } from '../kernels/attention.js';
import { conv1d as conv1dKernel, conv1dBackward, conv1dOutLength } from '../kernels/conv1d.js';
import { embedding as embeddingKernel, embeddingBackward } from '../kernels/embedding.js';
import { layerNorm as layerNormKernel, layerNormBackward, layerNormWorkspaceShape } from '../kernels/layernorm.js';
import { int8Embedding as int8EmbeddingKernel, int8Matmul, packedWords, quantizeRows, type Int8Matrix } from '../kernels/int8.js';
import { biasGrad, fakeQuantGrad, matmul, quantMax, rowScales, type FakeQuant } from '../kernels/matmul.js';
import { colSum } from '../kernels/reduce.js';
import type { GradContext, Graph, GraphTensor } from './graph.js';

/** The same GPU storage seen with another shape (same element count). */
export function reshape(t: Tensor, shape: readonly number[]): Tensor {
  if (numel(shape) !== numel(t.shape)) throw new ShapeError(`reshape of "${t.label}" [${t.shape.join(', ')}] to [${shape.join(', ')}]: element counts differ`);
  return { ...t, shape: [...shape] };
}

function last(t: GraphTensor): number {
  return t.shape[t.shape.length - 1] ?? 0;
}

function expectGraphShape(t: GraphTensor, shape: readonly number[], what: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new ShapeError(`${what}: ${t} should have shape [${shape.join(', ')}]`);
  }
}

// ---------------------------------------------------------------------------------------------
// Elementary nodes (also used by autodiff to combine gradients)

/** t = 0. */
export function zeroFill(g: Graph, t: GraphTensor): void {
  g.add({ name: 'zero', label: t.label, reads: [], writes: [t], record: (rec, b) => rec.zero(b.tensor(t)) });
}

/** dst = src (same byte size). */
export function copyInto(g: Graph, src: GraphTensor, dst: GraphTensor): void {
  g.add({ name: 'copy', label: dst.label, reads: [src], writes: [dst], record: (rec, b) => rec.copy(b.tensor(src), b.tensor(dst)) });
}

/** target += x (x's shape a suffix of target's, repeated over its leading dims). */
export function accumulateInto(g: Graph, target: GraphTensor, x: GraphTensor, alpha = 1): void {
  g.add({ name: 'accumulate', label: target.label, reads: [x], writes: [target], record: (rec, b) => axpy(rec, b.tensor(target), b.tensor(x), alpha, { label: target.label }) });
}

/**
 * y = [xs[0], xs[1], ...] stacked along a new leading dim (all of one shape and dtype), e.g. the
 * hidden states of several layers for a distance matrix. Each input's gradient is its slice of y's.
 */
export function stack(g: Graph, xs: readonly GraphTensor[], opts: { label?: string } = {}): GraphTensor {
  const label = opts.label ?? 'stack';
  const first = xs[0];
  if (!first) throw new ShapeError(`stack (${label}): nothing to stack`);
  for (const x of xs) {
    if (x.dtype !== first.dtype || x.shape.length !== first.shape.length || x.shape.some((d, i) => d !== first.shape[i])) throw new ShapeError(`stack (${label}): ${x} differs from ${first}`);
  }
  const y = g.temp([xs.length, ...first.shape], label, xs, first.dtype);
  // Copies need only 4-byte offsets, so the slices are plain offsets rather than graph views
  // (which must meet the 256-byte binding alignment).
  const slice = (t: Tensor, i: number): Tensor => ({ ...t, offset: t.offset + i * byteSize(first), shape: first.shape });
  g.add({
    name: 'stack',
    label,
    reads: xs,
    writes: [y],
    record: (rec, b) => xs.forEach((x, i) => rec.copy(b.tensor(x), slice(b.tensor(y), i))),
    backward: (ctx) => {
      const dy = ctx.grad(y)!;
      ctx.overwrite(xs, (targets) =>
        g.add({ name: 'stack.backward', label, reads: [dy], writes: targets, record: (rec, b) => targets.forEach((t, i) => rec.copy(slice(b.tensor(dy), i), b.tensor(t))) }),
      );
    },
  });
  return y;
}

// ---------------------------------------------------------------------------------------------
// Linear layer (PyTorch layout: weight [out, in])

export interface LinearOptions {
  /** Exact GELU after the bias (fused into the matmul when no gradient flows through it). */
  gelu?: boolean;
  /**
   * Fake-quantize the weight per output channel with these scales (f32 [out]) as it is loaded;
   * the weight gradient then passes the straight-through estimator (see `fakeQuantScales`).
   * Scales that require a gradient (learnable, a trainable parameter) get LSQ's (Esser et al.
   * 2020), scaled by g = 1 / sqrt(in * qmax), the paper's gradient scale with the per-channel
   * weight count `in` (see kernels/matmul `fakeQuantGrad`).
   */
  quant?: { scale: GraphTensor; bits?: number };
  /**
   * Fake-quantize the input per row (token) with these scales (f32 [rows of x], see
   * `fakeQuantScales`), as the int8 kernels quantize activations: the float simulation of
   * `int8Linear`, and activation-quantization-aware training (straight-through backward).
   */
  quantInput?: { scale: GraphTensor; bits?: number };
  label?: string;
}

/** y = x @ w^T (+ b) (-> GELU). x: [..., in]; w: [out, in]; b: [out]; y: [..., out]. */
export function linear(g: Graph, x: GraphTensor, w: GraphTensor, bias: GraphTensor | null, opts: LinearOptions = {}): GraphTensor {
  const label = opts.label ?? 'linear';
  if (w.shape.length !== 2 || w.shape[1] !== last(x)) throw new ShapeError(`linear (${label}): weight ${w} must be [out, ${last(x)}] for input ${x}`);
  const [outF, inF] = w.shape as [number, number];
  if (bias) expectGraphShape(bias, [outF], `linear (${label})`);
  const rows = x.numel / inF;
  const needsGrad = x.requiresGrad || w.requiresGrad || !!bias?.requiresGrad || !!opts.quant?.scale.requiresGrad;
  if (opts.gelu && needsGrad) return gelu(g, linear(g, x, w, bias, { ...opts, gelu: false, label: `${label} pre-GELU` }), { label });
  const quant = opts.quant;
  if (quant) expectGraphShape(quant.scale, [outF], `linear (${label}) weight scales`);
  const quantInput = opts.quantInput;
  if (quantInput) expectGraphShape(quantInput.scale, [rows], `linear (${label}) input scales`);
  const y = g.temp([...x.shape.slice(0, -1), outF], label, [x, w, bias, quant?.scale]);
  const fakeQuant = (q: { scale: GraphTensor; bits?: number } | undefined, b: { tensor(t: GraphTensor): Tensor }): FakeQuant | undefined =>
    q ? { scale: b.tensor(q.scale), bits: q.bits } : undefined;
  const fq = (b: { tensor(t: GraphTensor): Tensor }) => fakeQuant(quant, b);
  g.add({
    name: 'linear',
    label,
    reads: [x, w, ...(bias ? [bias] : []), ...(quant ? [quant.scale] : []), ...(quantInput ? [quantInput.scale] : [])],
    writes: [y],
    record: (rec, b) =>
      matmul(rec, reshape(b.tensor(x), [rows, inF]), b.tensor(w), reshape(b.tensor(y), [rows, outF]), {
        transB: true,
        bias: bias ? b.tensor(bias) : undefined,
        gelu: opts.gelu,
        quantA: fakeQuant(quantInput, b),
        quantB: fq(b),
        label,
      }),
    backward: (ctx) => {
      const dy = ctx.grad(y)!;
      ctx.into([x], ([dx], accumulate) =>
        g.add({
          name: 'linear.dx',
          label,
          reads: [dy, w, ...(quant ? [quant.scale] : [])],
          writes: [dx!],
          record: (rec, b) =>
            matmul(rec, reshape(b.tensor(dy), [rows, outF]), b.tensor(w), reshape(b.tensor(dx!), [rows, inF]), { accumulate, quantB: fq(b), label: `${label} dx` }),
        }),
      );
      // dW = dY^T X̂, the gradient with respect to the (fake-quantized) weight the forward used,
      // from the (fake-quantized) input it saw. dX passes the input quantizer straight through:
      // per-token max scaling never clips, so its STE mask is all ones.
      const dwNode = (dw: GraphTensor, accumulate: boolean) =>
        g.add({
          name: 'linear.dw',
          label,
          reads: [dy, x, ...(quantInput ? [quantInput.scale] : [])],
          writes: [dw],
          record: (rec, b) =>
            matmul(rec, reshape(b.tensor(dy), [rows, outF]), reshape(b.tensor(x), [rows, inF]), b.tensor(dw), { transA: true, accumulate, quantB: fakeQuant(quantInput, b), label: `${label} dw` }),
        });
      if (!quant) {
        ctx.into([w], ([dw], accumulate) => dwNode(dw!, accumulate));
      } else if (ctx.needs(w) || ctx.needs(quant.scale)) {
        // The straight-through mask (and LSQ) must see only this use's contribution: `overwrite`
        // gives a scratch tensor (added to the gradient after the mask) when the weight's
        // gradient already holds another use's (a tied embedding) or earlier micro-batches'.
        ctx.overwrite([w], ([dw]) => {
          dwNode(dw!, false);
          // LSQ reads dL/dŴ before the mask zeroes the clipped entries it needs.
          if (ctx.needs(quant.scale)) lsqScaleGrad(g, ctx, w, quant.scale, dw!, quant.bits, label);
          fakeQuantMask(g, w, quant.scale, dw!, quant.bits, label);
        });
      }
      if (bias) {
        ctx.into([bias], ([db], accumulate) =>
          g.add({ name: 'linear.db', label, reads: [dy], writes: [db!], record: (rec, b) => biasGrad(rec, reshape(b.tensor(dy), [rows, outF]), b.tensor(db!), { accumulate, label: `${label} db` }) }),
        );
      }
    },
  });
  return y;
}

/**
 * Per-row scales for fake quantization, recomputed from the tensor every run: scale[r] =
 * max|t[r, :]| / (2^(bits-1) - 1) over the rows of the last dim (leading dims flattened): the
 * output channels of a weight [out, in], or the tokens of activations [..., in]. No gradient
 * flows into them.
 */
export function fakeQuantScales(g: Graph, t: GraphTensor, bits = 8, label = `${t.label} scales`): GraphTensor {
  const scale = g.temp([t.numel / last(t)], label);
  g.add({ name: 'fakeQuantScales', label, reads: [t], writes: [scale], record: (rec, b) => rowScales(rec, b.tensor(t), b.tensor(scale), { bits, label }) });
  return scale;
}

/** A weight [out, in] quantized per output channel on the graph, in the int8 kernels' layout (kernels/int8.ts `Int8Matrix`). */
export interface QuantizedGraphWeight {
  /** u32 [out, ceil(in / 4)]: 4 signed bytes per word. */
  packed: GraphTensor;
  /** f32 [out]. */
  scales: GraphTensor;
  /** in: values per row before padding. */
  cols: number;
}

const int8Matrix = (q: QuantizedGraphWeight, b: { tensor(t: GraphTensor): Tensor }): Int8Matrix => ({ packed: b.tensor(q.packed), scales: b.tensor(q.scales), cols: q.cols });

/**
 * The int8 linear layer y = x @ W^T (+ b) (-> GELU) on the int8 kernels: x's rows (tokens) are
 * quantized to 8 bits per row on the fly (`quantizeRows`), then multiplied by the per-channel
 * quantized weight with exact i32 sums (`int8Matmul`, dot4I8Packed where the device has it),
 * rescaled, bias and GELU fused. The float simulation of it is `linear` with `quant` and
 * `quantInput`. x: [..., in]; y: [..., out]. Inference only: no gradient flows through it.
 */
export function int8Linear(g: Graph, x: GraphTensor, w: QuantizedGraphWeight, bias: GraphTensor | null, opts: { gelu?: boolean; label?: string } = {}): GraphTensor {
  const label = opts.label ?? 'int8 linear';
  const words = packedWords(w.cols);
  if (w.cols !== last(x) || w.packed.shape.length !== 2 || w.packed.shape[1] !== words) {
    throw new ShapeError(`int8Linear (${label}): weight ${w.packed} must hold [out, ${last(x)}] packed as [out, ${packedWords(last(x))}] for input ${x}`);
  }
  const outF = w.packed.shape[0]!;
  expectGraphShape(w.scales, [outF], `int8Linear (${label}) weight scales`);
  if (bias) expectGraphShape(bias, [outF], `int8Linear (${label})`);
  if (x.requiresGrad || !!bias?.requiresGrad) throw new ShapeError(`int8Linear (${label}): int8 layers are inference only, but a gradient flows into ${x.requiresGrad ? x : bias}`);
  const rows = x.numel / w.cols;
  const xq: QuantizedGraphWeight = { packed: g.temp([rows, words], `${label} input int8`, [], 'u32'), scales: g.temp([rows], `${label} input scales`), cols: w.cols };
  g.add({
    name: 'quantizeRows',
    label: `${label} input`,
    reads: [x],
    writes: [xq.packed, xq.scales],
    record: (rec, b) => quantizeRows(rec, reshape(b.tensor(x), [rows, w.cols]), int8Matrix(xq, b), { label: `${label} input` }),
  });
  const y = g.temp([...x.shape.slice(0, -1), outF], label);
  g.add({
    name: 'int8Linear',
    label,
    reads: [xq.packed, xq.scales, w.packed, w.scales, ...(bias ? [bias] : [])],
    writes: [y],
    record: (rec, b) => int8Matmul(rec, int8Matrix(xq, b), int8Matrix(w, b), b.tensor(y), { bias: bias ? b.tensor(bias) : undefined, gelu: opts.gelu, label }),
  });
  return y;
}

/**
 * LSQ gradient of learnable per-channel scales from dL/dŴ (one use's contribution, before the
 * STE mask), added into the scales' gradient; g = 1 / sqrt(in * qmax) (see `LinearOptions.quant`).
 */
function lsqScaleGrad(g: Graph, ctx: GradContext, w: GraphTensor, scale: GraphTensor, dw: GraphTensor, bits: number | undefined, label: string): void {
  const lsqFactor = 1 / Math.sqrt(last(w) * quantMax(bits));
  ctx.into([scale], ([ds], accumulate) =>
    g.add({
      name: 'linear.lsq',
      label,
      reads: [w, scale, dw],
      writes: [ds!],
      record: (rec, b) => fakeQuantGrad(rec, b.tensor(w), b.tensor(scale), b.tensor(dw), { bits, gradScale: b.tensor(ds!), lsqFactor, accumulateScale: accumulate, label: `${label} scales` }),
    }),
  );
}

/** Straight-through estimator mask on one contribution to a weight gradient, in place (see kernels/matmul fakeQuantGrad). */
function fakeQuantMask(g: Graph, w: GraphTensor, scale: GraphTensor, dw: GraphTensor, bits: number | undefined, label: string): void {
  g.add({ name: 'linear.ste', label, reads: [w, scale], writes: [dw], record: (rec, b) => fakeQuantGrad(rec, b.tensor(w), b.tensor(scale), b.tensor(dw), { bits, label }) });
}

// ---------------------------------------------------------------------------------------------
// Elementwise

/** y = GELU(x) (exact, erf form). */
export function gelu(g: Graph, x: GraphTensor, opts: { label?: string } = {}): GraphTensor {
  const label = opts.label ?? 'gelu';
  const y = g.temp(x.shape, label, [x]);
  g.add({
    name: 'gelu',
    label,
    reads: [x],
    writes: [y],
    record: (rec, b) => geluKernel(rec, b.tensor(x), b.tensor(y), { label }),
    backward: (ctx) => {
      const dy = ctx.grad(y)!;
      ctx.into([x], ([dx], accumulate) =>
        g.add({ name: 'gelu.dx', label, reads: [x, dy], writes: [dx!], record: (rec, b) => geluBackward(rec, b.tensor(x), b.tensor(dy), b.tensor(dx!), { accumulate, label }) }),
      );
    },
  });
  return y;
}

/**
 * y = a + b, b's shape a suffix of a's and repeated over a's leading dims (residual add, bias,
 * positions). When this is a's last use, y takes a's storage and the add happens in place.
 */
export function add(g: Graph, a: GraphTensor, bT: GraphTensor, opts: { label?: string } = {}): GraphTensor {
  const label = opts.label ?? 'add';
  const lead = a.shape.length - bT.shape.length;
  if (lead < 0 || bT.shape.some((d, i) => d !== a.shape[lead + i])) throw new ShapeError(`add (${label}): ${bT} does not broadcast to ${a}`);
  const y = g.temp(a.shape, label, [a, bT]);
  const broadcast = bT.numel !== a.numel;
  g.add({
    name: 'add',
    label,
    reads: [a, bT],
    writes: [y],
    inPlace: { output: y, input: a },
    record: (rec, b) => {
      if (b.sameStorage(y, a)) axpy(rec, b.tensor(y), b.tensor(bT), 1, { label });
      else addKernel(rec, b.tensor(a), b.tensor(bT), b.tensor(y), { label });
    },
    backward: (ctx) => {
      const dy = ctx.grad(y)!;
      // b first: a may take dy itself as its gradient, which later contributions then add into.
      if (broadcast) {
        ctx.into([bT], ([db], accumulate) =>
          g.add({
            name: 'add.db',
            label,
            reads: [dy],
            writes: [db!],
            record: (rec, b) => colSum(rec, reshape(b.tensor(dy), [a.numel / bT.numel, bT.numel]), reshape(b.tensor(db!), [bT.numel]), { accumulate, label: `${label} db` }),
          }),
        );
      } else {
        // Same element count: b may still differ in shape (positions [T, d] on a batch of one).
        const dyb = g.view(dy, bT.shape, 0, `d(${bT.label})`);
        if (ctx.needs(a)) ctx.into([bT], ([db], accumulate) => (accumulate ? accumulateInto(g, db!, dyb) : copyInto(g, dyb, db!)));
        else ctx.add(bT, dyb);
      }
      ctx.add(a, dy);
    },
  });
  return y;
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

/** y = LayerNorm(x) over the last dim (* gamma + beta when given). Saves mean and rstd. */
export function layerNorm(g: Graph, x: GraphTensor, gamma: GraphTensor | null, beta: GraphTensor | null, opts: { eps?: number; label?: string } = {}): GraphTensor {
  const label = opts.label ?? 'layerNorm';
  if (!gamma !== !beta) throw new ShapeError(`layerNorm (${label}): give both gamma and beta or neither`);
  const C = last(x);
  if (gamma) expectGraphShape(gamma, [C], `layerNorm (${label})`);
  if (beta) expectGraphShape(beta, [C], `layerNorm (${label})`);
  const y = g.temp(x.shape, label, [x, gamma, beta]);
  const mean = g.temp(x.shape.slice(0, -1), `${label} mean`);
  const rstd = g.temp(x.shape.slice(0, -1), `${label} rstd`);
  const affine = (b: { tensor(t: GraphTensor): Tensor }) => (gamma && beta ? { gamma: b.tensor(gamma), beta: b.tensor(beta) } : null);
  g.add({
    name: 'layerNorm',
    label,
    reads: [x, ...(gamma && beta ? [gamma, beta] : [])],
    writes: [y, mean, rstd],
    record: (rec, b) => layerNormKernel(rec, b.tensor(x), affine(b), { y: b.tensor(y), mean: b.tensor(mean), rstd: b.tensor(rstd) }, { eps: opts.eps, label }),
    backward: (ctx) => {
      const dy = ctx.grad(y)!;
      const stats = (b: { tensor(t: GraphTensor): Tensor }) => ({ mean: b.tensor(mean), rstd: b.tensor(rstd) });
      const saved = [x, mean, rstd, dy, ...(gamma ? [gamma] : [])];
      ctx.into([x], ([dx], accumulate) =>
        g.add({
          name: 'layerNorm.dx',
          label,
          reads: saved,
          writes: [dx!],
          record: (rec, b) => layerNormBackward(rec, b.tensor(x), gamma ? b.tensor(gamma) : null, stats(b), b.tensor(dy), { dx: b.tensor(dx!) }, { accumulate, label }),
        }),
      );
      if (!gamma || !beta) return;
      ctx.into([gamma, beta], ([dgamma, dbeta], accumulate) => {
        const workspace = g.temp(layerNormWorkspaceShape(x.numel / C, C), `${label} workspace`);
        g.add({
          name: 'layerNorm.dparams',
          label,
          reads: saved,
          writes: [workspace, dgamma!, dbeta!],
          // The second dispatch reads the workspace the first wrote while writing dgamma and dbeta.
          conflicts: [
            [workspace, dgamma!],
            [workspace, dbeta!],
          ],
          record: (rec, b) =>
            layerNormBackward(rec, b.tensor(x), b.tensor(gamma), stats(b), b.tensor(dy), { dgamma: b.tensor(dgamma!), dbeta: b.tensor(dbeta!), workspace: b.tensor(workspace) }, { accumulate, label }),
        });
      });
    },
  });
  return y;
}

// ---------------------------------------------------------------------------------------------
// Attention

export interface AttentionOpOptions {
  heads: number;
  causal?: boolean;
  /** u32 [B]: batch b attends only to keys j < keyLengths[b]. */
  keyLengths?: GraphTensor;
  scale?: number;
  label?: string;
}

/**
 * Multi-head attention on token-major tensors: q [B, Lq, H*D], k and v [B, Lk, H*D] ->
 * [B, Lq, H*D] (fused, flash-style; saves the row log-sum-exp for the backward).
 */
export function attention(g: Graph, q: GraphTensor, k: GraphTensor, v: GraphTensor, opts: AttentionOpOptions): GraphTensor {
  const label = opts.label ?? 'attention';
  if (q.shape.length !== 3 || k.shape.length !== 3) throw new ShapeError(`attention (${label}): q ${q} and k ${k} must be token-major [B, L, H*D]`);
  const [B, Lq] = q.shape as [number, number, number];
  expectGraphShape(v, k.shape, `attention (${label})`);
  const out = g.temp(q.shape, label, [q, k, v]);
  const lse = g.temp([B, opts.heads, Lq], `${label} lse`);
  const klen = opts.keyLengths;
  const kernelOpts = (b: { tensor(t: GraphTensor): Tensor }) => ({ causal: opts.causal, scale: opts.scale, keyLengths: klen ? b.tensor(klen) : undefined, label });
  g.add({
    name: 'attention',
    label,
    reads: [q, k, v, ...(klen ? [klen] : [])],
    writes: [out, lse],
    record: (rec, b) => attentionKernel(rec, b.tensor(q), b.tensor(k), b.tensor(v), b.tensor(out), b.tensor(lse), kernelOpts(b)),
    backward: (ctx) => {
      const dout = ctx.grad(out)!;
      ctx.overwrite([q, k, v], ([dq, dk, dv]) =>
        g.add({
          name: 'attention.grad',
          label,
          reads: [q, k, v, out, lse, dout, ...(klen ? [klen] : [])],
          writes: [dq!, dk!, dv!],
          // dq holds (lse, delta) scratch that the dK/dV dispatch reads while writing dk and dv.
          conflicts: [
            [dq!, dk!],
            [dq!, dv!],
          ],
          record: (rec, b) =>
            attentionBackward(rec, b.tensor(q), b.tensor(k), b.tensor(v), b.tensor(out), b.tensor(lse), b.tensor(dout), { q: b.tensor(dq!), k: b.tensor(dk!), v: b.tensor(dv!) }, kernelOpts(b)),
        }),
      );
    },
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Embedding and convolution

/**
 * out[..., :] = table[ids[...], :]. ids: i32/u32; table: [V, C]. With `quant` the rows are
 * fake-quantized per row (token) with these scales (f32 [V], see `fakeQuantScales`) as they are
 * looked up, and the table's gradient passes the straight-through estimator: for a token
 * embedding tied to the logits projection, give both ops the one scales tensor, so the lookup
 * sees the rows the logits use and int8 inference dequantizes (`int8Embedding`).
 */
export function embedding(g: Graph, ids: GraphTensor, table: GraphTensor, opts: { quant?: { scale: GraphTensor; bits?: number }; label?: string } = {}): GraphTensor {
  const label = opts.label ?? 'embedding';
  if (table.shape.length !== 2) throw new ShapeError(`embedding (${label}): table ${table} must be [V, C]`);
  const quant = opts.quant;
  if (quant) expectGraphShape(quant.scale, [table.shape[0]!], `embedding (${label}) scales`);
  const scales = quant ? [quant.scale] : [];
  const fq = (b: { tensor(t: GraphTensor): Tensor }) => (quant ? { scale: b.tensor(quant.scale), bits: quant.bits } : undefined);
  const out = g.temp([...ids.shape, table.shape[1]!], label, [table]);
  g.add({
    name: 'embedding',
    label,
    reads: [ids, table, ...scales],
    writes: [out],
    record: (rec, b) => embeddingKernel(rec, b.tensor(ids), b.tensor(table), b.tensor(out), { quant: fq(b), label }),
    backward: (ctx) => {
      const dout = ctx.grad(out)!;
      // The kernel masks only the sums it scatters, so adding into a tied weight's gradient is fine.
      ctx.into([table], ([dtable], accumulate) =>
        g.add({
          name: 'embedding.grad',
          label,
          reads: [ids, dout, ...(quant ? [table, quant.scale] : [])],
          writes: [dtable!],
          record: (rec, b) => embeddingBackward(rec, b.tensor(ids), b.tensor(dout), b.tensor(dtable!), { accumulate, quant: quant && { ...fq(b)!, table: b.tensor(table) }, label }),
        }),
      );
    },
  });
  return out;
}

/** out[..., :] = the dequantized rows table[ids[...], :] of a row-quantized table [V, C] (kernels/int8 `int8Embedding`). ids: i32. Inference only. */
export function int8Embedding(g: Graph, ids: GraphTensor, table: QuantizedGraphWeight, opts: { label?: string } = {}): GraphTensor {
  const label = opts.label ?? 'int8 embedding';
  const out = g.temp([...ids.shape, table.cols], label);
  g.add({ name: 'int8Embedding', label, reads: [ids, table.packed, table.scales], writes: [out], record: (rec, b) => int8EmbeddingKernel(rec, b.tensor(ids), int8Matrix(table, b), b.tensor(out), { label }) });
  return out;
}

export interface Conv1dOpOptions {
  stride?: 1 | 2;
  /** Output [B, Tout, Cout] instead of [B, Cout, Tout]. */
  tokenMajor?: boolean;
  /** Exact GELU after the bias (fused when no gradient flows through it). */
  gelu?: boolean;
  label?: string;
}

/** Conv1d with kernel 3 and padding 1 (Whisper's stem). x: [B, Cin, T]; w: [Cout, Cin, 3]; b: [Cout]. */
export function conv1d(g: Graph, x: GraphTensor, w: GraphTensor, bias: GraphTensor, opts: Conv1dOpOptions = {}): GraphTensor {
  const label = opts.label ?? 'conv1d';
  if (x.shape.length !== 3 || w.shape.length !== 3) throw new ShapeError(`conv1d (${label}): input ${x} must be [B, Cin, T] and weight ${w} [Cout, Cin, 3]`);
  const needsGrad = x.requiresGrad || w.requiresGrad || bias.requiresGrad;
  if (opts.gelu && needsGrad) return gelu(g, conv1d(g, x, w, bias, { ...opts, gelu: false, label: `${label} pre-GELU` }), { label });
  const [B, , T] = x.shape as [number, number, number];
  const Cout = w.shape[0]!;
  const stride = opts.stride ?? 1;
  const Tout = conv1dOutLength(T, stride);
  const y = g.temp(opts.tokenMajor ? [B, Tout, Cout] : [B, Cout, Tout], label, [x, w, bias]);
  const convOpts = { stride, tokenMajor: opts.tokenMajor, label };
  g.add({
    name: 'conv1d',
    label,
    reads: [x, w, bias],
    writes: [y],
    record: (rec, b) => conv1dKernel(rec, b.tensor(x), b.tensor(w), b.tensor(bias), b.tensor(y), { ...convOpts, gelu: opts.gelu }),
    backward: (ctx) => {
      const dy = ctx.grad(y)!;
      // dx needs x only for its shape (the kernel does not bind it), so x is not among the reads.
      ctx.into([x], ([dx], accumulate) =>
        g.add({ name: 'conv1d.dx', label, reads: [w, dy], writes: [dx!], record: (rec, b) => conv1dBackward(rec, b.tensor(x), b.tensor(w), b.tensor(dy), { x: b.tensor(dx!) }, { ...convOpts, accumulate }) }),
      );
      ctx.into([w, bias], ([dw, db], accumulate) =>
        g.add({
          name: 'conv1d.dparams',
          label,
          reads: [x, dy],
          writes: [dw!, db!],
          record: (rec, b) => conv1dBackward(rec, b.tensor(x), b.tensor(w), b.tensor(dy), { weight: b.tensor(dw!), bias: b.tensor(db!) }, { ...convOpts, accumulate }),
        }),
      );
    },
  });
  return y;
}

// Loss ops. Each computes its value and, when its input needs a gradient, that gradient in the
// same fused pass during the forward; the loss is then a root of `backward`, which takes the
// gradient from there (no second pass over the vocabulary-sized logits).
import { ShapeError } from '../errors.js';
import { crossEntropy, IGNORE_INDEX, klDivergence, mseLoss, topkKlDivergence } from '../kernels/losses.js';
import type { GradContext, Graph, GraphTensor } from './graph.js';

export interface LossOpOptions {
  /** Multiplies the gradient (the loss's weight in the total; default 1). The value stays unweighted. */
  weight?: number;
  /** Compute the gradient (default: when the input needs one); a loss with a gradient must be a root of backward. */
  gradient?: boolean;
  label?: string;
}

function rowShape(t: GraphTensor): number[] {
  return t.shape.slice(0, -1);
}

function checkRows(ids: GraphTensor, x: GraphTensor, what: string): void {
  const rows = rowShape(x);
  if (ids.dtype !== 'i32' || ids.shape.length !== rows.length || ids.shape.some((d, i) => d !== rows[i])) {
    throw new ShapeError(`${what}: ${ids} must be i32 with shape [${rows.join(', ')}] (the rows of ${x})`);
  }
}

/** The fused gradient's target for a loss on `x`, or null without one. */
function fusedTarget(g: Graph, x: GraphTensor, loss: GraphTensor, opts: LossOpOptions) {
  return (opts.gradient ?? x.requiresGrad) && x.requiresGrad ? g.fusedGrad(x, loss) : null;
}

/** Backward rule of a fused loss: its gradient, written in the forward, joins the flow once. */
function fusedBackward(g: Graph, xs: readonly GraphTensor[]) {
  return (ctx: GradContext) => {
    for (const x of xs) {
      const entry = g.fusedGrads.get(x);
      if (!entry || entry.added) continue;
      entry.added = true;
      ctx.add(x, entry.grad);
    }
  };
}

/**
 * Mean cross-entropy of logits [..., V] against i32 targets [...] over the rows whose target is
 * not `ignoreIndex` (PyTorch's reduction='mean'). Returns the loss, a persistent f32 [1].
 */
export function crossEntropyLoss(g: Graph, logits: GraphTensor, targets: GraphTensor, opts: LossOpOptions & { ignoreIndex?: number } = {}): GraphTensor {
  const label = opts.label ?? 'cross-entropy';
  checkRows(targets, logits, `crossEntropyLoss (${label})`);
  const loss = g.state([1], label);
  const rowLoss = g.temp(rowShape(logits), `${label} rows`);
  const fused = fusedTarget(g, logits, loss, opts);
  g.add({
    name: 'crossEntropy',
    label,
    reads: [logits, targets],
    writes: [rowLoss, loss, ...(fused ? [fused.grad] : [])],
    conflicts: [[rowLoss, loss]],
    fusedLoss: fused ? loss : undefined,
    record: (rec, b) =>
      crossEntropy(rec, b.tensor(logits), b.tensor(targets), b.tensor(rowLoss), {
        ignoreIndex: opts.ignoreIndex ?? IGNORE_INDEX,
        grad: fused ? b.tensor(fused.grad) : undefined,
        gradScale: opts.weight ?? 1,
        accumulate: fused?.accumulate,
        mean: { out: b.tensor(loss) },
        label,
      }),
    backward: fusedBackward(g, [logits]),
  });
  return loss;
}

/**
 * Distillation KL(teacher || student) on temperature-softened distributions, tau^2-scaled, mean
 * over rows whose `mask` id is not `ignoreIndex` (e.g. the targets, -100 on padding). The teacher
 * gets no gradient. Returns the loss, a persistent f32 [1].
 */
export function klDivergenceLoss(
  g: Graph,
  student: GraphTensor,
  teacher: GraphTensor,
  opts: LossOpOptions & { tau?: number; mask?: GraphTensor; ignoreIndex?: number } = {},
): GraphTensor {
  const label = opts.label ?? 'kl-divergence';
  if (student.shape.length !== teacher.shape.length || student.shape.some((d, i) => d !== teacher.shape[i])) throw new ShapeError(`klDivergenceLoss (${label}): student ${student} and teacher ${teacher} differ in shape`);
  if (opts.mask) checkRows(opts.mask, student, `klDivergenceLoss (${label})`);
  const loss = g.state([1], label);
  const rowLoss = g.temp(rowShape(student), `${label} rows`);
  const fused = fusedTarget(g, student, loss, opts);
  const mask = opts.mask;
  g.add({
    name: 'klDivergence',
    label,
    reads: [student, teacher, ...(mask ? [mask] : [])],
    writes: [rowLoss, loss, ...(fused ? [fused.grad] : [])],
    conflicts: [[rowLoss, loss]],
    fusedLoss: fused ? loss : undefined,
    record: (rec, b) => {
      const rowMask = mask ? { ids: b.tensor(mask), ignoreIndex: opts.ignoreIndex ?? IGNORE_INDEX } : undefined;
      klDivergence(rec, b.tensor(student), b.tensor(teacher), b.tensor(rowLoss), {
        tau: opts.tau,
        mask: rowMask,
        grad: fused ? b.tensor(fused.grad) : undefined,
        gradScale: opts.weight ?? 1,
        accumulate: fused?.accumulate,
        mean: { out: b.tensor(loss) },
        label,
      });
    },
    backward: fusedBackward(g, [student]),
  });
  return loss;
}

/**
 * klDivergenceLoss against a teacher cached as its top-k logits per row (docs/teacher-cache.md):
 * the teacher distribution is softmax(values / tau) renormalised over the k entries at `ids`,
 * or with `teacherLogsumexp` ([...] f32, its logsumexp of logits / tau over the vocabulary) the
 * k entries at their true probabilities plus one tail bucket (kernels/losses topkKlDivergence).
 * student [..., V]; values f32 and ids i32 [..., k]. Returns the loss, a persistent f32 [1].
 */
export function topkKlDivergenceLoss(
  g: Graph,
  student: GraphTensor,
  values: GraphTensor,
  ids: GraphTensor,
  opts: LossOpOptions & { tau?: number; mask?: GraphTensor; ignoreIndex?: number; teacherLogsumexp?: GraphTensor } = {},
): GraphTensor {
  const label = opts.label ?? 'top-k kl-divergence';
  const rows = rowShape(student);
  for (const t of [values, ids]) {
    if (t.shape.length !== student.shape.length || rows.some((d, i) => d !== t.shape[i])) throw new ShapeError(`topkKlDivergenceLoss (${label}): ${t} must have the rows [${rows.join(', ')}] of ${student}`);
  }
  if (opts.mask) checkRows(opts.mask, student, `topkKlDivergenceLoss (${label})`);
  const lse = opts.teacherLogsumexp;
  if (lse && (lse.dtype !== 'f32' || lse.shape.length !== rows.length || lse.shape.some((d, i) => d !== rows[i]))) throw new ShapeError(`topkKlDivergenceLoss (${label}): ${lse} must be f32 [${rows.join(', ')}]`);
  const loss = g.state([1], label);
  const rowLoss = g.temp(rows, `${label} rows`);
  const fused = fusedTarget(g, student, loss, opts);
  const mask = opts.mask;
  g.add({
    name: 'topkKlDivergence',
    label,
    reads: [student, values, ids, ...(mask ? [mask] : []), ...(lse ? [lse] : [])],
    writes: [rowLoss, loss, ...(fused ? [fused.grad] : [])],
    conflicts: [[rowLoss, loss]],
    fusedLoss: fused ? loss : undefined,
    record: (rec, b) =>
      topkKlDivergence(rec, b.tensor(student), b.tensor(values), b.tensor(ids), b.tensor(rowLoss), {
        tau: opts.tau,
        mask: mask ? { ids: b.tensor(mask), ignoreIndex: opts.ignoreIndex ?? IGNORE_INDEX } : undefined,
        grad: fused ? b.tensor(fused.grad) : undefined,
        gradScale: opts.weight ?? 1,
        accumulate: fused?.accumulate,
        mean: { out: b.tensor(loss) },
        teacherLogsumexp: lse ? b.tensor(lse) : undefined,
        label,
      }),
    backward: fusedBackward(g, [student]),
  });
  return loss;
}

/**
 * Mean squared error between a and b ([..., C], same shape) over rows whose `mask` id is not
 * `ignoreIndex`: mean over valid rows and channels. Both sides get gradients where they need one
 * (b on a learned projection's path). Returns the loss, a persistent f32 [1].
 */
export function mseLossOp(g: Graph, a: GraphTensor, bT: GraphTensor, opts: LossOpOptions & { mask?: GraphTensor; ignoreIndex?: number } = {}): GraphTensor {
  const label = opts.label ?? 'mse';
  if (a.shape.length !== bT.shape.length || a.shape.some((d, i) => d !== bT.shape[i])) throw new ShapeError(`mseLoss (${label}): ${a} and ${bT} differ in shape`);
  if (opts.mask) checkRows(opts.mask, a, `mseLoss (${label})`);
  const loss = g.state([1], label);
  const rowLoss = g.temp(rowShape(a), `${label} rows`);
  const fusedA = fusedTarget(g, a, loss, opts);
  const fusedB = fusedTarget(g, bT, loss, opts);
  if (fusedA && fusedB && fusedA.accumulate !== fusedB.accumulate) {
    throw new ShapeError(`mseLoss (${label}): ${a} and ${bT} already carry gradients from different losses; one kernel writes both with one accumulate flag`);
  }
  const mask = opts.mask;
  g.add({
    name: 'mse',
    label,
    reads: [a, bT, ...(mask ? [mask] : [])],
    writes: [rowLoss, loss, ...(fusedA ? [fusedA.grad] : []), ...(fusedB ? [fusedB.grad] : [])],
    conflicts: [[rowLoss, loss]],
    fusedLoss: fusedA || fusedB ? loss : undefined,
    record: (rec, b) =>
      mseLoss(rec, b.tensor(a), b.tensor(bT), b.tensor(rowLoss), {
        mask: mask ? { ids: b.tensor(mask), ignoreIndex: opts.ignoreIndex ?? IGNORE_INDEX } : undefined,
        gradA: fusedA ? b.tensor(fusedA.grad) : undefined,
        gradB: fusedB ? b.tensor(fusedB.grad) : undefined,
        gradScale: opts.weight ?? 1,
        accumulate: (fusedA ?? fusedB)?.accumulate,
        mean: { out: b.tensor(loss) },
        label,
      }),
    backward: fusedBackward(g, [a, bT]),
  });
  return loss;
}

import { ShapeError } from '../errors.js';
import type { GradContext, Graph, GraphTensor, Node } from './graph.js';
import { accumulateInto, copyInto, zeroFill } from './ops.js';

export interface BackwardOptions {
  /**
   * Add parameter gradients into their tensors instead of overwriting them, to accumulate over
   * micro-batches (zero them with `zeroFill` at the start of each accumulation cycle).
   */
  accumulate?: boolean;
  /** dRoot for roots that are not fused losses; default all ones. */
  seeds?: ReadonlyMap<GraphTensor, GraphTensor>;
}

/**
 * Reverse-mode autodiff: append to `g` the nodes computing the gradient of the sum of `roots`
 * with respect to every trainable external tensor (parameter) they depend on, and return
 * parameter -> gradient (persistent tensors). Walks the nodes added so far in reverse, calling
 * each one's gradient rule; a tensor with several consumers gets their contributions added up,
 * and frozen parameters and inputs get none. Roots made by fused losses (crossEntropyLoss, ...)
 * have their gradient already; others are seeded with `seeds` or ones.
 */
export function backward(g: Graph, roots: readonly GraphTensor[], opts: BackwardOptions = {}): Map<GraphTensor, GraphTensor> {
  const forward = [...g.nodes];
  const fusedRoots = new Set(forward.filter((n) => n.fusedLoss).map((n) => n.fusedLoss!));
  for (const [of, entry] of g.fusedGrads) {
    for (const loss of entry.losses) {
      if (!roots.includes(loss)) {
        throw new ShapeError(`backward: loss ${loss} wrote a gradient into ${of}'s during the forward but is not among the roots; build it without a gradient or pass it as a root`);
      }
    }
  }
  // Bases whose gradient is needed: those on a path from a trainable tensor to a root.
  const wanted = new Set(roots.map((r) => r.base));
  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i]!;
    if (node.writes.some((w) => wanted.has(w.base))) for (const r of node.reads) if (r.requiresGrad) wanted.add(r.base);
  }
  const grads = new Map<GraphTensor, GraphTensor>();
  const paramGrads = new Map<GraphTensor, GraphTensor>();
  for (const root of roots) {
    if (fusedRoots.has(root)) continue;
    const seed = opts.seeds?.get(root) ?? g.constant(new Float32Array(root.numel).fill(1), root.shape, `d(${root.label})`);
    if (seed.numel !== root.numel) throw new ShapeError(`backward: seed ${seed} does not match root ${root}`);
    grads.set(root.base, g.view(seed, root.base.shape));
  }

  const needs = (t: GraphTensor) => t.requiresGrad && wanted.has(t.base);

  /** Whether the next write of dLoss/dt must add to what its gradient holds. */
  const wouldAccumulate = (t: GraphTensor) => grads.has(t.base) || (t.base.role === 'external' && !!opts.accumulate) || t.numel !== t.base.numel;

  /** Where dLoss/dt goes: its base's gradient (created on first use), and whether to add to it. */
  const sink = (t: GraphTensor): { target: GraphTensor; accumulate: boolean } => {
    const base = t.base;
    const param = base.role === 'external';
    let grad = grads.get(base);
    let accumulate = true;
    if (!grad) {
      grad = param ? g.state(base.shape, `${base.label}.grad`) : g.temp(base.shape, `d(${base.label})`);
      grads.set(base, grad);
      if (param) paramGrads.set(base, grad);
      accumulate = param && !!opts.accumulate;
      if (!accumulate && t.numel !== base.numel) {
        // A partial view (e.g. the first rows of a position table): the rest of the gradient is 0.
        zeroFill(g, grad);
        accumulate = true;
      }
    }
    return { target: g.view(grad, t.shape, t.baseOffset, `d(${t.label})`), accumulate };
  };

  const ctx: GradContext = {
    graph: g,
    grad(t) {
      const grad = grads.get(t.base);
      return grad ? g.view(grad, t.shape, t.baseOffset, `d(${t.label})`) : null;
    },
    needs,
    into(ts, emit) {
      const needed = ts.filter(needs);
      if (!needed.length) return;
      const accumulate = wouldAccumulate(needed[0]!);
      if (needed.some((t) => wouldAccumulate(t) !== accumulate)) {
        ctx.overwrite(ts, (targets) => emit(targets, false));
        return;
      }
      emit(ts.map((t) => (needs(t) ? sink(t).target : g.temp(t.shape, `unused d(${t.label})`))), accumulate);
    },
    overwrite(ts, emit) {
      const pending: [GraphTensor, GraphTensor][] = [];
      const targets = ts.map((t) => {
        if (!needs(t)) return g.temp(t.shape, `unused d(${t.label})`);
        const s = sink(t);
        if (!s.accumulate) return s.target;
        const scratch = g.temp(t.shape, `d(${t.label}) part`);
        pending.push([s.target, scratch]);
        return scratch;
      });
      emit(targets);
      for (const [target, part] of pending) accumulateInto(g, target, part);
    },
    add(t, grad) {
      if (!needs(t)) return;
      const base = t.base;
      // A fresh temp nobody else writes becomes the gradient itself instead of being copied.
      if (!grads.has(base) && base.role !== 'external' && t.numel === base.numel && grad.role === 'temp' && grad.numel === base.numel) {
        grads.set(base, g.view(grad, base.shape));
        return;
      }
      const s = sink(t);
      if (s.accumulate) accumulateInto(g, s.target, grad);
      else copyInto(g, grad, s.target);
    },
  };

  const previousPhase = g.phase;
  g.phase = 'backward';
  try {
    for (let i = forward.length - 1; i >= 0; i--) {
      const node = forward[i]!;
      const active = node.fusedLoss ? roots.includes(node.fusedLoss) : node.writes.some((w) => grads.has(w.base));
      if (!active || !node.reads.some(needs)) continue;
      if (!node.backward) throw new ShapeError(`backward: ${describe(node)} has no gradient rule, but ${node.reads.filter(needs).map(String).join(', ')} need gradients through it`);
      node.backward(ctx);
    }
  } finally {
    g.phase = previousPhase;
  }
  return paramGrads;
}

function describe(node: Node): string {
  return `${node.name} (${node.label})`;
}

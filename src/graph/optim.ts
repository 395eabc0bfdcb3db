import { ShapeError } from '../errors.js';
import { adamwStep, type AdamWParam } from '../kernels/adamw.js';
import { partialCount, sumSquares } from '../kernels/reduce.js';
import type { Graph, GraphTensor } from './graph.js';

export interface AdamWOpOptions {
  /** Initial learning rate; change it per run with the step scalar 'lr'. */
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (default 0.01, torch.optim.AdamW's). */
  weightDecay?: number;
  /** Parameters that get no weight decay (e.g. biases and LayerNorm), by graph tensor. */
  noDecay?: (param: GraphTensor) => boolean;
  /** A parameter's learning-rate factor (its own parameter group), by graph tensor; default 1. */
  lrScale?: (param: GraphTensor) => number;
  /** Clip the global gradient norm to this (torch's clip_grad_norm_), on the GPU. */
  maxGradNorm?: number;
  /** Multiplies the gradients first (1/micro-batches when they were accumulated). */
  gradScale?: number;
  /**
   * Gradient accumulation: the step scalar 'apply' (default 1) gates the update; runs with
   * apply 0 leave parameters and moments alone while the gradients accumulate.
   */
  accumulation?: boolean;
}

/**
 * One AdamW update of every parameter in `grads` (parameter -> gradient, as `backward` returns),
 * in the 'update' phase: moments are persistent state, zeroed at compile time. The step number
 * and learning rate are the step scalars 'step' (1 on the first run) and 'lr': pass them to
 * CompiledGraph.run, which re-records only this node's uniform values. Returns the squared global
 * gradient norm (persistent f32 [1], before clipping) when clipping, else null.
 */
export function adamw(g: Graph, grads: ReadonlyMap<GraphTensor, GraphTensor>, opts: AdamWOpOptions): { gradNormSquared: GraphTensor | null } {
  if (!grads.size) throw new ShapeError('adamw: no parameter gradients given');
  g.scalar('lr', opts.lr);
  g.scalar('step', 1);
  if (opts.accumulation) g.scalar('apply', 1);
  const previous = g.phase;
  g.phase = 'update';
  try {
    const entries = [...grads].map(([param, grad]) => {
      if (param.role !== 'external' || !param.requiresGrad) throw new ShapeError(`adamw: ${param} is not a trainable parameter`);
      return { param, grad, expAvg: g.state(param.shape, `${param.label}.exp_avg`), expAvgSq: g.state(param.shape, `${param.label}.exp_avg_sq`) };
    });
    const gradTensors = entries.map((e) => e.grad);
    let normSq: GraphTensor | null = null;
    if (opts.maxGradNorm !== undefined) {
      const norm = g.state([1], 'gradient norm squared');
      const partials = g.temp([Math.max(1, gradTensors.reduce((n, t) => n + partialCount(t.numel), 0))], 'gradient norm partials');
      g.add({
        name: 'gradNorm',
        label: 'gradient norm',
        reads: gradTensors,
        writes: [partials, norm],
        conflicts: [[partials, norm]],
        record: (rec, b) => sumSquares(rec, gradTensors.map((t) => b.tensor(t)), b.tensor(partials), b.tensor(norm), { label: 'gradient norm' }),
      });
      normSq = norm;
    }
    const clipNorm = normSq;
    g.add({
      name: 'adamw',
      label: 'AdamW',
      reads: [...gradTensors, ...(clipNorm ? [clipNorm] : [])],
      writes: entries.flatMap((e) => [e.param, e.expAvg, e.expAvgSq]),
      scalars: ['lr', 'step', ...(opts.accumulation ? ['apply'] : [])],
      record: (rec, b) => {
        const params: AdamWParam[] = entries.map((e) => ({
          param: b.tensor(e.param),
          grad: b.tensor(e.grad),
          expAvg: b.tensor(e.expAvg),
          expAvgSq: b.tensor(e.expAvgSq),
          weightDecay: opts.noDecay?.(e.param) ? 0 : undefined,
          lrScale: opts.lrScale?.(e.param),
        }));
        adamwStep(rec, params, {
          lr: b.scalar('lr'),
          step: b.scalar('step'),
          beta1: opts.beta1,
          beta2: opts.beta2,
          eps: opts.eps,
          weightDecay: opts.weightDecay,
          gradScale: opts.gradScale,
          clip: clipNorm && opts.maxGradNorm !== undefined ? { sumSquares: b.tensor(clipNorm), maxNorm: opts.maxGradNorm } : undefined,
          label: 'AdamW',
          idle: opts.accumulation ? b.scalar('apply') === 0 : false,
        });
      },
    });
    return { gradNormSquared: normSq };
  } finally {
    g.phase = previous;
  }
}

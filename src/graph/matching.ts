// Graph ops of dynamic layer matching (docs/method.md): the student x teacher distance matrix, the
// map chosen from it on the GPU, and the gather of each student layer's matched teacher state.
// None has a gradient: the map is a discrete choice and the teacher is frozen; the hidden-state
// loss on the gathered states (mseLossOp) carries the gradient.
import { ShapeError } from '../errors.js';
import type { LayerMatchingOptions } from '../distill/matching.js';
import { distanceMatrix, distanceWorkspaceSizes } from '../kernels/losses.js';
import { IGNORE_INDEX } from '../kernels/losses.js';
import { gatherLayers, matchLayersGpu } from '../kernels/matching.js';
import type { Graph, GraphTensor } from './graph.js';

/**
 * D[i, j] = mean squared difference of student[i] and teacher[j] over the rows whose `mask` id is
 * not ignoreIndex (all rows without a mask), both sides LayerNorm-ed without affine first when
 * `layerNorm`. student [LS, ..., C], teacher [LT, ..., C]. Returns D, a persistent f32 [LS, LT].
 */
export function layerDistances(g: Graph, student: GraphTensor, teacher: GraphTensor, opts: { mask?: GraphTensor; layerNorm?: boolean; label?: string } = {}): GraphTensor {
  const label = opts.label ?? 'layer distances';
  const ls = student.shape[0]!;
  const lt = teacher.shape[0]!;
  const inner = student.shape.slice(1);
  if (teacher.shape.length !== student.shape.length || teacher.shape.slice(1).some((d, i) => d !== inner[i])) throw new ShapeError(`layerDistances (${label}): ${student} and ${teacher} differ past the layer dim`);
  const cols = inner[inner.length - 1]!;
  const rows = student.numel / ls / cols;
  const layerNorm = opts.layerNorm ?? false;
  const sizes = distanceWorkspaceSizes(ls, lt, rows, cols, layerNorm);
  const dist = g.state([ls, lt], label);
  const partials = g.temp([sizes.partials], `${label} partials`);
  const stats = layerNorm ? g.temp([sizes.stats], `${label} row stats`) : null;
  const mask = opts.mask;
  g.add({
    name: 'layerDistances',
    label,
    reads: [student, teacher, ...(mask ? [mask] : [])],
    writes: [dist, partials, ...(stats ? [stats] : [])],
    conflicts: [[partials, dist], ...(stats ? [[stats, partials] as const] : [])],
    record: (rec, b) =>
      distanceMatrix(rec, b.tensor(student), b.tensor(teacher), b.tensor(dist), { partials: b.tensor(partials), stats: stats ? b.tensor(stats) : undefined }, {
        mask: mask ? { ids: b.tensor(mask), ignoreIndex: IGNORE_INDEX } : undefined,
        layerNorm,
        label,
      }),
  });
  return dist;
}

/**
 * The layer map chosen from D [LS, LT] on the GPU (see kernels/matching.ts matchLayersGpu):
 * a persistent u32 [LS + 1] (0-based teacher layers, then the status word), recomputed on steps
 * 1, 1 + every, 1 + 2·every, ... (the step scalar 'step') and kept in between.
 */
export function matchLayersOp(g: Graph, dist: GraphTensor, opts: LayerMatchingOptions & { every?: number; label?: string }): GraphTensor {
  const label = opts.label ?? 'layer map';
  const every = opts.every ?? 1;
  if (!Number.isInteger(every) || every < 1) throw new ShapeError(`matchLayersOp (${label}): every must be a positive integer, got ${every}`);
  const map = g.state([dist.shape[0]! + 1], label, 'u32');
  g.scalar('step', 1);
  g.add({
    name: 'matchLayers',
    label,
    reads: [dist],
    writes: [map],
    scalars: ['step'],
    record: (rec, b) => matchLayersGpu(rec, b.tensor(dist), b.tensor(map), { ...opts, update: (b.scalar('step') - 1) % every === 0, label }),
  });
  return map;
}

/** out[i] = states[map[i]] for the LS student layers: the matched teacher states. */
export function gatherLayersOp(g: Graph, states: GraphTensor, map: GraphTensor, opts: { label?: string } = {}): GraphTensor {
  const label = opts.label ?? 'matched teacher states';
  if (states.requiresGrad) throw new ShapeError(`gatherLayersOp (${label}): ${states} needs a gradient, but the gather has none (teacher states are frozen)`);
  const layers = map.shape[0]! - 1;
  const out = g.temp([layers, ...states.shape.slice(1)], label);
  g.add({ name: 'gatherLayers', label, reads: [states, map], writes: [out], record: (rec, b) => gatherLayers(rec, b.tensor(states), b.tensor(map), b.tensor(out), { label }) });
  return out;
}

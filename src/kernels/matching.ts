import { ConfigError, ShapeError } from '../errors.js';
import type { Recorder } from '../gpu/gpu.js';
import { expectDType, expectShape, numel, type Tensor } from '../gpu/tensor.js';
import type { LayerMatchingOptions } from '../distill/matching.js';

/** Most student or teacher layers the GPU matcher takes (its DP table is 32 x 32). */
export const MAX_MATCHED_LAYERS = 32;

const strategyCodes = { fixed: 0, dynamic: 1, window: 1, greedy: 2 } as const;

/**
 * The layer map from the distance matrix, on the GPU (shaders/matching.wgsl match_layers; the
 * CPU reference is distill/matching.ts matchLayers, whose rules it follows): dist [LS, LT] f32;
 * map u32 [LS + 1]: 0-based teacher layer per student layer, then a status word (0: chosen now;
 * 1: D held a non-finite value or no map fits, the previous map was kept). With `update` false
 * the map is left as it is (a map recomputed every K steps).
 */
export function matchLayersGpu(rec: Recorder, dist: Tensor, map: Tensor, opts: LayerMatchingOptions & { update?: boolean; label?: string }): void {
  const what = `matchLayersGpu${opts.label ? ` (${opts.label})` : ''}`;
  if (dist.shape.length !== 2) throw new ShapeError(`${what}: distances "${dist.label}" must be [student layers, teacher layers], has shape [${dist.shape.join(', ')}]`);
  const [ls, lt] = dist.shape as [number, number];
  if (ls < 1 || lt < 1 || ls > MAX_MATCHED_LAYERS || lt > MAX_MATCHED_LAYERS) {
    throw new ShapeError(`${what}: ${ls} student x ${lt} teacher layers; the GPU matcher takes 1..${MAX_MATCHED_LAYERS} of each`);
  }
  if (opts.strategy !== 'greedy' && ls > lt) throw new ShapeError(`${what}: ${ls} student layers cannot map strictly increasingly into ${lt} teacher layers`);
  expectDType(dist, ['f32'], what);
  expectDType(map, ['u32'], what);
  expectShape(map, [ls + 1], what);
  const code = strategyCodes[opts.strategy];
  if (code === undefined) throw new ConfigError(`${what}: unknown strategy "${String(opts.strategy)}", expected fixed, dynamic, window or greedy`);
  const window = opts.strategy === 'window' ? (opts.window ?? 1) : lt;
  if (!Number.isInteger(window) || window < 0) throw new ConfigError(`${what}: window must be a non-negative integer, got ${window}`);
  rec.dispatch(
    { shader: 'matching', entry: 'match_layers' },
    {
      tensors: { dist, layer_map: map },
      uniforms: { ls, lt, strategy: code, window, pin_last: (opts.pinLast ?? true) ? 1 : 0, update: (opts.update ?? true) ? 1 : 0 },
      sizes: { dist: ls * lt, layer_map: ls + 1 },
      workgroups: [1],
      flops: 2 * ls * lt,
      bytes: 4 * (ls * lt + ls + 1),
    },
    opts.label,
  );
}

/**
 * out[i, ...] = states[map[i], ...]: the teacher state each student layer is matched to.
 * states: [LT, ...] f32; map: u32 with at least LS entries (0-based, < LT; matchLayersGpu's
 * output); out: [LS, ...] f32 with the same trailing dims.
 */
export function gatherLayers(rec: Recorder, states: Tensor, map: Tensor, out: Tensor, opts: { label?: string } = {}): void {
  const what = `gatherLayers${opts.label ? ` (${opts.label})` : ''}`;
  if (states.shape.length < 2) throw new ShapeError(`${what}: states "${states.label}" must be [layers, ...], has shape [${states.shape.join(', ')}]`);
  const inner = states.shape.slice(1);
  const layers = out.shape[0] ?? 0;
  expectShape(out, [layers, ...inner], what);
  expectDType(states, ['f32'], what);
  expectDType(out, ['f32'], what);
  expectDType(map, ['u32'], what);
  if (numel(map.shape) < layers) throw new ShapeError(`${what}: map "${map.label}" has ${numel(map.shape)} entries for ${layers} layers`);
  const elements = numel(inner);
  rec.dispatch(
    { shader: 'matching', entry: 'gather_layers' },
    {
      tensors: { g_map: map, states, gathered: out },
      uniforms: { layers, elements },
      sizes: { g_map: numel(map.shape), states: numel(states.shape), gathered: layers * elements },
      workgroups: [Math.min(65535, Math.max(1, Math.ceil(elements / 1024))), layers],
      flops: 0,
      bytes: 8 * layers * elements,
    },
    opts.label,
  );
}

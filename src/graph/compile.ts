import { ShapeError } from '../errors.js';
import type { Gpu, Program } from '../gpu/gpu.js';
import { dtypeBytes, type Tensor } from '../gpu/tensor.js';
import type { Bindings, Graph, GraphTensor, Node } from './graph.js';
import { planGraph, type GraphPlan, type PlanLimits } from './plan.js';

export interface CompileOptions {
  /** Override device limits for the plan (tests force small arenas this way). */
  limits?: Partial<PlanLimits>;
  /** false: no storage reuse and no in-place ops (see planGraph). Default true. */
  reuse?: boolean;
}

type HostArray = Float32Array | Int32Array | Uint32Array;

/** The plan limits of a device. */
export function deviceLimits(gpu: Gpu): PlanLimits {
  return {
    alignment: gpu.limits.minStorageBufferOffsetAlignment,
    maxBindingBytes: gpu.limits.maxStorageBufferBindingSize,
    maxArenaBytes: gpu.limits.maxBufferSize,
  };
}

/**
 * A graph recorded once: arenas and persistent tensors allocated, every node's dispatches in one
 * Program. `run()` replays it (one command encoder, no allocation); only input data written with
 * `write` and uniform values of nodes whose step scalars changed are uploaded.
 */
export class CompiledGraph {
  private readonly staging: GPUBuffer;
  private destroyed = false;

  /** @internal Made by compileGraph. */
  constructor(
    readonly gpu: Gpu,
    readonly graph: Graph,
    /** How the temps were placed (arena sizes, peak vs total bytes). */
    readonly plan: GraphPlan,
    readonly program: Program,
    private readonly bindings: Bindings,
    private readonly scalars: Map<string, number>,
    private readonly dynamic: readonly { node: Node; first: number }[],
    private readonly arenas: readonly GPUBuffer[],
    private readonly owned: readonly Tensor[],
  ) {
    this.staging = gpu.device.createBuffer({ label: 'scalar readback', size: CompiledGraph.maxScalars * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  /** Most values one readScalars call returns. */
  static readonly maxScalars = 256;

  /** The GPU tensor behind a graph tensor (persistent ones stay valid between runs). */
  tensor(t: GraphTensor): Tensor {
    return this.bindings.tensor(t);
  }

  /** Write host data into an input (or other persistent) tensor before the next run. */
  write(t: GraphTensor, data: HostArray | readonly number[]): void {
    if (!t.persistent || t.role === 'external') throw new ShapeError(`write: ${t} is not an input or state tensor of this graph`);
    this.gpu.write(this.tensor(t), data);
  }

  /** Current value of a step scalar. */
  scalar(name: string): number {
    const v = this.scalars.get(name);
    if (v === undefined) throw new ShapeError(`no step scalar "${name}" in this graph (known: ${[...this.scalars.keys()].join(', ') || 'none'})`);
    return v;
  }

  /**
   * Submit one step without waiting for it. `scalars` updates step scalars (e.g. `{ step: 2,
   * lr: 1e-4 }`); nodes that read a changed one get their uniform values re-recorded.
   */
  submit(scalars: Readonly<Record<string, number>> = {}): void {
    this.setScalars(scalars);
    this.program.submit(null);
  }

  /** Run one step and wait for the GPU (with the Gpu's profiler, if set, timing each dispatch). */
  async run(scalars: Readonly<Record<string, number>> = {}): Promise<void> {
    this.setScalars(scalars);
    await this.program.run();
  }

  /** Read a persistent tensor (e.g. a kept output) as float32 (integers widened). */
  async read(t: GraphTensor): Promise<Float32Array> {
    if (!t.persistent) throw new ShapeError(`read: ${t} is an intermediate whose storage is reused; keep() it when building the graph`);
    return this.gpu.readF32(this.tensor(t));
  }

  /**
   * Read small f32 persistent tensors (losses, gradient norms) in one copy through a staging
   * buffer made once; returns their values concatenated.
   */
  async readScalars(ts: readonly GraphTensor[]): Promise<Float32Array> {
    const total = ts.reduce((n, t) => n + t.numel, 0);
    if (total > CompiledGraph.maxScalars) throw new ShapeError(`readScalars: ${total} values asked, at most ${CompiledGraph.maxScalars}`);
    const encoder = this.gpu.device.createCommandEncoder({ label: 'scalar readback' });
    let offset = 0;
    for (const t of ts) {
      if (!t.persistent || t.dtype !== 'f32') throw new ShapeError(`readScalars: ${t} must be a persistent f32 tensor`);
      const src = this.tensor(t);
      encoder.copyBufferToBuffer(src.buffer, src.offset, this.staging, offset, t.bytes);
      offset += t.bytes;
    }
    this.gpu.device.queue.submit([encoder.finish()]);
    await this.staging.mapAsync(GPUMapMode.READ, 0, Math.max(4, offset));
    const values = new Float32Array(this.staging.getMappedRange(0, Math.max(4, offset)).slice(0)).subarray(0, total);
    this.staging.unmap();
    this.gpu.gpuDevice.throwIfFailed();
    return values;
  }

  /** Free the arenas, the graph's own persistent tensors and the program. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.program.destroy();
    for (const a of this.arenas) a.destroy();
    this.staging.destroy();
    this.gpu.free(...this.owned);
  }

  private setScalars(values: Readonly<Record<string, number>>): void {
    const changed = new Set<string>();
    for (const [name, v] of Object.entries(values)) {
      if (!this.scalars.has(name)) throw new ShapeError(`no step scalar "${name}" in this graph (known: ${[...this.scalars.keys()].join(', ') || 'none'})`);
      if (this.scalars.get(name) !== v) changed.add(name);
      this.scalars.set(name, v);
    }
    if (!changed.size) return;
    for (const { node, first } of this.dynamic) {
      if (node.scalars!.some((s) => changed.has(s))) this.program.rewrite(first, (rec) => node.record(rec, this.bindings));
    }
  }
}

/**
 * Compile a graph for one shape: plan its temps into arenas (planGraph), allocate the arenas and
 * the graph's persistent tensors (inputs, state zeroed, constants filled, kept outputs), and
 * record every node once into a Program. The graph can take no more nodes afterwards.
 */
export async function compileGraph(gpu: Gpu, g: Graph, opts: CompileOptions = {}): Promise<CompiledGraph> {
  g.freeze();
  const limits = { ...deviceLimits(gpu), ...opts.limits };
  const plan = planGraph(g, limits, { reuse: opts.reuse });
  const device = gpu.device;
  const arenas = plan.memory.arenaBytes.map((bytes, i) =>
    device.createBuffer({ label: `arena ${i}`, size: Math.max(16, bytes), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST }),
  );
  const owned: Tensor[] = [];
  const bases = new Map<GraphTensor, Tensor>();
  const used = new Set<GraphTensor>(g.nodes.flatMap((n) => [...n.reads, ...n.writes]).map((t) => t.base));
  for (const t of g.tensors) {
    if (t.viewOf) continue;
    if (t.role === 'external') {
      if (!t.external) throw new ShapeError(`compileGraph: parameter ${t} was built shape-only; build the graph with GPU tensors to compile it`);
      bases.set(t, t.external);
    } else if (t.persistent) {
      const physical = gpu.empty(t.shape, t.dtype, t.label);
      owned.push(physical);
      bases.set(t, physical);
    } else if (used.has(t)) {
      const block = plan.blockOf.get(t)!;
      const p = plan.memory.placements.get(block)!;
      bases.set(t, { buffer: arenas[p.arena]!, offset: p.offset, dtype: t.dtype, shape: t.shape, label: t.label });
    }
  }
  const views = new Map<GraphTensor, Tensor>();
  const scalars = new Map(g.scalars);
  const bindings: Bindings = {
    tensor(t) {
      if (!t.viewOf) {
        const base = bases.get(t);
        if (!base) throw new ShapeError(`${t} is not used by any node of the graph, so it has no storage`);
        return base;
      }
      let v = views.get(t);
      if (!v) {
        const base = bindings.tensor(t.base);
        const offset = base.offset + t.baseOffset * dtypeBytes[t.dtype];
        if (offset % limits.alignment !== 0) {
          throw new ShapeError(`view ${t} starts at byte ${offset} of its buffer, not a multiple of the ${limits.alignment}-byte binding alignment`);
        }
        v = { buffer: base.buffer, offset, dtype: t.dtype, shape: t.shape, label: t.label };
        views.set(t, v);
      }
      return v;
    },
    sameStorage(a, b) {
      const x = bindings.tensor(a);
      const y = bindings.tensor(b);
      return x.buffer === y.buffer && x.offset === y.offset;
    },
    scalar(name) {
      const v = scalars.get(name);
      if (v === undefined) throw new ShapeError(`no step scalar "${name}"`);
      return v;
    },
  };
  // Persistent state starts at zero and constants hold their data before the first run.
  await gpu.run((rec) => {
    for (const t of g.tensors) if (!t.viewOf && t.role === 'state' && bases.has(t)) rec.zero(bases.get(t)!);
  });
  for (const t of g.tensors) if (t.role === 'constant' && !t.viewOf) gpu.write(bases.get(t)!, t.data!);

  const rec = gpu.record();
  const dynamic: { node: Node; first: number }[] = [];
  for (const node of g.nodes) {
    const first = rec.commandCount;
    try {
      node.record(rec, bindings);
    } catch (err) {
      if (err instanceof Error) err.message = `${node.name} (${node.label}), node ${node.id} of ${g.nodes.length}: ${err.message}`;
      throw err;
    }
    if (node.scalars?.length) dynamic.push({ node, first });
  }
  const program = await rec.finish();
  return new CompiledGraph(gpu, g, plan, program, bindings, scalars, dynamic, arenas, owned);
}

import { ShapeError } from '../errors.js';
import type { Recorder } from '../gpu/gpu.js';
import { byteSize, numel, type DType, type Tensor } from '../gpu/tensor.js';

/**
 * Where a graph tensor's storage comes from:
 * - 'temp': an intermediate; the memory plan places it in an arena for its lifetime only;
 * - 'input': persistent, allocated by the compiled graph, written by the host before a run;
 * - 'external': persistent, a GPU tensor the caller owns (model parameters);
 * - 'state': persistent, allocated by the compiled graph and zeroed once (gradients, optimizer
 *   moments, loss values, caches);
 * - 'constant': persistent, allocated by the compiled graph and filled once from host data.
 */
export type TensorRole = 'temp' | 'input' | 'external' | 'state' | 'constant';

/**
 * A tensor of a graph: shape and dtype are known when the graph is built, storage only once it
 * is compiled. A view shares the storage of another graph tensor at an element offset.
 */
export class GraphTensor {
  /** @internal Set by keep(): a temp that must outlive the run (it gets its own buffer). */
  kept = false;
  private ownRequiresGrad: boolean;

  /** @internal Create tensors through Graph methods. */
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly label: string,
    private readonly ownRole: TensorRole,
    requiresGrad: boolean,
    /** The tensor this one is a view of (null for a tensor with its own storage). */
    readonly viewOf: GraphTensor | null = null,
    /** Element offset of this view into viewOf. */
    readonly viewOffset = 0,
    /** The caller's GPU tensor, for 'external' tensors (null for a shape-only parameter). */
    readonly external: Tensor | null = null,
    /** Host data of a 'constant'. */
    readonly data: Float32Array | Int32Array | Uint32Array | null = null,
  ) {
    this.ownRequiresGrad = requiresGrad;
  }

  /** The tensor at the end of the view chain, which owns the storage. */
  get base(): GraphTensor {
    let t: GraphTensor = this;
    while (t.viewOf) t = t.viewOf;
    return t;
  }

  /** Element offset of this tensor into its base's storage. */
  get baseOffset(): number {
    let off = 0;
    for (let t: GraphTensor | null = this; t?.viewOf; t = t.viewOf) off += t.viewOffset;
    return off;
  }

  get role(): TensorRole {
    return this.viewOf ? this.base.role : this.ownRole;
  }

  /** Whether the loss's gradient with respect to this tensor is wanted (trainable, or computed from one). */
  get requiresGrad(): boolean {
    return this.viewOf ? this.base.requiresGrad : this.ownRequiresGrad;
  }

  /** Persistent tensors get their own buffer; temps share arenas (kept temps become persistent). */
  get persistent(): boolean {
    const base = this.base;
    return base.ownRole !== 'temp' || base.kept;
  }

  get numel(): number {
    return numel(this.shape);
  }

  get bytes(): number {
    return byteSize(this);
  }

  toString(): string {
    return `"${this.label}" [${this.shape.join(', ')}] ${this.dtype}`;
  }
}

/** A tensor's description without storage. */
export interface ShapeOnly {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly label: string;
}

/** What a node's recording code sees once the graph is compiled. */
export interface Bindings {
  /** The GPU tensor a graph tensor was given. */
  tensor(t: GraphTensor): Tensor;
  /** Whether two graph tensors were given the same storage (an in-place op's input and output). */
  sameStorage(a: GraphTensor, b: GraphTensor): boolean;
  /** Current value of a step scalar (see Graph.scalar). */
  scalar(name: string): number;
}

/** Everything a gradient rule may do: read output gradients, write input gradients, add nodes. */
export interface GradContext {
  readonly graph: Graph;
  /** dLoss/dOutput for an output (or view of one) of the node; null if nothing downstream needs it. */
  grad(t: GraphTensor): GraphTensor | null;
  /** Whether an input needs a gradient. */
  needs(t: GraphTensor): boolean;
  /**
   * For kernels that can add into their outputs: `emit(targets, accumulate)` writes
   * dLoss/dts[i] into targets[i], overwriting them or, when `accumulate`, adding to them (one
   * flag for all, as one kernel writes them). Where the tensors disagree on whether to add,
   * scratch targets are written and added afterwards. Nothing happens if none needs a gradient;
   * a tensor that needs none gets a scratch target.
   */
  into(ts: readonly GraphTensor[], emit: (targets: GraphTensor[], accumulate: boolean) => void): void;
  /**
   * For kernels that overwrite their outputs: `emit(targets)` writes dLoss/dts[i] into
   * targets[i]; where a gradient already exists (or none is needed) the target is a scratch
   * tensor, added afterwards (or dropped).
   */
  overwrite(ts: readonly GraphTensor[], emit: (targets: GraphTensor[]) => void): void;
  /** Add an already computed gradient tensor (e.g. one a fused loss wrote) into t's gradient. */
  add(t: GraphTensor, g: GraphTensor): void;
}

/** What an op declares when it adds a node. */
export interface NodeSpec {
  /** Op name, e.g. 'linear' or 'linear.grad'. */
  readonly name: string;
  /** Names the node in errors and profiles (e.g. the layer). */
  readonly label: string;
  /** Tensors the node's dispatches read (read-only bindings). */
  readonly reads: readonly GraphTensor[];
  /** Tensors the node writes, including ones it updates in place. */
  readonly writes: readonly GraphTensor[];
  /**
   * Further pairs that one of the node's dispatches binds read-only and writable at once
   * (beyond reads x writes), e.g. an output that a later dispatch of the node reads as scratch.
   * The plan keeps each pair in different buffers.
   */
  readonly conflicts?: readonly (readonly [GraphTensor, GraphTensor])[];
  /** The output may take the input's storage when this node is the input's last use. */
  readonly inPlace?: { readonly output: GraphTensor; readonly input: GraphTensor };
  /** Step scalars the recording reads; changing one re-records this node's uniform values. */
  readonly scalars?: readonly string[];
  /** A loss whose gradient was computed by its own forward (seeded with 1). */
  readonly fusedLoss?: GraphTensor;
  /** Record the node's dispatches. */
  record(rec: Recorder, b: Bindings): void;
  /** Gradient rule: add nodes writing the inputs' gradients from the outputs'. */
  backward?(ctx: GradContext): void;
}

/** Which part of a step a node belongs to (for profiles and reports). */
export type Phase = 'forward' | 'backward' | 'update';

export interface Node extends NodeSpec {
  readonly id: number;
  readonly phase: Phase;
}

/** A gradient a fused loss writes during the forward, accumulated over the losses sharing it. */
interface FusedGrad {
  grad: GraphTensor;
  /** The losses that write (the first) or add (the others) into `grad`. */
  losses: GraphTensor[];
  /** Whether autodiff has taken `grad` into the gradient flow. */
  added: boolean;
}

/**
 * A computation built once per shape: tensors with static shapes, and nodes in execution order,
 * each recording its dispatches on the existing kernels. `backward` (autodiff.ts) appends the
 * gradient nodes; `compileGraph` (compile.ts) plans memory and records the whole step once.
 */
export class Graph {
  readonly tensors: GraphTensor[] = [];
  readonly nodes: Node[] = [];
  /** Step scalars and their initial values (e.g. 'lr', 'step'). */
  readonly scalars = new Map<string, number>();
  /** The phase newly added nodes get. */
  phase: Phase = 'forward';
  /** @internal Fused-loss gradients by the tensor they are the gradient of. */
  readonly fusedGrads = new Map<GraphTensor, FusedGrad>();
  private frozen = false;

  private make(shape: readonly number[], dtype: DType, label: string, role: TensorRole, requiresGrad: boolean, extra: Partial<Pick<GraphTensor, 'external' | 'data'>> = {}): GraphTensor {
    this.checkOpen();
    if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new ShapeError(`graph tensor "${label}": shape [${shape.join(', ')}] must be non-negative integers`);
    const t = new GraphTensor(this, this.tensors.length, [...shape], dtype, label, role, requiresGrad, null, 0, extra.external ?? null, extra.data ?? null);
    this.tensors.push(t);
    return t;
  }

  /** An intermediate tensor; it needs a gradient when any of `from` does. */
  temp(shape: readonly number[], label: string, from: readonly (GraphTensor | null | undefined)[] = [], dtype: DType = 'f32'): GraphTensor {
    return this.make(shape, dtype, label, 'temp', from.some((t) => t?.requiresGrad));
  }

  /** A persistent tensor the host writes before each run (audio features, token ids, lengths). */
  input(shape: readonly number[], dtype: DType, label: string): GraphTensor {
    return this.make(shape, dtype, label, 'input', false);
  }

  /**
   * A GPU tensor the caller owns, e.g. a model parameter; `trainable` ones get gradients. The
   * same GPU tensor given twice gives the same graph tensor. A shape-only description (no
   * buffer) makes a parameter that can be planned but not compiled (memory reports of models
   * too big to upload).
   */
  external(t: Tensor | ShapeOnly, opts: { trainable?: boolean } = {}): GraphTensor {
    const physical = 'buffer' in t ? t : null;
    const existing = physical ? this.tensors.find((g) => g.external === physical) : undefined;
    if (existing) {
      if (existing.requiresGrad !== (opts.trainable ?? false)) throw new ShapeError(`graph: "${t.label}" was bound as ${existing.requiresGrad ? 'trainable' : 'frozen'} before`);
      return existing;
    }
    return this.make(t.shape, t.dtype, t.label, 'external', opts.trainable ?? false, { external: physical });
  }

  /** A persistent tensor owned by the compiled graph, zeroed once when it is compiled. */
  state(shape: readonly number[], label: string, dtype: DType = 'f32'): GraphTensor {
    return this.make(shape, dtype, label, 'state', false);
  }

  /** A persistent tensor filled once from host data. */
  constant(data: Float32Array | Int32Array | Uint32Array, shape: readonly number[], label: string): GraphTensor {
    const dtype: DType = data instanceof Float32Array ? 'f32' : data instanceof Int32Array ? 'i32' : 'u32';
    if (data.length !== numel(shape)) throw new ShapeError(`graph constant "${label}": ${data.length} values for shape [${shape.join(', ')}]`);
    return this.make(shape, dtype, label, 'constant', false, { data });
  }

  /**
   * A view of `t` with another shape: all of it (a reshape), or `numel(shape)` elements from
   * `elementOffset` on. A view's gradient flows into its base's.
   */
  view(t: GraphTensor, shape: readonly number[], elementOffset = 0, label = `${t.label} view`): GraphTensor {
    this.checkOpen();
    const n = numel(shape);
    if (elementOffset < 0 || elementOffset + n > t.numel || !Number.isInteger(elementOffset)) {
      throw new ShapeError(`graph view "${label}": [${shape.join(', ')}] at element ${elementOffset} does not fit in ${t}`);
    }
    if (n === t.numel && elementOffset === 0 && shape.length === t.shape.length && shape.every((d, i) => d === t.shape[i])) return t;
    const v = new GraphTensor(this, this.tensors.length, [...shape], t.dtype, label, t.role, false, t, elementOffset);
    this.tensors.push(v);
    return v;
  }

  /** Keep `t` after the run (its own buffer, readable with CompiledGraph.read). */
  keep(t: GraphTensor): GraphTensor {
    this.checkOpen();
    const base = t.base;
    if (base.role === 'temp') base.kept = true;
    return t;
  }

  /** Declare a step scalar (e.g. the learning rate) with its initial value; nodes read it through Bindings.scalar. */
  scalar(name: string, initial: number): void {
    this.checkOpen();
    if (!this.scalars.has(name)) this.scalars.set(name, initial);
  }

  /** Append a node (in execution order). */
  add(spec: NodeSpec): Node {
    this.checkOpen();
    for (const t of [...spec.reads, ...spec.writes]) {
      if (t.graph !== this) throw new ShapeError(`${spec.name} (${spec.label}): tensor ${t} belongs to another graph`);
    }
    for (const s of spec.scalars ?? []) if (!this.scalars.has(s)) throw new ShapeError(`${spec.name} (${spec.label}): step scalar "${s}" was not declared`);
    const node: Node = { ...spec, id: this.nodes.length, phase: this.phase };
    this.nodes.push(node);
    return node;
  }

  /**
   * The tensor a fused loss writes `t`'s gradient into during the forward, and whether this
   * writer must add to it (a second loss on the same tensor) rather than overwrite it.
   */
  fusedGrad(t: GraphTensor, loss: GraphTensor): { grad: GraphTensor; accumulate: boolean } {
    let entry = this.fusedGrads.get(t);
    if (!entry) {
      entry = { grad: this.temp(t.shape, `d(${t.label})`), losses: [], added: false };
      this.fusedGrads.set(t, entry);
    }
    entry.losses.push(loss);
    return { grad: entry.grad, accumulate: entry.losses.length > 1 };
  }

  /** @internal No more tensors or nodes (the graph is compiled). */
  freeze(): void {
    this.frozen = true;
  }

  private checkOpen(): void {
    if (this.frozen) throw new ShapeError('graph already compiled; build a new graph for another shape');
  }
}

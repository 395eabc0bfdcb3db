import { GpuOutOfMemoryError } from '../errors.js';
import type { Graph, GraphTensor, Node } from './graph.js';

/** One piece of storage to place: its size and the span of steps (node indices) it is live. */
export interface PlanBlock {
  readonly id: number;
  readonly bytes: number;
  /** First and last step that touch it (inclusive). */
  readonly first: number;
  readonly last: number;
  /** For error messages. */
  readonly label?: string;
}

export interface PlanLimits {
  /** Offsets are multiples of this (WebGPU's minStorageBufferOffsetAlignment, 256 on most devices). */
  alignment: number;
  /** Largest block one binding may hold (maxStorageBufferBindingSize). */
  maxBindingBytes: number;
  /** Largest arena (maxBufferSize); a plan needing more opens further arenas. */
  maxArenaBytes: number;
}

export interface Placement {
  arena: number;
  offset: number;
}

export interface MemoryPlan {
  /** Placement of each block, by block id. */
  readonly placements: ReadonlyMap<number, Placement>;
  /** Bytes of each arena. */
  readonly arenaBytes: readonly number[];
  /** Bytes of all arenas together: the memory the plan needs. */
  readonly peakBytes: number;
  /** Sum of all blocks' (aligned) sizes: what giving each its own buffer would need. */
  readonly totalBytes: number;
  /** Largest sum of sizes of blocks live at one step: no plan can need less. */
  readonly liveBytesBound: number;
}

/**
 * Static memory plan (greedy by size, as in TFLite's and ratchet's planners): blocks in order of
 * decreasing size each take the lowest aligned offset, in the arena where that grows the arenas
 * least, that overlaps no placed block whose lifetime overlaps its own. Two blocks that one
 * dispatch binds read-only and writable (`conflicts`, by block id) go into different arenas,
 * since WebGPU forbids one buffer in both roles within a dispatch.
 */
export function planMemory(blocks: readonly PlanBlock[], conflicts: readonly (readonly [number, number])[], limits: PlanLimits): MemoryPlan {
  const align = (n: number) => Math.ceil(n / limits.alignment) * limits.alignment;
  const neighbours = new Map<number, number[]>();
  for (const [a, b] of conflicts) {
    if (a === b) throw new Error(`planMemory: block ${a} conflicts with itself`);
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      const list = neighbours.get(x) ?? [];
      list.push(y);
      neighbours.set(x, list);
    }
  }
  for (const b of blocks) {
    if (b.bytes > limits.maxBindingBytes) {
      throw new GpuOutOfMemoryError(
        `tensor "${b.label ?? b.id}" needs ${b.bytes} bytes, more than one storage binding may hold on this device (${limits.maxBindingBytes}); run fewer rows at once (for logits: examplesPerBinding in distill/batch.ts, which dqw distill, quant plan and teacher-cache apply)`,
        b.label ?? String(b.id),
      );
    }
  }
  const order = [...blocks].sort((x, y) => y.bytes - x.bytes || x.first - y.first || x.id - y.id);
  interface Placed {
    first: number;
    last: number;
    offset: number;
    end: number;
  }
  const arenas: { bytes: number; placed: Placed[] }[] = [];
  const placements = new Map<number, Placement>();
  for (const block of order) {
    const size = align(Math.max(block.bytes, 1));
    const forbidden = new Set((neighbours.get(block.id) ?? []).map((n) => placements.get(n)?.arena).filter((a) => a !== undefined));
    let best: { arena: number; offset: number; growth: number } | null = null;
    arenas.forEach((arena, index) => {
      if (forbidden.has(index)) return;
      const offset = lowestFit(arena.placed, block, size);
      if (offset + size > limits.maxArenaBytes) return;
      const growth = Math.max(0, offset + size - arena.bytes);
      if (!best || growth < best.growth) best = { arena: index, offset, growth };
    });
    const chosen: { arena: number; offset: number } = best ?? { arena: arenas.push({ bytes: 0, placed: [] }) - 1, offset: 0 };
    const arena = arenas[chosen.arena]!;
    arena.placed.push({ first: block.first, last: block.last, offset: chosen.offset, end: chosen.offset + size });
    arena.bytes = Math.max(arena.bytes, chosen.offset + size);
    placements.set(block.id, chosen);
  }
  const arenaBytes = arenas.map((a) => a.bytes);
  return {
    placements,
    arenaBytes,
    peakBytes: arenaBytes.reduce((s, b) => s + b, 0),
    totalBytes: blocks.reduce((s, b) => s + align(Math.max(b.bytes, 1)), 0),
    liveBytesBound: liveBound(blocks, align),
  };
}

/** Lowest offset where `size` bytes fit between the placed blocks whose lifetimes overlap `block`'s. */
function lowestFit(placed: readonly { first: number; last: number; offset: number; end: number }[], block: PlanBlock, size: number): number {
  const busy = placed.filter((p) => p.first <= block.last && block.first <= p.last).sort((a, b) => a.offset - b.offset);
  let offset = 0;
  for (const p of busy) {
    if (p.offset >= offset + size) break;
    offset = Math.max(offset, p.end);
  }
  return offset;
}

function liveBound(blocks: readonly PlanBlock[], align: (n: number) => number): number {
  const events: [number, number][] = [];
  for (const b of blocks) events.push([b.first, align(Math.max(b.bytes, 1))], [b.last + 1, -align(Math.max(b.bytes, 1))]);
  events.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let live = 0;
  let most = 0;
  for (const [, delta] of events) {
    live += delta;
    most = Math.max(most, live);
  }
  return most;
}

/** How a compiled graph stores each tensor. */
export interface GraphPlan {
  /** The memory plan of the temps. */
  readonly memory: MemoryPlan;
  /** Block id of each temp base, by base tensor; persistent bases are absent. */
  readonly blockOf: ReadonlyMap<GraphTensor, number>;
  /** Bases that took another base's storage in place (output -> input). */
  readonly inPlace: ReadonlyMap<GraphTensor, GraphTensor>;
  /** Bytes of the persistent tensors the compiled graph allocates (inputs, state, constants, kept outputs). */
  readonly ownedPersistentBytes: number;
  /** Bytes of the external tensors the graph uses (parameters). */
  readonly externalBytes: number;
}

/**
 * Plan a graph's memory without a GPU: decide which in-place ops may reuse their input's storage
 * (where the op is that storage's last use), derive every temp's lifetime over the node order and
 * the read/write conflicts of each node, and place them with planMemory. `reuse: false` gives
 * every temp its own bytes and no in-place op (to bisect a suspected planning fault).
 */
export function planGraph(g: Graph, limits: PlanLimits, opts: { reuse?: boolean } = {}): GraphPlan {
  const reuse = opts.reuse ?? true;
  // Storage classes: temp bases, merged by in-place decisions (union-find over bases).
  const parent = new Map<GraphTensor, GraphTensor>();
  const find = (t: GraphTensor): GraphTensor => {
    let r = t;
    while (parent.has(r)) r = parent.get(r)!;
    return r;
  };
  const lastUse = new Map<GraphTensor, number>();
  const firstUse = new Map<GraphTensor, number>();
  const touched = (n: Node) => [...n.reads, ...n.writes];
  g.nodes.forEach((n, i) => {
    for (const t of touched(n)) {
      const base = t.base;
      if (!firstUse.has(base)) firstUse.set(base, i);
      lastUse.set(base, i);
    }
  });
  const inPlace = new Map<GraphTensor, GraphTensor>();
  g.nodes.forEach((n, i) => {
    const ip = n.inPlace;
    if (!ip || !reuse) return;
    const out = ip.output;
    const input = ip.input;
    if (out.persistent || input.persistent || out.viewOf || input.viewOf || out.bytes !== input.bytes) return;
    const cls = find(input);
    if (cls === find(out) || (lastUse.get(cls) ?? -1) !== i) return;
    parent.set(out, cls);
    inPlace.set(out, input);
    lastUse.set(cls, Math.max(i, lastUse.get(out) ?? i));
    firstUse.set(cls, Math.min(firstUse.get(cls)!, firstUse.get(out) ?? i));
  });

  const blockOf = new Map<GraphTensor, number>();
  const blocks: PlanBlock[] = [];
  const classBlock = new Map<GraphTensor, number>();
  let ownedPersistentBytes = 0;
  let externalBytes = 0;
  for (const t of g.tensors) {
    if (t.viewOf || !firstUse.has(t)) continue;
    if (t.persistent) {
      if (t.role === 'external') externalBytes += t.bytes;
      else ownedPersistentBytes += t.bytes;
      continue;
    }
    const cls = find(t);
    let id = classBlock.get(cls);
    if (id === undefined) {
      id = blocks.length;
      classBlock.set(cls, id);
      // Without reuse every temp lives through the whole step: each gets its own bytes.
      const [first, last] = reuse ? [firstUse.get(cls)!, lastUse.get(cls)!] : [0, g.nodes.length - 1];
      blocks.push({ id, bytes: cls.bytes, first, last, label: cls.label });
    }
    blockOf.set(t, id);
  }
  const conflicts: [number, number][] = [];
  const seen = new Set<string>();
  const conflict = (a: GraphTensor, b: GraphTensor) => {
    const x = blockOf.get(a.base);
    const y = blockOf.get(b.base);
    if (x === undefined || y === undefined || x === y) return;
    const key = x < y ? `${x},${y}` : `${y},${x}`;
    if (seen.has(key)) return;
    seen.add(key);
    conflicts.push([x, y]);
  };
  for (const n of g.nodes) {
    for (const r of n.reads) for (const w of n.writes) conflict(r, w);
    for (const [a, b] of n.conflicts ?? []) conflict(a, b);
  }
  return { memory: planMemory(blocks, conflicts, limits), blockOf, inPlace, ownedPersistentBytes, externalBytes };
}

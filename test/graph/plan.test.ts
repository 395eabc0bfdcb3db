import { describe, expect, it } from 'vitest';
import { GpuOutOfMemoryError } from '../../src/errors.js';
import { Graph, type GraphTensor } from '../../src/graph/graph.js';
import { planGraph, planMemory, type MemoryPlan, type PlanBlock, type PlanLimits } from '../../src/graph/plan.js';
import { Rng } from '../../src/util/random.js';

const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng.uniform() * (hi - lo + 1));

/** Every invariant a memory plan promises, checked from its inputs alone. */
function checkPlan(blocks: readonly PlanBlock[], conflicts: readonly (readonly [number, number])[], limits: PlanLimits, plan: MemoryPlan): void {
  const size = (b: PlanBlock) => Math.ceil(Math.max(b.bytes, 1) / limits.alignment) * limits.alignment;
  for (const b of blocks) {
    const p = plan.placements.get(b.id)!;
    expect(p.offset % limits.alignment).toBe(0);
    expect(p.offset + size(b)).toBeLessThanOrEqual(plan.arenaBytes[p.arena]!);
    expect(plan.arenaBytes[p.arena]!).toBeLessThanOrEqual(limits.maxArenaBytes);
  }
  // No two blocks live at the same step share bytes.
  for (let i = 0; i < blocks.length; i++) {
    for (let j = i + 1; j < blocks.length; j++) {
      const [a, b] = [blocks[i]!, blocks[j]!];
      const [pa, pb] = [plan.placements.get(a.id)!, plan.placements.get(b.id)!];
      const liveTogether = a.first <= b.last && b.first <= a.last;
      const shareBytes = pa.arena === pb.arena && pa.offset < pb.offset + size(b) && pb.offset < pa.offset + size(a);
      if (liveTogether && shareBytes) throw new Error(`blocks ${a.id} [${a.first}, ${a.last}] and ${b.id} [${b.first}, ${b.last}] overlap in arena ${pa.arena}`);
    }
  }
  for (const [a, b] of conflicts) expect(plan.placements.get(a)!.arena).not.toBe(plan.placements.get(b)!.arena);
  expect(plan.liveBytesBound).toBeLessThanOrEqual(plan.peakBytes);
  expect(plan.peakBytes).toBeLessThanOrEqual(plan.totalBytes);
}

describe('planMemory', () => {
  it('random blocks and conflicts: no live overlap, conflicts apart, aligned, within arena limits, bound <= peak <= total', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const rng = new Rng(seed);
      const steps = int(rng, 5, 60);
      const blocks: PlanBlock[] = Array.from({ length: int(rng, 1, 50) }, (_, id) => {
        const first = int(rng, 0, steps - 1);
        return { id, bytes: int(rng, 1, 5000) * 4, first, last: int(rng, first, Math.min(steps - 1, first + int(rng, 0, 15))) };
      });
      const conflicts: [number, number][] = [];
      for (let k = 0; k < blocks.length; k++) {
        const [a, b] = [int(rng, 0, blocks.length - 1), int(rng, 0, blocks.length - 1)];
        if (a !== b) conflicts.push([a, b]);
      }
      const limits = { alignment: [4, 64, 256][seed % 3]!, maxBindingBytes: 1 << 20, maxArenaBytes: seed % 4 === 0 ? 64 * 1024 : 1 << 30 };
      checkPlan(blocks, conflicts, limits, planMemory(blocks, conflicts, limits));
    }
  });

  it('reuses memory across disjoint lifetimes: a chain needs two blocks, not all', () => {
    const blocks = Array.from({ length: 10 }, (_, i) => ({ id: i, bytes: 1024, first: i, last: i + 1 }));
    const plan = planMemory(blocks, [], { alignment: 256, maxBindingBytes: 1 << 20, maxArenaBytes: 1 << 20 });
    expect(plan.peakBytes).toBe(2048);
    expect(plan.totalBytes).toBe(10 * 1024);
  });

  it('names a tensor too big for one binding', () => {
    expect(() => planMemory([{ id: 0, bytes: 2048, first: 0, last: 0, label: 'huge logits' }], [], { alignment: 256, maxBindingBytes: 1024, maxArenaBytes: 1 << 20 })).toThrow(GpuOutOfMemoryError);
    expect(() => planMemory([{ id: 0, bytes: 2048, first: 0, last: 0, label: 'huge logits' }], [], { alignment: 256, maxBindingBytes: 1024, maxArenaBytes: 1 << 20 })).toThrow(/"huge logits" needs 2048 bytes/);
  });
});

/**
 * A random graph whose nodes have host semantics: each writes out[i] = sum_k c_k in_k[i % len_k]
 * + c0 (or adds that into an existing tensor), some may work in place. Running it with the plan's
 * shared arenas must give what running it with a separate array per tensor gives.
 */
function randomGraph(seed: number) {
  const rng = new Rng(seed);
  const g = new Graph();
  const semantics = new Map<number, { coefficients: number[]; constant: number; update: boolean }>();
  const inputs = Array.from({ length: int(rng, 1, 3) }, (_, i) => g.input([int(rng, 1, 40)], 'f32', `in${i}`));
  const values: GraphTensor[] = [...inputs];
  const temps: GraphTensor[] = [];
  const nodes = int(rng, 3, 40);
  for (let n = 0; n < nodes; n++) {
    const reads = Array.from({ length: int(rng, 1, 3) }, () => values[int(rng, Math.max(0, values.length - 8), values.length - 1)]!);
    const distinct = [...new Set(reads)];
    const coefficients = distinct.map(() => rng.uniform() * 2 - 1);
    const constant = rng.uniform();
    const updatable = temps.filter((t) => !distinct.includes(t));
    if (updatable.length && rng.uniform() < 0.2) {
      // Accumulate into an existing temp (as autodiff does with gradients).
      const target = updatable[int(rng, 0, updatable.length - 1)]!;
      const node = g.add({ name: 'update', label: `n${n}`, reads: distinct, writes: [target], record: () => {} });
      semantics.set(node.id, { coefficients, constant, update: true });
      continue;
    }
    const first = distinct[0]!;
    const inPlace = rng.uniform() < 0.5;
    const out = g.temp(inPlace ? first.shape : [int(rng, 1, 40)], `t${n}`);
    const extra = rng.uniform() < 0.2 ? g.temp([int(rng, 1, 20)], `t${n} second output`) : null;
    const node = g.add({
      name: 'mix',
      label: `n${n}`,
      reads: distinct,
      writes: extra ? [out, extra] : [out],
      ...(inPlace ? { inPlace: { output: out, input: first } } : {}),
      record: () => {},
    });
    semantics.set(node.id, { coefficients, constant, update: false });
    values.push(out);
    temps.push(out);
    if (extra) {
      values.push(extra);
      temps.push(extra);
    }
    if (rng.uniform() < 0.15) g.keep(out);
  }
  return { g, semantics, inputs, rng };
}

/** Execute the graph's nodes on host storage given by `storage(t)`: [array, element offset]. */
function execute(g: Graph, semantics: ReturnType<typeof randomGraph>['semantics'], storage: (t: GraphTensor) => [Float64Array, number], onRead: (node: number, t: GraphTensor, values: number[]) => void): void {
  for (const node of g.nodes) {
    const s = semantics.get(node.id)!;
    const read = node.reads.map((t) => {
      const [arr, off] = storage(t);
      const v = Array.from(arr.subarray(off, off + t.numel));
      onRead(node.id, t, v);
      return v;
    });
    for (const out of s.update ? node.writes : node.writes.slice(0, 1)) {
      const [arr, off] = storage(out);
      for (let i = 0; i < out.numel; i++) {
        let v = s.constant;
        read.forEach((r, k) => (v += s.coefficients[k]! * r[i % r.length]!));
        arr[off + i] = s.update ? arr[off + i]! + v : v;
      }
    }
    // A second output gets a node-specific pattern.
    if (!s.update && node.writes[1]) {
      const [arr, off] = storage(node.writes[1]);
      for (let i = 0; i < node.writes[1].numel; i++) arr[off + i] = s.constant * (i + 1) + node.id;
    }
  }
}

describe('planGraph', () => {
  it('random graphs run on the planned arenas exactly as with one array per tensor (lifetimes, in place, updates)', () => {
    let inPlaceTaken = 0;
    for (let seed = 1; seed <= 80; seed++) {
      const { g, semantics, inputs, rng } = randomGraph(seed);
      const limits = { alignment: 4 * [1, 4, 16][seed % 3]!, maxBindingBytes: 1 << 20, maxArenaBytes: seed % 5 === 0 ? 256 : 1 << 20 };
      const plan = planGraph(g, limits);
      inPlaceTaken += plan.inPlace.size;
      const inputData = new Map(inputs.map((t) => [t, Float64Array.from({ length: t.numel }, () => rng.uniform())]));

      const separate = new Map<GraphTensor, Float64Array>();
      const reference: Map<string, number[]> = new Map();
      execute(
        g,
        semantics,
        (t) => {
          if (!separate.has(t)) separate.set(t, inputData.get(t)?.slice() ?? new Float64Array(t.numel));
          return [separate.get(t)!, 0];
        },
        (node, t, v) => reference.set(`${node}:${t.id}`, v),
      );

      const arenas = plan.memory.arenaBytes.map((b) => new Float64Array(b / 4).fill(NaN));
      const persistent = new Map<GraphTensor, Float64Array>();
      execute(
        g,
        semantics,
        (t) => {
          if (t.persistent) {
            if (!persistent.has(t)) persistent.set(t, inputData.get(t)?.slice() ?? new Float64Array(t.numel));
            return [persistent.get(t)!, 0];
          }
          const p = plan.memory.placements.get(plan.blockOf.get(t)!)!;
          return [arenas[p.arena]!, p.offset / 4];
        },
        (node, t, v) => {
          // Arenas start as NaN: reading bytes nobody wrote, or bytes another tensor overwrote, shows.
          const expected = reference.get(`${node}:${t.id}`)!;
          if (v.some((x, i) => x !== expected[i])) throw new Error(`seed ${seed}: node ${node} read ${t} = [${v.slice(0, 4)}...], expected [${expected.slice(0, 4)}...]`);
        },
      );
      for (const t of g.tensors) if (t.persistent && t.role === 'temp') expect(persistent.get(t)).toEqual(separate.get(t));

      // The plan's own invariants, with the blocks it derived.
      const blocks = [...new Set(plan.blockOf.values())].map((id) => {
        const members = [...plan.blockOf].filter(([, b]) => b === id).map(([t]) => t);
        const uses = g.nodes.filter((n) => [...n.reads, ...n.writes].some((x) => members.includes(x.base))).map((n) => n.id);
        return { id, bytes: members[0]!.bytes, first: Math.min(...uses), last: Math.max(...uses) };
      });
      const conflicts = g.nodes.flatMap((n) =>
        n.reads.flatMap((r) => n.writes.map((w) => [plan.blockOf.get(r.base), plan.blockOf.get(w.base)] as const)).filter((p): p is [number, number] => p[0] !== undefined && p[1] !== undefined && p[0] !== p[1]),
      );
      checkPlan(blocks, conflicts, limits, plan.memory);
    }
    // The random graphs exercise in-place reuse, not only separate outputs.
    expect(inPlaceTaken).toBeGreaterThan(20);
  });

  it('takes an input in place only at its last use', () => {
    const g = new Graph();
    const x = g.input([8], 'f32', 'x');
    const a = g.temp([8], 'a');
    g.add({ name: 'mix', label: 'a', reads: [x], writes: [a], record: () => {} });
    const b = g.temp([8], 'b');
    g.add({ name: 'mix', label: 'b', reads: [a], writes: [b], inPlace: { output: b, input: a }, record: () => {} });
    const c = g.temp([8], 'c');
    g.add({ name: 'mix', label: 'c', reads: [b], writes: [c], inPlace: { output: c, input: b }, record: () => {} });
    const d = g.temp([8], 'd');
    // b is read again after c's node, so c may not take b's storage... but d may take c's.
    g.add({ name: 'mix', label: 'd', reads: [c, b], writes: [d], inPlace: { output: d, input: c }, record: () => {} });
    const plan = planGraph(g, { alignment: 4, maxBindingBytes: 1 << 20, maxArenaBytes: 1 << 20 });
    expect([...plan.inPlace].map(([o, i]) => `${o.label}<-${i.label}`)).toEqual(['b<-a', 'd<-c']);
  });
});

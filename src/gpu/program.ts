import { KernelBindingError, ShapeError } from '../errors.js';
import type { Gpu } from './gpu.js';
import { checkBindings, writeUniforms, type DispatchArgs, type Kernel, type KernelSpec } from './kernel.js';
import type { Profiler } from './profiler.js';
import { byteSize, type Tensor } from './tensor.js';

interface DispatchCommand {
  kind: 'dispatch';
  kernel: Kernel;
  tensors: Readonly<Record<string, Tensor>>;
  /** Byte offset of this dispatch's uniform struct in the program's uniform buffer; -1 if none. */
  uniformOffset: number;
  workgroups: readonly [number, number, number];
  label: string;
  flops: number;
  bytes: number;
}
interface CopyCommand {
  kind: 'copy';
  src: Tensor;
  dst: Tensor;
}
interface ClearCommand {
  kind: 'clear';
  target: Tensor;
}
type Command = DispatchCommand | CopyCommand | ClearCommand;

/** Where a Recorder's validated commands go: appended to a new program, or rewritten in place. */
interface CommandSink {
  dispatch(kernel: Kernel, args: DispatchArgs, workgroups: readonly [number, number, number], label: string): void;
  copy(src: Tensor, dst: Tensor): void;
  clear(target: Tensor): void;
}

/** Timestamp queries per query set (WebGPU allows 4096 per set, two per dispatch). */
const dispatchesPerQuerySet = 2048;

/**
 * Records dispatches, copies and clears, checked against each kernel's WGSL contract as they
 * come. `submit()` runs them once in one command encoder; `finish()` instead keeps them as a
 * `Program` that can be replayed any number of times without recording again.
 */
export class Recorder {
  private done = false;

  /** @internal Use `gpu.record()`. */
  constructor(
    /** The Gpu this recorder dispatches on (kernels read its features to pick variants). */
    readonly gpu: Gpu,
    private readonly profiler: Profiler | null,
    private readonly sink: CommandSink & { finish?(): Promise<Program> } = new ProgramBuilder(gpu),
  ) {}

  /** Commands recorded so far (dispatches with no workgroups are dropped and not counted). */
  get commandCount(): number {
    return this.sink instanceof ProgramBuilder ? this.sink.commands.length : (this.sink as ProgramRewriter).cursor;
  }

  /** Record one dispatch of `spec` (compiled on first use). Bindings are checked against the WGSL. */
  dispatch(spec: KernelSpec | Kernel, args: DispatchArgs, label?: string): void {
    this.checkOpen();
    const kernel = 'pipeline' in spec ? spec : this.gpu.kernels.get(spec);
    checkBindings(kernel, args);
    checkAliasing(kernel, args, label);
    const [x, y = 1, z = 1] = args.workgroups;
    const maxWg = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg || x < 0 || y < 0 || z < 0) {
      throw new ShapeError(`${kernel.name}: dispatch of ${x}x${y}x${z} workgroups exceeds the limit of ${maxWg} per dimension`);
    }
    if (x === 0 || y === 0 || z === 0) return;
    this.sink.dispatch(kernel, args, [x, y, z], label ?? kernel.name);
  }

  /** Copy `src` into `dst` (same byte size) inside this submit. */
  copy(src: Tensor, dst: Tensor): void {
    this.checkOpen();
    if (byteSize(src) !== byteSize(dst)) throw new ShapeError(`copy: "${src.label}" has ${byteSize(src)} bytes, "${dst.label}" ${byteSize(dst)}`);
    this.sink.copy(src, dst);
  }

  /** Set a tensor's bytes to zero inside this submit (e.g. before accumulating into it). */
  zero(t: Tensor): void {
    this.checkOpen();
    this.sink.clear(t);
  }

  /**
   * Turn everything recorded into a replayable Program: its uniform buffer and bind groups are
   * created now, once. The recorder cannot be used afterwards.
   */
  async finish(): Promise<Program> {
    this.checkOpen();
    this.done = true;
    if (!this.sink.finish) throw new Error('this recorder rewrites an existing program; it has nothing to finish');
    return this.sink.finish();
  }

  /** Submit everything recorded; resolves once the GPU finished (and timings are collected). */
  async submit(): Promise<void> {
    const program = await this.finish();
    try {
      await program.run(this.profiler);
    } finally {
      program.destroy();
    }
  }

  private checkOpen(): void {
    if (this.done) throw new Error('Recorder already submitted; create a new one');
  }
}

/**
 * WebGPU rejects a dispatch that binds one buffer both read-only and writable, or two writable
 * bindings over overlapping bytes; say which tensors collide before the device reports it.
 */
function checkAliasing(kernel: Kernel, args: DispatchArgs, label: string | undefined): void {
  const bound = kernel.bindings.filter((b) => b.kind === 'storage').map((b) => ({ b, t: args.tensors[b.name]! }));
  for (let i = 0; i < bound.length; i++) {
    for (let j = i + 1; j < bound.length; j++) {
      const [x, y] = [bound[i]!, bound[j]!];
      if (x.t.buffer !== y.t.buffer) continue;
      const writable = [x, y].filter((e) => e.b.access === 'read_write').length;
      const overlap = x.t.offset < y.t.offset + byteSize(y.t) && y.t.offset < x.t.offset + byteSize(x.t);
      if (writable === 1 || (writable === 2 && overlap)) {
        throw new KernelBindingError(
          `${kernel.name}${label ? ` (${label})` : ''}: "${x.t.label}" (binding "${x.b.name}", ${x.b.access}) and "${y.t.label}" (binding "${y.b.name}", ${y.b.access}) share a buffer${writable === 2 ? ' over overlapping bytes' : ''}; WebGPU forbids a buffer bound writable together with another binding of it in one dispatch`,
        );
      }
    }
  }
}

class ProgramBuilder implements CommandSink {
  readonly commands: Command[] = [];
  private uniformBytes = new Uint8Array(4096);
  private uniformUsed = 0;

  constructor(private readonly gpu: Gpu) {}

  dispatch(kernel: Kernel, args: DispatchArgs, workgroups: readonly [number, number, number], label: string): void {
    let uniformOffset = -1;
    if (kernel.uniform) {
      uniformOffset = this.allocUniform(kernel.uniform.size);
      writeUniforms(kernel, args.uniforms ?? {}, new DataView(this.uniformBytes.buffer), uniformOffset);
    }
    this.commands.push({ kind: 'dispatch', kernel, tensors: { ...args.tensors }, uniformOffset, workgroups, label, flops: args.flops ?? 0, bytes: args.bytes ?? 0 });
  }

  copy(src: Tensor, dst: Tensor): void {
    this.commands.push({ kind: 'copy', src, dst });
  }

  clear(target: Tensor): void {
    this.commands.push({ kind: 'clear', target });
  }

  private allocUniform(size: number): number {
    const align = Math.max(16, this.gpu.limits.minUniformBufferOffsetAlignment);
    const offset = Math.ceil(this.uniformUsed / align) * align;
    if (offset + size > this.uniformBytes.byteLength) {
      const grown = new Uint8Array(Math.max(2 * this.uniformBytes.byteLength, offset + size));
      grown.set(this.uniformBytes);
      this.uniformBytes = grown;
    }
    this.uniformUsed = offset + size;
    return offset;
  }

  async finish(): Promise<Program> {
    const device = this.gpu.device;
    const size = Math.max(16, Math.ceil(this.uniformUsed / 16) * 16);
    const context = `program of ${kernelNames(this.commands)}`;
    return this.gpu.gpuDevice.scoped(context, () => {
      const uniformBuffer = device.createBuffer({ label: 'program uniforms', size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      const bindGroups = this.commands.map((c) => (c.kind === 'dispatch' ? bindGroupOf(device, c, uniformBuffer) : null));
      return new Program(this.gpu, this.commands, bindGroups, this.uniformBytes.slice(0, size), uniformBuffer, context);
    });
  }
}

function kernelNames(commands: readonly Command[]): string {
  const names = new Set<string>();
  for (const c of commands) if (c.kind === 'dispatch') names.add(c.kernel.name);
  return [...names].join(', ') || 'no kernels';
}

function bindGroupOf(device: GPUDevice, c: DispatchCommand, uniformBuffer: GPUBuffer): GPUBindGroup {
  const entries: GPUBindGroupEntry[] = c.kernel.bindings.map((b) => {
    if (b.kind === 'uniform') return { binding: b.binding, resource: { buffer: uniformBuffer, offset: c.uniformOffset, size: c.kernel.uniform!.size } };
    const t = c.tensors[b.name]!;
    return { binding: b.binding, resource: { buffer: t.buffer, offset: t.offset, size: byteSize(t) } };
  });
  return device.createBindGroup({ label: `${c.kernel.name} (${c.label})`, layout: c.kernel.layout, entries });
}

function sameTensor(a: Tensor, b: Tensor): boolean {
  return a.buffer === b.buffer && a.offset === b.offset && byteSize(a) === byteSize(b);
}

/** Rewrites the uniform values of an existing program's commands, checking that nothing else changed. */
class ProgramRewriter implements CommandSink {
  constructor(
    public cursor: number,
    private readonly commands: readonly Command[],
    private readonly write: (offset: number, kernel: Kernel, values: Readonly<Record<string, number>>) => void,
  ) {}

  private next(kind: Command['kind'], what: string): Command {
    const c = this.commands[this.cursor];
    if (!c || c.kind !== kind) {
      throw new ShapeError(`program rewrite: command ${this.cursor} is ${c ? `a ${c.kind}` : 'past the end'}, the rewrite records a ${kind} (${what})`);
    }
    this.cursor++;
    return c;
  }

  dispatch(kernel: Kernel, args: DispatchArgs, workgroups: readonly [number, number, number], label: string): void {
    const c = this.next('dispatch', kernel.name) as DispatchCommand;
    const same =
      c.kernel === kernel &&
      c.workgroups.every((w, i) => w === workgroups[i]) &&
      Object.entries(args.tensors).every(([name, t]) => c.tensors[name] && sameTensor(c.tensors[name]!, t));
    if (!same) throw new ShapeError(`program rewrite: dispatch ${this.cursor - 1} ("${c.label}", ${c.kernel.name}) differs from the rewritten "${label}" in kernel, workgroups or tensors; only uniform values may change`);
    if (c.uniformOffset >= 0) this.write(c.uniformOffset, kernel, args.uniforms ?? {});
  }

  copy(src: Tensor, dst: Tensor): void {
    const c = this.next('copy', `"${src.label}" -> "${dst.label}"`) as CopyCommand;
    if (!sameTensor(c.src, src) || !sameTensor(c.dst, dst)) throw new ShapeError(`program rewrite: copy ${this.cursor - 1} moves other tensors than "${src.label}" -> "${dst.label}"`);
  }

  clear(target: Tensor): void {
    const c = this.next('clear', `"${target.label}"`) as ClearCommand;
    if (!sameTensor(c.target, target)) throw new ShapeError(`program rewrite: clear ${this.cursor - 1} clears another tensor than "${target.label}"`);
  }
}

/** Query sets and buffers a profiled replay reuses. */
interface TimingResources {
  querySets: GPUQuerySet[];
  resolve: GPUBuffer;
  read: GPUBuffer;
}

/**
 * A recorded sequence of dispatches, copies and clears with its pipelines, bind groups and
 * uniform buffer made once. `run()` encodes it into one command encoder and submits it; a
 * replay creates no buffers or bind groups and uploads only uniform values that `rewrite`
 * changed since the last run.
 */
export class Program {
  /** Uniform bytes changed on the host since the last upload: [lo, hi), or null. */
  private dirty: [number, number] | null;
  private timing: TimingResources | null = null;
  private destroyed = false;

  /** @internal Made by Recorder.finish(). */
  constructor(
    private readonly gpu: Gpu,
    private readonly commands: readonly Command[],
    private readonly bindGroups: readonly (GPUBindGroup | null)[],
    private readonly uniformBytes: Uint8Array<ArrayBuffer>,
    private readonly uniformBuffer: GPUBuffer,
    private readonly context: string,
  ) {
    this.dirty = [0, uniformBytes.byteLength];
  }

  /** Number of commands (dispatches, copies and clears). */
  get commandCount(): number {
    return this.commands.length;
  }

  /** Number of dispatches. */
  get dispatchCount(): number {
    return this.commands.reduce((n, c) => n + (c.kind === 'dispatch' ? 1 : 0), 0);
  }

  /**
   * Re-run recording code for the commands starting at index `first` to give them new uniform
   * values (e.g. an optimizer step's bias correction). `fn` must record exactly what it
   * recorded originally (same kernels, tensors and workgroups, in order); only the uniform
   * values may differ, else a ShapeError names the first difference.
   */
  rewrite(first: number, fn: (rec: Recorder) => void): void {
    this.checkAlive();
    const rewriter = new ProgramRewriter(first, this.commands, (offset, kernel, values) => {
      writeUniforms(kernel, values, new DataView(this.uniformBytes.buffer), offset);
      const end = offset + kernel.uniform!.size;
      this.dirty = this.dirty ? [Math.min(this.dirty[0], offset), Math.max(this.dirty[1], end)] : [offset, end];
    });
    fn(new Recorder(this.gpu, null, rewriter));
  }

  /**
   * Encode every command into one command encoder and submit it, without waiting for the GPU.
   * Uniform values changed by `rewrite` are uploaded first. With a profiler, each dispatch runs
   * in its own timed compute pass; use `run` to collect the timings.
   */
  submit(profiler: Profiler | null = this.gpu.profiler): { timed: boolean } {
    this.checkAlive();
    const device = this.gpu.device;
    if (this.dirty) {
      const [lo, hi] = this.dirty;
      device.queue.writeBuffer(this.uniformBuffer, lo, this.uniformBytes, lo, hi - lo);
      this.dirty = null;
    }
    const timing = profiler && this.gpu.features.timestampQuery ? this.timingResources() : null;
    const encoder = device.createCommandEncoder({ label: this.context });
    let pass: GPUComputePassEncoder | null = null;
    let dispatchIndex = 0;
    const endPass = () => {
      pass?.end();
      pass = null;
    };
    this.commands.forEach((c, i) => {
      if (c.kind === 'dispatch') {
        if (profiler) {
          const set = timing?.querySets[Math.floor(dispatchIndex / dispatchesPerQuerySet)];
          const slot = 2 * (dispatchIndex % dispatchesPerQuerySet);
          pass = encoder.beginComputePass(set ? { timestampWrites: { querySet: set, beginningOfPassWriteIndex: slot, endOfPassWriteIndex: slot + 1 } } : {});
        } else {
          pass ??= encoder.beginComputePass();
        }
        pass.setPipeline(c.kernel.pipeline);
        pass.setBindGroup(0, this.bindGroups[i]!);
        pass.dispatchWorkgroups(c.workgroups[0], c.workgroups[1], c.workgroups[2]);
        if (profiler) endPass();
        dispatchIndex++;
      } else if (c.kind === 'copy') {
        endPass();
        encoder.copyBufferToBuffer(c.src.buffer, c.src.offset, c.dst.buffer, c.dst.offset, byteSize(c.src));
      } else {
        endPass();
        encoder.clearBuffer(c.target.buffer, c.target.offset, byteSize(c.target));
      }
    });
    endPass();
    if (timing) {
      timing.querySets.forEach((set, s) => {
        const count = 2 * Math.min(dispatchesPerQuerySet, dispatchIndex - s * dispatchesPerQuerySet);
        encoder.resolveQuerySet(set, 0, count, timing.resolve, s * 2 * dispatchesPerQuerySet * 8);
      });
      encoder.copyBufferToBuffer(timing.resolve, 0, timing.read, 0, timing.read.size);
    }
    device.queue.submit([encoder.finish()]);
    return { timed: timing !== null };
  }

  /**
   * Submit (see `submit`) and resolve once the GPU finished; with a profiler (the Gpu's by
   * default) the dispatch timings are added to it.
   */
  async run(profiler: Profiler | null = this.gpu.profiler): Promise<void> {
    const t0 = performance.now();
    const { timed } = await this.gpu.gpuDevice.scoped(`submit of ${this.context}`, () => this.submit(profiler));
    await this.gpu.device.queue.onSubmittedWorkDone();
    const wallNs = (performance.now() - t0) * 1e6;
    this.gpu.gpuDevice.throwIfFailed();
    if (profiler) await this.collectTimings(profiler, timed, wallNs);
  }

  /** Release the uniform buffer and timing resources (arena and tensor buffers belong to their owners). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.uniformBuffer.destroy();
    if (this.timing) {
      for (const s of this.timing.querySets) s.destroy();
      this.timing.resolve.destroy();
      this.timing.read.destroy();
    }
  }

  private dispatches(): DispatchCommand[] {
    return this.commands.filter((c): c is DispatchCommand => c.kind === 'dispatch');
  }

  private timingResources(): TimingResources {
    if (this.timing) return this.timing;
    const device = this.gpu.device;
    const n = this.dispatchCount;
    const sets = Math.max(1, Math.ceil(n / dispatchesPerQuerySet));
    const querySets = Array.from({ length: sets }, (_, s) =>
      device.createQuerySet({ type: 'timestamp', count: 2 * Math.min(dispatchesPerQuerySet, Math.max(1, n - s * dispatchesPerQuerySet)) }),
    );
    const bytes = sets * 2 * dispatchesPerQuerySet * 8;
    this.timing = {
      querySets,
      resolve: device.createBuffer({ label: 'timestamps', size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }),
      read: device.createBuffer({ label: 'timestamps readback', size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
    };
    return this.timing;
  }

  private async collectTimings(profiler: Profiler, timed: boolean, wallNs: number): Promise<void> {
    const dispatches = this.dispatches();
    if (!dispatches.length) return;
    if (timed && this.timing) {
      const read = this.timing.read;
      await read.mapAsync(GPUMapMode.READ);
      const ts = new BigUint64Array(read.getMappedRange().slice(0));
      read.unmap();
      dispatches.forEach((d, i) => {
        const slot = Math.floor(i / dispatchesPerQuerySet) * 2 * dispatchesPerQuerySet + 2 * (i % dispatchesPerQuerySet);
        const start = Number(ts[slot]!);
        const end = Number(ts[slot + 1]!);
        profiler.add({ kernel: d.kernel.name, label: d.label, startNs: start, durationNs: Math.max(0, end - start), flops: d.flops, bytes: d.bytes, clock: 'gpu' });
      });
    } else {
      // No GPU clock: the whole submit's wall time is shared out by the dispatches' work.
      const weight = dispatches.map((d) => d.flops + d.bytes || 1);
      const sum = weight.reduce((a, b) => a + b, 0);
      dispatches.forEach((d, i) => profiler.addCpu(d.kernel.name, d.label, (wallNs * weight[i]!) / sum, d.flops, d.bytes));
    }
  }

  private checkAlive(): void {
    if (this.destroyed) throw new Error(`program (${this.context}) was destroyed`);
  }
}

/** One timed dispatch. Times are in nanoseconds from the profiler's first event. */
export interface ProfileEvent {
  kernel: string;
  /** Caller's label for this dispatch (e.g. a tensor or layer name); defaults to the kernel name. */
  label: string;
  startNs: number;
  durationNs: number;
  flops: number;
  bytes: number;
  /** 'gpu' from timestamp queries, 'cpu' from submit-and-wait wall time. */
  clock: 'gpu' | 'cpu';
}

export interface KernelSummary {
  kernel: string;
  calls: number;
  totalMs: number;
  meanMs: number;
  gflops: number;
  gbps: number;
}

/**
 * A fixed-width text table: columns padded to their widest cell and two spaces apart, the first
 * `leftColumns` left-aligned (names), the rest right-aligned (numbers), a dashed rule under the head.
 */
export function textTable(head: readonly string[], rows: readonly (readonly string[])[], leftColumns = 1): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: readonly string[]) => cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)].join('\n');
}

/**
 * Collects per-dispatch timings. With `timestamp-query` each dispatch runs in its own compute
 * pass bracketed by timestamps; without it the recorder submits and waits per dispatch and the
 * wall time is recorded (coarser, but the same table and trace).
 */
export class Profiler {
  readonly events: ProfileEvent[] = [];
  private cpuCursorNs = 0;

  add(event: ProfileEvent): void {
    this.events.push(event);
  }

  /** Append CPU-clock events back to back (there is no GPU clock to place them on). */
  addCpu(kernel: string, label: string, durationNs: number, flops: number, bytes: number): void {
    this.add({ kernel, label, startNs: this.cpuCursorNs, durationNs, flops, bytes, clock: 'cpu' });
    this.cpuCursorNs += durationNs;
  }

  clear(): void {
    this.events.length = 0;
    this.cpuCursorNs = 0;
  }

  /** Per-kernel totals, slowest first. */
  summary(): KernelSummary[] {
    const by = new Map<string, { calls: number; ns: number; flops: number; bytes: number }>();
    for (const e of this.events) {
      const s = by.get(e.kernel) ?? { calls: 0, ns: 0, flops: 0, bytes: 0 };
      s.calls++;
      s.ns += e.durationNs;
      s.flops += e.flops;
      s.bytes += e.bytes;
      by.set(e.kernel, s);
    }
    return [...by.entries()]
      .map(([kernel, s]) => ({
        kernel,
        calls: s.calls,
        totalMs: s.ns / 1e6,
        meanMs: s.ns / 1e6 / s.calls,
        gflops: s.ns > 0 ? s.flops / s.ns : 0,
        gbps: s.ns > 0 ? s.bytes / s.ns : 0,
      }))
      .sort((a, b) => b.totalMs - a.totalMs);
  }

  /** The summary as a fixed-width text table. */
  table(): string {
    const body = this.summary().map((r) => [r.kernel, String(r.calls), r.totalMs.toFixed(3), r.meanMs.toFixed(3), r.gflops.toFixed(2), r.gbps.toFixed(2)]);
    return textTable(['kernel', 'calls', 'total ms', 'mean ms', 'GFLOP/s', 'GB/s'], body);
  }

  /** Chrome trace-event JSON (opens in Perfetto and chrome://tracing). */
  toChromeTrace(): { traceEvents: object[]; displayTimeUnit: 'ms' } {
    const t0 = Math.min(...this.events.map((e) => e.startNs), Infinity);
    return {
      displayTimeUnit: 'ms',
      traceEvents: [
        { name: 'process_name', ph: 'M', pid: 1, tid: 1, args: { name: 'dq-whisper GPU' } },
        ...this.events.map((e) => ({
          name: e.label,
          cat: e.kernel,
          ph: 'X',
          pid: 1,
          tid: 1,
          ts: (e.startNs - t0) / 1000,
          dur: e.durationNs / 1000,
          args: { kernel: e.kernel, clock: e.clock, flops: e.flops, bytes: e.bytes, gflops: e.durationNs > 0 ? e.flops / e.durationNs : 0 },
        })),
      ],
    };
  }
}

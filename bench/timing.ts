// Timing of one benchmark case, shared by the Node runner (bench/run.ts) and the demo page's
// Profile tab (web/): no Node APIs here.
import type { Gpu, Recorder } from '../src/gpu/gpu.js';
import { Profiler, type ProfileEvent } from '../src/gpu/profiler.js';

export interface RunTimes {
  /** Fastest run, milliseconds (sum of its dispatches). */
  min: number;
  median: number;
  clock: 'gpu' | 'cpu';
  /** The dispatches of the last run, for a timeline or trace. */
  events: ProfileEvent[];
}

/**
 * Time `record` `repeat` times after one warm-up run (pipeline compiles, first-touch
 * allocations); each run's time is the sum of its dispatches, timed by a fresh Profiler.
 */
export async function timeRuns(gpu: Gpu, record: (rec: Recorder) => void, repeat: number): Promise<RunTimes> {
  await gpu.run(record);
  const times: number[] = [];
  let clock: 'gpu' | 'cpu' = 'cpu';
  let last: ProfileEvent[] = [];
  for (let i = 0; i < repeat; i++) {
    const profiler = new Profiler();
    gpu.profiler = profiler;
    try {
      await gpu.run(record);
    } finally {
      gpu.profiler = null;
    }
    times.push(profiler.events.reduce((s, e) => s + e.durationNs, 0) / 1e6);
    clock = profiler.events[0]?.clock ?? 'cpu';
    last = profiler.events;
  }
  times.sort((a, b) => a - b);
  return { min: times[0]!, median: times[Math.floor(times.length / 2)]!, clock, events: last };
}

/**
 * One Profiler holding several runs laid end to end, 1 µs apart, each keeping its own
 * dispatches' relative offsets (runs come from different submits, so their clocks do not line up).
 */
export function concatRuns(runs: readonly (readonly ProfileEvent[])[]): Profiler {
  const profiler = new Profiler();
  let cursor = 0;
  for (const run of runs) {
    if (run.length === 0) continue;
    const t0 = Math.min(...run.map((e) => e.startNs));
    for (const e of run) profiler.add({ ...e, startNs: cursor + e.startNs - t0 });
    cursor = Math.max(cursor, ...run.map((e) => cursor + e.startNs - t0 + e.durationNs)) + 1000;
  }
  return profiler;
}

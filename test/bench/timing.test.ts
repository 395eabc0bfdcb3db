import { describe, expect, it } from 'vitest';
import { concatRuns } from '../../bench/timing.js';
import type { ProfileEvent } from '../../src/gpu/profiler.js';

const ev = (kernel: string, startNs: number, durationNs: number): ProfileEvent => ({ kernel, label: kernel, startNs, durationNs, flops: 0, bytes: 0, clock: 'gpu' });

describe('concatRuns', () => {
  it('lays runs end to end 1 µs apart, keeping each run\'s own offsets and order', () => {
    // Two runs on unrelated clocks (different submits); the second has a gap between dispatches.
    const first = [ev('a', 5_000, 2_000), ev('b', 7_500, 500)];
    const second = [ev('c', 900_000, 1_000), ev('d', 903_000, 4_000), ev('e', 901_000, 1_000)];
    const merged = concatRuns([first, [], second]).events;
    expect(merged.map((e) => [e.kernel, e.startNs, e.durationNs])).toEqual([
      ['a', 0, 2_000],
      ['b', 2_500, 500],
      // first run ends at 3_000; the next starts 1 µs later and keeps its gaps
      ['c', 4_000, 1_000],
      ['d', 7_000, 4_000],
      ['e', 5_000, 1_000],
    ]);
  });
});

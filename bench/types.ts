import type { GpuFeatures } from '../src/gpu/device.js';
import type { Gpu, Recorder } from '../src/gpu/gpu.js';

/**
 * One benchmark problem: a kernel (or short kernel sequence) on a Whisper-shaped input.
 * The runner calls setup once, then records `run` repeatedly and times it.
 */
export interface BenchCase {
  /** Kernel family, e.g. 'matmul', 'attention'. */
  family: string;
  /** Problem, e.g. 'enc fc1 1500x384 @ 384x1536'. */
  name: string;
  /** Floating-point (or integer) operations per run, for GFLOP/s; 0 for memory-bound ops. */
  flops: number;
  /** Bytes read plus written per run, for GB/s. */
  bytes: number;
  /** Optional features the case needs; the runner skips it (and says so) on devices without them. */
  requires?: readonly (keyof GpuFeatures)[];
  setup(gpu: Gpu): BenchInstance;
}

export interface BenchInstance {
  /** Record one run's dispatches. */
  run(rec: Recorder): void;
  /** Free the tensors setup made. */
  dispose(): void;
}

/**
 * A figure that is not a timed kernel run (e.g. a memory plan, or a whole step's wall time):
 * the runner prints its lines after the timed cases and puts them into the JSON output.
 */
export interface BenchReport {
  name: string;
  /** Compute the figures; each line is printed as is. */
  run(gpu: Gpu, opts: BenchOptions): Promise<BenchReportResult>;
}

/** Runner options a report may use. */
export interface BenchOptions {
  /** --repeat: most timed runs. */
  repeat: number;
  /** --batch: batch size of the whole-step reports. */
  batch: number;
}

export interface BenchReportResult {
  lines: string[];
  /** Machine-readable figures for --json. */
  values: Record<string, number | string>;
}

// Shared pieces of the kernel labs (bench/lab/<family>/run.ts): numbered versions vN.wgsl with
// a `// lab: key=value ... note` first line, round-robin timing, and a Markdown table.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu, Recorder } from '../../src/gpu/gpu.js';
import { Profiler } from '../../src/gpu/profiler.js';
import { shaderSources } from '../../src/shaders.gen.js';

export interface LabVersion {
  /** 'v3' for v3.wgsl. */
  name: string;
  source: string;
  /** key=value pairs of the `// lab:` line (tile sizes the runner needs). */
  params: Readonly<Record<string, string>>;
  /** The rest of the `// lab:` line: what this version changes. */
  note: string;
}

/** The engine's bundled shaders/<name>.wgsl, for a lab version that is the wired-in winner. */
function engineShader(name: string, file: string): string {
  const source = (shaderSources as Record<string, string>)[name];
  if (source === undefined) throw new Error(`${file}: source=${name} names no shader in shaders/`);
  return source;
}

/**
 * The vN.wgsl files of `dir` in numeric order (only those named in `only`, a comma list, when
 * given). Each must start with `// lab: ` followed by key=value pairs and a free-text note; every
 * key in `required` must be present. A version whose line has source=<shader> is the engine's
 * shaders/<shader>.wgsl (the winner, wired in) rather than a copy of it; one with from=vN is vN
 * with other tile constants (withConstants).
 */
export function loadVersions(dir: string, required: readonly string[], only?: string): LabVersion[] {
  const wanted = only?.split(',');
  return readdirSync(dir)
    .filter((f) => /^v\d+\.wgsl$/.test(f))
    .sort((x, y) => Number(x.slice(1, -5)) - Number(y.slice(1, -5)))
    .filter((f) => !wanted || wanted.includes(f.slice(0, -5)))
    .map((f) => {
      const text = readFileSync(join(dir, f), 'utf8');
      const head = /^\/\/ lab: (.*)$/m.exec(text);
      if (!head) throw new Error(`${f}: needs a line "// lab: key=value ... <note>"`);
      const params: Record<string, string> = {};
      const words = head[1]!.split(' ');
      let n = 0;
      for (; n < words.length && /^\w+=\S+$/.test(words[n]!); n++) {
        const [key, value] = words[n]!.split('=') as [string, string];
        params[key] = value;
      }
      for (const key of required) if (!(key in params)) throw new Error(`${f}: the "// lab:" line lacks ${key}=...`);
      // source=<shader>: the version is the engine's shaders/<shader>.wgsl (a winner wired in), not a copy.
      const source = params.source ? engineShader(params.source, f) : params.from ? withConstants(dir, f, params, required) : text;
      return { name: f.slice(0, -5), source, params, note: words.slice(n).join(' ') };
    });
}

/**
 * The source of a version whose `// lab:` line says from=vN: vN.wgsl with each other upper-case
 * key that names a `const KEY: u32 = <n>u;` there set to the given value, so that versions that
 * differ only in tile constants are one line each instead of copies.
 */
function withConstants(dir: string, file: string, params: Readonly<Record<string, string>>, runnerKeys: readonly string[]): string {
  let source = readFileSync(join(dir, `${params.from}.wgsl`), 'utf8');
  for (const [key, value] of Object.entries(params)) {
    if (!/^[A-Z]\w*$/.test(key) || runnerKeys.includes(key)) continue;
    const decl = new RegExp(`^const ${key}: u32 = \\d+u;`, 'm');
    if (!decl.test(source)) throw new Error(`${file}: ${key}=${value} names no "const ${key}: u32 = <n>u;" in ${params.from}.wgsl`);
    source = source.replace(decl, `const ${key}: u32 = ${value}u;`);
  }
  return source;
}

/**
 * Run every job `rounds` times, each round running every job once in turn, so that load from
 * other processes sharing the CPU hits all jobs alike, and return each job's minimum (such noise
 * only ever adds time). Jobs report GPU time, which leaves pipeline compiles out, so the first
 * round counts too.
 */
export async function roundRobin(jobs: readonly (() => Promise<number>)[], rounds: number): Promise<number[]> {
  const best = jobs.map(() => Infinity);
  for (let round = 0; round < rounds; round++) {
    for (const [i, job] of jobs.entries()) best[i] = Math.min(best[i]!, await job());
  }
  return best;
}

/** A Markdown table with columns padded to their widest cell. */
export function markdownTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/**
 * Make lab versions compilable through the engine's kernel cache (bindings reflected from the
 * WGSL, as for shaders/): each becomes shader `lab-<family>-<name>`, which the caller names in
 * its KernelSpec.
 */
export function registerLabShaders(family: string, versions: readonly LabVersion[]): void {
  for (const v of versions) (shaderSources as Record<string, string>)[`lab-${family}-${v.name}`] = v.source;
}

/** GPU time (ms) of each dispatch `record` makes in one run (timestamp intervals). */
export async function timeDispatches(gpu: Gpu, record: (rec: Recorder) => void): Promise<number[]> {
  const profiler = new Profiler();
  gpu.profiler = profiler;
  try {
    await gpu.run(record);
  } finally {
    gpu.profiler = null;
  }
  return profiler.events.map((e) => e.durationNs / 1e6);
}

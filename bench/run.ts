// `npm run bench [-- --filter RE] [--repeat N] [--batch N] [--json FILE] [--trace FILE] [--no-tfjs]`
// Times every case in bench/cases/*.ts with GPU timestamp queries (wall time without them),
// runs the TF.js WebGPU comparisons of bench/compare.ts on the same adapter, prints a table and
// optionally writes JSON and a Chrome trace (open in https://ui.perfetto.dev).
import { readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Gpu } from '../src/gpu/gpu.js';
import { textTable, type ProfileEvent } from '../src/gpu/profiler.js';
import type { BenchCase, BenchReport } from './types.js';
import { comparisons, startTfjs } from './compare.js';
import { concatRuns, timeRuns } from './timing.js';

const { values: args } = parseArgs({
  options: {
    filter: { type: 'string' },
    repeat: { type: 'string', default: '5' },
    batch: { type: 'string', default: '1' },
    json: { type: 'string' },
    trace: { type: 'string' },
    'no-tfjs': { type: 'boolean', default: false },
  },
});
const repeat = Math.max(1, Number(args.repeat));
const batch = Number(args.batch);
if (!Number.isInteger(batch) || batch < 1) throw new Error(`--batch must be a positive integer, got "${args.batch}"`);
const filter = args.filter ? new RegExp(args.filter, 'i') : null;

export interface CaseResult {
  family: string;
  name: string;
  /** Fastest of the repeats, milliseconds of GPU time. */
  ms: number;
  medianMs: number;
  gflops: number;
  gbps: number;
  clock: 'gpu' | 'cpu';
}

async function loadCases(): Promise<{ cases: BenchCase[]; reports: BenchReport[] }> {
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'cases');
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts')).sort();
  const cases: BenchCase[] = [];
  const reports: BenchReport[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { cases?: BenchCase[]; reports?: BenchReport[] };
    cases.push(...(mod.cases ?? []));
    reports.push(...(mod.reports ?? []));
  }
  return { cases, reports };
}

const gpu = await Gpu.create();
const trace: ProfileEvent[][] = [];
try {
  const a = gpu.adapter;
  console.log(`adapter: ${a.description || a.device || 'unknown'} (${a.vendor}, ${a.architecture}) via ${a.runtime}`);
  console.log(`features: ${Object.entries(gpu.features).filter(([, v]) => v).map(([k]) => k).join(', ') || 'none'}`);
  console.log(`repeats: ${repeat} (min and median of GPU time per run)\n`);

  const results: CaseResult[] = [];
  const loaded = await loadCases();
  for (const c of loaded.cases.filter((c) => !filter || filter.test(`${c.family} ${c.name}`))) {
    const missing = (c.requires ?? []).filter((f) => !gpu.features[f]);
    if (missing.length > 0) {
      process.stderr.write(`  ${c.family} ${c.name}: skipped, the device has no ${missing.join(', ')}\n`);
      continue;
    }
    const inst = c.setup(gpu);
    try {
      const t = await timeRuns(gpu, (rec) => inst.run(rec), repeat);
      trace.push(t.events);
      results.push({ family: c.family, name: c.name, ms: t.min, medianMs: t.median, gflops: c.flops / t.min / 1e6, gbps: c.bytes / t.min / 1e6, clock: t.clock });
      process.stderr.write(`  ${c.family} ${c.name}: ${t.min.toFixed(2)} ms\n`);
    } finally {
      inst.dispose();
    }
  }
  console.log(
    textTable(
      ['family', 'case', 'ms', 'median', 'GFLOP/s', 'GB/s'],
      results.map((r) => [r.family, r.name, r.ms.toFixed(3), r.medianMs.toFixed(3), r.gflops.toFixed(2), r.gbps.toFixed(2)]),
      2,
    ),
  );

  const reported: { name: string; values: Record<string, number | string> }[] = [];
  for (const r of loaded.reports.filter((r) => !filter || filter.test(r.name))) {
    const result = await r.run(gpu, { repeat, batch });
    console.log(`\n${r.name}:\n${result.lines.map((l) => `  ${l}`).join('\n')}`);
    reported.push({ name: r.name, values: result.values });
  }

  const compared: { name: string; oursMs: number; tfjsMs: number; ratio: number }[] = [];
  if (!args['no-tfjs']) {
    const tfjs = await startTfjs(gpu);
    try {
      for (const cmp of comparisons.filter((c) => !filter || filter.test(c.name))) {
        const ours = cmp.ours(gpu);
        try {
          const t = await timeRuns(gpu, (rec) => ours.run(rec), repeat);
          trace.push(t.events);
          const tfMs = await tfjs.time(cmp.tfjs, repeat);
          compared.push({ name: cmp.name, oursMs: t.min, tfjsMs: tfMs, ratio: tfMs / t.min });
          process.stderr.write(`  vs TF.js ${cmp.name}: ${t.min.toFixed(2)} ms vs ${tfMs.toFixed(2)} ms\n`);
        } finally {
          ours.dispose();
        }
      }
    } finally {
      tfjs.dispose();
    }
    console.log('\nTF.js WebGPU backend on the same adapter (kernel time, min of repeats):');
    console.log(textTable(['comparison', '', 'ours ms', 'TF.js ms', 'speed-up'], compared.map((c) => [c.name, '', c.oursMs.toFixed(3), c.tfjsMs.toFixed(3), `${c.ratio.toFixed(2)}x`]), 2));
  }

  if (args.json) {
    const out = { date: new Date().toISOString(), adapter: gpu.adapter, features: gpu.features, limits: gpu.limits, repeat, batch, results, reports: reported, tfjs: compared };
    writeFileSync(args.json, JSON.stringify(out, null, 2));
    console.log(`\nwrote ${args.json}`);
  }
  if (args.trace) {
    // Each case's last run, laid end to end.
    const profiler = concatRuns(trace);
    writeFileSync(args.trace, JSON.stringify(profiler.toChromeTrace()));
    console.log(`wrote ${args.trace} (Chrome trace events; open in Perfetto)`);
  }
} finally {
  gpu.destroy();
}
// Dawn's bindings can keep the event loop alive after the device is gone.
process.exit(0);

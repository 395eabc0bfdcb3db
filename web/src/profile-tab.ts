// Profile tab: run benchmark cases (bench/cases, the same ones `npm run bench` times) with the
// profiler, show per-case and per-kernel tables and a timeline, and download a Chrome trace.
import type { Gpu } from '../../src/index.js';
import { cases as attentionCases } from '../../bench/cases/attention.js';
import { cases as elementwiseCases } from '../../bench/cases/elementwise.js';
import { cases as int8Cases } from '../../bench/cases/int8.js';
import { cases as lossCases } from '../../bench/cases/losses.js';
import { cases as matmulCases } from '../../bench/cases/matmul.js';
import { cases as normCases } from '../../bench/cases/norm.js';
import { concatRuns, timeRuns, type RunTimes } from '../../bench/timing.js';
import type { BenchCase } from '../../bench/types.js';
import { renderTimeline } from './timeline.js';
import { tableOf, type Tab } from './tabs.js';

const allCases: readonly BenchCase[] = [...matmulCases, ...int8Cases, ...attentionCases, ...normCases, ...elementwiseCases, ...lossCases];
const caseId = (c: BenchCase) => `${c.family}: ${c.name}`;

/** The cheapest case of each family (fewest flops + bytes): a first look that finishes quickly on a software adapter. */
function quickSet(): Set<string> {
  const cheapest = new Map<string, BenchCase>();
  for (const c of allCases) {
    const best = cheapest.get(c.family);
    if (!best || c.flops + c.bytes < best.flops + best.bytes) cheapest.set(c.family, c);
  }
  return new Set([...cheapest.values()].map(caseId));
}

function missingFeatures(gpu: Gpu, c: BenchCase): string[] {
  return (c.requires ?? []).filter((f) => !gpu.features[f]);
}

interface CaseRun {
  c: BenchCase;
  times: RunTimes;
}

export const profileTab: Tab = {
  id: 'profile',
  title: 'Profile',
  mount(panel, { gpu, reportError }) {
    panel.innerHTML = `
      <p>Times Whisper-sized kernel problems (the cases of <code>npm run bench</code>) on this device.
      Each case runs once to warm up, then <em>repeat</em> times with the profiler on; tables show the fastest run.</p>
      <div class="controls">
        <button id="select-quick">Quick set</button><button id="select-all">All</button><button id="select-none">None</button>
        <label>repeat <input id="repeat" type="number" min="1" max="20" value="3"></label>
        <button id="run-profile" class="primary">Run</button>
        <span id="profile-progress" aria-live="polite"></span>
      </div>
      <div id="case-list" class="case-list"></div>
      <div id="profile-results" hidden>
        <h2>Cases</h2><div id="case-table"></div>
        <h2>Kernels (last run of each case)</h2><div id="kernel-table"></div>
        <h2>Timeline</h2><p class="note" id="timeline-note"></p><div id="timeline-box" class="timeline"></div>
        <button id="download-trace">Download Chrome trace (JSON)</button> <span class="note">opens in ui.perfetto.dev or chrome://tracing</span>
      </div>`;
    const list = panel.querySelector<HTMLElement>('#case-list')!;
    const quick = quickSet();
    const families = [...new Set(allCases.map((c) => c.family))];
    for (const family of families) {
      const group = document.createElement('fieldset');
      group.innerHTML = `<legend></legend>`;
      group.querySelector('legend')!.textContent = family;
      for (const c of allCases.filter((x) => x.family === family)) {
        const label = document.createElement('label');
        const box = document.createElement('input');
        box.type = 'checkbox';
        box.value = caseId(c);
        box.dataset.case = caseId(c);
        const missing = missingFeatures(gpu, c);
        box.disabled = missing.length > 0;
        box.checked = !box.disabled && quick.has(caseId(c));
        label.append(box, ` ${c.name}${missing.length ? ` (needs ${missing.join(', ')})` : ''}`);
        group.append(label);
      }
      list.append(group);
    }
    const boxes = () => Array.from(list.querySelectorAll<HTMLInputElement>('input[type=checkbox]:not(:disabled)'));
    panel.querySelector('#select-quick')!.addEventListener('click', () => boxes().forEach((b) => (b.checked = quick.has(b.value))));
    panel.querySelector('#select-all')!.addEventListener('click', () => boxes().forEach((b) => (b.checked = true)));
    panel.querySelector('#select-none')!.addEventListener('click', () => boxes().forEach((b) => (b.checked = false)));

    const runButton = panel.querySelector<HTMLButtonElement>('#run-profile')!;
    const progress = panel.querySelector<HTMLElement>('#profile-progress')!;
    let trace: object | null = null;
    runButton.addEventListener('click', async () => {
      const selected = allCases.filter((c) => boxes().some((b) => b.checked && b.value === caseId(c)));
      const repeat = Math.max(1, Math.min(20, Number(panel.querySelector<HTMLInputElement>('#repeat')!.value) || 1));
      if (selected.length === 0) {
        progress.textContent = 'select at least one case';
        return;
      }
      runButton.disabled = true;
      const runs: CaseRun[] = [];
      try {
        for (const [i, c] of selected.entries()) {
          progress.textContent = `${i + 1}/${selected.length}: ${caseId(c)}…`;
          const instance = c.setup(gpu);
          try {
            runs.push({ c, times: await timeRuns(gpu, (rec) => instance.run(rec), repeat) });
          } catch (err) {
            reportError(err, `running ${caseId(c)}`);
            break;
          } finally {
            instance.dispose();
          }
        }
        progress.textContent = `done: ${runs.length} of ${selected.length} cases`;
        progress.dataset.done = String(runs.length);
        if (runs.length > 0) trace = showResults(panel, runs);
      } finally {
        runButton.disabled = false;
      }
    });
    panel.querySelector('#download-trace')!.addEventListener('click', () => {
      if (!trace) return;
      const link = document.createElement('a');
      link.href = URL.createObjectURL(new Blob([JSON.stringify(trace)], { type: 'application/json' }));
      link.download = 'dq-whisper-profile.trace.json';
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    });
  },
};

/** Fill the result tables and timeline; returns the Chrome trace of the runs shown. */
function showResults(panel: HTMLElement, runs: CaseRun[]): object {
  const f = (x: number, digits = 3) => x.toFixed(digits);
  const caseRows = runs.map(({ c, times }) => [caseId(c), f(times.min), f(times.median), f(c.flops / times.min / 1e6, 2), f(c.bytes / times.min / 1e6, 2), times.clock]);
  panel.querySelector('#case-table')!.replaceChildren(tableOf(['case', 'ms', 'median ms', 'GFLOP/s', 'GB/s', 'clock'], caseRows, [1, 2, 3, 4]));
  const profiler = concatRuns(runs.map((r) => r.times.events));
  const kernelRows = profiler.summary().map((k) => [k.kernel, String(k.calls), f(k.totalMs), f(k.meanMs), f(k.gflops, 2), f(k.gbps, 2)]);
  panel.querySelector('#kernel-table')!.replaceChildren(tableOf(['kernel', 'calls', 'total ms', 'mean ms', 'GFLOP/s', 'GB/s'], kernelRows, [1, 2, 3, 4, 5]));
  const clock = runs[0]!.times.clock;
  panel.querySelector('#timeline-note')!.textContent =
    `${profiler.events.length} dispatches, cases laid end to end; ` +
    (clock === 'gpu' ? 'GPU timestamps (browsers may round them to 100 µs).' : 'wall time per dispatch (this device has no timestamp-query).');
  panel.querySelector('#timeline-box')!.replaceChildren(renderTimeline(profiler.events));
  panel.querySelector<HTMLElement>('#profile-results')!.hidden = false;
  return profiler.toChromeTrace();
}

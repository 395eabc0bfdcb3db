// Timeline of profiled dispatches as SVG: one lane per kernel, one bar per dispatch, hover for
// the label, kernel and duration.
import type { ProfileEvent } from '../../src/index.js';

const svgNs = 'http://www.w3.org/2000/svg';
const laneHeight = 18;
const plotWidth = 900;

function el<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const node = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Tick spacing of 1, 2 or 5 times a power of ten giving about `count` ticks over `span`. */
function tickStep(span: number, count: number): number {
  const raw = span / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
}

export function renderTimeline(events: readonly ProfileEvent[]): SVGSVGElement {
  const lanes = [...new Set(events.map((e) => e.kernel))];
  // Lane labels are kernel names with variant and constants; about 6.5 px per character at 11 px.
  const labelWidth = Math.max(120, 12 + 6.5 * Math.max(...lanes.map((l) => l.length)));
  const t0 = Math.min(...events.map((e) => e.startNs));
  const spanNs = Math.max(1, ...events.map((e) => e.startNs + e.durationNs - t0));
  const height = (lanes.length + 1) * laneHeight + 8;
  const svg = el('svg', { id: 'timeline', viewBox: `0 0 ${labelWidth + plotWidth + 10} ${height}`, role: 'img', 'aria-label': `timeline of ${events.length} dispatches` });
  const x = (ns: number) => labelWidth + ((ns - t0) / spanNs) * plotWidth;
  lanes.forEach((kernel, i) => {
    svg.append(el('text', { x: labelWidth - 6, y: (i + 1) * laneHeight - 5, 'text-anchor': 'end', class: 'lane' }, kernel));
  });
  const step = tickStep(spanNs / 1e6, 8);
  for (let ms = 0; ms * 1e6 <= spanNs; ms += step) {
    const tx = x(t0 + ms * 1e6);
    svg.append(el('line', { x1: tx, x2: tx, y1: 0, y2: lanes.length * laneHeight, class: 'tick' }));
    svg.append(el('text', { x: tx, y: height - 4, 'text-anchor': 'middle', class: 'axis' }, `${+ms.toFixed(6)} ms`));
  }
  for (const e of events) {
    const lane = lanes.indexOf(e.kernel);
    const bar = el('rect', { x: x(e.startNs), y: lane * laneHeight + 3, width: Math.max(1, x(e.startNs + e.durationNs) - x(e.startNs)), height: laneHeight - 6, class: `bar lane-${lane % 8}` });
    bar.append(el('title', {}, `${e.label} (${e.kernel}): ${(e.durationNs / 1e6).toFixed(3)} ms, ${e.clock} clock`));
    svg.append(bar);
  }
  return svg;
}

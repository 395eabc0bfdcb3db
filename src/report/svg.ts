// Charts of a training run as SVG strings: loss curves, dev CER per language, the layer map's
// evolution as a heatmap. Pure (no DOM), so the same strings go into files under Node and into
// the page in a browser.
//
// Scales, ticks, tick labels and colour schemes come from d3-scale, d3-format and
// d3-scale-chromatic, which are DOM-free. The SVG elements are written here: the npm charting
// libraries either need a DOM (Chart.js, Plot, Chartist, frappe-charts) or are a whole grammar
// runtime (Vega, about 1 MB, compiling expressions with `Function`) for three small charts.
import { scaleBand, scaleLinear, scaleLog } from 'd3-scale';
import { interpolateViridis, schemeTableau10 } from 'd3-scale-chromatic';
import type { RunHistory } from './metrics.js';

/** Text as SVG/HTML character data or attribute value. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A coordinate with two decimals: enough for a screen, and it keeps the files small. */
const px = (v: number) => String(Math.round(v * 100) / 100);

/** One line of a chart. */
export interface ChartSeries {
  /** Legend text. */
  readonly name: string;
  /** [x, y] points; points with a non-finite coordinate (or y <= 0 on a log axis) are left out. */
  readonly points: readonly (readonly [number, number])[];
  /** CSS colour; by default the next of Tableau 10. */
  readonly color?: string;
  readonly dashed?: boolean;
  /** A dot at every point (always drawn for a series of one point). */
  readonly markers?: boolean;
  /** Drawn thicker, for the series that matters most. */
  readonly emphasis?: boolean;
}

/** A line chart: title, axis labels, the series and how to scale and label y. */
export interface LineChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly ChartSeries[];
  /** Logarithmic y axis (losses). */
  readonly logY?: boolean;
  /** d3-format specifier of the y tick labels, e.g. ".0%"; d3's default for the scale when absent. */
  readonly yFormat?: string;
  readonly width?: number;
  readonly height?: number;
}

const font = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="11"';
const legendWidth = 150;

function svgOpen(width: number, height: number, title: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${font} role="img">` +
    `<title>${escapeXml(title)}</title>` +
    `<rect class="background" width="${width}" height="${height}" fill="#fff"/>` +
    `<text class="title" x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="600">${escapeXml(title)}</text>`
  );
}

/** [min, max] of `values`, widened around a single value so a scale can map it. */
function extent(values: readonly number[], log: boolean): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo < hi) return [lo, hi];
  if (log) return [lo / 2, lo * 2];
  return lo === 0 ? [-1, 1] : [lo - Math.abs(lo) / 2, lo + Math.abs(lo) / 2];
}

/**
 * A line chart of several series with axes, ticks, grid lines and a legend, as an SVG document.
 * The axes span exactly the data (the smallest and largest x and y land on the plot's edges).
 * Series with no drawable point are left out, legend included; with none at all the chart says
 * "no data".
 */
export function lineChart(options: LineChartOptions): string {
  const { width = 720, height = 360, logY = false } = options;
  const margin = { top: 36, right: legendWidth, bottom: 44, left: 64 };
  const [left, right, top, bottom] = [margin.left, width - margin.right, margin.top, height - margin.bottom];
  const series = options.series
    .map((s, i) => ({
      ...s,
      color: s.color ?? schemeTableau10[i % schemeTableau10.length]!,
      points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0)).sort((a, b) => a[0] - b[0]),
    }))
    .filter((s) => s.points.length > 0);
  const parts = [svgOpen(width, height, options.title)];
  parts.push(`<rect class="frame" x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#ccc"/>`);
  if (series.length === 0) {
    parts.push(`<text class="empty" x="${(left + right) / 2}" y="${(top + bottom) / 2}" text-anchor="middle" fill="#888">no data</text></svg>`);
    return parts.join('');
  }
  const x = scaleLinear().domain(extent(series.flatMap((s) => s.points.map((p) => p[0])), false)).range([left, right]);
  const yDomain = extent(series.flatMap((s) => s.points.map((p) => p[1])), logY);
  const y = logY ? scaleLog().domain(yDomain).range([bottom, top]) : scaleLinear().domain(yDomain).range([bottom, top]);

  const xTicks = x.ticks(6);
  const xLabel = x.tickFormat(6, '~s');
  const yTicks = y.ticks(5);
  const yLabel = logY ? y.tickFormat(5, options.yFormat ?? '~g') : y.tickFormat(5, options.yFormat);
  parts.push('<g class="grid" stroke="#eee">');
  for (const t of yTicks) if (yLabel(t) !== '') parts.push(`<line x1="${left}" x2="${right}" y1="${px(y(t))}" y2="${px(y(t))}"/>`);
  parts.push('</g>');

  parts.push(`<g class="axis x"><line class="domain" x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" stroke="#333"/>`);
  for (const t of xTicks) {
    parts.push(`<g class="tick" data-value="${t}"><line x1="${px(x(t))}" x2="${px(x(t))}" y1="${bottom}" y2="${bottom + 5}" stroke="#333"/><text x="${px(x(t))}" y="${bottom + 17}" text-anchor="middle">${escapeXml(xLabel(t))}</text></g>`);
  }
  parts.push(`<text class="label" x="${(left + right) / 2}" y="${height - 8}" text-anchor="middle">${escapeXml(options.xLabel)}</text></g>`);

  parts.push(`<g class="axis y"><line class="domain" x1="${left}" x2="${left}" y1="${bottom}" y2="${top}" stroke="#333"/>`);
  for (const t of yTicks) {
    const label = yLabel(t);
    const tickLength = label === '' ? 3 : 5;
    parts.push(`<g class="tick" data-value="${t}"><line x1="${left - tickLength}" x2="${left}" y1="${px(y(t))}" y2="${px(y(t))}" stroke="#333"/>`);
    if (label !== '') parts.push(`<text x="${left - 8}" y="${px(y(t))}" dy="0.32em" text-anchor="end">${escapeXml(label)}</text>`);
    parts.push('</g>');
  }
  parts.push(`<text class="label" transform="translate(14 ${(top + bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}</text></g>`);

  parts.push('<g class="plot">');
  for (const s of series) {
    const stroke = `stroke="${s.color}" stroke-width="${s.emphasis ? 2.5 : 1.5}"${s.dashed ? ' stroke-dasharray="5 3"' : ''}`;
    parts.push(`<g class="series" data-name="${escapeXml(s.name)}">`);
    parts.push(`<polyline points="${s.points.map(([a, b]) => `${px(x(a))},${px(y(b))}`).join(' ')}" fill="none" ${stroke} stroke-linejoin="round"/>`);
    if (s.markers || s.points.length === 1) {
      for (const [a, b] of s.points) parts.push(`<circle cx="${px(x(a))}" cy="${px(y(b))}" r="${s.emphasis ? 3.5 : 2.5}" fill="${s.color}"/>`);
    }
    parts.push('</g>');
  }
  parts.push('</g>');

  parts.push('<g class="legend">');
  series.forEach((s, i) => {
    const ly = top + 8 + i * 16;
    const lx = right + 12;
    parts.push(
      `<g class="entry"><line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="${s.emphasis ? 2.5 : 1.5}"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>` +
        `<text x="${lx + 28}" y="${ly}" dy="0.32em">${escapeXml(s.name)}</text></g>`,
    );
  });
  parts.push('</g></svg>');
  return parts.join('');
}

/** The loss parts a chart draws, with their legend names and fixed colours. */
const lossSeries = [
  { key: 'total', name: 'total', color: schemeTableau10[0]! },
  { key: 'ce', name: 'cross-entropy', color: schemeTableau10[1]! },
  { key: 'kl', name: 'KL', color: schemeTableau10[2]! },
  { key: 'hs', name: 'hidden-state MSE', color: schemeTableau10[3]! },
] as const;

/** Training losses per step (total and each logged part) and the dev loss, on a log axis. */
export function lossChart(history: RunHistory, options: { width?: number; height?: number } = {}): string {
  const series: ChartSeries[] = lossSeries.map(({ key, name, color }) => ({
    name,
    color,
    emphasis: key === 'total',
    points: history.train.flatMap((r) => (r.loss[key] === undefined ? [] : [[r.step, r.loss[key]] as const])),
  }));
  series.push({
    name: 'dev loss',
    color: '#000',
    dashed: true,
    markers: true,
    points: history.evals.flatMap((r) => (r.loss === undefined ? [] : [[r.step, r.loss.total] as const])),
  });
  return lineChart({ title: 'Loss', xLabel: 'step', yLabel: 'loss (log scale)', series, logY: true, ...options });
}

/** Dev-set CER per language and overall after each evaluation. */
export function cerChart(history: RunHistory, options: { width?: number; height?: number } = {}): string {
  const languages = [...new Set(history.evals.flatMap((r) => Object.keys(r.languages)))].sort();
  const point = (step: number, cer: number | null | undefined) => (cer === null || cer === undefined ? [] : [[step, cer] as const]);
  const series: ChartSeries[] = [
    { name: 'overall', color: '#000', emphasis: true, markers: true, points: history.evals.flatMap((r) => point(r.step, r.overall.cer)) },
    ...languages.map((code) => ({ name: code, markers: true, points: history.evals.flatMap((r) => point(r.step, r.languages[code]?.cer)) })),
  ];
  return lineChart({ title: 'Dev CER per language', xLabel: 'step', yLabel: 'CER', series, yFormat: '.1%', ...options });
}

/** Options of {@link barChart}. */
export interface BarChartOptions {
  readonly title: string;
  readonly yLabel: string;
  /** Categories along x (e.g. languages), in order. */
  readonly groups: readonly string[];
  /** One bar per group for each series (e.g. a model); null where it has no value. */
  readonly series: readonly { readonly name: string; readonly values: readonly (number | null)[]; readonly color?: string }[];
  /** d3-format specifier of the y tick labels and the value over each bar, e.g. ".0%". */
  readonly yFormat?: string;
  readonly width?: number;
  readonly height?: number;
}

/**
 * Grouped bars: for each group along x, one bar per series, with its value written over it when
 * the bar is wide enough; y starts at 0. A series without any value is still listed in the legend.
 */
export function barChart(options: BarChartOptions): string {
  const { width = 720, height = 360 } = options;
  const [left, right, top, bottom] = [64, width - legendWidth, 36, height - 44];
  const series = options.series.map((s, i) => ({ ...s, color: s.color ?? schemeTableau10[i % schemeTableau10.length]! }));
  const values = series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const parts = [svgOpen(width, height, options.title)];
  const x = scaleBand().domain(options.groups).range([left, right]).paddingInner(0.2).paddingOuter(0.1);
  const inner = scaleBand().domain(series.map((s) => s.name)).range([0, x.bandwidth()]).padding(0.05);
  const y = scaleLinear().domain([0, Math.max(0, ...values) || 1]).nice().range([bottom, top]);
  const format = y.tickFormat(5, options.yFormat);
  parts.push('<g class="grid" stroke="#eee">');
  for (const t of y.ticks(5)) parts.push(`<line x1="${left}" x2="${right}" y1="${px(y(t))}" y2="${px(y(t))}"/>`);
  parts.push('</g><g class="plot">');
  for (const s of series) {
    parts.push(`<g class="series" data-name="${escapeXml(s.name)}">`);
    options.groups.forEach((group, i) => {
      const v = s.values[i];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      const bx = x(group)! + inner(s.name)!;
      parts.push(`<rect class="bar" data-group="${escapeXml(group)}" data-value="${v}" x="${px(bx)}" y="${px(y(v))}" width="${px(inner.bandwidth())}" height="${px(bottom - y(v))}" fill="${s.color}"/>`);
      if (inner.bandwidth() >= 22) parts.push(`<text x="${px(bx + inner.bandwidth() / 2)}" y="${px(y(v) - 3)}" text-anchor="middle" font-size="9">${escapeXml(format(v))}</text>`);
    });
    parts.push('</g>');
  }
  parts.push('</g>');
  parts.push(`<g class="axis x"><line class="domain" x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" stroke="#333"/>`);
  for (const group of options.groups) parts.push(`<text x="${px(x(group)! + x.bandwidth() / 2)}" y="${bottom + 17}" text-anchor="middle">${escapeXml(group)}</text>`);
  parts.push('</g>');
  parts.push(`<g class="axis y"><line class="domain" x1="${left}" x2="${left}" y1="${bottom}" y2="${top}" stroke="#333"/>`);
  for (const t of y.ticks(5)) {
    parts.push(`<g class="tick" data-value="${t}"><line x1="${left - 5}" x2="${left}" y1="${px(y(t))}" y2="${px(y(t))}" stroke="#333"/><text x="${left - 8}" y="${px(y(t))}" dy="0.32em" text-anchor="end">${escapeXml(format(t))}</text></g>`);
  }
  parts.push(`<text class="label" transform="translate(14 ${(top + bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}</text></g>`);
  parts.push('<g class="legend">');
  series.forEach((s, i) => {
    const ly = top + 8 + i * 16;
    parts.push(`<g class="entry"><rect x="${right + 12}" y="${ly - 5}" width="12" height="10" fill="${s.color}"/><text x="${right + 30}" y="${ly}" dy="0.32em">${escapeXml(s.name)}</text></g>`);
  });
  parts.push('</g></svg>');
  return parts.join('');
}

/** Options of {@link layerMapHeatmap}. */
export interface LayerMapHeatmapOptions {
  /** The last step trained: the last map's cells reach it. By default the last map's step + 1. */
  readonly lastStep?: number;
  readonly width?: number;
}

/**
 * The layer map's evolution as a heatmap, one panel per side (encoder, decoder) that has a map:
 * x = step, y = student layer (1 at the bottom), colour = the 1-based teacher layer it learns
 * from (viridis over 1..teacher layers, with the number written in cells wide enough). A map
 * holds from its step to the next map's step; the last one to `lastStep`.
 */
export function layerMapHeatmap(maps: RunHistory['layerMaps'], options: LayerMapHeatmapOptions = {}): string {
  const width = options.width ?? 720;
  const title = 'Layer map: teacher layer per student layer';
  const [left, right] = [64, width - legendWidth];
  const sides = (['encoder', 'decoder'] as const)
    .map((side) => ({ side, maps: maps.filter((m) => m[side].length > 0) }))
    .filter((p) => p.maps.length > 0);
  if (sides.length === 0) {
    const height = 120;
    return `${svgOpen(width, height, title)}<text class="empty" x="${width / 2}" y="${height / 2 + 10}" text-anchor="middle" fill="#888">no layer map logged</text></svg>`;
  }
  const firstStep = Math.min(...sides.map((p) => p.maps[0]!.step));
  const lastMapStep = Math.max(...sides.map((p) => p.maps.at(-1)!.step));
  const endStep = Math.max(options.lastStep ?? lastMapStep + 1, lastMapStep + 1);
  const x = scaleLinear().domain([firstStep, endStep]).range([left, right]);
  const parts: string[] = [];
  let top = 40;
  for (const { side, maps: sideMaps } of sides) {
    const studentLayers = Math.max(...sideMaps.map((m) => m[side].length));
    const teacherLayers = Math.max(...sideMaps.map((m) => Math.max(m.teacherLayers?.[side] ?? 1, ...m[side])));
    const color = (t: number) => interpolateViridis(teacherLayers === 1 ? 0.5 : (t - 1) / (teacherLayers - 1));
    const rowHeight = Math.max(8, Math.min(22, Math.floor(180 / studentLayers)));
    const bottom = top + 18 + studentLayers * rowHeight;
    const rowTop = (layer: number) => bottom - layer * rowHeight;
    parts.push(`<g class="panel" data-side="${side}"><text x="${left}" y="${top + 10}" font-weight="600">${side}</text>`);
    sideMaps.forEach((map, i) => {
      const from = map.step;
      const to = sideMaps[i + 1]?.step ?? endStep;
      const [x0, x1] = [x(from), x(to)];
      map[side].forEach((teacher, r) => {
        const cell = `x="${px(x0)}" y="${px(rowTop(r + 1))}" width="${px(x1 - x0)}" height="${rowHeight}"`;
        parts.push(`<rect class="cell" data-step="${from}" data-student="${r + 1}" data-teacher="${teacher}" ${cell} fill="${color(teacher)}"/>`);
        if (x1 - x0 >= 14 && rowHeight >= 12) {
          const ink = (teacher - 1) / Math.max(1, teacherLayers - 1) < 0.6 ? '#fff' : '#000';
          parts.push(`<text x="${px((x0 + x1) / 2)}" y="${px(rowTop(r + 1) + rowHeight / 2)}" dy="0.32em" text-anchor="middle" font-size="10" fill="${ink}">${teacher}</text>`);
        }
      });
    });
    parts.push(`<g class="axis y">`);
    for (let layer = 1; layer <= studentLayers; layer++) {
      parts.push(`<text x="${left - 6}" y="${px(rowTop(layer) + rowHeight / 2)}" dy="0.32em" text-anchor="end">${layer}</text>`);
    }
    parts.push(`<text transform="translate(18 ${px((top + 18 + bottom) / 2)}) rotate(-90)" text-anchor="middle">student layer</text></g>`);
    parts.push(`<g class="axis x"><line x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" stroke="#333"/>`);
    const format = x.tickFormat(6, '~s');
    for (const t of x.ticks(6)) {
      parts.push(`<line x1="${px(x(t))}" x2="${px(x(t))}" y1="${bottom}" y2="${bottom + 5}" stroke="#333"/><text x="${px(x(t))}" y="${bottom + 17}" text-anchor="middle">${escapeXml(format(t))}</text>`);
    }
    parts.push(`<text x="${(left + right) / 2}" y="${bottom + 32}" text-anchor="middle">step</text></g>`);
    parts.push(`<g class="legend"><text x="${right + 12}" y="${top + 10}">teacher layer</text>`);
    const swatch = Math.max(6, Math.min(14, Math.floor((bottom - top - 18) / teacherLayers)));
    for (let t = 1; t <= teacherLayers; t++) {
      const sy = top + 18 + (teacherLayers - t) * swatch;
      parts.push(`<g class="swatch" data-teacher="${t}"><rect x="${right + 12}" y="${sy}" width="14" height="${swatch}" fill="${color(t)}"/>`);
      if (swatch >= 10 || t === 1 || t === teacherLayers) parts.push(`<text x="${right + 32}" y="${sy + swatch / 2}" dy="0.32em">${t}</text>`);
      parts.push('</g>');
    }
    parts.push('</g></g>');
    top = Math.max(bottom + 44, top + 18 + teacherLayers * swatch + 16);
  }
  return `${svgOpen(width, top, title)}${parts.join('')}</svg>`;
}

/** {@link layerMapHeatmap} of a run, its cells reaching the last step trained. */
export function layerMapChart(history: RunHistory, options: { width?: number } = {}): string {
  const lastStep = Math.max(history.train.at(-1)?.step ?? 0, history.evals.at(-1)?.step ?? 0);
  return layerMapHeatmap(history.layerMaps, { ...options, lastStep });
}

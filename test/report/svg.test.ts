import { describe, expect, it } from 'vitest';
import { runHistory } from '../../src/report/metrics.js';
import { cerChart, layerMapHeatmap, lineChart, lossChart } from '../../src/report/svg.js';
import { sampleLanguages, sampleMaps, sampleRun } from './sample-run.js';
import { byTag, findAll, parseXml, type XmlElement } from './xml.js';

// Coordinates are written with two decimals: a point is within 0.005 px of the exact value.
const pxTolerance = 0.006;

const num = (e: XmlElement, name: string) => Number(e.attributes[name]);
const polylinePoints = (series: XmlElement) => byTag(series, 'polyline')[0]!.attributes.points!.split(' ').map((p) => p.split(',').map(Number) as [number, number]);

/** The plot edges, read from the axis lines: [left, right] and [bottom, top] in pixels. */
function plotEdges(svg: XmlElement) {
  const xAxis = byTag(byTag(svg, 'g', 'x')[0]!, 'line', 'domain')[0]!;
  const yAxis = byTag(byTag(svg, 'g', 'y')[0]!, 'line', 'domain')[0]!;
  return { left: num(xAxis, 'x1'), right: num(xAxis, 'x2'), bottom: num(yAxis, 'y1'), top: num(yAxis, 'y2') };
}

describe('lineChart', () => {
  const series = [
    { name: 'a', points: [[3, 2], [29, 7.9], [17, 5], [40, Number.NaN], [47, 4]] as [number, number][] },
    { name: 'empty', points: [[Number.NaN, 1]] as [number, number][] },
    { name: 'b', points: [[17, 0.13], [47, 3]] as [number, number][], dashed: true },
  ];

  it('draws one polyline per series with a drawable point, skips NaN, maps the data linearly onto the plot', () => {
    const svg = parseXml(lineChart({ title: 'T', xLabel: 'step', yLabel: 'loss', series }));
    expect(svg.name).toBe('svg');
    const drawn = byTag(svg, 'g', 'series');
    expect(drawn.map((g) => g.attributes['data-name'])).toEqual(['a', 'b']);
    expect(byTag(byTag(svg, 'g', 'legend')[0]!, 'g', 'entry').map((e) => byTag(e, 'text')[0]!.text)).toEqual(['a', 'b']);
    const { left, right, bottom, top } = plotEdges(svg);
    expect(right - left).toBeGreaterThan(100);
    expect(bottom - top).toBeGreaterThan(100);
    // Data extent: x 3..47, y 0.13..7.9; points sorted by x, the NaN one left out.
    const expectedPixel = ([x, y]: number[]) => [left + ((x! - 3) / 44) * (right - left), bottom - ((y! - 0.13) / 7.77) * (bottom - top)];
    const a = polylinePoints(drawn[0]!);
    const aData = [[3, 2], [17, 5], [29, 7.9], [47, 4]];
    expect(a).toHaveLength(4);
    a.forEach((p, i) => {
      const [ex, ey] = expectedPixel(aData[i]!);
      expect(Math.abs(p[0] - ex!)).toBeLessThan(pxTolerance);
      expect(Math.abs(p[1] - ey!)).toBeLessThan(pxTolerance);
    });
    // The extremes land on the edges: x = 3 on the left, x = 47 on the right, y = 7.9 at the top, y = 0.13 at the bottom.
    expect(a[0]![0]).toBeCloseTo(left, 2);
    expect(a[3]![0]).toBeCloseTo(right, 2);
    expect(a[2]![1]).toBeCloseTo(top, 2);
    expect(polylinePoints(drawn[1]!)[0]![1]).toBeCloseTo(bottom, 2);
    expect(byTag(drawn[1]!, 'polyline')[0]!.attributes['stroke-dasharray']).toBeDefined();
    // Each tick sits where its value maps, and its label is the value.
    const xTicks = byTag(byTag(svg, 'g', 'x')[0]!, 'g', 'tick');
    expect(xTicks.length).toBeGreaterThanOrEqual(3);
    for (const tick of xTicks) {
      const value = Number(tick.attributes['data-value']);
      expect(Math.abs(num(byTag(tick, 'line')[0]!, 'x1') - expectedPixel([value, 1])[0]!)).toBeLessThan(pxTolerance);
      expect(Number(byTag(tick, 'text')[0]!.text)).toBe(value);
    }
  });

  it('maps y logarithmically on a log axis and leaves out points <= 0', () => {
    const svg = parseXml(lineChart({ title: 'L', xLabel: 'x', yLabel: 'y', logY: true, series: [{ name: 's', points: [[0, 100], [1, 10], [2, 0], [3, 1], [4, -1]] }] }));
    const { left, right, bottom, top } = plotEdges(svg);
    const points = polylinePoints(byTag(svg, 'g', 'series')[0]!);
    const expected = [[0, 100], [1, 10], [3, 1]].map(([x, y]) => [left + (x! / 3) * (right - left), bottom - ((Math.log10(y!) - 0) / 2) * (bottom - top)]);
    expect(points).toHaveLength(3);
    points.forEach((p, i) => {
      expect(Math.abs(p[0] - expected[i]![0]!)).toBeLessThan(pxTolerance);
      expect(Math.abs(p[1] - expected[i]![1]!)).toBeLessThan(pxTolerance);
    });
    // y = 10 is half-way up on a log axis (it would be 9/99 of the way on a linear one).
    expect(points[1]![1]).toBeCloseTo((top + bottom) / 2, 2);
    const labels = byTag(byTag(svg, 'g', 'y')[0]!, 'text').map((t) => t.text).filter((t) => t !== 'y');
    expect(labels).toEqual(expect.arrayContaining(['1', '10', '100']));
  });

  it('puts a single point in the middle with a dot, and says "no data" when nothing is drawable', () => {
    const one = parseXml(lineChart({ title: 'one', xLabel: 'x', yLabel: 'y', series: [{ name: 's', points: [[7, 0.25]] }] }));
    const { left, right, bottom, top } = plotEdges(one);
    const circle = byTag(one, 'circle')[0]!;
    expect(num(circle, 'cx')).toBeCloseTo((left + right) / 2, 2);
    expect(num(circle, 'cy')).toBeCloseTo((top + bottom) / 2, 2);
    const none = parseXml(lineChart({ title: 'none', xLabel: 'x', yLabel: 'y', series: [{ name: 's', points: [[Number.NaN, Number.NaN]] }], logY: true }));
    expect(byTag(none, 'polyline')).toHaveLength(0);
    expect(byTag(none, 'text', 'empty')[0]!.text).toBe('no data');
  });

  it('escapes text: a title and a series name full of markup stay text', () => {
    const name = `<b>"x" & 'y'</b>`;
    const svg = parseXml(lineChart({ title: name, xLabel: '<x>', yLabel: '&', series: [{ name, points: [[0, 1], [1, 2]] }] }));
    expect(byTag(svg, 'title')[0]!.text).toBe(name);
    expect(byTag(svg, 'g', 'series')[0]!.attributes['data-name']).toBe(name);
    expect(findAll(svg, (e) => e.name === 'b')).toHaveLength(0);
  });
});

describe('charts of a run', () => {
  const history = runHistory(sampleRun());

  it('loss chart: total, each part and the dev loss, one point per step', () => {
    const series = byTag(parseXml(lossChart(history)), 'g', 'series');
    expect(series.map((s) => s.attributes['data-name'])).toEqual(['total', 'cross-entropy', 'KL', 'hidden-state MSE', 'dev loss']);
    expect(series.slice(0, 4).map((s) => polylinePoints(s).length)).toEqual([40, 40, 40, 40]);
    expect(polylinePoints(series[4]!)).toHaveLength(4);
  });

  it('CER chart: overall and each language, one point per evaluation that measured it', () => {
    const records = sampleRun().map((r) => (r.type === 'eval' && r.step === 30 ? { ...r, languages: { de: r.languages.de! } } : r));
    const svg = parseXml(cerChart(runHistory(records)));
    const series = byTag(svg, 'g', 'series');
    expect(series.map((s) => s.attributes['data-name'])).toEqual(['overall', ...sampleLanguages]);
    expect(series.map((s) => polylinePoints(s).length)).toEqual([4, 4, 3, 3]);
    expect(byTag(byTag(svg, 'g', 'y')[0]!, 'text').some((t) => /^\d+\.\d%$/.test(t.text))).toBe(true);
  });
});

/** Relative luminance of a "#rrggbb" colour. */
function luminance(hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
}

describe('layerMapHeatmap', () => {
  const history = runHistory(sampleRun());
  const svg = parseXml(layerMapHeatmap(history.layerMaps, { lastStep: 40 }));
  const panels = byTag(svg, 'g', 'panel');

  it('has a panel per side and a cell per map and student layer, holding the teacher layer of the data', () => {
    expect(panels.map((p) => p.attributes['data-side'])).toEqual(['encoder', 'decoder']);
    for (const panel of panels) {
      const side = panel.attributes['data-side'] as 'encoder' | 'decoder';
      const cells = byTag(panel, 'rect', 'cell');
      expect(cells).toHaveLength(sampleMaps.reduce((n, m) => n + m[side].length, 0));
      for (const cell of cells) {
        const map = sampleMaps.find((m) => m.step === num(cell, 'data-step'))!;
        expect(num(cell, 'data-teacher')).toBe(map[side][num(cell, 'data-student') - 1]);
      }
    }
  });

  it('colours follow the teacher layer: one colour per layer, the legend swatch alike, lighter for later layers', () => {
    for (const panel of panels) {
      const fills = new Map<number, Set<string>>();
      for (const cell of byTag(panel, 'rect', 'cell')) {
        const t = num(cell, 'data-teacher');
        fills.set(t, (fills.get(t) ?? new Set()).add(cell.attributes.fill!));
      }
      const colourOf = new Map([...fills].map(([t, set]) => [t, [...set]]));
      for (const [, set] of colourOf) expect(set).toHaveLength(1);
      expect(new Set([...colourOf.values()].map((s) => s[0])).size).toBe(colourOf.size);
      const swatches = byTag(panel, 'g', 'swatch');
      expect(swatches.map((s) => num(s, 'data-teacher'))).toEqual([1, 2, 3, 4, 5, 6]);
      const swatchFill = (t: number) => byTag(swatches[t - 1]!, 'rect')[0]!.attributes.fill!;
      for (const [t, [fill]] of colourOf) expect(swatchFill(t)).toBe(fill);
      const lum = [1, 2, 3, 4, 5, 6].map((t) => luminance(swatchFill(t)));
      for (let t = 1; t < 6; t++) expect(lum[t]).toBeGreaterThan(lum[t - 1]!);
    }
  });

  it('each map spans from its step to the next map (the last to the last step), layer 1 at the bottom', () => {
    const panel = panels[0]!;
    const axis = byTag(byTag(panel, 'g', 'x')[0]!, 'line')[0]!;
    const [left, right] = [num(axis, 'x1'), num(axis, 'x2')];
    const x = (step: number) => left + ((step - 1) / (40 - 1)) * (right - left);
    const bounds = [1, 15, 30, 40];
    for (const cell of byTag(panel, 'rect', 'cell')) {
      const i = bounds.indexOf(num(cell, 'data-step'));
      expect(Math.abs(num(cell, 'x') - x(bounds[i]!))).toBeLessThan(pxTolerance);
      expect(Math.abs(num(cell, 'x') + num(cell, 'width') - x(bounds[i + 1]!))).toBeLessThan(2 * pxTolerance);
    }
    const rowY = (student: number) => num(byTag(panel, 'rect', 'cell').find((c) => num(c, 'data-student') === student)!, 'y');
    expect(rowY(1)).toBeGreaterThan(rowY(2));
    expect(rowY(2)).toBeGreaterThan(rowY(3));
  });

  it('leaves out a side without a map, and says so when there is none', () => {
    const encoderOnly = parseXml(layerMapHeatmap([{ type: 'layer-map', step: 5, encoder: [2, 4], decoder: [] }]));
    expect(byTag(encoderOnly, 'g', 'panel').map((p) => p.attributes['data-side'])).toEqual(['encoder']);
    expect(byTag(encoderOnly, 'rect', 'cell')).toHaveLength(2);
    const empty = parseXml(layerMapHeatmap([]));
    expect(byTag(empty, 'rect', 'cell')).toHaveLength(0);
    expect(byTag(empty, 'text', 'empty')[0]!.text).toBe('no layer map logged');
  });
});

import { describe, expect, it } from 'vitest';
import { renderTrainingReport } from '../../src/report/html.js';
import { sampleCer, sampleLanguages, sampleMetricsText } from './sample-run.js';
import { byTag, parseXml } from './xml.js';

const report = renderTrainingReport(`${sampleMetricsText()}{"type":"eval","step":41\n`, 'run/metrics.jsonl');
const file = (name: string) => report.files.find((f) => f.name === name)!.text;
const html = file('report.html');

/** The rows of the table after the heading `heading`, as arrays of cell texts (tags stripped). */
function tableAfter(heading: string): string[][] {
  const section = html.slice(html.indexOf(`<h2>${heading}</h2>`));
  const table = section.slice(section.indexOf('<tbody>'), section.indexOf('</tbody>'));
  return [...table.matchAll(/<tr[^>]*>(.*?)<\/tr>/g)].map((m) => [...m[1]!.matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((c) => c[1]!.replace(/<[^>]+>/g, '')));
}

describe('renderTrainingReport', () => {
  it('writes the three charts and the page; every chart is well-formed SVG', () => {
    expect(report.files.map((f) => f.name)).toEqual(['loss.svg', 'cer.svg', 'layer-map.svg', 'report.html']);
    for (const name of ['loss.svg', 'cer.svg', 'layer-map.svg']) {
      const svg = parseXml(file(name));
      expect(svg.attributes.xmlns).toBe('http://www.w3.org/2000/svg');
    }
    expect(report.recordCount).toBe(sampleMetricsText().trim().split('\n').length);
  });

  it('is self-contained: no URL, no external resource, each chart inline', () => {
    expect(html).not.toMatch(/https?:|\/\/|url\(|<script|<link|<img|@import/i);
    for (const name of ['loss.svg', 'cer.svg', 'layer-map.svg']) {
      const inline = file(name).replace(' xmlns="http://www.w3.org/2000/svg"', '');
      expect(html).toContain(inline);
    }
    expect(html.match(/<svg[ >]/g)).toHaveLength(3);
  });

  it('tabulates the last evaluation per language, overall last, rates in percent', () => {
    const rows = tableAfter('Final evaluation');
    const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
    expect(rows).toEqual([
      ...sampleLanguages.map((code, k) => [code, '5', code === 'ja' ? '—' : pct(1.5 * sampleCer(40, k)), pct(sampleCer(40, k))]),
      ['overall', '15', pct(1.5 * sampleCer(40, 1)), pct(sampleCer(40, 1))],
    ]);
    expect(html).toContain('After step 40.');
  });

  it('logs the layer-map changes with the changed entries marked, and lists the checkpoints', () => {
    expect(tableAfter('Layer map')).toEqual([
      ['1', '2 4 6', '3 6'],
      ['15', '1 4 6', '3 6'],
      ['30', '1 3 6', '2 6'],
    ]);
    expect(html).toContain('<td class="map">1 <b>3</b> 6</td><td class="map"><b>2</b> 6</td>');
    expect(tableAfter('Checkpoints')).toEqual([
      ['10', 'interval', 'run/checkpoints/step-10'],
      ['20', 'interval', 'run/checkpoints/step-20'],
      ['30', 'interval', 'run/checkpoints/step-30'],
      ['40', 'final', 'run/checkpoints/step-40'],
      ['40', 'best', 'run/checkpoints/best'],
    ]);
  });

  it('shows the run header escaped, the resume, and the unreadable line by number', () => {
    expect(html).toContain('<code>dqw distill --teacher &lt;t&gt; --student &quot;s&quot; &amp; more</code>');
    expect(html).toContain('40 of 40');
    expect(html).toContain('1m 20s');
    expect(html).toContain('at step 20 from <code>run/checkpoints/step-20</code>');
    const lines = sampleMetricsText().trim().split('\n').length;
    expect(report.skipped.map((s) => s.line)).toEqual([lines + 1]);
    expect(html).toContain(`<code>run/metrics.jsonl:${lines + 1}</code>`);
  });

  it('still renders a page for a run with nothing logged but its start', () => {
    const empty = renderTrainingReport(JSON.stringify({ type: 'run', startedAt: 't', command: 'c', student: 's', options: {} }));
    const page = empty.files.find((f) => f.name === 'report.html')!.text;
    expect(page).toContain('No evaluation logged.');
    expect(page).toContain('No checkpoint logged.');
    for (const f of empty.files.filter((f) => f.name.endsWith('.svg'))) expect(byTag(parseXml(f.text), 'text', 'empty')).toHaveLength(1);
  });
});

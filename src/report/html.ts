// The training report: the charts as SVG files and one self-contained HTML page (inline SVG and
// CSS, nothing fetched), from the text of a run's metrics.jsonl. Pure: strings in, strings out.
import type { SkippedRow } from '../data/examples.js';
import { parseMetricsJsonl, runHistory, type ErrorRates, type LayerMapRecord, type RunHistory } from './metrics.js';
import { formatDuration } from './progress.js';
import { cerChart, escapeXml, layerMapChart, lossChart } from './svg.js';

/** The charts of a run as SVG documents. */
export interface ReportCharts {
  readonly loss: string;
  readonly cer: string;
  readonly layerMap: string;
}

/** The files of a training report: name (as written in the output folder) and text. */
export interface TrainingReport {
  readonly files: readonly { readonly name: 'loss.svg' | 'cer.svg' | 'layer-map.svg' | 'report.html'; readonly text: string }[];
  /** How many records metrics.jsonl held. */
  readonly recordCount: number;
  /** Lines of metrics.jsonl that were not records (also listed in the page). */
  readonly skipped: SkippedRow[];
}

const css = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 24px auto; max-width: 900px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0; } th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; } tr.overall td { font-weight: 600; border-top: 1px solid #999; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; background: #f4f4f4; padding: 1px 4px; border-radius: 3px; word-break: break-all; }
figure { margin: 16px 0; } svg { max-width: 100%; height: auto; } .warning { color: #a40; } .muted { color: #777; }
td.map b { color: #c40; }
`;

/** A rate as a percentage with two decimals; a dash where none was measured. */
const percent = (rate: number | null) => (rate === null ? '—' : `${(rate * 100).toFixed(2)}%`);

/** An SVG document as an element inside HTML, where the HTML parser supplies the namespace. */
function inlineSvg(svg: string): string {
  return svg.replace(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/, '<svg');
}

function runHeader(history: RunHistory): string {
  const run = history.run;
  const last = history.train.at(-1);
  const rows: [string, string][] = [];
  if (run) {
    rows.push(['started', escapeXml(run.startedAt)], ['command', `<code>${escapeXml(run.command)}</code>`]);
    if (run.teacher !== undefined) rows.push(['teacher', `<code>${escapeXml(run.teacher)}</code>`]);
    rows.push(['student', `<code>${escapeXml(run.student)}</code>`]);
  }
  const totalSteps = run?.options.steps;
  rows.push(['steps trained', last ? `${last.step}${typeof totalSteps === 'number' ? ` of ${totalSteps}` : ''} (epoch ${last.epoch.toFixed(2)})` : 'none']);
  rows.push(['training time', formatDuration(history.trainingSeconds)]);
  if (last) rows.push(['last step', `lr ${last.lr.toExponential(3)}, ${last.samplesPerSecond.toFixed(1)} samples/s, ${last.tokensPerSecond.toFixed(0)} tokens/s${last.quantized ? ', fake-quant' : ''}`]);
  for (const r of history.resumes) rows.push(['resumed', `at step ${r.step} from <code>${escapeXml(r.from)}</code>`]);
  const table = rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join('');
  const options = run
    ? `<details><summary>options</summary><table>${Object.entries(run.options)
        .map(([k, v]) => `<tr><th>${escapeXml(k)}</th><td><code>${escapeXml(typeof v === 'string' ? v : JSON.stringify(v) ?? String(v))}</code></td></tr>`)
        .join('')}</table></details>`
    : '<p class="warning">No "run" record: the file does not hold the start of the run.</p>';
  return `<table>${table}</table>${options}`;
}

function evalTable(history: RunHistory): string {
  const last = history.evals.at(-1);
  if (!last) return '<p class="muted">No evaluation logged.</p>';
  const row = (name: string, r: ErrorRates, cls = '') =>
    `<tr${cls}><td>${escapeXml(name)}</td><td class="num">${r.utterances}</td><td class="num">${percent(r.wer)}</td><td class="num">${percent(r.cer)}</td></tr>`;
  const languages = Object.entries(last.languages).sort(([a], [b]) => a.localeCompare(b));
  const loss = last.loss ? ` Dev loss ${last.loss.total.toPrecision(4)}.` : '';
  return (
    `<p>After step ${last.step}.${loss}</p><table><thead><tr><th>language</th><th class="num">utterances</th><th class="num">WER</th><th class="num">CER</th></tr></thead><tbody>` +
    languages.map(([code, r]) => row(code, r)).join('') +
    row('overall', last.overall, ' class="overall"') +
    '</tbody></table>'
  );
}

/** A map as "3 6 9 12", the entries that differ from `previous` in bold. */
function mapCells(map: readonly number[], previous: readonly number[] | undefined): string {
  if (map.length === 0) return '—';
  return map.map((t, i) => (previous !== undefined && previous.length === map.length && previous[i] !== t ? `<b>${t}</b>` : String(t))).join(' ');
}

function layerMapLog(maps: readonly LayerMapRecord[]): string {
  if (maps.length === 0) return '<p class="muted">No layer map logged.</p>';
  const rows = maps.map((m, i) => `<tr><td class="num">${m.step}</td><td class="map">${mapCells(m.encoder, maps[i - 1]?.encoder)}</td><td class="map">${mapCells(m.decoder, maps[i - 1]?.decoder)}</td></tr>`);
  return `<p class="muted">Teacher layer (1-based) for student layers 1, 2, …; changes in bold.</p><table><thead><tr><th class="num">step</th><th>encoder</th><th>decoder</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function checkpointList(history: RunHistory): string {
  if (history.checkpoints.length === 0) return '<p class="muted">No checkpoint logged.</p>';
  const rows = history.checkpoints.map((c) => `<tr><td class="num">${c.step}</td><td>${c.reason}</td><td><code>${escapeXml(c.path)}</code></td></tr>`);
  return `<table><thead><tr><th class="num">step</th><th>reason</th><th>folder</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function skippedList(skipped: readonly SkippedRow[]): string {
  if (skipped.length === 0) return '';
  const items = skipped.map((s) => `<li><code>${escapeXml(s.source)}:${s.line}</code> ${escapeXml(s.reason)}</li>`);
  return `<h2>Unreadable lines</h2><ul class="warning">${items.join('')}</ul>`;
}

/**
 * The report page of a run: header (how it was started, steps, time, resumes, options), the three
 * charts inline, the last evaluation per language, the layer-map change log, the checkpoints and
 * any unreadable lines of the metrics file. Self-contained: no URL is referenced.
 */
export function trainingReportHtml(history: RunHistory, charts: ReportCharts, skipped: readonly SkippedRow[] = []): string {
  const name = history.run?.student ?? 'training run';
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>Training report: ${escapeXml(name)}</title><style>${css}</style></head><body>`,
    `<h1>Training report</h1>${runHeader(history)}`,
    `<h2>Loss</h2><figure id="loss">${inlineSvg(charts.loss)}</figure>`,
    `<h2>Dev CER</h2><figure id="cer">${inlineSvg(charts.cer)}</figure>`,
    `<h2>Final evaluation</h2>${evalTable(history)}`,
    `<h2>Layer map</h2><figure id="layer-map">${inlineSvg(charts.layerMap)}</figure>${layerMapLog(history.layerMaps)}`,
    `<h2>Checkpoints</h2>${checkpointList(history)}`,
    skippedList(skipped),
    '</body></html>\n',
  ].join('\n');
}

/** The report files of the metrics.jsonl text `metricsText` (named `source` in messages). */
export function renderTrainingReport(metricsText: string, source = 'metrics.jsonl'): TrainingReport {
  const { records, skipped } = parseMetricsJsonl(metricsText, source);
  const history = runHistory(records);
  const charts: ReportCharts = { loss: lossChart(history), cer: cerChart(history), layerMap: layerMapChart(history) };
  return {
    files: [
      { name: 'loss.svg', text: charts.loss },
      { name: 'cer.svg', text: charts.cer },
      { name: 'layer-map.svg', text: charts.layerMap },
      { name: 'report.html', text: trainingReportHtml(history, charts, skipped) },
    ],
    recordCount: records.length,
    skipped,
  };
}

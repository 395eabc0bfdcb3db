// The experiment's report: results.json (everything), results.md (the paper's table, per-language
// CER, the targets met or missed, commands and wall times, sample transcripts), cer.svg,
// training-loss.svg and a self-contained report.html. The text is built by pure functions; only
// writeExperimentReport touches files.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { textFile } from '../io/byte-source.js';
import { writeFileAtomic } from '../io/node-files.js';
import type { WhisperConfig } from '../model/config.js';
import type { SizeRow } from '../quant/size.js';
import { parseMetricsJsonl, runHistory } from '../report/metrics.js';
import { formatDuration } from '../report/progress.js';
import { barChart, escapeXml, layerMapChart, lineChart, type ChartSeries } from '../report/svg.js';
import type { CommandIo } from '../cli/checkpoint.js';
import type { ExperimentPreset, VariantId } from './presets.js';

/** One scored model. */
export interface ModelResult {
  readonly id: VariantId | 'teacher';
  readonly title: string;
  /** The checkpoint scored. */
  readonly path: string;
  /** Its training run folder (metrics.jsonl), when the experiment trained it. */
  readonly run?: string;
  /** How it ran: f32, or the int8 kernels. */
  readonly quantization: string;
  readonly size: SizeRow;
  readonly evaluation: {
    readonly adapter: string;
    readonly overall: { readonly cer: number | null; readonly wer: number | null; readonly utterances: number; readonly realTimeFactor: number | null };
    /** Teacher-forced cross-entropy of the reference transcripts, nats per token (Evaluator.referenceLoss). */
    readonly referenceLoss: { readonly overall: { readonly loss: number; readonly tokens: number }; readonly languages: readonly { readonly language: string; readonly loss: number; readonly tokens: number }[] };
    readonly languages: readonly { readonly language: string; readonly cer: number; readonly wer: number | null; readonly utterances: number }[];
    readonly utterances: readonly { readonly audio: string; readonly language: string; readonly reference: string; readonly hypothesis: string }[];
    readonly skipped: readonly string[];
  };
}

/** Everything the report shows (also written as results.json). */
export interface ExperimentResults {
  readonly preset: ExperimentPreset;
  readonly command: string;
  readonly startedAt: string;
  readonly adapter: string;
  readonly teacherConfig: WhisperConfig;
  readonly studentConfig: WhisperConfig;
  readonly data: { readonly dir: string; readonly windowSeconds: number; readonly clips: { train: number; dev: number; test: number }; readonly longerLeftOut: number };
  /** Each stage's command and wall seconds, over every invocation that built this folder. */
  readonly stages: Readonly<Record<string, { readonly command: string; readonly seconds: number }>>;
  /** Sum of the stages' wall times. */
  readonly wallSeconds: number;
  /** Wall time of the invocation that wrote this report. */
  readonly thisRunSeconds: number;
  readonly models: readonly ModelResult[];
}

/** A target of issue 5 and whether this run met it. */
export interface TargetCheck {
  readonly target: string;
  /**
   * null: not judged — the run lacks the models, or (for the comparisons by CER) a model compared
   * does not transcribe (CER ≥ 100%: its transcripts are not text of the language, so CER
   * differences compare nothing).
   */
  readonly met: boolean | null;
  /** For the comparisons: whether the same ordering holds by test cross-entropy (undefined where the models are missing). */
  readonly byCrossEntropy?: boolean;
  readonly measured: string;
}

/** How a check reads in the tables: yes, **no**, or why it is not judged. */
export function verdict(t: TargetCheck): string {
  const ce = t.byCrossEntropy === undefined ? '' : `; by test CE: ${t.byCrossEntropy ? 'yes' : 'no'}`;
  if (t.met === null) return `not judged by CER${t.byCrossEntropy === undefined ? ' (not run)' : ' (a model compared does not transcribe)'}${ce}`;
  return `${t.met ? 'yes' : '**no**'}${ce}`;
}

const pct = (rate: number | null | undefined) => (rate === null || rate === undefined ? '—' : `${(rate * 100).toFixed(1)}%`);

/** The targets of the study, checked against the scores. */
export function targetChecks(r: ExperimentResults): TargetCheck[] {
  const cer = (id: string) => r.models.find((m) => m.id === id)?.evaluation.overall.cer ?? null;
  const known = (...v: (number | null)[]) => v.every((x) => x !== null);
  /** Each compared model transcribes (CER below 100%): only then do CER differences mean anything. */
  const transcribing = (...v: (number | null)[]) => v.every((x) => x !== null && x < 1);
  const [teacher, scratch, fixed, dynamic, ptq, dq] = ['teacher', 'scratch', 'kd-fixed', 'kd-dynamic', 'kd-dynamic-ptq', 'dq-int8'].map(cer) as [number | null, number | null, number | null, number | null, number | null, number | null];
  const ce = (id: string) => r.models.find((m) => m.id === id)?.evaluation.referenceLoss.overall.loss;
  const ceOf = (...ids: string[]) => ids.map((id) => ce(id)?.toFixed(3) ?? '—').join(' / ');
  const [ceScratch, ceFixed, ceDynamic, cePtq, ceDq] = ['scratch', 'kd-fixed', 'kd-dynamic', 'kd-dynamic-ptq', 'dq-int8'].map(ce);
  const dqModel = r.models.find((m) => m.id === 'dq-int8');
  return [
    { target: 'teacher CER ≤ 10% on the test split', met: teacher === null ? null : teacher <= 0.1, measured: pct(teacher) },
    {
      target: 'dynamic matching better than fixed-map KD better than from scratch',
      met: transcribing(scratch, fixed, dynamic) ? dynamic! < fixed! && fixed! < scratch! : null,
      byCrossEntropy: known(scratch, fixed, dynamic) ? ceDynamic! < ceFixed! && ceFixed! < ceScratch! : undefined,
      measured: `CER ${pct(dynamic)} / ${pct(fixed)} / ${pct(scratch)}; test CE ${ceOf('kd-dynamic', 'kd-fixed', 'scratch')}`,
    },
    {
      target: 'QAD int8 within 1 CER point of the float student, post-training int8 losing more',
      met: transcribing(dynamic, ptq, dq) ? dq! - dynamic! <= 0.01 && ptq! - dynamic! > dq! - dynamic! : null,
      // By CE: QAD's increase over the float student smaller than post-training quantization's.
      byCrossEntropy: known(dynamic, ptq, dq) ? ceDq! - ceDynamic! < cePtq! - ceDynamic! : undefined,
      measured: `CER float ${pct(dynamic)}, QAD ${pct(dq)}, post-training ${pct(ptq)}; test CE ${ceOf('kd-dynamic', 'dq-int8', 'kd-dynamic-ptq')}`,
    },
    {
      target: 'teacher float32 bytes / int8 student bytes ≥ 5.18',
      met: dqModel ? dqModel.size.compression >= 5.18 : null,
      measured: dqModel ? `${dqModel.size.compression.toFixed(2)}x` : '—',
    },
  ];
}

/** The configs as one line each. */
const shapeOf = (c: WhisperConfig) =>
  `${c.encoder_layers}+${c.decoder_layers} layers, d_model ${c.d_model}, ${c.encoder_attention_heads} heads, FFN ${c.encoder_ffn_dim}, ${c.max_source_positions / 50} s audio window (${c.max_source_positions} positions), ${c.max_target_positions} text positions, vocabulary ${c.vocab_size}`;

/** The languages scored, in the order of the first model's table. */
const languagesOf = (r: ExperimentResults) => [...new Set(r.models.flatMap((m) => m.evaluation.languages.map((l) => l.language)))];

/** The main table's header and one row of cells per model: size, test CE, CER overall and per language, RTF. */
function resultsRows(r: ExperimentResults): { head: string[]; rows: string[][] } {
  const languages = languagesOf(r);
  const head = ['model', 'runs as', 'parameters', 'MB', '× smaller', 'test CE', 'CER', ...languages.map((l) => `CER ${l}`), 'RTF'];
  const rows = r.models.map((m) => {
    const byLanguage = new Map(m.evaluation.languages.map((l) => [l.language, l.cer]));
    const runsAs = m.quantization === 'f32' ? 'f32' : m.quantization.replace(/^int8 \((.*), 8-bit activations per token.*$/, 'int8 kernels: $1');
    return [
      `${m.id}: ${m.title}`, runsAs, `${(m.size.parameters / 1e6).toFixed(2)} M`, (m.size.bytes / 1e6).toFixed(2), m.size.compression.toFixed(2),
      m.evaluation.referenceLoss.overall.loss.toFixed(3), pct(m.evaluation.overall.cer), ...languages.map((l) => pct(byLanguage.get(l))), m.evaluation.overall.realTimeFactor?.toFixed(3) ?? '—',
    ];
  });
  return { head, rows };
}

/** The main table as Markdown. */
export function resultsTable(r: ExperimentResults): string {
  const { head, rows } = resultsRows(r);
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`, ...rows.map((cells) => `| ${cells.join(' | ')} |`)];
  return `${lines.join('\n')}\n`;
}

/** The transcripts the report shows: the first `preset.samples` test clips of dq-int8 (else of the last model); null for none. */
function shownTranscripts(r: ExperimentResults): { model: ModelResult; utterances: ModelResult['evaluation']['utterances'] } | null {
  const model = r.models.find((m) => m.id === 'dq-int8') ?? r.models.at(-1);
  return model && r.preset.samples > 0 ? { model, utterances: model.evaluation.utterances.slice(0, r.preset.samples) } : null;
}

/** results.md. */
export function resultsMarkdown(r: ExperimentResults): string {
  const out: string[] = [];
  out.push(`# DQ-Whisper experiment: preset \`${r.preset.name}\``, '');
  out.push(`${r.preset.description}.`, '');
  out.push(`- command: \`${r.command}\``);
  out.push(`- adapter: ${r.adapter}`);
  out.push(`- started ${r.startedAt}; wall time of all stages ${formatDuration(r.wallSeconds)}`);
  out.push(`- corpus: ${r.preset.data.languages.join(', ')} (\`${r.data.dir}\`); clips within the ${r.data.windowSeconds} s window: train ${r.data.clips.train}, dev ${r.data.clips.dev}, test ${r.data.clips.test} scored (${r.data.longerLeftOut} longer clips left out)`);
  out.push(`- teacher: ${shapeOf(r.teacherConfig)}`);
  out.push(`- students: ${shapeOf(r.studentConfig)}; ${r.preset.students.steps} steps each, batch ${r.preset.students.batch}, peak lr ${r.preset.students.lr}`);
  out.push('', '## Results on the held-out test split', '', resultsTable(r));
  out.push('Test CE: teacher-forced cross-entropy of the reference transcripts (nats per text token, as the training loss measures it), which ranks models that do not yet transcribe. CER over non-space characters after Whisper\'s text normalizers; RTF = decoding seconds / audio seconds on the adapter above (greedy, after one warm-up clip). Sizes are the tensor bytes of the checkpoint (int8/int4 weights with one f32 scale per output channel); "× smaller" is against the teacher stored as float32.', '');
  out.push('## Targets', '', '| target | met | measured |', '|---|---|---|');
  for (const t of targetChecks(r)) out.push(`| ${t.target} | ${verdict(t)} | ${t.measured} |`);
  out.push('', '## Plots', '', '![CER per language](cer.svg)', '', '![test cross-entropy per language](test-ce.svg)', '', '![training cross-entropy](training-loss.svg)', '');
  if (r.models.some((m) => m.id === 'kd-dynamic')) out.push('![layer map of the kd-dynamic student](layer-map.svg)', '');
  const shown = shownTranscripts(r);
  if (shown) {
    out.push(`## Transcripts of ${shown.model.id} (first ${r.preset.samples} test clips)`, '', '| language | reference | transcript |', '|---|---|---|');
    const cell = (t: string) => t.replace(/\|/g, '\\|').replace(/\n/g, ' ');
    for (const s of shown.utterances) out.push(`| ${s.language} | ${cell(s.reference)} | ${cell(s.hypothesis)} |`);
    out.push('');
  }
  out.push('## Stages', '', '| stage | wall time | command |', '|---|---:|---|');
  for (const [id, s] of Object.entries(r.stages)) out.push(`| ${id} | ${formatDuration(s.seconds)} | \`${s.command}\` |`);
  out.push('');
  return out.join('\n');
}

/** CER (or the test cross-entropy) per language and overall of every model, as grouped bars. */
export function scoreBarChart(r: ExperimentResults, score: 'cer' | 'ce'): string {
  const groups = ['overall', ...languagesOf(r)];
  const value = (m: ModelResult, group: string): number | null => {
    if (score === 'ce') {
      const loss = m.evaluation.referenceLoss;
      return group === 'overall' ? loss.overall.loss : loss.languages.find((l) => l.language === group)?.loss ?? null;
    }
    return group === 'overall' ? m.evaluation.overall.cer : m.evaluation.languages.find((l) => l.language === group)?.cer ?? null;
  };
  return barChart({
    title: score === 'cer' ? 'Test CER per language' : 'Test cross-entropy of the reference transcripts per language',
    yLabel: score === 'cer' ? 'CER' : 'nats per token',
    yFormat: score === 'cer' ? '.0%' : '.2f',
    groups,
    width: 860,
    series: r.models.map((m) => ({ name: m.id, values: groups.map((g) => value(m, g)) })),
  });
}

/**
 * The cross-entropy on the labels per step of every run the experiment trained: the one part of
 * the loss every objective has (the totals weigh in KL and hidden-state terms, so they do not compare).
 */
export function trainingLossChart(runs: readonly { name: string; metricsText: string }[]): string {
  const series: ChartSeries[] = runs.map(({ name, metricsText }) => ({
    name,
    points: runHistory(parseMetricsJsonl(metricsText).records).train.flatMap((t) => (t.loss.ce === undefined ? [] : [[t.step, t.loss.ce] as const])),
  }));
  return lineChart({ title: 'Training cross-entropy on the labels', xLabel: 'step', yLabel: 'nats per token', series, width: 860 });
}

/** report.html: the Markdown's content as a self-contained page with the charts inline. */
export function resultsHtml(r: ExperimentResults, charts: readonly string[]): string {
  const { head, rows } = resultsRows(r);
  const table = `<table><tr>${head.map((c) => `<th>${escapeXml(c)}</th>`).join('')}</tr>${rows.map((cells) => `<tr>${cells.map((c) => `<td>${escapeXml(c)}</td>`).join('')}</tr>`).join('')}</table>`;
  const checks = targetChecks(r).map((t) => `<tr><td>${escapeXml(t.target)}</td><td>${escapeXml(verdict(t)).replace(/\*\*no\*\*/, '<b>no</b>')}</td><td>${escapeXml(t.measured)}</td></tr>`).join('');
  const shown = shownTranscripts(r);
  const samples = shown ? shown.utterances.map((s) => `<tr><td>${escapeXml(s.language)}</td><td>${escapeXml(s.reference)}</td><td>${escapeXml(s.hypothesis)}</td></tr>`).join('') : '';
  const stages = Object.entries(r.stages).map(([id, s]) => `<tr><td>${escapeXml(id)}</td><td>${formatDuration(s.seconds)}</td><td><code>${escapeXml(s.command)}</code></td></tr>`).join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>DQ-Whisper experiment ${escapeXml(r.preset.name)}</title>
<style>body{font:14px/1.45 system-ui,sans-serif;color:#222;margin:24px auto;max-width:1000px;padding:0 16px}table{border-collapse:collapse;margin:8px 0;font-size:12px}.wide{overflow-x:auto}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}code{font:12px ui-monospace,monospace;background:#f4f4f4;word-break:break-all}svg{max-width:100%;height:auto}</style></head><body>
<h1>DQ-Whisper experiment: preset ${escapeXml(r.preset.name)}</h1>
<p>${escapeXml(r.preset.description)}. Adapter: ${escapeXml(r.adapter)}. Wall time of all stages: ${formatDuration(r.wallSeconds)}.</p>
<p>Teacher: ${escapeXml(shapeOf(r.teacherConfig))}<br>Students: ${escapeXml(shapeOf(r.studentConfig))}</p>
<h2>Results on the held-out test split</h2><div class="wide">${table}</div>
<h2>Targets</h2><table><tr><th>target</th><th>met</th><th>measured</th></tr>${checks}</table>
<h2>Plots</h2>${charts.map((c) => `<figure>${c.replace(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/, '<svg')}</figure>`).join('')}
${samples ? `<h2>Transcripts of ${escapeXml(shown!.model.id)}</h2><table><tr><th>language</th><th>reference</th><th>transcript</th></tr>${samples}</table>` : ''}
<h2>Stages</h2><table><tr><th>stage</th><th>wall time</th><th>command</th></tr>${stages}</table>
</body></html>
`;
}

/**
 * Writes results.json, results.md, the charts and report.html into `out`, and prints the table,
 * the targets and the sample transcripts on stdout.
 */
export async function writeExperimentReport(out: string, r: ExperimentResults, io: CommandIo): Promise<void> {
  const runs: { name: string; metricsText: string }[] = [];
  for (const m of r.models) if (m.run) runs.push({ name: m.id, metricsText: await readFile(join(m.run, 'metrics.jsonl'), 'utf8') });
  const charts: [string, string][] = [['cer.svg', scoreBarChart(r, 'cer')], ['test-ce.svg', scoreBarChart(r, 'ce')], ['training-loss.svg', trainingLossChart(runs)]];
  const dynamic = runs.find((x) => x.name === 'kd-dynamic');
  if (dynamic) charts.push(['layer-map.svg', layerMapChart(runHistory(parseMetricsJsonl(dynamic.metricsText).records))]);
  const markdown = resultsMarkdown(r);
  const files: [string, string][] = [...charts, ['results.md', markdown], ['results.json', `${JSON.stringify(r, null, 2)}\n`], ['report.html', resultsHtml(r, charts.map(([, svg]) => svg))]];
  for (const [name, text] of files) await writeFileAtomic(join(out, name), textFile(name, text));
  io.stdout.write(`\n${resultsTable(r)}\n`);
  for (const t of targetChecks(r)) io.stdout.write(`${t.target}: ${verdict(t).replace(/\*\*/g, '')} (${t.measured})\n`);
  const shown = shownTranscripts(r);
  if (shown) {
    io.stdout.write(`\nheld-out clips, ${shown.model.id} (${shown.model.quantization}):\n`);
    for (const s of shown.utterances) io.stdout.write(`  [${s.language}] reference:  ${s.reference}\n       transcript: ${s.hypothesis}\n`);
  }
  io.stdout.write(`\nreport: ${join(out, 'report.html')}, ${join(out, 'results.md')}; wall time of all stages ${formatDuration(r.wallSeconds)}\n`);
}

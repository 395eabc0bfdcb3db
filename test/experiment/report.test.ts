// The experiment report's judgements and charts on made-up scores: which targets are met, the
// table's rows, and the bars drawn.
import { describe, expect, it } from 'vitest';
import { experimentPresets, parseExperimentPreset } from '../../src/experiment/presets.js';
import { resultsTable, scoreBarChart, targetChecks, verdict, type ExperimentResults, type ModelResult } from '../../src/experiment/report.js';
import { presetConfig } from '../../src/model/config.js';

const model = (id: ModelResult['id'], cer: number, compression = 1): ModelResult => ({
  id, title: id, path: `/m/${id}`, quantization: 'f32',
  size: { label: id, parameters: 1e6, bytes: 4e6 / compression, compression },
  evaluation: {
    adapter: 'test', overall: { cer, wer: null, utterances: 2, realTimeFactor: 0.5 },
    referenceLoss: { overall: { loss: 10 * cer, tokens: 30 }, languages: [{ language: 'en', loss: 10 * cer, tokens: 20 }, { language: 'de', loss: 5 * cer, tokens: 10 }] },
    languages: [{ language: 'en', cer, wer: null, utterances: 1 }, { language: 'de', cer: cer / 2, wer: null, utterances: 1 }],
    utterances: [], skipped: [],
  },
});

const results = (models: ModelResult[]): ExperimentResults => ({
  preset: experimentPresets.cpu!, command: 'dqw experiment dq', startedAt: '2026-12-07T00:00:00Z', adapter: 'test',
  teacherConfig: presetConfig('tiny'), studentConfig: presetConfig('tiny'),
  data: { dir: '/d', windowSeconds: 6, clips: { train: 1, dev: 1, test: 1 }, longerLeftOut: 0 },
  stages: {}, wallSeconds: 1, thisRunSeconds: 1, models,
});

describe('experiment targets', () => {
  it('are met when the ordering, the QAD gap and the ratio hold', () => {
    const r = results([model('teacher', 0.08), model('scratch', 0.5), model('kd-fixed', 0.3), model('kd-dynamic', 0.2), model('kd-dynamic-ptq', 0.26, 5.5), model('dq-int8', 0.205, 5.5)]);
    expect(targetChecks(r).map((t) => t.met)).toEqual([true, true, true, true]);
  });

  it('are missed one by one, and unknown where a model was not run', () => {
    const r = results([model('teacher', 0.11), model('scratch', 0.5), model('kd-fixed', 0.2), model('kd-dynamic', 0.3), model('kd-dynamic-ptq', 0.31, 5), model('dq-int8', 0.32, 5)]);
    expect(targetChecks(r).map((t) => t.met)).toEqual([false, false, false, false]);
    expect(targetChecks(r).map((t) => t.byCrossEntropy)).toEqual([undefined, false, false, undefined]);
    const partial = results([model('teacher', 0.05), model('kd-dynamic', 0.3)]);
    expect(targetChecks(partial).map((t) => t.met)).toEqual([true, null, null, null]);
    expect(targetChecks(partial).map(verdict)).toEqual(['yes', 'not judged by CER (not run)', 'not judged by CER (not run)', 'not judged by CER (not run)']);
  });

  it('comparisons by CER are not judged when a compared model does not transcribe (CER ≥ 100%), only by cross-entropy', () => {
    // QAD "beats" the float student at 99% against 129% CER: garbage against garbage.
    const r = results([model('teacher', 1), model('scratch', 1), model('kd-fixed', 1.56), model('kd-dynamic', 1.29), model('kd-dynamic-ptq', 1.61, 7.3), model('dq-int8', 0.99, 7.3)]);
    const checks = targetChecks(r);
    expect(checks.map((t) => t.met)).toEqual([false, null, null, true]);
    expect(verdict(checks[2]!)).toBe('not judged by CER (a model compared does not transcribe); by test CE: yes');
  });

  it('table: one row per model with CER per language; chart: one bar per model and group', () => {
    const r = results([model('teacher', 0.1), model('dq-int8', 0.4, 5.2)]);
    const table = resultsTable(r).trim().split('\n');
    expect(table[0]).toBe('| model | runs as | parameters | MB | × smaller | test CE | CER | CER en | CER de | RTF |');
    expect(table[3]).toBe('| dq-int8: dq-int8 | f32 | 1.00 M | 0.77 | 5.20 | 4.000 | 40.0% | 40.0% | 20.0% | 0.500 |');
    const svg = scoreBarChart(r, 'cer');
    expect(svg.match(/<rect class="bar"/g)).toHaveLength(6);
    expect(svg).toContain('data-group="de" data-value="0.2"');
    expect(scoreBarChart(r, 'ce')).toContain('data-group="de" data-value="2"');
  });
});

describe('experiment presets from JSON', () => {
  it('round-trip the built-in ones and name the first bad field', () => {
    expect(parseExperimentPreset(JSON.parse(JSON.stringify(experimentPresets.cpu)), 'cpu.json')).toEqual(experimentPresets.cpu);
    const bad = { ...experimentPresets.cpu, students: { ...experimentPresets.cpu!.students, steps: 0 } };
    expect(() => parseExperimentPreset(bad, 'x.json')).toThrow('x.json: students.steps must be an integer >= 1');
  });
});

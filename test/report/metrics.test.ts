import { describe, expect, it } from 'vitest';
import { parseMetricsJsonl, runHistory } from '../../src/report/metrics.js';
import { sampleLoss, sampleMaps, sampleMetricsText, sampleRun } from './sample-run.js';

describe('parseMetricsJsonl', () => {
  it('reads every record of a run back as written', () => {
    const { records, skipped } = parseMetricsJsonl(sampleMetricsText());
    expect(skipped).toEqual([]);
    expect(records).toEqual(JSON.parse(JSON.stringify(sampleRun())));
  });

  it('skips bad lines and names each by its 1-based line number and field', () => {
    const good = JSON.stringify({ type: 'resume', step: 3, from: 'ck' });
    const text = [
      good,
      '',
      '{"type":"train","step":5', // cut short by a crash
      '[1, 2]',
      JSON.stringify({ type: 'train', step: 4, epoch: 0, time: 1, lr: 1e-3, loss: { total: 'x' }, samplesPerSecond: 1, tokensPerSecond: 1 }),
      JSON.stringify({ type: 'eval', step: 4, overall: { wer: 0.1, cer: 0.1, utterances: 2 }, languages: { de: { wer: 0.1, cer: '5%', utterances: 1 } } }),
      JSON.stringify({ type: 'checkpoint', step: 4, path: 'p', reason: 'whim' }),
      JSON.stringify({ type: 'layer-map', step: -1, encoder: [1], decoder: [] }),
      JSON.stringify({ type: 'layer-map', step: 2, encoder: [0, 1], decoder: [] }),
      JSON.stringify({ type: 'telemetry', step: 1 }),
      JSON.stringify({ step: 1 }),
      good,
    ].join('\n');
    const { records, skipped } = parseMetricsJsonl(text, 'run/metrics.jsonl');
    expect(records).toEqual([{ type: 'resume', step: 3, from: 'ck' }, { type: 'resume', step: 3, from: 'ck' }]);
    expect(skipped.map((s) => s.line)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(skipped.every((s) => s.source === 'run/metrics.jsonl')).toBe(true);
    const reasons = skipped.map((s) => s.reason);
    expect(reasons[0]).toMatch(/^not JSON/);
    expect(reasons[1]).toMatch(/not a JSON object/);
    expect(reasons[2]).toBe('"train" record: field "loss.total" must be a number, got "x"');
    expect(reasons[3]).toBe('"eval" record: field "languages.de.cer" must be a number or null, got "5%"');
    expect(reasons[4]).toBe('"checkpoint" record: field "reason" must be "interval", "best", "interrupt" or "final", got "whim"');
    expect(reasons[5]).toMatch(/field "step" must be a non-negative integer, got -1/);
    expect(reasons[6]).toMatch(/field "encoder" must be an array of 1-based teacher layers, got \[0,1\]/);
    expect(reasons[7]).toBe('unknown record type "telemetry"');
    expect(reasons[8]).toBe('no "type" field');
  });

  it('accepts null rates and leaves optional fields out', () => {
    const line = JSON.stringify({ type: 'eval', step: 2, loss: null, overall: { wer: null, cer: 0.5, utterances: 3 }, languages: {} });
    const { records } = parseMetricsJsonl(line);
    expect(records).toEqual([{ type: 'eval', step: 2, loss: undefined, overall: { wer: null, cer: 0.5, utterances: 3 }, languages: {} }]);
  });
});

describe('runHistory', () => {
  const history = runHistory(sampleRun());

  it('applies a resume: steps after it from the abandoned session are gone, the later records win', () => {
    expect(history.train.map((r) => r.step)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    // Steps 21..25 were logged twice (loss 100 + s first); the resumed session's values are kept.
    for (const r of history.train) expect(r.loss.total).toBe(sampleLoss(r.step));
    expect(history.layerMaps.map((m) => m.step)).toEqual(sampleMaps.map((m) => m.step));
    expect(history.evals.map((r) => r.step)).toEqual([10, 20, 30, 40]);
    expect(history.resumes).toEqual([{ type: 'resume', step: 20, from: 'run/checkpoints/step-20' }]);
  });

  it('keeps two checkpoints of one step in different folders, in step order', () => {
    expect(history.checkpoints.map((c) => `${c.step} ${c.reason}`)).toEqual(['10 interval', '20 interval', '30 interval', '40 final', '40 best']);
  });

  it('adds up the sessions: 20 steps at 2 s, then 20 more at 2 s after the resume', () => {
    expect(history.trainingSeconds).toBe(80);
    expect(history.run?.student).toBe('tiny-student');
  });

  it('without a resume record, a repeated step still takes the later record', () => {
    const r = (step: number, total: number) => ({ type: 'train' as const, step, epoch: 0, time: step, lr: 1, loss: { total }, samplesPerSecond: 1, tokensPerSecond: 1 });
    const h = runHistory([r(1, 5), r(2, 4), r(1, 3)]);
    expect(h.train.map((t) => [t.step, t.loss.total])).toEqual([[1, 3], [2, 4]]);
  });
});

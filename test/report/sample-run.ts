// A small synthetic training run as metrics.jsonl records, for the report tests: 40 steps,
// evaluations every 10 (de, en, ja; ja without WER), three layer maps, checkpoints, and a resume
// from step 20 after the first session had reached step 25.
import type { MetricsRecord } from '../../src/report/metrics.js';

export const sampleLanguages = ['de', 'en', 'ja'] as const;

/** Training loss of step s in the session that is kept (the abandoned one logs 100 + s). */
export const sampleLoss = (s: number) => 4 / s + 0.5;
/** Dev CER of language index k after step s. */
export const sampleCer = (s: number, k: number) => (0.4 + 0.1 * k) / (1 + s / 10);

export const sampleMaps = [
  { step: 1, encoder: [2, 4, 6], decoder: [3, 6] },
  { step: 15, encoder: [1, 4, 6], decoder: [3, 6] },
  { step: 30, encoder: [1, 3, 6], decoder: [2, 6] },
];

function train(step: number, total: number, time: number): MetricsRecord {
  return { type: 'train', step, epoch: step / 20, time, lr: 1e-4, loss: { total, ce: total * 0.5, kl: total * 0.3, hs: total * 0.2 }, samplesPerSecond: 4, tokensPerSecond: 400 };
}

function evaluation(step: number): MetricsRecord {
  const rates = (k: number) => ({ wer: sampleLanguages[k] === 'ja' ? null : 1.5 * sampleCer(step, k), cer: sampleCer(step, k), utterances: 5 });
  return { type: 'eval', step, loss: { total: sampleLoss(step) + 0.1 }, overall: { wer: 1.5 * sampleCer(step, 1), cer: sampleCer(step, 1), utterances: 15 }, languages: Object.fromEntries(sampleLanguages.map((code, k) => [code, rates(k)])) };
}

/** The records in the order the training loop writes them. */
export function sampleRun(): MetricsRecord[] {
  const records: MetricsRecord[] = [
    { type: 'run', startedAt: '2026-11-25T10:00:00.000Z', command: 'dqw distill --teacher <t> --student "s" & more', teacher: 'teacher-dir', student: 'tiny-student', options: { steps: 40, lr: 1e-4 } },
  ];
  const mapAt = (s: number) => sampleMaps.find((m) => m.step === s);
  const session = (from: number, to: number, loss: (s: number) => number) => {
    for (let s = from; s <= to; s++) {
      records.push(train(s, loss(s), (s - from + 1) * 2));
      const map = mapAt(s);
      if (map) records.push({ type: 'layer-map', ...map, teacherLayers: { encoder: 6, decoder: 6 } });
      if (s % 10 === 0) {
        records.push(evaluation(s));
        records.push({ type: 'checkpoint', step: s, path: `run/checkpoints/step-${s}`, reason: s === 40 ? 'final' : 'interval' });
      }
    }
  };
  // First session: reaches step 25, logs a different loss and a map at 22 that the resume discards.
  session(1, 20, sampleLoss);
  session(21, 25, (s) => 100 + s);
  records.push({ type: 'layer-map', step: 22, encoder: [3, 4, 5], decoder: [1, 2] });
  records.push({ type: 'resume', step: 20, from: 'run/checkpoints/step-20' });
  session(21, 40, sampleLoss);
  records.push({ type: 'checkpoint', step: 40, path: 'run/checkpoints/best', reason: 'best' });
  return records;
}

/** The records as metrics.jsonl text. */
export function sampleMetricsText(): string {
  return sampleRun().map((r) => JSON.stringify(r)).join('\n') + '\n';
}

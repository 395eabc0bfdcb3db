// dqw experiment dq end to end on real clips with a small random teacher: the students the preset
// names are trained, quantized by the guided plan and scored; the report holds one row per model
// and the sizes export counts; a second run skips every finished stage and reports the same.
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { experimentCommand } from '../../src/cli/experiment.js';
import { parseQuantPlan, quantizationPlanOf } from '../../src/quant/plan.js';
import { checkpointBytes } from '../../src/quant/size.js';
import { parseWhisperConfig } from '../../src/model/config.js';
import type { ExperimentResults } from '../../src/experiment/report.js';
import { fixtureClips, writeDistillFixture, trainRecords } from './distill-fixture.js';

let dir = '';
let teacher = '';
let data = '';
let presetPath = '';
const preset = {
  name: 'test', description: 'a test',
  data: { languages: ['en', 'de', 'es'], hours: 0.01, seed: 0 },
  teacher: { shape: { dModel: 32, encoderLayers: 2, decoderLayers: 2, heads: 2, ffnDim: 64, audioSeconds: 3, textPositions: 32 }, training: { steps: 2, batch: 2, lr: 1e-3, evalEvery: 10 } },
  student: { encoderLayers: 1, decoderLayers: 1 },
  students: { steps: 2, batch: 2, lr: 1e-3, evalEvery: 10, quantWarmup: 1 },
  quant: { targetRatio: 3, mixedInt4: true, examples: 2 },
  variants: ['kd-dynamic', 'kd-dynamic-ptq', 'dq-int8'],
  eval: { devLimit: 1, testLimit: 2 },
  samples: 2,
};

/** Runs the command; returns stdout and stderr. */
async function run(args: string[]): Promise<{ stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = new PassThrough().on('data', (c: Buffer) => (stdout += c.toString()));
  const err = Object.assign(new PassThrough().on('data', (c: Buffer) => (stderr += c.toString())), { isTTY: false });
  await experimentCommand(args, { stdout: out, stderr: err });
  return { stdout, stderr };
}

const outDir = () => join(dir, 'out');
const baseArgs = () => ['dq', '--preset', presetPath, '--out', outDir(), '--teacher', teacher, '--data', data];

beforeAll(async () => {
  const fixture = await writeDistillFixture('dqw-experiment-', { teacherLayers: 2, studentLayers: 1, clips: 3 });
  dir = fixture.dir;
  teacher = join(dir, 'teacher');
  data = join(dir, 'corpus');
  mkdirSync(data);
  const rows = fixtureClips.map((c) => JSON.stringify(c)).join('\n');
  for (const split of ['train', 'dev', 'test']) writeFileSync(join(data, `${split}.jsonl`), rows);
  presetPath = join(dir, 'preset.json');
  writeFileSync(presetPath, JSON.stringify(preset));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('dqw experiment dq', () => {
  let first: { stdout: string; stderr: string };
  let results: ExperimentResults;

  it('trains, quantizes and scores the preset\'s students and writes the report', async () => {
    first = await run(baseArgs());
    results = JSON.parse(readFileSync(join(outDir(), 'results.json'), 'utf8')) as ExperimentResults;
    expect(results.models.map((m) => m.id)).toEqual(['teacher', 'kd-dynamic', 'kd-dynamic-ptq', 'dq-int8']);

    // Equal budgets; the QAD student trains one float step, then fake-quant.
    expect(trainRecords(join(outDir(), 'students', 'kd-dynamic')).map((r) => r.step)).toEqual([1, 2]);
    expect(trainRecords(join(outDir(), 'students', 'dq-int8')).map((r) => r.quantized)).toEqual([false, true]);

    // The quantized models hold exactly the plan's modules at the plan's bits, and their sizes are
    // the bytes the plan records, at least the target ratio smaller than the teacher.
    const plan = parseQuantPlan(readFileSync(join(outDir(), 'quant-plan.json'), 'utf8'), 'quant-plan.json');
    const planned = plan.modules.filter((m) => m.bits !== null).map((m) => m.module).sort();
    expect(planned.length).toBeGreaterThan(0);
    for (const id of ['kd-dynamic-ptq', 'dq-int8']) {
      const configJson = JSON.parse(readFileSync(join(outDir(), 'models', id, 'config.json'), 'utf8')) as { quantization_config: { modules: string[] } };
      expect(configJson.quantization_config.modules.slice().sort()).toEqual(planned);
      const model = results.models.find((m) => m.id === id)!;
      const config = parseWhisperConfig(configJson, id);
      expect(model.size.bytes).toBe(checkpointBytes({ config, plan: quantizationPlanOf(plan, config) }));
      expect(model.size.bytes).toBe(plan.bytes);
      expect(model.size.compression).toBeGreaterThanOrEqual(3);
      expect(model.quantization).toMatch(/^int8 \(/);
    }
    expect(results.models.find((m) => m.id === 'kd-dynamic')!.quantization).toBe('f32');

    // Every model transcribed the first two test clips.
    for (const m of results.models) {
      expect(m.evaluation.utterances.map((u) => u.reference)).toEqual(fixtureClips.slice(0, 2).map((c) => c.text));
      expect(m.evaluation.overall.cer).not.toBeNull();
      expect(m.evaluation.overall.realTimeFactor).toBeGreaterThan(0);
      // The same reference tokens scored for every model; a random model is near log(vocabulary).
      expect(m.evaluation.referenceLoss.overall.tokens).toBe(results.models[0]!.evaluation.referenceLoss.overall.tokens);
      expect(m.evaluation.referenceLoss.overall.loss).toBeGreaterThan(1);
    }

    const md = readFileSync(join(outDir(), 'results.md'), 'utf8');
    for (const m of results.models) expect(md).toContain(`| ${m.id}: `);
    expect(md).toMatch(/\| teacher float32 bytes \/ int8 student bytes ≥ 5\.18 \| \*\*no\*\* \| \d+\.\d\dx \|/);
    const svg = readFileSync(join(outDir(), 'cer.svg'), 'utf8');
    for (const m of results.models) expect(svg).toContain(`data-name="${m.id}"`);
    expect(readFileSync(join(outDir(), 'report.html'), 'utf8')).toContain('<svg');
    expect(readdirSync(data).sort()).toEqual(['dev.jsonl', 'test.jsonl', 'train.jsonl']); // the corpus is left as it was
    expect(first.stdout).toContain('held-out clips, dq-int8');
    expect(first.stdout).toContain(`reference:  ${fixtureClips[0]!.text}`);
  });

  it('skips every finished stage when run again, and reports the same', async () => {
    const evalFile = join(outDir(), 'eval', 'dq-int8.json');
    const before = statSync(evalFile).mtimeMs;
    const again = await run(baseArgs());
    const stages = Object.keys((JSON.parse(readFileSync(join(outDir(), 'experiment.json'), 'utf8')) as { stages: object }).stages);
    expect(stages).toEqual(expect.arrayContaining(['kd-dynamic', 'quant-plan', 'kd-dynamic-ptq', 'dq-int8', 'dq-int8-export', 'eval-teacher', 'eval-dq-int8']));
    expect(again.stderr.match(/done before/g)?.length).toBe(stages.length);
    expect(first.stderr).toContain(`== [${stages.length}/${stages.length}] test: dq-int8`);
    expect(statSync(evalFile).mtimeMs).toBe(before);
    expect(again.stdout.split('\nreport:')[0]).toBe(first.stdout.slice(first.stdout.indexOf('\n| model | runs as')).split('\nreport:')[0]);
  });

  it('refuses a folder of another preset, an unknown preset and a plan without the student it measures', async () => {
    const other = join(dir, 'other.json');
    writeFileSync(other, JSON.stringify({ ...preset, name: 'other' }));
    await expect(run(['dq', '--preset', other, '--out', outDir(), '--teacher', teacher, '--data', data])).rejects.toThrow(/holds a "test" experiment, not "other"/);
    await expect(run(['dq', '--preset', 'laptop', '--out', outDir()])).rejects.toThrow(/--preset must be one of demo|cpu|gpu/);
    const noDynamic = join(dir, 'no-dynamic.json');
    writeFileSync(noDynamic, JSON.stringify({ ...preset, variants: ['dq-int8'] }));
    await expect(run(['dq', '--preset', noDynamic, '--out', join(dir, 'out2'), '--teacher', teacher, '--data', data])).rejects.toThrow(/no-dynamic\.json: variants must be an array holding kd-dynamic wherever/);
  });
});

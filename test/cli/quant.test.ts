// dqw quant plan end to end on real clips with small random models: the recorded losses are the
// distillation losses of the student with one layer quantized (checked by quantizing that layer's
// weights on the host and measuring the float model), the plan meets the size ratio as export
// counts it, and --reuse selects again without measuring.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quantCommand } from '../../src/cli/quant.js';
import { BatchPreparer, decoderLength, type PreparedExample } from '../../src/distill/batch.js';
import { compileDistillationStep } from '../../src/distill/step.js';
import { meanLosses } from '../../src/distill/trainer.js';
import { readAudioFile16k } from '../../src/io/audio-file.js';
import { saveHfCheckpoint } from '../../src/io/node-files.js';
import { loadWhisperTokenizer } from '../../src/io/text-assets.js';
import { loadMelFilters, tokenizerRanksPath } from '../../src/cli/checkpoint.js';
import { readJsonlManifest } from '../../src/io/manifest-files.js';
import { presetConfig, whisperParameters, type WhisperConfig } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { WhisperWeights } from '../../src/model/whisper.js';
import { parseQuantPlan, quantizationPlanOf } from '../../src/quant/plan.js';
import { checkpointBytes } from '../../src/quant/size.js';
import { dequantizeWeight, quantizeWeight } from '../../src/quant/weights.js';
import { SPEECH_SAMPLES } from '../audio/clips.js';
import { useGpu } from '../helpers.js';

const gpu = useGpu();
const teacherConfig: WhisperConfig = {
  ...presetConfig('tiny'),
  d_model: 32, encoder_layers: 2, decoder_layers: 2, encoder_attention_heads: 2, decoder_attention_heads: 2,
  encoder_ffn_dim: 64, decoder_ffn_dim: 64, max_source_positions: 150, max_target_positions: 32,
};
const studentConfig: WhisperConfig = { ...teacherConfig, d_model: 16, encoder_layers: 1, decoder_layers: 1, encoder_ffn_dim: 32, decoder_ffn_dim: 32 };
const teacherWeights = initWhisperWeights(teacherConfig, 1, { std: 0.1 });
const studentWeights = initWhisperWeights(studentConfig, 2, { std: 0.3 });

let dir = '';
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dqw-quant-'));
  await saveHfCheckpoint(join(dir, 'teacher'), { config: teacherConfig, weights: teacherWeights });
  await saveHfCheckpoint(join(dir, 'student'), { config: studentConfig, weights: studentWeights });
  const rows = [['leopard/test.wav', 'Mr. Quilter is the apostle', 'en'], ['leopard/test_de.wav', 'Der hinter diesem Portal', 'de']];
  writeFileSync(join(dir, 'dev.jsonl'), rows.map(([a, text, language]) => JSON.stringify({ audio: join(SPEECH_SAMPLES, a!), text, language })).join('\n'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(argv: string[]): Promise<string> {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => chunks.push(c));
  await quantCommand(['plan', ...argv], { stdout, stderr: Object.assign(new PassThrough().resume(), { isTTY: false }) });
  return Buffer.concat(chunks).toString('utf8');
}

describe('dqw quant plan', () => {
  it('measures each layer alone, reaches the ratio as export counts bytes, and reselects with --reuse', async () => {
    const out = join(dir, 'plan.json');
    const common = ['--model', join(dir, 'student'), '--teacher', join(dir, 'teacher'), '--out', out];
    const table = await run([...common, '--data', join(dir, 'dev.jsonl'), '--examples', '2', '--batch', '2', '--target-ratio', '4']);
    const plan = parseQuantPlan(readFileSync(out, 'utf8'), out);
    expect(table).toContain('| module | params | sensitivity | bits |');
    expect(plan.modules).toHaveLength(6 + 10 + 1); // encoder and decoder Linears, and the token embedding
    const teacherBytes = checkpointBytes({ config: teacherConfig });
    const bytes = checkpointBytes({ config: studentConfig, plan: quantizationPlanOf(plan, studentConfig) });
    expect(teacherBytes / bytes).toBeGreaterThanOrEqual(4);
    expect(plan.reachedRatio).toBeCloseTo(teacherBytes / bytes, 10);

    // Independent check of two measurements: quantize the layer's weight on the host (bit-exact
    // with the GPU fake-quant) and measure the float student with it.
    const g = gpu();
    const [tokenizer, filters] = await Promise.all([loadWhisperTokenizer(tokenizerRanksPath(studentConfig), { vocabSize: studentConfig.vocab_size }), loadMelFilters(studentConfig)]);
    const teacher = WhisperWeights.upload(g, teacherConfig, teacherWeights);
    const examples = (await readJsonlManifest(join(dir, 'dev.jsonl'))).examples;
    // The decoder length the command chose: the longest label sequence.
    const tokens = decoderLength(tokenizer, studentConfig, examples);
    const checked = [plan.modules.find((m) => m.module.endsWith('fc1'))!, plan.modules.find((m) => m.module.endsWith('q_proj'))!];
    for (const m of checked) {
      const weights = new Map(studentWeights);
      const shape = whisperParameters(studentConfig).find((p) => p.name === `${m.module}.weight`)!.shape as [number, number];
      weights.set(`${m.module}.weight`, dequantizeWeight(quantizeWeight(studentWeights.get(`${m.module}.weight`)!, shape[0], shape[1], { bits: 8 })));
      const student = WhisperWeights.upload(g, studentConfig, weights);
      const preparer = new BatchPreparer(g, studentConfig, tokenizer, filters, tokens);
      const prepared = (await Promise.all(examples.map((e) => preparer.load(e, readAudioFile16k)))) as PreparedExample[];
      const step = await compileDistillationStep(g, { teacher, student, shape: { batch: 2, tokens, padded: true }, lr: 0, train: false, hiddenStates: 'none' });
      const loss = (await meanLosses(step, preparer, [prepared], 2)).total;
      expect(loss).toBeCloseTo(m.loss, 5);
      step.destroy();
      preparer.destroy();
      student.destroy();
    }
    teacher.destroy();

    // Reselect for a looser target from the file: fewer (or as many) modules, no GPU work.
    const out2 = join(dir, 'plan2.json');
    await run(['--model', join(dir, 'student'), '--teacher', join(dir, 'teacher'), '--out', out2, '--reuse', out, '--target-ratio', '2']);
    const loose = parseQuantPlan(readFileSync(out2, 'utf8'), out2);
    expect(loose.modules.map((m) => m.sensitivity)).toEqual(plan.modules.map((m) => m.sensitivity));
    expect(loose.modules.filter((m) => m.bits).length).toBeLessThanOrEqual(plan.modules.filter((m) => m.bits).length);
  });

  it('refuses bad arguments naming the option', async () => {
    await expect(run(['--model', 'm', '--teacher', 't', '--out', 'o', '--target-ratio', '0', '--data', 'd'])).rejects.toThrow(/--target-ratio must be a positive number/);
    await expect(run(['--model', 'm', '--teacher', 't', '--out', 'o', '--target-ratio', '2'])).rejects.toThrow(/--data is required/);
    await expect(quantCommand(['measure'])).rejects.toThrow(/unknown subcommand "measure"/);
  });
});

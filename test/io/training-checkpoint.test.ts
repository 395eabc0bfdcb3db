// Training checkpoints: bit-exact round trip of model, moments and state; the folder is a Hugging
// Face checkpoint the other loaders take; crashes and damage are detected with errors naming the
// file; retention keeps exactly the last K and the best; racing saves of one step.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, readdir, readFile, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/cli/checkpoint.js';
import { bufferSource, concatChunks } from '../../src/io/byte-source.js';
import { loadHfCheckpoint } from '../../src/io/node-files.js';
import { encodeSafetensors } from '../../src/io/safetensors.js';
import {
  checkpointDirName, checkpointsDir, bestTrainingCheckpoint, latestTrainingCheckpoint, listTrainingCheckpoints,
  loadTrainingCheckpoint, saveTrainingCheckpoint, type TrainingCheckpointInput,
} from '../../src/io/training-checkpoint.js';
import { readTrainingTensors, TrainingCheckpointError, trainingTensorsFile, type TrainingCheckpointProblem } from '../../src/io/training-checkpoint-format.js';
import { whisperParameters } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { Rng } from '../../src/util/random.js';
import { expectSameWeights, smallConfig, useTempDir } from './fixtures.js';

const tempDir = useTempDir();
let runCount = 0;
const newRun = () => join(tempDir(), `run-${runCount++}`);

const model = { config: smallConfig, weights: initWhisperWeights(smallConfig, 7, { randomizeAll: true }) };

/** AdamW moments of every model parameter, a learned projection (explicit shape) with its moments, quant scales. */
function trainingTensors(seed: number): Map<string, Float32Array | { shape: number[]; data: Float32Array }> {
  const rng = new Rng(seed);
  const tensors = new Map<string, Float32Array | { shape: number[]; data: Float32Array }>();
  for (const p of whisperParameters(smallConfig)) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    tensors.set(`${p.name}.exp_avg`, rng.fillNormal(new Float32Array(n), 1e-3));
    tensors.set(`${p.name}.exp_avg_sq`, rng.fillNormal(new Float32Array(n), 1e-6).map(Math.abs));
  }
  const projection = rng.fillNormal(new Float32Array(4 * 32), 0.1);
  // Values that only a bit-exact path keeps: -0, a subnormal, the largest float, a NaN payload.
  projection.set([-0, 1e-45, 3.4028234663852886e38]);
  new Uint32Array(projection.buffer)[3] = 0x7fc0_1234;
  tensors.set('hidden_projection.0.weight', { shape: [4, 32], data: projection });
  tensors.set('hidden_projection.0.weight.exp_avg', rng.fillNormal(new Float32Array(4 * 32), 1e-3));
  tensors.set('hidden_projection.0.weight.exp_avg_sq', rng.fillNormal(new Float32Array(4 * 32), 1e-6));
  tensors.set('quant_scales.model.encoder.layers.0.fc1.weight', rng.fillNormal(new Float32Array(64), 1));
  return tensors;
}

function input(step: number, metric?: number, extra: Partial<TrainingCheckpointInput> = {}): TrainingCheckpointInput {
  const rng = new Rng(step + 1);
  rng.normal();
  return {
    step, model, tensors: trainingTensors(step), ...(metric === undefined ? {} : { metric }),
    state: { step, rng: rng.state(), batcher: { epoch: 2, cursor: 17, order: [3, 1, 2, 0] }, best: metric ?? null, note: 'éü ✓', optional: undefined },
    ...extra,
  };
}

async function expectTrainingError(promise: Promise<unknown>, problem: TrainingCheckpointProblem, ...parts: (string | RegExp)[]): Promise<TrainingCheckpointError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(TrainingCheckpointError);
  expect((error as TrainingCheckpointError).problem).toBe(problem);
  for (const part of parts) expect((error as Error).message).toMatch(part);
  return error as TrainingCheckpointError;
}

const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

describe('training checkpoints', () => {
  it('round-trips model, moments, shapes and state bit-exactly, with the sizes and sha256 of the files in training.json', async () => {
    const run = newRun();
    const saved = input(1234, 0.75);
    const { path, kept, deleted } = await saveTrainingCheckpoint(run, saved, { keepLast: 2 });
    expect(path).toBe(join(run, 'checkpoints', 'step-00001234'));
    expect(kept).toEqual([path]);
    expect(deleted).toEqual([]);
    expect((await readdir(path)).sort()).toEqual(['config.json', 'model.safetensors', 'training.json', 'training.safetensors']);

    const manifest = JSON.parse(await readFile(join(path, 'training.json'), 'utf8'));
    for (const name of ['config.json', 'model.safetensors', 'training.safetensors']) {
      expect(manifest.files[name]).toEqual({ bytes: (await stat(join(path, name))).size, sha256: await sha256(join(path, name)) });
    }

    const loaded = await loadTrainingCheckpoint(path);
    expect(loaded.step).toBe(1234);
    expect(loaded.metric).toBe(0.75);
    expect(Date.now() - Date.parse(loaded.savedAt)).toBeLessThan(60_000);
    expectSameWeights(loaded.model.weights, model.weights);
    expect(loaded.model.config.d_model).toBe(smallConfig.d_model);
    const expectedValues = new Map([...saved.tensors].map(([k, v]) => [k, v instanceof Float32Array ? v : v.data]));
    expectSameWeights(loaded.tensors, expectedValues);
    expect([...loaded.tensors.keys()]).toEqual([...saved.tensors.keys()]);
    expect(loaded.shapes.get('model.encoder.conv1.weight.exp_avg')).toEqual([32, 16, 3]);
    expect(loaded.shapes.get('hidden_projection.0.weight')).toEqual([4, 32]);
    // A moment given as a plain array takes its parameter's shape, here another training tensor's.
    expect(loaded.shapes.get('hidden_projection.0.weight.exp_avg')).toEqual([4, 32]);
    expect(loaded.shapes.get('quant_scales.model.encoder.layers.0.fc1.weight')).toEqual([64]);
    // JSON drops the undefined optional field, as it would from any parsed state.
    const { optional: _dropped, ...expectedState } = saved.state as Record<string, unknown>;
    expect(loaded.state).toEqual(expectedState);
    // The restored RNG continues the saved sequence exactly.
    const original = new Rng(1235);
    original.normal();
    const restored = Rng.fromState((loaded.state as { rng: ReturnType<Rng['state']> }).rng);
    expect([restored.normal(), restored.nextUint32(), restored.normal()]).toEqual([original.normal(), original.nextUint32(), original.normal()]);
  });

  it('a checkpoint folder is a Hugging Face checkpoint that loadHfCheckpoint and the CLI loader read bit-exactly', async () => {
    const run = newRun();
    const { path } = await saveTrainingCheckpoint(run, input(3), { keepLast: 1 });
    expectSameWeights((await loadHfCheckpoint(path)).weights, model.weights);
    const cliLoaded = await loadCheckpoint(path, new PassThrough().resume());
    expectSameWeights(cliLoaded.weights, model.weights);
    expect(cliLoaded.warnings).toEqual([]);
  });

  it('ignores crashed saves (.tmp folders) and removes those of dead processes at the next save, keeping a running process\'s', async () => {
    const run = newRun();
    const dir = checkpointsDir(run);
    await saveTrainingCheckpoint(run, input(1), { keepLast: 5 });
    // A pid that has surely exited: a child we ran to completion.
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!;
    const crashed = `step-00000002.tmp-${deadPid}-0badf00d`;
    const ownCrashed = `step-00000003.tmp-${process.pid}-00c0ffee`;
    const otherSave = `step-00000004.tmp-${process.ppid}-12345678`;
    const halfDeleted = `step-00000000.trash-${deadPid}-deadbeef`;
    for (const name of [crashed, ownCrashed, otherSave, halfDeleted]) {
      await mkdir(join(dir, name));
      await writeFile(join(dir, name, 'model.safetensors'), 'partial');
    }
    // training.json of a complete-looking save inside a .tmp folder changes nothing either.
    await cp(join(dir, 'step-00000001', 'training.json'), join(dir, crashed, 'training.json'));
    expect((await listTrainingCheckpoints(run)).map((e) => e.step)).toEqual([1]);
    expect((await latestTrainingCheckpoint(run))?.step).toBe(1);

    await saveTrainingCheckpoint(run, input(5), { keepLast: 5 });
    expect((await readdir(dir)).sort()).toEqual([otherSave, 'index.json', 'step-00000001', 'step-00000005'].sort());
  });

  it('names the damaged file: truncated, altered, missing, unparseable, of another version', async () => {
    const run = newRun();
    const { path } = await saveTrainingCheckpoint(run, input(9), { keepLast: 1 });
    const copy = async (name: string) => {
      const to = join(tempDir(), `damaged-${name}`);
      await cp(path, to, { recursive: true });
      return to;
    };

    const truncated = await copy('truncated');
    await truncate(join(truncated, 'model.safetensors'), 1000);
    await expectTrainingError(loadTrainingCheckpoint(truncated), 'corrupt', join(truncated, 'model.safetensors'), /1000 bytes.*truncated/);

    const altered = await copy('altered');
    const tensorsPath = join(altered, 'training.safetensors');
    const bytes = await readFile(tensorsPath);
    bytes[bytes.length - 5] = bytes[bytes.length - 5]! ^ 0x01;
    await writeFile(tensorsPath, bytes);
    await expectTrainingError(loadTrainingCheckpoint(altered), 'corrupt', tensorsPath, /sha256 [0-9a-f]{64} differs/);

    const missing = await copy('missing');
    await unlink(join(missing, 'config.json'));
    await expectTrainingError(loadTrainingCheckpoint(missing), 'missing', join(missing, 'config.json'));

    const noManifest = await copy('no-manifest');
    await unlink(join(noManifest, 'training.json'));
    await expectTrainingError(loadTrainingCheckpoint(noManifest), 'missing', join(noManifest, 'training.json'), /not a complete training checkpoint/);

    const cut = await copy('cut-manifest');
    const manifestText = await readFile(join(cut, 'training.json'), 'utf8');
    await writeFile(join(cut, 'training.json'), manifestText.slice(0, manifestText.length >> 1));
    await expectTrainingError(loadTrainingCheckpoint(cut), 'corrupt', join(cut, 'training.json'), /not valid JSON/);

    const future = await copy('future');
    await writeFile(join(future, 'training.json'), manifestText.replace('"version": 1', '"version": 2'));
    await expectTrainingError(loadTrainingCheckpoint(future), 'version', join(future, 'training.json'), /version 2.*reads version 1/);
  });

  it('refuses moments whose shape disagrees with their parameter in the config, naming file and tensor', async () => {
    const conv = 'model.encoder.conv1.weight.exp_avg';
    expect(() => trainingTensorsFile(smallConfig, new Map([[conv, new Float32Array(10)]]))).toThrowError(
      expect.objectContaining({ problem: 'shape', tensor: conv, message: expect.stringMatching(/has 10 values, expected 1536 for shape \[32, 16, 3\]/) }),
    );
    expect(() => trainingTensorsFile(smallConfig, new Map([[conv, { shape: [16, 32, 3], data: new Float32Array(1536) }]]))).toThrowError(
      expect.objectContaining({ problem: 'shape', tensor: conv, message: expect.stringMatching(/\[16, 32, 3\], expected \[32, 16, 3\] as model parameter "model.encoder.conv1.weight"/) }),
    );
    // The same on reading a file written by something else.
    const bytes = concatChunks(encodeSafetensors('training.safetensors', [{ name: conv, shape: [1536], data: new Float32Array(1536) }], 'F32'));
    await expectTrainingError(readTrainingTensors(bufferSource(bytes, 'run/training.safetensors'), smallConfig), 'shape', 'run/training.safetensors', conv, /\[1536\], expected \[32, 16, 3\]/);
    const f16 = concatChunks(encodeSafetensors('training.safetensors', [{ name: 'scales', shape: [2], data: new Float32Array(2) }], 'F16'));
    await expectTrainingError(readTrainingTensors(bufferSource(f16, 'x/training.safetensors'), smallConfig), 'corrupt', /"scales" is F16, expected F32/);
  });

  it('refuses a state JSON cannot hold, a model-parameter name, a bad step, metric or keepLast, writing nothing', async () => {
    const run = newRun();
    await expectTrainingError(saveTrainingCheckpoint(run, input(1, undefined, { state: { rng: { spare: NaN } } }), { keepLast: 1 }), 'invalid', /state\.rng\.spare is NaN/);
    await expectTrainingError(saveTrainingCheckpoint(run, input(1, undefined, { state: { order: new Uint32Array(3) } }), { keepLast: 1 }), 'invalid', /state\.order is a Uint32Array/);
    await expectTrainingError(saveTrainingCheckpoint(run, input(1, undefined, { state: { seen: new Map() } }), { keepLast: 1 }), 'invalid', /state\.seen is a Map/);
    await expectTrainingError(saveTrainingCheckpoint(run, input(1, undefined, { state: { seed: 1n } }), { keepLast: 1 }), 'invalid', /state\.seed is a bigint/);
    await expectTrainingError(
      saveTrainingCheckpoint(run, input(1, undefined, { tensors: new Map([['model.encoder.conv1.bias', new Float32Array(32)]]) }), { keepLast: 1 }),
      'invalid', /"model.encoder.conv1.bias" is a model parameter name/,
    );
    await expectTrainingError(saveTrainingCheckpoint(run, input(1, undefined, { step: 1.5 }), { keepLast: 1 }), 'invalid', /step 1.5/);
    await expectTrainingError(saveTrainingCheckpoint(run, input(1, Infinity), { keepLast: 1 }), 'invalid', /metric Infinity/);
    await expectTrainingError(saveTrainingCheckpoint(run, input(1), { keepLast: 0 }), 'invalid', /keepLast 0/);
    await expect(stat(run)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await latestTrainingCheckpoint(run)).toBeUndefined();
    expect(await bestTrainingCheckpoint(run)).toBeUndefined();
  });

  it('retention keeps exactly the last K and the best (earliest on ties) across many saves; index.json records them', async () => {
    const run = newRun();
    const keepLast = 3;
    // undefined: a save without a metric (between evaluations).
    const metrics = [5, 4, undefined, 6, 3, 7, undefined, 3, 8, 2.5, 9, 10, 11, undefined];
    const small = { config: smallConfig, weights: model.weights };
    const history: { step: number; metric?: number }[] = [];
    let lastDeleted: string[] = [];
    for (const [i, metric] of metrics.entries()) {
      const step = (i + 1) * 10;
      history.push({ step, ...(metric === undefined ? {} : { metric }) });
      const saved = await saveTrainingCheckpoint(run, { step, model: small, tensors: new Map(), state: { step }, ...(metric === undefined ? {} : { metric }) }, { keepLast });
      // Expected independently: the last three steps saved, and the lowest metric seen first.
      const withMetric = history.filter((h) => h.metric !== undefined);
      const best = withMetric.reduce<(typeof history)[number] | undefined>((b, h) => (b === undefined || h.metric! < b.metric! ? h : b), undefined);
      const expected = new Set(history.slice(-keepLast).map((h) => h.step));
      if (best) expected.add(best.step);
      const expectedSteps = [...expected].sort((a, b) => a - b);
      const listed = await listTrainingCheckpoints(run);
      expect(listed.map((e) => e.step)).toEqual(expectedSteps);
      expect(saved.kept).toEqual(expectedSteps.map((s) => join(checkpointsDir(run), checkpointDirName(s))));
      expect((await readdir(checkpointsDir(run))).filter((n) => n.startsWith('step-')).length).toBe(expectedSteps.length);
      expect((await bestTrainingCheckpoint(run))?.step).toBe(best?.step);
      expect((await latestTrainingCheckpoint(run))?.step).toBe(step);
      const index = JSON.parse(await readFile(join(checkpointsDir(run), 'index.json'), 'utf8'));
      expect(index.best).toEqual(best ? { step: best.step, dir: checkpointDirName(best.step), metric: best.metric } : null);
      expect(index.latest).toEqual({ step, dir: checkpointDirName(step) });
      expect(index.checkpoints.map((c: { step: number }) => c.step)).toEqual(expectedSteps);
      lastDeleted = saved.deleted;
    }
    // The last save (step 140) pushed step 110 out of the last three; the best (2.5 at step 100) stays.
    expect(lastDeleted).toEqual([join(checkpointsDir(run), 'step-00000110')]);
    expect((await listTrainingCheckpoints(run)).map((e) => [e.step, e.metric])).toEqual([[100, 2.5], [120, 10], [130, 11], [140, undefined]]);
  });

  it('a second save of a saved step is refused, and of two racing saves of one step exactly one wins and nothing else is left', async () => {
    const run = newRun();
    const first = await saveTrainingCheckpoint(run, input(7, 1, { state: { who: 'first' } }), { keepLast: 2 });
    await expectTrainingError(saveTrainingCheckpoint(run, input(7, 0.5, { state: { who: 'again' } }), { keepLast: 2 }), 'exists', first.path);
    expect((await loadTrainingCheckpoint(first.path)).state).toEqual({ who: 'first' });

    const results = await Promise.allSettled([
      saveTrainingCheckpoint(run, input(8, 2, { state: { who: 'a' } }), { keepLast: 2 }),
      saveTrainingCheckpoint(run, input(8, 3, { state: { who: 'b' } }), { keepLast: 2 }),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won.length).toBe(1);
    expect(lost.length).toBe(1);
    expect(lost[0]!.reason).toBeInstanceOf(TrainingCheckpointError);
    expect((lost[0]!.reason as TrainingCheckpointError).problem).toBe('exists');
    const winner = results[0]!.status === 'fulfilled' ? 'a' : 'b';
    const loaded = await loadTrainingCheckpoint(join(checkpointsDir(run), 'step-00000008'));
    expect(loaded.state).toEqual({ who: winner });
    expect(loaded.metric).toBe(winner === 'a' ? 2 : 3);
    expect((await readdir(checkpointsDir(run))).sort()).toEqual(['index.json', 'step-00000007', 'step-00000008']);
  });
});

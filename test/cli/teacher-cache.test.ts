// dqw teacher-cache, then dqw distill --teacher-cache on real clips with small random models: the
// cached run's losses equal the live run's with the whole vocabulary cached, differ in the KL with
// top-8 (less in the tail form, from below); a cache that does not fit the run (decoder length,
// tau, manifest row, teacher) is refused by name.
import { cpSync, existsSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distillCommand } from '../../src/cli/distill.js';
import { teacherCacheCommand } from '../../src/cli/teacher-cache.js';
import type { TeacherCacheIndex } from '../../src/distill/teacher-cache.js';
import { saveHfCheckpoint } from '../../src/io/node-files.js';
import { parseWhisperConfig } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { fixtureClips, quiet, trainRecords, writeDistillFixture } from './distill-fixture.js';

let dir = '';
const V = 51_865;
beforeAll(async () => {
  dir = (await writeDistillFixture('dqw-teacher-cache-', { teacherLayers: 3, studentLayers: 2, clips: 3 })).dir;
  for (const k of [V, 8]) await teacherCacheCommand(['--teacher', join(dir, 'teacher'), '--data', join(dir, 'train.jsonl'), '--out', join(dir, `cache-${k}`), '--top-k', String(k), '--max-tokens', '10', '--batch', '2'], quiet());
  await teacherCacheCommand(['--teacher', join(dir, 'teacher'), '--data', join(dir, 'train.jsonl'), '--out', join(dir, 'cache-8-f16'), '--top-k', '8', '--max-tokens', '10', '--states-dtype', 'f16'], quiet());
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const indexOf = (k: number) => JSON.parse(readFileSync(join(dir, `cache-${k}`, 'index.json'), 'utf8')) as TeacherCacheIndex;
const relDiff = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('dqw teacher-cache and dqw distill --teacher-cache', () => {
  const run = (out: string, teacher: string[]) => [
    ...teacher, '--student', join(dir, 'student.json'), '--init', 'random', '--data', join(dir, 'train.jsonl'), '--out', join(dir, out),
    '--steps', '3', '--batch', '2', '--lr', '2e-3', '--warmup', '1', '--max-tokens', '10', '--checkpoint-every', '3', '--seed', '3',
  ];

  it('writes an index of every clip with the teacher, k and decoder length', () => {
    const index = indexOf(8);
    expect(index.format).toBe('dqw-teacher-cache');
    expect(index.topK).toBe(8);
    expect(index.tokens).toBe(10);
    expect(index.tau).toBe(2);
    expect(index.examples.map((e) => e.text)).toEqual(fixtureClips.map((c) => c.text));
    expect(index.teacher.config.d_model).toBe(32);
    expect(index.teacher.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(indexOf(V).teacher.sha256).toBe(index.teacher.sha256);
    for (const e of index.examples) expect(e.positions).toBeGreaterThan(4);
  });

  it('k = vocabulary: the cached run gives the live losses to float rounding; k = 8 changes the KL', async () => {
    await distillCommand(run('live', ['--teacher', join(dir, 'teacher')]), quiet());
    await distillCommand(run('cached-all', ['--teacher-cache', join(dir, `cache-${V}`)]), quiet());
    await distillCommand(run('cached-8', ['--teacher-cache', join(dir, 'cache-8'), '--teacher', join(dir, 'teacher')]), quiet());
    await distillCommand(run('cached-8-renormalised', ['--teacher-cache', join(dir, 'cache-8'), '--teacher-cache-kl', 'renormalised']), quiet());
    const live = trainRecords(join(dir, 'live'));
    const all = trainRecords(join(dir, 'cached-all'));
    const top8 = trainRecords(join(dir, 'cached-8'));
    const top8r = trainRecords(join(dir, 'cached-8-renormalised'));
    expect(all.map((r) => r.step)).toEqual([1, 2, 3]);
    const lines: string[] = [];
    for (const [i, r] of live.entries()) {
      for (const part of ['total', 'ce', 'kl', 'hs'] as const) {
        lines.push(`step ${r.step} ${part}: live ${r.loss[part]}, k=V ${all[i]!.loss[part]} (rel ${relDiff(all[i]!.loss[part], r.loss[part]).toExponential(1)}), k=8 tail ${top8[i]!.loss[part]} (rel ${relDiff(top8[i]!.loss[part], r.loss[part]).toExponential(1)}), k=8 renormalised ${top8r[i]!.loss[part]} (rel ${relDiff(top8r[i]!.loss[part], r.loss[part]).toExponential(1)})`);
        expect(relDiff(all[i]!.loss[part], r.loss[part]), `k = V, step ${r.step}, ${part}`).toBeLessThan(1e-5);
      }
    }
    // Step 1 starts from the same student: only the KL sees the truncation.
    expect(relDiff(top8[0]!.loss.ce, live[0]!.loss.ce)).toBeLessThan(1e-6);
    expect(relDiff(top8[0]!.loss.kl, live[0]!.loss.kl)).toBeGreaterThan(1e-2);
    expect(top8[0]!.loss.kl).toBeLessThanOrEqual(live[0]!.loss.kl * (1 + 1e-6)); // the tail form is a lower bound
    expect(relDiff(top8r[0]!.loss.ce, live[0]!.loss.ce)).toBeLessThan(1e-6);
    expect(relDiff(top8r[0]!.loss.kl, live[0]!.loss.kl)).toBeGreaterThan(1e-2);
    console.log(lines.join('\n'));
  });

  it('f16 states: half the encoder states\' bytes; the hidden-state loss moves by their rounding, CE and KL do not', async () => {
    const f16 = JSON.parse(readFileSync(join(dir, 'cache-8-f16', 'index.json'), 'utf8')) as TeacherCacheIndex;
    expect(f16.statesDtype).toBe('F16');
    const size = (cache: string) => statSync(join(dir, cache, 'examples', '000000.safetensors')).size;
    const statesBytes = 150 * 32 * 3 * 4; // encoder states of one clip at F32: positions x d x layers x 4
    expect(size('cache-8') - size('cache-8-f16')).toBeGreaterThanOrEqual(statesBytes / 2);
    await distillCommand(run('cached-8-f16', ['--teacher-cache', join(dir, 'cache-8-f16')]), quiet());
    const f32 = trainRecords(join(dir, 'cached-8'));
    const half = trainRecords(join(dir, 'cached-8-f16'));
    expect(half[0]!.loss.ce).toBe(f32[0]!.loss.ce);
    expect(half[0]!.loss.kl).toBe(f32[0]!.loss.kl);
    const hs = relDiff(half[0]!.loss.hs, f32[0]!.loss.hs);
    console.log(`f16 states: step 1 hs ${half[0]!.loss.hs} vs ${f32[0]!.loss.hs} (rel ${hs.toExponential(1)}); step 3 total rel ${relDiff(half[2]!.loss.total, f32[2]!.loss.total).toExponential(1)}`);
    expect(hs).toBeGreaterThan(0);
    expect(hs).toBeLessThan(1e-3);
  });

  it('--dev-teacher-cache: dev losses without the teacher equal the live teacher\'s (k = vocabulary); a dev cache is required or refused by name', async () => {
    // The dev set is the training manifest, so its cache is the training cache of every clip.
    const dev = ['--dev', join(dir, 'train.jsonl'), '--eval-every', '3', '--eval-limit', '2'];
    await distillCommand([...run('dev-live', ['--teacher', join(dir, 'teacher')]), ...dev], quiet());
    const cacheV = join(dir, `cache-${V}`);
    await distillCommand([...run('dev-cached', ['--teacher-cache', cacheV, '--dev-teacher-cache', cacheV]), ...dev], quiet());
    const evals = (out: string) => readFileSync(join(dir, out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; step: number; loss: Record<'total' | 'ce' | 'kl' | 'hs', number> }).filter((r) => r.type === 'eval');
    const [live, cached] = [evals('dev-live'), evals('dev-cached')];
    expect(cached.map((r) => r.step)).toEqual([3]);
    expect(live.map((r) => r.step)).toEqual([3]);
    for (const part of ['total', 'ce', 'kl', 'hs'] as const) {
      expect(cached[0]!.loss[part]).toBeGreaterThan(0);
      expect(relDiff(cached[0]!.loss[part], live[0]!.loss[part]), `dev ${part}: live ${live[0]!.loss[part]}, cached ${cached[0]!.loss[part]}`).toBeLessThan(1e-5);
    }
    const cached8 = ['--teacher-cache', join(dir, 'cache-8')];
    await expect(distillCommand([...run('dev-none', cached8), ...dev], quiet())).rejects.toThrow(/--dev with --teacher-cache needs the teacher on the dev examples: --dev-teacher-cache/);
    await expect(distillCommand([...run('dev-alone', cached8), '--dev-teacher-cache', cacheV], quiet())).rejects.toThrow(/--dev-teacher-cache needs --teacher-cache and --dev/);
    // A dev cache of another teacher (its index says so) is refused, naming both index files.
    const other = join(dir, 'cache-8-other');
    cpSync(join(dir, 'cache-8'), other, { recursive: true });
    const index = JSON.parse(readFileSync(join(other, 'index.json'), 'utf8')) as TeacherCacheIndex;
    writeFileSync(join(other, 'index.json'), JSON.stringify({ ...index, teacher: { ...index.teacher, sha256: '0'.repeat(64) } }));
    await expect(distillCommand([...run('dev-other', [...cached8, '--dev-teacher-cache', other]), ...dev], quiet())).rejects.toThrow(/cache-8-other\/index\.json: teacher\.sha256 0{64} differs from .*cache-8\/index\.json's [0-9a-f]{64}: the dev cache holds another teacher's outputs/);
  });

  it('a cached run stopped at step 2 and resumed gives exactly the losses of an uninterrupted cached run', async () => {
    const cache = ['--teacher-cache', join(dir, 'cache-8')];
    await distillCommand(run('cached-whole', cache), quiet());
    await distillCommand([...run('cached-split', cache), '--stop-at', '2'], quiet());
    await distillCommand([...run('cached-split', cache), '--resume'], quiet());
    const whole = trainRecords(join(dir, 'cached-whole'));
    const split = trainRecords(join(dir, 'cached-split'));
    expect(split.map((r) => r.step)).toEqual([1, 2, 3]);
    expect(split.map((r) => r.loss)).toEqual(whole.map((r) => r.loss));
  });

  it('refuses a cache built for another decoder length, manifest or teacher, naming the file and field', async () => {
    const cache = join(dir, 'cache-8');
    const index = join(cache, 'index.json');
    const other = run('refused', ['--teacher-cache', cache]);
    await expect(distillCommand(other.map((a) => (a === '10' ? '9' : a)), quiet())).rejects.toThrow(new RegExp(`${index.replace(/[.]/g, '\\.')}: tokens 10 differs from this run's decoder length 9`));
    await expect(distillCommand([...other, '--tau', '1'], quiet())).rejects.toThrow(/index\.json: tau 2 differs from this run's tau 1; the 'tail' KL reads/);
    await expect(distillCommand([...other, '--teacher-cache-kl', 'sparse'], quiet())).rejects.toThrow(/--teacher-cache-kl must be tail or renormalised/);
    const edited = join(dir, 'edited.jsonl');
    writeFileSync(edited, fixtureClips.map((c, i) => JSON.stringify(i === 1 ? { ...c, text: 'Der vor diesem Portal' } : c)).join('\n'));
    await expect(distillCommand(other.map((a) => (a === join(dir, 'train.jsonl') ? edited : a)), quiet())).rejects.toThrow(/index\.json: examples\[1\]\.text "Der hinter diesem Portal" differs from line 2 of .*edited\.jsonl: "Der vor diesem Portal"/);
    const teacherConfig = parseWhisperConfig(JSON.parse(readFileSync(join(dir, 'teacher', 'config.json'), 'utf8')), 'teacher config');
    await saveHfCheckpoint(join(dir, 'other-teacher'), { config: teacherConfig, weights: initWhisperWeights(teacherConfig, 2, { std: 0.1 }) });
    await expect(distillCommand([...other, '--teacher', join(dir, 'other-teacher')], quiet())).rejects.toThrow(/index\.json: teacher\.sha256 [0-9a-f]{64} differs from --teacher .*other-teacher's weights/);
    await expect(distillCommand([...other, '--frozen-encoder'], quiet())).rejects.toThrow(/--frozen-encoder needs the live teacher/);
    // A rebuild that fails (no usable clip) leaves no index behind, not the old one.
    writeFileSync(join(dir, 'broken.wav'), 'not a wav file');
    writeFileSync(join(dir, 'broken.jsonl'), JSON.stringify({ audio: 'broken.wav', text: 'x', language: 'en' }));
    const rebuilt = join(dir, 'cache-rebuilt');
    await teacherCacheCommand(['--teacher', join(dir, 'teacher'), '--data', join(dir, 'train.jsonl'), '--out', rebuilt, '--top-k', '4', '--max-tokens', '10'], quiet());
    expect(existsSync(join(rebuilt, 'index.json'))).toBe(true);
    await expect(teacherCacheCommand(['--teacher', join(dir, 'teacher'), '--data', join(dir, 'broken.jsonl'), '--out', rebuilt, '--top-k', '4'], quiet())).rejects.toThrow(/no clip could be loaded/);
    expect(existsSync(join(rebuilt, 'index.json'))).toBe(false);
    await expect(distillCommand(run('no-index', ['--teacher-cache', rebuilt]), quiet())).rejects.toThrow(/no index\.json; build the cache with dqw teacher-cache/);
    // A damaged cache: an example file gone is named when it is read.
    const gone = join(cache, indexOf(8).examples[0]!.file);
    unlinkSync(gone);
    await expect(distillCommand(run('damaged', ['--teacher-cache', cache]), quiet())).rejects.toThrow(new RegExp(`${gone.replace(/[.]/g, '\\.')}: missing \\(listed in .*index\\.json for line 1\\)`));
  });
});

import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { evalCommand, readManifestArgument } from '../../src/cli/eval.js';
import { exportCommand } from '../../src/cli/export.js';
import { pseudoLabelCommand } from '../../src/cli/pseudo-label.js';
import { parseJsonlManifest } from '../../src/data/manifests.js';
import { saveHfCheckpoint } from '../../src/io/node-files.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { whisperNormalizer } from '../../src/text/normalizers.js';
import { sampleAudio, sampleLines, tempDir } from '../data/fixtures.js';
import { expectedTableRows, independentErrorRate, tableRows } from '../eval/scoring.js';
import { narrowWhisperConfig } from '../model/narrow-whisper.js';

const run = promisify(execFile);

const config = narrowWhisperConfig;
const HF_TINY = new URL('../../../shared/assets/whisper/hf-whisper-tiny/', import.meta.url).pathname;
const normalize = whisperNormalizer(JSON.parse(readFileSync(`${HF_TINY}normalizer.json`, 'utf8')) as Record<string, string>);
const clips = ['speech_recognition/chinese.flac', 'coqui_tts/LJ001-0008.flac', 'cheetah/test_pt_norm.wav'].map((audio) => sampleLines.find((l) => l.audio === audio)!);

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

/** The subset of `dqw eval --json` the tests read. */
interface EvalJson {
  overall: { utterances: number; wer: { rate: number }; cer: { rate: number } };
  utterances: { audio: string; line: number; language: string; reference: string; hypothesis: string; audioSeconds: number; decodeSeconds: number }[];
  skipped: { source: string; line: number; reason: string }[];
}

const dir = await tempDir();
const model = join(dir, 'model');
const manifest = join(dir, 'dev.jsonl');
let evaluated: EvalJson;
let evalStderr = '';

beforeAll(async () => {
  await saveHfCheckpoint(model, { config, weights: initWhisperWeights(config, 3, { std: 0.2, randomizeAll: true }) });
  const rows = clips.map((c) => JSON.stringify({ audio: sampleAudio(c), text: c.text, language: c.language }));
  writeFileSync(manifest, [...rows, '{"audio": "x.wav", "text": ', JSON.stringify({ audio: 'missing.wav', text: 'gone', language: 'en' })].join('\n'));
  const stdout = capture();
  const stderr = capture();
  await evalCommand(['--model', model, '--data', manifest, '--json'], { stdout: stdout.stream, stderr: stderr.stream });
  evaluated = JSON.parse(stdout.text()) as EvalJson;
  evalStderr = stderr.text();
});

describe('dqw eval', () => {
  it('runs an int8 export on the int8 kernels: the header says so and the transcripts are those of the int8 model the library loads', async () => {
    const int8 = join(dir, 'int8');
    await exportCommand(['--model', model, '--format', 'hf', '--quant', 'int8', '--output', int8], { stdout: capture().stream, stderr: capture().stream });
    const stdout = capture();
    const stderr = capture();
    await evalCommand(['--model', int8, '--data', manifest, '--json', '--limit', '1'], { stdout: stdout.stream, stderr: stderr.stream });
    const result = JSON.parse(stdout.text()) as EvalJson;
    expect(result.utterances).toHaveLength(1);
    expect(stderr.text()).toMatch(/int8 \(8-bit weights/);
    // The float model's transcript of the same clip differs from the int8 one only by quantization;
    // both must be produced (a loader that fell back to float would print no int8 header).
    expect(typeof result.utterances[0]!.hypothesis).toBe('string');
  });

  it('--json: every usable row transcribed and scored as an independent Levenshtein count does; bad rows reported with their lines', () => {
    expect(evaluated.utterances.map((u) => [u.audio, u.line, u.language, u.reference])).toEqual(clips.map((c, i) => [sampleAudio(c), i + 1, c.language, c.text]));
    const norm = evaluated.utterances.map((u) => ({ ...u, reference: normalize(u.reference, u.language), hypothesis: normalize(u.hypothesis, u.language) }));
    const all = expectedTableRows(norm).at(-1)!;
    expect([`${(100 * evaluated.overall.wer.rate).toFixed(2)}%`, `${(100 * evaluated.overall.cer.rate).toFixed(2)}%`]).toEqual([all[2], all[3]]);
    expect(evaluated.skipped.map((s) => [s.line, s.reason.split(':')[0]])).toEqual([[4, 'invalid JSON'], [5, 'audio file not found']]);
    expect(evalStderr).toContain(`skipped 2 of 5 rows of ${manifest}:\n  ${manifest}:4: invalid JSON`);
    expect(evalStderr).toContain(`  ${manifest}:5: audio file not found: ${join(dir, 'missing.wav')}\n`);
    expect(evalStderr).toMatch(/transcribing \|█+\| 3\/3 utterances \| 4\.7 s audio/);
  });

  it('prints the table of the first --limit rows: the numbers an independent count gives on the same transcripts', async () => {
    const stdout = capture();
    await evalCommand(['--model', model, '--data', manifest, '--limit', '2'], { stdout: stdout.stream, stderr: capture().stream });
    const [table, adapter] = stdout.text().split('\n\n');
    expect(adapter).toMatch(/^adapter: .+ \(node\)\n$/);
    // The decoding is deterministic, so the transcripts are those of the --json run; RTF is timing and is left out.
    const norm = evaluated.utterances.slice(0, 2).map((u) => ({ ...u, reference: normalize(u.reference, u.language), hypothesis: normalize(u.hypothesis, u.language) }));
    const withoutRtf = (rows: string[][]) => rows.map((r) => r.slice(0, 5));
    expect(withoutRtf(tableRows(table!))).toEqual(withoutRtf(expectedTableRows(norm)));
    expect(tableRows(table!).map((r) => r[0])).toEqual(['zh', 'en', 'all']);
  });
});

describe('dqw pseudo-label', () => {
  it('writes the teacher transcripts as a manifest our parser reads, dropping exactly the rows over --max-wer', async () => {
    // References scripted around the model's transcripts: equal (kept), the clip's text (a random
    // model is far off), and the transcript plus a word (kept only if it has 10 words or more).
    const [zh, en, pt] = evaluated.utterances as [EvalJson['utterances'][0], EvalJson['utterances'][0], EvalJson['utterances'][0]];
    const references = [zh.hypothesis, en.reference, `${pt.hypothesis} extra`];
    const input = join(dir, 'to-label.jsonl');
    writeFileSync(input, evaluated.utterances.map((u, i) => JSON.stringify({ audio: u.audio, text: references[i], language: u.language })).join('\n'));
    const out = join(dir, 'labels', 'train.jsonl');
    const stdout = capture();
    await pseudoLabelCommand(['--teacher', model, '--data', input, '--out', out], { stdout: stdout.stream, stderr: capture().stream });

    const rates = evaluated.utterances.map((u, i) => independentErrorRate(normalize(references[i]!, u.language), normalize(u.hypothesis, u.language), u.language));
    const keptIndices = rates.flatMap((r, i) => (r <= 0.1 ? [i] : []));
    expect(keptIndices).toContain(0);
    expect(keptIndices).not.toContain(1);
    const counts = evaluated.utterances.map((u, i) => [u.language, String(keptIndices.includes(i) ? 1 : 0), String(keptIndices.includes(i) ? 0 : 1)]);
    expect(tableRows(stdout.text().split('\n\n')[0]!)).toEqual([...counts, ['all', String(keptIndices.length), String(3 - keptIndices.length)]]);
    expect(stdout.text()).toContain(`wrote ${out}\n`);

    const text = readFileSync(out, 'utf8');
    const parsed = parseJsonlManifest(text, { source: out, resolveAudio: (p) => resolve(dirname(out), p) });
    expect(parsed.skipped).toEqual([]);
    expect(parsed.examples.map((e) => [e.audio, e.text, e.language])).toEqual(keptIndices.map((i) => [evaluated.utterances[i]!.audio, evaluated.utterances[i]!.hypothesis, evaluated.utterances[i]!.language]));
    const raw = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    raw.forEach((r, k) => {
      const i = keptIndices[k]!;
      expect(r.audio).not.toMatch(/^\//); // relative to the output's folder
      expect(r.reference).toBe(references[i]);
      expect(r[i === 0 ? 'cer' : 'wer']).toBe(rates[i]);
      expect(Math.abs((r.duration as number) - clips[i]!.seconds)).toBeLessThan(1e-3);
    });
    // Written through a temporary file renamed into place: nothing else is left in the folder.
    expect(readdirSync(dirname(out))).toEqual(['train.jsonl']);
  });
});

describe('--data', () => {
  it('reads JSON Lines, audiofolder and Common Voice layouts; refuses a folder that is neither', async () => {
    const clip = clips[1]!;
    const folder = join(dir, 'audiofolder');
    mkdirSync(folder);
    copyFileSync(sampleAudio(clip), join(folder, 'a.flac'));
    writeFileSync(join(folder, 'metadata.csv'), `file_name,transcription,language\na.flac,"${clip.text}",en\n`);
    const cv = join(dir, 'cv');
    mkdirSync(join(cv, 'clips'), { recursive: true });
    copyFileSync(sampleAudio(clip), join(cv, 'clips', 'a.flac'));
    const tsv = `client_id\tpath\tsentence\tlocale\nc\ta.flac\t${clip.text}\ten\n`;
    writeFileSync(join(cv, 'test.tsv'), tsv);
    writeFileSync(join(cv, 'dev.tsv'), tsv.replace('\ten\n', '\tfr\n'));
    const read = async (path: string) => (await readManifestArgument(path)).examples.map((e) => [e.audio, e.text, e.language]);
    expect(await read(folder)).toEqual([[join(folder, 'a.flac'), clip.text, 'en']]);
    expect(await read(join(folder, 'metadata.csv'))).toEqual([[join(folder, 'a.flac'), clip.text, 'en']]);
    expect(await read(cv)).toEqual([[join(cv, 'clips', 'a.flac'), clip.text, 'en']]);
    expect(await read(join(cv, 'dev.tsv'))).toEqual([[join(cv, 'clips', 'a.flac'), clip.text, 'fr']]);
    expect((await read(manifest)).length).toBe(3);
    await expect(readManifestArgument(join(dir, 'labels', 'nothing'))).rejects.toThrow(`--data ${join(dir, 'labels', 'nothing')}: no such file or folder`);
    await expect(readManifestArgument(join(cv, 'clips'))).rejects.toThrow('a folder must hold metadata.csv (audiofolder) or test.tsv (Common Voice)');
  });

  it('bad arguments are refused with the reason before any model is loaded; as a command, with exit code 1', async () => {
    const io = { stdout: capture().stream, stderr: capture().stream };
    await expect(pseudoLabelCommand(['--teacher', model, '--data', manifest, '--out', join(dir, 'x.jsonl'), '--max-wer', 'ten'], io)).rejects.toThrow('--max-wer must be a non-negative fraction such as 0.1, got "ten"');
    await expect(pseudoLabelCommand(['--teacher', model, '--data', manifest], io)).rejects.toThrow('--out is required');
    await expect(evalCommand(['--model', model, '--data', manifest, '--limit', '0'], io)).rejects.toThrow('--limit must be a positive integer, got "0"');
    const noModel = await run('npx', ['tsx', 'src/cli/main.ts', 'eval', '--data', manifest]).catch((e: { code: number; stderr: string }) => e);
    expect(noModel).toMatchObject({ code: 1 });
    expect((noModel as { stderr: string }).stderr).toContain('dqw eval: --model is required');
  });
});

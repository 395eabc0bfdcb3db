import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { readMelFilters } from '../../src/audio/mel-filters.js';
import { HOP_LENGTH, N_FRAMES, N_SAMPLES, LogMelSpectrogram } from '../../src/audio/logmel.js';
import { tokenSequence } from '../../src/distill/batch.js';
import { whisperForwardRef } from '../ref/whisper.js';
import type { TrainingExample } from '../../src/data/examples.js';
import { parseJsonlManifest } from '../../src/data/manifests.js';
import { GpuDecoderBackend } from '../../src/decode/gpu-backend.js';
import { transcribe } from '../../src/decode/transcribe.js';
import { Evaluator, formatEvalTable, type EvaluationResult } from '../../src/eval/evaluate.js';
import { selectPseudoLabels } from '../../src/eval/pseudo-label.js';
import { readAudioFile16k } from '../../src/io/audio-file.js';
import { loadWhisperTokenizer } from '../../src/io/text-assets.js';
import { WhisperInference } from '../../src/model/inference.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { WhisperWeights } from '../../src/model/whisper.js';
import { whisperNormalizer } from '../../src/text/normalizers.js';
import type { WhisperTokenizer } from '../../src/text/tokenizer.js';
import { sampleAudio, sampleLines, tempDir } from '../data/fixtures.js';
import { useGpu } from '../helpers.js';
import { expectedTableRows, independentErrorRate, tableRows } from './scoring.js';
import { narrowWhisperConfig } from '../model/narrow-whisper.js';

// A random model (width 32, 2+2 layers, 3 s audio context, 32 text positions) with Whisper's
// real multilingual vocabulary and 80 mel bins: its transcripts are nonsense, but real, and the
// scoring is checked on them.
const config = narrowWhisperConfig;
const ASSETS = new URL('../../assets/', import.meta.url).pathname;
const HF_TINY = new URL('../../../shared/assets/whisper/hf-whisper-tiny/', import.meta.url).pathname;
const spellingMapping = JSON.parse(readFileSync(`${HF_TINY}normalizer.json`, 'utf8')) as Record<string, string>;
const normalize = whisperNormalizer(spellingMapping);

// Three short real clips: Chinese (scored by CER), English and Portuguese.
const clips = ['speech_recognition/chinese.flac', 'coqui_tts/LJ001-0008.flac', 'cheetah/test_pt_norm.wav'].map((audio) => sampleLines.find((l) => l.audio === audio)!);

const gpu = useGpu();
let dir = '';
let tokenizer: WhisperTokenizer;
let weights: WhisperWeights;
let inference: WhisperInference;
let evaluator: Evaluator;
let examples: TrainingExample[];
let first: EvaluationResult;

beforeAll(async () => {
  dir = await tempDir();
  writeFileSync(join(dir, 'broken.wav'), 'not audio at all');
  const manifest = [
    ...clips.map((c) => JSON.stringify({ audio: sampleAudio(c), text: c.text, language: c.language })),
    JSON.stringify({ audio: join(dir, 'missing.wav'), text: 'gone', language: 'en' }),
    JSON.stringify({ audio: join(dir, 'broken.wav'), text: 'broken', language: 'en' }),
  ].join('\n');
  const contents = parseJsonlManifest(manifest, { source: 'eval.jsonl' });
  expect(contents.skipped).toEqual([]);
  examples = contents.examples;
  tokenizer = await loadWhisperTokenizer(`${ASSETS}multilingual.tiktoken`, { vocabSize: config.vocab_size });
  const melFilters = readMelFilters(readFileSync(`${ASSETS}mel_filters.npz`)).get(80)!;
  weights = WhisperWeights.upload(gpu(), config, initWhisperWeights(config, 3, { std: 0.2, randomizeAll: true }));
  inference = new WhisperInference(weights);
  evaluator = new Evaluator(inference, { tokenizer, melFilters, spellingMapping });
  first = await evaluator.evaluate(examples, { readAudio: readAudioFile16k });
});
afterAll(() => {
  evaluator?.destroy();
  inference?.destroy();
  weights?.destroy();
});

describe('Evaluator', () => {
  it('scores the returned transcripts per language and overall as an independent Levenshtein count does; the table prints those numbers', () => {
    expect(first.utterances.map((u) => u.example)).toEqual(examples.slice(0, 3));
    // Audio length from the decoded samples vs the sample set's own durations (ms precision).
    first.utterances.forEach((u, i) => expect(Math.abs(u.audioSeconds - clips[i]!.seconds)).toBeLessThan(1e-3));
    expect(first.utterances.every((u) => u.hypothesis !== '' && u.decodeSeconds > 0)).toBe(true);
    const independent = first.utterances.map((u) => ({
      reference: normalize(u.example.text, u.example.language),
      hypothesis: normalize(u.hypothesis, u.example.language),
      language: u.example.language,
      audioSeconds: u.audioSeconds,
      decodeSeconds: u.decodeSeconds,
    }));
    expect(tableRows(formatEvalTable(first))).toEqual(expectedTableRows(independent));
    expect(first.languages.map((l) => [l.language, l.metric])).toEqual([['zh', 'cer'], ['en', 'wer'], ['pt', 'wer']]);
    expect(first.adapter).toEqual(gpu().adapter);
  });

  it('skips examples whose audio is missing or not audio, naming their lines', () => {
    expect(first.skipped.map((s) => [s.source, s.line])).toEqual([['eval.jsonl', 4], ['eval.jsonl', 5]]);
    expect(first.skipped[0]!.reason).toMatch(/^audio could not be read: ENOENT/);
    expect(first.skipped[1]!.reason).toMatch(/^audio could not be decoded: .*not a recognised audio format/);
  });

  it('decodes greedily in the example language: the same transcript as transcribe() at temperature 0 with that language', async () => {
    const backend = new GpuDecoderBackend(inference);
    const logMel = new LogMelSpectrogram(gpu(), readMelFilters(readFileSync(`${ASSETS}mel_filters.npz`)).get(80)!);
    try {
      const samples = await readAudioFile16k(examples[0]!.audio);
      const mel = await logMel.compute(samples, { length: samples.length + N_SAMPLES });
      const frames = mel.length / 80;
      const t = await transcribe(backend, tokenizer, { data: mel, bins: 80, frames }, { language: 'zh', temperature: 0, conditionOnPreviousText: false, contentFrames: frames - N_FRAMES });
      expect(first.utterances[0]!.hypothesis).toBe(t.text.trim());
      expect(t.language).toBe('zh');
    } finally {
      logMel.destroy();
    }
  });

  it('referenceLoss: the mean cross-entropy of each transcript\'s tokens after the prompt, as the float64 forward computes it, per language and overall', async () => {
    const r = await evaluator.referenceLoss(examples, { readAudio: readAudioFile16k });
    expect(r.skipped.map((s) => s.line)).toEqual([4, 5]);
    const hostWeights = initWhisperWeights(config, 3, { std: 0.2, randomizeAll: true });
    const logMel = new LogMelSpectrogram(gpu(), readMelFilters(readFileSync(`${ASSETS}mel_filters.npz`)).get(80)!);
    const expected: { language: string; loss: number; tokens: number }[] = [];
    try {
      for (const example of examples.slice(0, 3)) {
        const samples = await readAudioFile16k(example.audio);
        const mel = await logMel.compute(samples, { length: 2 * config.max_source_positions * HOP_LENGTH });
        const sequence = tokenSequence(tokenizer, example).slice(0, config.max_target_positions);
        const { logits } = whisperForwardRef(config, hostWeights, mel, sequence.slice(0, -1));
        let nll = 0;
        // <|sot|><|lang|><|transcribe|><|notimestamps|> are given: the first token scored is the text's first.
        for (let i = 3; i + 1 < sequence.length; i++) {
          const row = logits.subarray(i * config.vocab_size, (i + 1) * config.vocab_size);
          const max = Math.max(...row);
          nll += max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0)) - row[sequence[i + 1]!]!;
        }
        expected.push({ language: example.language, loss: nll / (sequence.length - 4), tokens: sequence.length - 4 });
      }
    } finally {
      logMel.destroy();
    }
    expect(r.languages.map((l) => [l.language, l.tokens])).toEqual(expected.map((e) => [e.language, e.tokens]));
    r.languages.forEach((l, i) => expect(Math.abs(l.loss - expected[i]!.loss)).toBeLessThan(1e-4 * expected[i]!.loss));
    const tokens = expected.reduce((a, e) => a + e.tokens, 0);
    expect(r.overall.tokens).toBe(tokens);
    expect(r.overall.loss).toBeCloseTo(expected.reduce((a, e) => a + e.loss * e.tokens, 0) / tokens, 4);
  });

  it('a second call compiles no program, reports progress per example and gives the same transcripts', async () => {
    // Programs are made by Recorder.finish (gpu.compile, compileGraph); submit() finishes one too,
    // for a one-shot run (the log-mel), and destroys it. Kept programs = finish() - submit() calls.
    const record = gpu().record.bind(gpu());
    let finished = 0;
    let submitted = 0;
    const spy = vi.spyOn(gpu(), 'record').mockImplementation(() => {
      const rec = record();
      const finish = rec.finish.bind(rec);
      const submit = rec.submit.bind(rec);
      rec.finish = () => {
        finished++;
        return finish();
      };
      rec.submit = () => {
        submitted++;
        return submit();
      };
      return rec;
    });
    const progress: [number, number, boolean][] = [];
    try {
      const again = await evaluator.evaluate(examples, { readAudio: readAudioFile16k, onProgress: (p) => progress.push([p.done, p.total, p.skipped !== undefined]) });
      expect(again.utterances.map((u) => u.hypothesis)).toEqual(first.utterances.map((u) => u.hypothesis));
    } finally {
      spy.mockRestore();
    }
    expect(submitted).toBe(3); // one log-mel per transcribed example
    expect(finished - submitted).toBe(0);
    expect(progress).toEqual([[1, 5, false], [2, 5, false], [3, 5, false], [4, 5, true], [5, 5, true]]);
  });
});

describe('selectPseudoLabels', () => {
  it('keeps exactly the transcripts whose WER (CER for Chinese) against the reference is at most the limit', () => {
    // The model's real transcripts against scripted references: equal, one word off, the clip's
    // own text, and punctuation only (empty once normalized).
    const variants = first.utterances.flatMap((u) => {
      const hyp = u.hypothesis;
      const oneOff = `${hyp} extra`;
      return [hyp, oneOff, u.example.text, '?!'].map((text) => ({ ...u, example: { ...u.example, text } }));
    });
    const maxErrorRate = 0.5;
    const { decisions, languages } = selectPseudoLabels(variants, { maxErrorRate, normalize });
    const expected = variants.map((u) => {
      const ref = normalize(u.example.text, u.example.language);
      if (ref.trim() === '') return { kept: false, errorRate: null };
      const rate = independentErrorRate(ref, normalize(u.hypothesis, u.example.language), u.example.language);
      return { kept: rate <= maxErrorRate, errorRate: rate };
    });
    expect(decisions.map((d) => ({ kept: d.kept, errorRate: d.errorRate }))).toEqual(expected);
    // Equal texts are always kept, punctuation-only references always dropped; so both outcomes occur.
    expect(decisions.filter((_, i) => i % 4 === 0).every((d) => d.kept)).toBe(true);
    expect(decisions.filter((_, i) => i % 4 === 3).map((d) => d.reason)).toEqual(Array(3).fill('reference is empty after normalization'));
    expect(languages).toEqual(['zh', 'en', 'pt'].map((language) => {
      const kept = expected.filter((e, i) => variants[i]!.example.language === language && e.kept).length;
      return { language, kept, dropped: 4 - kept };
    }));
  });
});

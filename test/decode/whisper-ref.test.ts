import { beforeAll, describe, expect, it } from 'vitest';
import { decodeWindows } from '../../src/decode/decode.js';
import { decoderModelInfo } from '../../src/decode/model.js';
import { RecomputeBackend, type RecomputeModel } from '../../src/decode/recompute.js';
import { transcribe } from '../../src/decode/transcribe.js';
import { presetConfig, type WhisperConfig } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import type { WhisperTokenizer } from '../../src/text/tokenizer.js';
import { Rng } from '../../src/util/random.js';
import { randomArray } from '../helpers.js';
import { whisperForwardRef } from '../ref/whisper.js';
import { expectSameStepLogits, expectSameTokens } from './backend-conformance.js';
import { Float64CachedBackend } from './kv-cache-backend.js';
import { multilingualTokenizer } from './scripted.js';

// Decoding a tiny random Whisper with the real multilingual vocabulary (so language detection,
// timestamp rules and suppression run on real ids) through two independent float64 backends:
// the reference Whisper recomputed at every step, and a key/value-cached decoder behind the same
// interface a GPU backend implements. Windows are 16 mel frames (8 encoder positions).
const cfg: WhisperConfig = {
  ...presetConfig('tiny'),
  d_model: 16, encoder_layers: 1, encoder_attention_heads: 2, encoder_ffn_dim: 32,
  decoder_layers: 2, decoder_attention_heads: 2, decoder_ffn_dim: 32, max_source_positions: 8, max_target_positions: 40,
};
const weights = initWhisperWeights(cfg, 5, { std: 0.5, randomizeAll: true });
const windowFloats = cfg.num_mel_bins * 2 * cfg.max_source_positions;
const mel = randomArray(2 * windowFloats, 17);

const referenceModel: RecomputeModel<Float64Array> = {
  info: decoderModelInfo(cfg),
  encodeWindow: (m) => whisperForwardRef(cfg, weights, m, [cfg.decoder_start_token_id]).encoderOut,
  lastLogits: (encoderOut, tokens) => whisperForwardRef(cfg, weights, [], tokens, { encoderOut }).logits.subarray((tokens.length - 1) * cfg.vocab_size),
};
const reference = new RecomputeBackend(referenceModel);
const cached = new Float64CachedBackend(cfg, weights);

let tok: WhisperTokenizer;
beforeAll(async () => {
  tok = await multilingualTokenizer();
});

/**
 * Violations of the timestamp grammar and suppression in decoded tokens, checked on the output
 * (independently of the filters that produced it): a first timestamp no later than
 * `maxInitialIndex`; a timestamp at the start or after a pair is followed by text, one after
 * text by a timestamp (or the end); timestamps never decrease, and increase after text; no
 * other special or non-speech tokens.
 */
function timestampGrammarViolations(t: WhisperTokenizer, tokens: readonly number[], maxInitialIndex: number): string[] {
  const problems: string[] = [];
  const isTs = (id: number) => id >= t.timestampBegin;
  if (tokens.length > 0 && !(isTs(tokens[0]!) && tokens[0]! - t.timestampBegin <= maxInitialIndex)) problems.push(`starts with ${tokens[0]}`);
  let last = -1;
  tokens.forEach((id, i) => {
    if (id >= t.eot && !isTs(id)) problems.push(`special token ${id} at ${i}`);
    if (t.nonSpeechTokens.includes(id)) problems.push(`non-speech token ${id} at ${i}`);
    if (i >= 1 && isTs(tokens[i - 1]!)) {
      const opening = i < 2 || isTs(tokens[i - 2]!);
      if (opening && isTs(id)) problems.push(`timestamp ${id} at ${i} after an opening timestamp`);
      if (!opening && !isTs(id)) problems.push(`text ${id} at ${i} after a closing timestamp`);
    }
    if (isTs(id)) {
      const afterText = i > 0 && !isTs(tokens[i - 1]!);
      if (afterText ? id <= last : id < last) problems.push(`timestamp ${id} at ${i} after ${last}`);
      last = id;
    }
  });
  return problems;
}

describe('random tiny Whisper: cached backend vs full recomputation', () => {
  it('the same logits at every step of the session protocol (float64: |diff| <= 1e-9)', async () => {
    const worst = await expectSameStepLogits(cached, reference, mel, 2, { atol: 1e-9, rtol: 1e-9 });
    console.log(`cached vs recomputed logits: max |diff| ${worst.toExponential(2)}`);
  });

  it('the same tokens: greedy with language detection and timestamps, beam search, prompt, best-of sampling', async () => {
    const results = await expectSameTokens(cached, reference, tok, mel, 2, [
      { sampleLen: 10 },
      { language: 'en', beamSize: 3, sampleLen: 8 },
      { language: 'de', withoutTimestamps: true, prompt: 'Guten Tag.', sampleLen: 8, beamSize: 2, patience: 1.5 },
      { language: 'fr', temperature: 0.7, bestOf: 2, sampleLen: 8, rng: new Rng(11) },
    ]);
    for (const r of results.flat()) expect(r.tokens.length).toBeGreaterThan(0);
    // Timestamps on (first and second sets): the output obeys the rules.
    for (const r of [...results[0]!, ...results[1]!]) expect(timestampGrammarViolations(tok, r.tokens, 50)).toEqual([]);
    // The checker itself catches each kind of violation.
    const [t0, t1, hi] = [tok.timestampBegin, tok.timestampBegin + 1, tok.encode(' hi')[0]!];
    expect([[t0, t1], [t0, hi, t1, hi], [t0, hi, t0], [hi], [t0 + 51, hi], [t0, tok.transcribe]].map((t) => timestampGrammarViolations(tok, t, 50).length > 0))
      .toEqual([true, true, true, true, true, true]);
    console.log('decoded:', results.map((set) => set.map((r) => tok.decodeWithTimestamps(r.tokens)).join(' | ')).join('\n  '));
  });

  it('beam search with one beam is greedy decoding', async () => {
    const audio = await cached.encode(mel, 2);
    for (const options of [{ language: 'en', sampleLen: 12 }, { language: 'ja', withoutTimestamps: true, sampleLen: 12 }]) {
      const greedy = await decodeWindows(cached, tok, audio, options);
      const beam = await decodeWindows(cached, tok, audio, { ...options, beamSize: 1 });
      expect(beam.map((r) => r.tokens)).toEqual(greedy.map((r) => r.tokens));
      beam.forEach((r, w) => expect(r.avgLogprob).toBeCloseTo(greedy[w]!.avgLogprob, 12));
    }
    audio.free();
  });

  it('long-form transcription gives the same transcript on both backends', async () => {
    const long = { data: randomArray(cfg.num_mel_bins * 40, 23), bins: cfg.num_mel_bins, frames: 40 };
    const options = { sampleLen: 6, temperature: [0, 0.6], seed: 3 };
    const ours = await transcribe(cached, tok, long, options);
    const theirs = await transcribe(reference, tok, long, options);
    expect(ours).toEqual(theirs);
    expect(ours.segments.length).toBeGreaterThan(0);
    console.log(`transcript (${ours.language}): ${ours.segments.map((s) => `[${s.start.toFixed(2)}-${s.end.toFixed(2)} T${s.temperature}] ${JSON.stringify(s.text)}`).join(' ')}`);
  });
});

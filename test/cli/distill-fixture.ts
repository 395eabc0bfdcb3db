// What the dqw distill/train command tests share: a random teacher saved as a Hugging Face folder,
// a narrower student config.json, and a manifest of short real clips, in a temporary folder. The
// real tokenizer and mel filters (vocabulary 51865, 80 bands) with a 3 s audio window (150
// positions) and narrow layers keep a step near a second on lavapipe.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { saveHfCheckpoint } from '../../src/io/node-files.js';
import { presetConfig, type WhisperConfig } from '../../src/model/config.js';
import { initWhisperWeights } from '../../src/model/init.js';
import { SPEECH_SAMPLES } from '../audio/clips.js';

/** Short clips of the sample set with the start of their transcripts. */
export const fixtureClips = [
  { audio: join(SPEECH_SAMPLES, 'leopard/test.wav'), text: 'Mr. Quilter is the apostle', language: 'en' },
  { audio: join(SPEECH_SAMPLES, 'leopard/test_de.wav'), text: 'Der hinter diesem Portal', language: 'de' },
  { audio: join(SPEECH_SAMPLES, 'leopard/test_es.wav'), text: 'Las arenas son blanquecinas', language: 'es' },
];

/** A new folder with `teacher/` (layers+layers, width 32), `student.json` (width 16) and `train.jsonl` (the first `clips` clips). */
export async function writeDistillFixture(prefix: string, o: { teacherLayers: number; studentLayers: number; clips: number }): Promise<{ dir: string; studentConfig: WhisperConfig }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const teacherConfig: WhisperConfig = {
    ...presetConfig('tiny'),
    d_model: 32, encoder_layers: o.teacherLayers, decoder_layers: o.teacherLayers, encoder_attention_heads: 2, decoder_attention_heads: 2,
    encoder_ffn_dim: 64, decoder_ffn_dim: 64, max_source_positions: 150, max_target_positions: 32,
  };
  const studentConfig: WhisperConfig = { ...teacherConfig, d_model: 16, encoder_layers: o.studentLayers, decoder_layers: o.studentLayers, encoder_ffn_dim: 32, decoder_ffn_dim: 32 };
  await saveHfCheckpoint(join(dir, 'teacher'), { config: teacherConfig, weights: initWhisperWeights(teacherConfig, 1, { std: 0.1 }) });
  writeFileSync(join(dir, 'student.json'), JSON.stringify({ ...studentConfig, model_type: 'whisper' }));
  writeFileSync(join(dir, 'train.jsonl'), fixtureClips.slice(0, o.clips).map((c) => JSON.stringify(c)).join('\n'));
  return { dir, studentConfig };
}

/** Streams that swallow a command's output. */
export const quiet = () => ({ stdout: new PassThrough().resume(), stderr: Object.assign(new PassThrough().resume(), { isTTY: false }) });

/** A `train` record of metrics.jsonl (the fields the tests read). */
export interface TrainRecord {
  type: string;
  step: number;
  loss: { total: number; ce: number; kl: number; hs: number };
  quantized?: boolean;
}

/** The `train` records of a run folder's metrics.jsonl. */
export const trainRecords = (run: string): TrainRecord[] =>
  readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TrainRecord).filter((r) => r.type === 'train');

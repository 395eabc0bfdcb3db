import { DqwError } from '../errors.js';
import type { SkippedRow, TrainingExample } from './examples.js';

/** Reads an example's audio as 16 kHz mono samples (Node: `readAudioFile16k`; browsers: fetch + `loadAudio16k`). */
export type AudioReader = (path: string) => Promise<Float32Array>;

/** An example's audio, or the skip record that replaces it when the audio cannot be used. */
export type ExampleAudio =
  | { readonly example: TrainingExample; readonly samples: Float32Array; readonly skipped?: undefined }
  | { readonly example: TrainingExample; readonly samples?: undefined; readonly skipped: SkippedRow };

/**
 * Loads an example's audio with `read`. Audio that cannot be decoded (any dq-whisper error, such
 * as `AudioDecodeError`) or read (a system error such as ENOENT or EACCES) becomes a skip record
 * naming the example's manifest and line, so one bad clip does not stop a training run. Other
 * errors are bugs and are rethrown.
 */
export async function loadExampleAudio(example: TrainingExample, read: AudioReader): Promise<ExampleAudio> {
  try {
    return { example, samples: await read(example.audio) };
  } catch (e) {
    const systemError = e instanceof Error && typeof (e as { code?: unknown }).code === 'string';
    if (!(e instanceof DqwError) && !systemError) throw e;
    const what = e instanceof DqwError ? 'could not be decoded' : 'could not be read';
    return { example, skipped: { line: example.line, source: example.source, reason: `audio ${what}: ${(e as Error).message}` } };
  }
}

import { readFileSync } from 'node:fs';

/** Whisper assets shared by the project (see shared/assets/whisper/README.md). */
export const WHISPER_ASSETS = new URL('../../../shared/assets/whisper/', import.meta.url).pathname;
export const HF_TINY = `${WHISPER_ASSETS}hf-whisper-tiny/`;
const SPEECH_SAMPLES = new URL('../../../shared/data/speech-samples/', import.meta.url).pathname;

/** One clip of shared/data/speech-samples/manifest.jsonl (the fields the text tests use). */
export interface SpeechSample {
  audio: string;
  text: string;
  language: string;
}

export function readSpeechSamples(): SpeechSample[] {
  return readFileSync(`${SPEECH_SAMPLES}manifest.jsonl`, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as SpeechSample);
}

export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

/** Reference outputs written by test/text/fixtures/make-goldens.py from independent implementations. */
export function readFixture<T>(name: string): T {
  return readJson<T>(new URL(`fixtures/${name}`, import.meta.url).pathname);
}

import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';

/** The real speech samples shared by the project (see their README.md). */
export const samplesDir = fileURLToPath(new URL('../../../shared/data/speech-samples', import.meta.url));
export const samplesManifest = join(samplesDir, 'manifest.jsonl');

/** One line of the samples' manifest, as its README describes it. */
export interface SampleLine {
  audio: string;
  text: string;
  language: string;
  seconds: number;
}

/** The samples' manifest lines, parsed here with JSON.parse (independently of src/data). */
export const sampleLines: SampleLine[] = readFileSync(samplesManifest, 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => JSON.parse(l) as SampleLine);

/** Absolute path of a sample clip. */
export const sampleAudio = (line: SampleLine): string => join(samplesDir, line.audio);

/** A fresh temporary folder, removed after the test file. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dqw-data-'));
  afterAll(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

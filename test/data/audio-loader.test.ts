import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadExampleAudio } from '../../src/data/audio-loader.js';
import { loadExampleAudioFile, readJsonlManifest } from '../../src/io/manifest-files.js';
import { sampleAudio, sampleLines, tempDir } from './fixtures.js';

const dir = await tempDir();

describe('example audio loading', () => {
  it('loads a real clip as 16 kHz mono and turns an undecodable file into a skip record with its manifest line', async () => {
    const clip = sampleLines.find((l) => l.audio === 'whisper.cpp/jfk.wav')!;
    await writeFile(join(dir, 'broken.wav'), 'RIFF but not really a wave file');
    const manifest = join(dir, 'manifest.jsonl');
    await writeFile(manifest, [
      JSON.stringify({ audio: sampleAudio(clip), text: clip.text, language: clip.language }),
      JSON.stringify({ audio: 'broken.wav', text: 'nothing here', language: 'en' }),
    ].join('\n'));
    // Parsing does not open audio: the broken file is a valid row until it is loaded.
    const { examples, skipped } = await readJsonlManifest(manifest);
    expect(skipped).toEqual([]);
    const [good, bad] = await Promise.all(examples.map(loadExampleAudioFile));
    // 16 kHz: the manifest's duration in samples; it states seconds to 1 ms, i.e. 16 samples.
    expect(Math.abs(good!.samples!.length - clip.seconds * 16000)).toBeLessThanOrEqual(16);
    expect(good!.skipped).toBeUndefined();
    expect(bad!.samples).toBeUndefined();
    expect(bad!.skipped).toEqual({ line: 2, source: manifest, reason: expect.stringMatching(new RegExp(`^audio could not be decoded: ${join(dir, 'broken.wav')}: `)) });
  });

  it('reports a file that vanished after parsing as unreadable, and rethrows errors that are bugs', async () => {
    const example = { audio: join(dir, 'gone.wav'), text: 'x', language: 'en', line: 7, source: 'm.jsonl' };
    const loaded = await loadExampleAudioFile(example);
    expect(loaded.skipped).toEqual({ line: 7, source: 'm.jsonl', reason: expect.stringMatching(/^audio could not be read: ENOENT/) });
    await expect(loadExampleAudio(example, () => Promise.reject(new TypeError('x is not a function')))).rejects.toThrow(TypeError);
  });
});

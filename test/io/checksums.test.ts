import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { publishedDigests, verifyKnownCheckpoint } from '../../src/io/checksums.js';
import { randomArray } from '../helpers.js';
import { useTempDir, whisperAssets } from './fixtures.js';

const tempDir = useTempDir();

describe('verifyKnownCheckpoint', () => {
  it('carries exactly the digests the assets README publishes', async () => {
    const readme = await readFile(join(whisperAssets, 'README.md'), 'utf8');
    const sha256Line = readme.split('\n').find((l) => l.includes('OpenAI .pt sha256'))!;
    const sha1Line = readme.split('\n').find((l) => l.includes('whisper.cpp ggml sha1'))!;
    const listed = (line: string) => [...line.matchAll(/(tiny|base|small) ([0-9a-f]{40,64})/g)].map((m) => [m[1], m[2]]);
    expect(listed(sha256Line)).toEqual(publishedDigests.filter((d) => d.algorithm === 'sha256').map((d) => [d.model, d.digest]));
    expect(listed(sha1Line)).toEqual(publishedDigests.filter((d) => d.algorithm === 'sha1').map((d) => [d.model, d.digest]));
    expect(publishedDigests.map((d) => d.file)).toEqual(['tiny.pt', 'base.pt', 'small.pt', 'ggml-tiny.bin', 'ggml-base.bin', 'ggml-small.bin']);
  });

  it('hashes a file named like a released checkpoint (as sha1sum/sha256sum do) and warns on mismatch', async () => {
    // 3 MB of data: several stream chunks.
    const data = new Uint8Array(randomArray(750_000, 9).buffer);
    for (const [name, tool, algorithm] of [['ggml-tiny.bin', 'sha1sum', 'sha1'], ['base.pt', 'sha256sum', 'sha256']] as const) {
      const path = join(tempDir(), name);
      await writeFile(path, data);
      const result = (await verifyKnownCheckpoint(path))!;
      const reference = execFileSync(tool, [path], { encoding: 'utf8' }).split(' ')[0];
      expect(result.algorithm).toBe(algorithm);
      expect(result.actual).toBe(reference);
      expect(result.matches).toBe(false);
      expect(result.warning).toContain(`${algorithm} ${reference} differs from the published ${result.digest}`);
    }
  });

  it('says nothing about files whose name is not a released one', async () => {
    const path = join(tempDir(), 'my-model.bin');
    await writeFile(path, 'x');
    expect(await verifyKnownCheckpoint(path)).toBeUndefined();
  });
});

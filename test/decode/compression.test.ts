import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compressionRatio } from '../../src/decode/compression.js';

// OpenAI's compression_ratio uses CPython's zlib; ours uses fflate's deflate, which makes slightly
// different streams. Goldens: fixtures/make-compression-goldens.py (79 real transcripts in 10
// languages and repetitive texts).
const goldens = JSON.parse(readFileSync(new URL('fixtures/compression-goldens.json', import.meta.url), 'utf8')) as {
  zlib_version: string;
  cases: { text: string; ratio: number }[];
};

describe('compressionRatio vs CPython zlib', () => {
  it('compressed size within max(2 bytes, 1.5%) of zlib on every text (worst case reported)', () => {
    let worst = 0;
    for (const { text, ratio } of goldens.cases) {
      const bytes = new TextEncoder().encode(text).length;
      const ours = compressionRatio(text);
      if (bytes === 0) {
        expect([ours, ratio]).toEqual([0, 0]);
        continue;
      }
      // Both sizes are integers, recovered exactly from the ratios.
      const zlibSize = Math.round(bytes / ratio);
      const ourSize = Math.round(bytes / ours);
      worst = Math.max(worst, Math.abs(ourSize - zlibSize));
      expect(Math.abs(ourSize - zlibSize), JSON.stringify(text.slice(0, 40))).toBeLessThanOrEqual(Math.max(2, 0.015 * zlibSize));
    }
    console.log(`compressionRatio: fflate sizes differ from zlib ${goldens.zlib_version}'s by at most ${worst} bytes over ${goldens.cases.length} texts`);
  });

  it('takes the same fallback decision (threshold 2.4) as zlib on every text', () => {
    for (const { text, ratio } of goldens.cases) expect(compressionRatio(text) > 2.4, text.slice(0, 40)).toBe(ratio > 2.4);
    expect(goldens.cases.filter((c) => c.ratio > 2.4).length).toBeGreaterThanOrEqual(5);
  });
});

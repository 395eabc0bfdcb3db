import { zlibSync } from 'fflate';

/**
 * OpenAI's `compression_ratio`: UTF-8 bytes of `text` over the bytes zlib's deflate (level 6, the
 * default) makes of them. Above 2.4, transcribe treats a decoding as repetitive and retries.
 * fflate (pure JS, works in browsers) stands in for zlib: its deflate makes streams a few bytes
 * different from zlib's on some inputs, so ratios can differ by a few percent (measured against
 * Python's zlib in test/decode/compression.test.ts).
 */
export function compressionRatio(text: string): number {
  const bytes = new TextEncoder().encode(text);
  return bytes.length / zlibSync(bytes, { level: 6 }).length;
}

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { presetConfig, whisperPresets } from '../../src/model/config.js';
import { tiktokenFileFor, WhisperTokenizer } from '../../src/text/tokenizer.js';

const assets = new URL('../../assets/', import.meta.url).pathname;
const ranks = { 'multilingual.tiktoken': readFileSync(`${assets}multilingual.tiktoken`, 'utf8'), 'gpt2.tiktoken': readFileSync(`${assets}gpt2.tiktoken`, 'utf8') };

describe('tiktokenFileFor', () => {
  it('every released model gets the rank file whose tokenizer has exactly its vocabulary, multilingual unless ".en"', () => {
    const sizes = new Set<number>();
    for (const preset of whisperPresets) {
      const { vocab_size } = presetConfig(preset);
      expect(tiktokenFileFor(vocab_size), preset).toBe(preset.endsWith('.en') ? 'gpt2.tiktoken' : 'multilingual.tiktoken');
      sizes.add(vocab_size);
    }
    expect([...sizes].sort()).toEqual([51864, 51865, 51866]);
    for (const vocabSize of sizes) {
      // fromTiktoken refuses a vocabulary size that the rank file and the special tokens do not add up to.
      const file = tiktokenFileFor(vocabSize);
      const tokenizer = WhisperTokenizer.fromTiktoken(ranks[file], { vocabSize, source: file });
      expect(tokenizer.vocabSize).toBe(vocabSize);
      expect(tokenizer.multilingual).toBe(vocabSize !== 51864);
    }
  });
});

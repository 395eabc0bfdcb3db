import { readFile } from 'node:fs/promises';
import { TokenizerError } from '../errors.js';
import { parseSuppressTokenConfig, type SuppressTokenConfig } from '../text/generation-config.js';
import { WhisperTokenizer, type WhisperTokenizerOptions } from '../text/tokenizer.js';

// Node file readers for the text assets; the parsers live in src/text and take the contents.

/** Reads a tiktoken rank file (multilingual.tiktoken or gpt2.tiktoken) and builds the Whisper tokenizer. */
export async function loadWhisperTokenizer(
  tiktokenPath: string,
  options: Omit<WhisperTokenizerOptions, 'source'> = {},
): Promise<WhisperTokenizer> {
  return WhisperTokenizer.fromTiktoken(await readFile(tiktokenPath, 'utf8'), { ...options, source: tiktokenPath });
}

async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new TokenizerError(`${path}: not valid JSON (${(cause as Error).message})`, { cause });
  }
}

/**
 * Reads the British→American spelling mapping of Whisper's English normalizer (Hugging Face's
 * normalizer.json, OpenAI's english.json): a JSON object of word → word.
 */
export async function loadSpellingMapping(path: string): Promise<Record<string, string>> {
  const json = await readJson(path);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new TokenizerError(`${path}: expected a JSON object of word → word`);
  for (const [word, mapped] of Object.entries(json)) {
    if (typeof mapped !== 'string') throw new TokenizerError(`${path}: "${word}" maps to ${JSON.stringify(mapped)}, expected a string`);
  }
  return json as Record<string, string>;
}

/** Reads `suppress_tokens` and `begin_suppress_tokens` from a generation_config.json file. */
export async function loadSuppressTokenConfig(path: string, options: { vocabSize?: number } = {}): Promise<SuppressTokenConfig> {
  return parseSuppressTokenConfig(await readJson(path), { ...options, source: path });
}

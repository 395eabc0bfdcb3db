import { TokenizerError } from '../errors.js';

/** The token-suppression lists of a Hugging Face generation_config.json. */
export interface SuppressTokenConfig {
  /** Ids suppressed at every step (`suppress_tokens`); undefined when the file has none. */
  suppressTokens?: number[];
  /** Ids suppressed at the first sampled position (`begin_suppress_tokens`); undefined when absent. */
  beginSuppressTokens?: number[];
}

/**
 * Reads `suppress_tokens` and `begin_suppress_tokens` from a parsed generation_config.json.
 * With `vocabSize`, every id must lie in the vocabulary.
 */
export function parseSuppressTokenConfig(json: unknown, options: { vocabSize?: number; source?: string } = {}): SuppressTokenConfig {
  const source = options.source ?? 'generation_config.json';
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new TokenizerError(`${source}: expected a JSON object`);
  }
  const record = json as Record<string, unknown>;
  const ids = (field: string): number[] | undefined => {
    const value = record[field];
    if (value === undefined || value === null) return undefined;
    if (!Array.isArray(value)) throw new TokenizerError(`${source}: "${field}" must be an array of token ids`);
    for (const [i, id] of value.entries()) {
      const limit = options.vocabSize ?? Infinity;
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= limit) {
        throw new TokenizerError(
          `${source}: "${field}"[${i}] is ${JSON.stringify(id)}, expected a token id` +
            (options.vocabSize === undefined ? '' : ` below the vocabulary size ${options.vocabSize}`),
        );
      }
    }
    return value as number[];
  };
  const config: SuppressTokenConfig = {};
  const suppressTokens = ids('suppress_tokens');
  const beginSuppressTokens = ids('begin_suppress_tokens');
  if (suppressTokens) config.suppressTokens = suppressTokens;
  if (beginSuppressTokens) config.beginSuppressTokens = beginSuppressTokens;
  return config;
}

// OpenAI's logit filters (whisper/decoding.py SuppressBlank, SuppressTokens, ApplyTimestampRules),
// applied in that order to the logits of every decoding step before a token is chosen.

/**
 * A rule that masks logits in place. `logits` is row-major [sequences, vocab]; `tokens[s]` is all
 * of sequence s so far, the initial tokens (prompt, SOT sequence, prefix) included.
 */
export interface LogitFilter {
  apply(logits: Float32Array, tokens: readonly (readonly number[])[]): void;
}

function vocabOf(logits: Float32Array, tokens: readonly (readonly number[])[]): number {
  return logits.length / tokens.length;
}

/** Masks `ids` in every row. */
function maskIds(logits: Float32Array, vocab: number, ids: readonly number[]): void {
  for (let row = 0; row < logits.length; row += vocab) for (const id of ids) logits[row + id] = -Infinity;
}

/** At the first sampled position, forbids a lone space and <|endoftext|> (OpenAI's `SuppressBlank`). */
export class SuppressBlank implements LogitFilter {
  /**
   * @param ids the tokens to forbid: the tokenizer's `beginSuppressTokens`
   * @param sampleBegin number of initial tokens, i.e. the length at the first sampled position
   */
  constructor(private readonly ids: readonly number[], private readonly sampleBegin: number) {}

  apply(logits: Float32Array, tokens: readonly (readonly number[])[]): void {
    if (tokens[0]!.length === this.sampleBegin) maskIds(logits, vocabOf(logits, tokens), this.ids);
  }
}

/** Forbids `ids` at every step (OpenAI's `SuppressTokens`). */
export class SuppressTokens implements LogitFilter {
  constructor(private readonly ids: readonly number[]) {}

  apply(logits: Float32Array, tokens: readonly (readonly number[])[]): void {
    maskIds(logits, vocabOf(logits, tokens), this.ids);
  }
}

/** Token ids {@link ApplyTimestampRules} needs. */
export interface TimestampTokens {
  /** <|endoftext|>: every id below it is a text token. */
  readonly eot: number;
  /** <|notimestamps|> */
  readonly noTimestamps: number;
  /** <|0.00|>: every id from it on is a timestamp. */
  readonly timestampBegin: number;
}

/**
 * OpenAI's `ApplyTimestampRules`: timestamps come in pairs (except the last one before
 * <|endoftext|>), never decrease, and a segment has nonzero length; the first sampled token is a
 * timestamp no later than `maxInitialTimestampIndex` steps; and when the probability mass of
 * all timestamps exceeds that of the likeliest text token, a timestamp must be sampled.
 */
export class ApplyTimestampRules implements LogitFilter {
  /**
   * @param ids the special token ids
   * @param sampleBegin number of initial tokens
   * @param maxInitialTimestampIndex last allowed initial timestamp in timestamp steps; null for none
   */
  constructor(
    private readonly ids: TimestampTokens,
    private readonly sampleBegin: number,
    private readonly maxInitialTimestampIndex: number | null,
  ) {}

  apply(logits: Float32Array, tokens: readonly (readonly number[])[]): void {
    const vocab = vocabOf(logits, tokens);
    const { eot, noTimestamps, timestampBegin } = this.ids;
    for (let k = 0; k < tokens.length; k++) {
      const row = logits.subarray(k * vocab, (k + 1) * vocab);
      // <|notimestamps|> belongs to the SOT sequence (without_timestamps), never to the sample.
      row[noTimestamps] = -Infinity;

      const seq = tokens[k]!.slice(this.sampleBegin);
      const lastWasTimestamp = seq.length >= 1 && seq[seq.length - 1]! >= timestampBegin;
      const penultimateWasTimestamp = seq.length < 2 || seq[seq.length - 2]! >= timestampBegin;
      if (lastWasTimestamp) {
        if (penultimateWasTimestamp) row.fill(-Infinity, timestampBegin); // has to be text now
        else row.fill(-Infinity, 0, eot); // closes a pair: a timestamp or <|endoftext|>
      }

      let lastTimestamp = -1;
      for (const t of seq) if (t >= timestampBegin) lastTimestamp = t;
      if (lastTimestamp >= 0) {
        // Timestamps never decrease; a new segment must start after the last one ended, so a
        // segment has nonzero length (this prevents infinite loops).
        const end = lastWasTimestamp && !penultimateWasTimestamp ? lastTimestamp : lastTimestamp + 1;
        row.fill(-Infinity, timestampBegin, end);
      }
    }

    if (tokens[0]!.length === this.sampleBegin) {
      for (let k = 0; k < tokens.length; k++) {
        const row = logits.subarray(k * vocab, (k + 1) * vocab);
        row.fill(-Infinity, 0, timestampBegin); // the sample starts with a timestamp
        if (this.maxInitialTimestampIndex !== null) row.fill(-Infinity, timestampBegin + this.maxInitialTimestampIndex + 1);
      }
    }

    for (let k = 0; k < tokens.length; k++) {
      const row = logits.subarray(k * vocab, (k + 1) * vocab);
      // OpenAI compares log-softmax values; the softmax normaliser cancels, so raw logits do.
      const timestampMass = logSumExp(row, timestampBegin, vocab);
      let maxText = -Infinity;
      for (let i = 0; i < timestampBegin; i++) if (row[i]! > maxText) maxText = row[i]!;
      if (timestampMass > maxText) row.fill(-Infinity, 0, timestampBegin);
    }
  }
}

/**
 * log Σ exp(x[i] / temperature) over [begin, end), in float64; −∞ when every term is −∞. The
 * temperature (default 1) is a divisor, as the distillation losses soften logits.
 */
export function logSumExp(x: ArrayLike<number>, begin = 0, end = x.length, temperature = 1): number {
  let max = -Infinity;
  for (let i = begin; i < end; i++) if (x[i]! / temperature > max) max = x[i]! / temperature;
  if (max === -Infinity || Number.isNaN(max)) return max;
  let sum = 0;
  for (let i = begin; i < end; i++) sum += Math.exp(x[i]! / temperature - max);
  return max + Math.log(sum);
}

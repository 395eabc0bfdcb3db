import { DqwError } from '../errors.js';

/**
 * A tokenizer file, option or input that the Whisper tokenizer cannot accept: a malformed
 * tiktoken line, an unknown language or token id, special-token text where none is allowed.
 */
export class TokenizerError extends DqwError {}

/** Input that WER/CER scoring cannot accept, such as an empty reference. */
export class EvaluationError extends DqwError {}

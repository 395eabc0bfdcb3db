/** Base class of every error dq-whisper throws on purpose. */
export class DqwError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** No WebGPU adapter could be obtained. The message says how to get one. */
export class NoAdapterError extends DqwError {}

/** The GPU device was lost (driver reset, destroy(), or out of resources). */
export class DeviceLostError extends DqwError {
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(message);
  }
}

/** A WebGPU validation error, attributed to the kernel or operation that caused it. */
export class GpuValidationError extends DqwError {
  constructor(
    message: string,
    readonly context: string,
  ) {
    super(message);
  }
}

/** The GPU ran out of memory while allocating the named tensor or buffer. */
export class GpuOutOfMemoryError extends DqwError {
  constructor(
    message: string,
    readonly context: string,
  ) {
    super(message);
  }
}

/** A kernel was dispatched with a binding that does not match its WGSL declaration. */
export class KernelBindingError extends DqwError {}

/** Tensor shapes or arguments that an operation cannot accept. */
export class ShapeError extends DqwError {}

/** A model configuration (config.json, preset, ggml hparams) that is missing a field or is inconsistent. */
export class ConfigError extends DqwError {}

/**
 * A checkpoint file that cannot be loaded or written as it is: missing or unexpected tensors, a
 * wrong shape or dtype, truncated or overlapping data, or weights that disagree with the config.
 * `file` is the file and `tensor` the first tensor concerned (when one is); the message names both.
 */
export class CheckpointError extends DqwError {
  constructor(
    message: string,
    readonly file: string,
    readonly tensor?: string,
  ) {
    super(message);
  }
}

/**
 * A tokenizer file, option or input that the Whisper tokenizer cannot accept: a malformed
 * tiktoken line, an unknown language or token id, special-token text where none is allowed.
 */
export class TokenizerError extends DqwError {}

/** Input that WER/CER scoring cannot accept, such as an empty reference. */
export class EvaluationError extends DqwError {}

/**
 * Audio bytes that cannot be decoded: an unknown or unsupported container or codec, a malformed
 * header, or data cut short. `file` is the file name given to the decoder (or "<audio bytes>").
 */
export class AudioDecodeError extends DqwError {
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
  }
}

/**
 * Decoding options or inputs that Whisper decoding cannot accept (beam size with best-of, a
 * prompt past the text context, a mel of the wrong shape), or a backend called out of protocol.
 */
export class DecodingError extends DqwError {}

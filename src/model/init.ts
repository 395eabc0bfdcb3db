import { ConfigError, ShapeError } from '../errors.js';
import { Rng } from '../util/random.js';
import { sinusoidalPositions, tiedOutputProjection, validateWhisperConfig, whisperParameters, type WhisperConfig } from './config.js';

/** Options of {@link initWhisperWeights}. */
export interface WhisperInitOptions {
  /** Standard deviation of the normal weights; default the config's `init_std` (extra field), else 0.02 as transformers. */
  std?: number;
  /**
   * Draw every tensor at random (except the frozen sinusoidal encoder positions): biases and
   * LayerNorm biases N(0, std²), LayerNorm weights N(1, std²), and the padding row of the token
   * embedding too. For tests, where zeros and ones would hide mistakes. Default false.
   */
  randomizeAll?: boolean;
}

/** Number of elements of a tensor of this shape (1 for a scalar). */
export function elementsOf(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

const encoderPositions = 'model.encoder.embed_positions.weight';
const tokenEmbedding = 'model.decoder.embed_tokens.weight';

function isLayerNorm(name: string): boolean {
  return /(^|\.|_)layer_norm\.(weight|bias)$/.test(name);
}

/**
 * Fresh Whisper weights keyed by Hugging Face name, as transformers'
 * `WhisperPreTrainedModel._init_weights` makes them: Linear, Conv1d and Embedding weights (the
 * decoder's learned positions included) N(0, std²), biases 0, LayerNorm weight 1 and bias 0, the
 * token embedding's padding row (`pad_token_id`, nn.Embedding's padding_idx) 0, and the encoder
 * positions Whisper's fixed sinusoids. Deterministic for a seed: tensors are drawn in
 * {@link whisperParameters} order from one {@link Rng}. `proj_out.weight` is tied to the token
 * embedding and not included.
 */
export function initWhisperWeights(config: WhisperConfig, seed: number, opts: WhisperInitOptions = {}): Map<string, Float32Array> {
  validateWhisperConfig(config);
  const configStd = config.extra?.init_std;
  const std = opts.std ?? (typeof configStd === 'number' ? configStd : 0.02);
  if (!Number.isFinite(std) || std <= 0) throw new ConfigError(`init std must be a positive number, got ${std}`);
  const rng = new Rng(seed);
  const weights = new Map<string, Float32Array>();
  for (const { name, shape } of whisperParameters(config)) {
    let values: Float32Array;
    if (name === encoderPositions) {
      values = sinusoidalPositions(shape[0]!, shape[1]!);
    } else if (isLayerNorm(name)) {
      const one = name.endsWith('.weight') ? 1 : 0;
      values = opts.randomizeAll ? rng.fillNormal(new Float32Array(elementsOf(shape)), std, one) : new Float32Array(elementsOf(shape)).fill(one);
    } else if (name.endsWith('.bias')) {
      values = opts.randomizeAll ? rng.fillNormal(new Float32Array(elementsOf(shape)), std) : new Float32Array(elementsOf(shape));
    } else {
      values = rng.fillNormal(new Float32Array(elementsOf(shape)), std);
      if (name === tokenEmbedding && !opts.randomizeAll) {
        values.fill(0, config.pad_token_id * config.d_model, (config.pad_token_id + 1) * config.d_model);
      }
    }
    weights.set(name, values);
  }
  return weights;
}

/**
 * Check that `weights` holds exactly the tensors of a Whisper with this config, each with the
 * element count of its shape. `proj_out.weight` may be present (tied to the token embedding; some
 * checkpoints store it) and is then checked too. Throws ShapeError listing every missing,
 * unexpected or wrongly sized tensor by name; `source` (a file name) starts the message.
 */
export function checkWhisperWeights(config: WhisperConfig, weights: ReadonlyMap<string, { readonly length: number }>, source = 'weights'): void {
  const problems: string[] = [];
  const expected = new Map(whisperParameters(config).map((p) => [p.name, p.shape] as const));
  for (const [name, shape] of expected) {
    const tensor = weights.get(name);
    if (tensor === undefined) problems.push(`missing tensor "${name}" [${shape.join(', ')}]`);
    else if (tensor.length !== elementsOf(shape)) {
      problems.push(`tensor "${name}" has ${tensor.length} elements, expected ${elementsOf(shape)} for shape [${shape.join(', ')}]`);
    }
  }
  const tiedShape = expected.get(tiedOutputProjection.tiedTo)!;
  for (const [name, tensor] of weights) {
    if (expected.has(name)) continue;
    if (name === tiedOutputProjection.name) {
      if (tensor.length !== elementsOf(tiedShape)) {
        problems.push(`tensor "${name}" has ${tensor.length} elements, expected ${elementsOf(tiedShape)} for shape [${tiedShape.join(', ')}]`);
      }
    } else {
      problems.push(`unexpected tensor "${name}"`);
    }
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 12);
    const more = problems.length > shown.length ? `\n  ... and ${problems.length - shown.length} more` : '';
    throw new ShapeError(
      `${source}: ${problems.length} tensor problem(s) for a Whisper with d_model ${config.d_model}, ` +
        `${config.encoder_layers}+${config.decoder_layers} layers, vocab ${config.vocab_size}:\n  ${shown.join('\n  ')}${more}`,
    );
  }
}

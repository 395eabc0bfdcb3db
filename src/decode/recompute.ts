import { DecodingError } from '../errors.js';
import { checkAudioIndex, checkReorderParents, checkStepTokens, type DecoderBackend, type DecoderModelInfo, type DecoderSession, type EncodedAudio } from './model.js';

/**
 * A model given as two plain functions: an encoder for one window and a full decoder pass that
 * returns the logits at the last position. Whatever `Features` is (encoder states, or a script's
 * key for a fake model) stays opaque to decoding.
 */
export interface RecomputeModel<Features> {
  readonly info: DecoderModelInfo;
  /** Encodes one channel-major [melBins, windowFrames] window. */
  encodeWindow(mel: Float32Array): Features | Promise<Features>;
  /** Logits [vocabSize] at the last position of `tokens`, recomputed from the whole sequence. */
  lastLogits(features: Features, tokens: readonly number[]): ArrayLike<number> | Promise<ArrayLike<number>>;
}

class RecomputeAudio<Features> implements EncodedAudio {
  private released = false;
  constructor(readonly owner: RecomputeBackend<Features>, private readonly features: readonly Features[]) {}
  get windows(): number {
    return this.features.length;
  }
  window(index: number): Features {
    if (this.released) throw new DecodingError('encoded audio was used after free()');
    return this.features[index]!;
  }
  free(): void {
    this.released = true;
  }
}

class RecomputeSession<Features> implements DecoderSession {
  private histories: number[][];
  private released = false;

  constructor(
    private readonly info: DecoderModelInfo,
    private readonly audio: RecomputeAudio<Features>,
    private readonly audioIndex: readonly number[],
    private readonly model: RecomputeModel<Features>,
  ) {
    this.histories = audioIndex.map(() => []);
  }

  get sequences(): number {
    return this.audioIndex.length;
  }

  get length(): number {
    return this.histories[0]!.length;
  }

  async step(tokens: readonly (readonly number[])[]): Promise<Float32Array> {
    this.checkOpen();
    checkStepTokens(this.info, this.sequences, this.length, tokens);
    const vocab = this.info.vocabSize;
    const out = new Float32Array(this.sequences * vocab);
    for (let s = 0; s < this.sequences; s++) {
      this.histories[s]!.push(...tokens[s]!);
      const row = await this.model.lastLogits(this.audio.window(this.audioIndex[s]!), this.histories[s]!);
      if (row.length !== vocab) throw new DecodingError(`lastLogits returned ${row.length} logits, expected vocabSize ${vocab}`);
      out.set(row, s * vocab);
    }
    return out;
  }

  async reorder(parents: readonly number[]): Promise<void> {
    this.checkOpen();
    checkReorderParents(this.sequences, this.audioIndex, parents);
    this.histories = parents.map((p) => this.histories[p]!.slice());
  }

  free(): void {
    this.released = true;
  }

  private checkOpen(): void {
    if (this.released) throw new DecodingError('decoder session was used after free()');
  }
}

/**
 * The reference {@link DecoderBackend}: no cache, every step recomputes the decoder over each
 * sequence's whole token history. Slow and simple, for tests and as the yardstick a cached
 * backend must match token for token.
 */
export class RecomputeBackend<Features> implements DecoderBackend {
  readonly info: DecoderModelInfo;

  constructor(private readonly model: RecomputeModel<Features>) {
    this.info = model.info;
  }

  async encode(mel: Float32Array, windows: number): Promise<EncodedAudio> {
    const size = this.info.melBins * this.info.windowFrames;
    if (!Number.isInteger(windows) || windows < 1 || mel.length !== windows * size) {
      throw new DecodingError(`encode: mel has ${mel.length} values, expected ${windows} windows of [${this.info.melBins}, ${this.info.windowFrames}]`);
    }
    const features: Features[] = [];
    for (let w = 0; w < windows; w++) features.push(await this.model.encodeWindow(mel.subarray(w * size, (w + 1) * size)));
    return new RecomputeAudio(this, features);
  }

  async startSession(audio: EncodedAudio, audioIndex: readonly number[]): Promise<DecoderSession> {
    if (!(audio instanceof RecomputeAudio) || audio.owner !== this) {
      throw new DecodingError('startSession: the audio was not encoded by this backend');
    }
    checkAudioIndex(audio.windows, audioIndex);
    return new RecomputeSession(this.info, audio as RecomputeAudio<Features>, audioIndex, this.model);
  }
}

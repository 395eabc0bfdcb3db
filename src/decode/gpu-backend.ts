import { DecodingError } from '../errors.js';
import type { DecodingSession, EncodedWindows, WhisperInference } from '../model/inference.js';
import { checkAudioIndex, checkReorderParents, checkStepTokens, decoderModelInfo, type DecoderBackend, type DecoderModelInfo, type DecoderSession, type EncodedAudio } from './model.js';

// The decoding algorithms' view (DecoderBackend) of Whisper on the GPU with KV caches
// (model/inference.ts): argument checks shared with every backend, and the mapping of a
// session's sequences onto encoded windows.

class GpuEncodedAudio implements EncodedAudio {
  constructor(
    readonly owner: GpuDecoderBackend,
    readonly encoded: EncodedWindows,
  ) {}

  get windows(): number {
    return this.encoded.windows;
  }

  free(): void {
    this.encoded.free();
  }
}

class GpuDecoderSession implements DecoderSession {
  constructor(
    private readonly info: DecoderModelInfo,
    private readonly session: DecodingSession,
    private readonly audioIndex: readonly number[],
    /** Windows encoded for this session alone (see GpuDecoderBackend.startSession). */
    private readonly own: EncodedWindows | null,
  ) {}

  get sequences(): number {
    return this.audioIndex.length;
  }

  get length(): number {
    return this.session.length;
  }

  async step(tokens: readonly (readonly number[])[]): Promise<Float32Array> {
    checkStepTokens(this.info, this.sequences, this.length, tokens);
    return this.session.step(tokens);
  }

  async reorder(parents: readonly number[]): Promise<void> {
    checkReorderParents(this.sequences, this.audioIndex, parents);
    return this.session.reorder(parents);
  }

  free(): void {
    this.session.free();
    this.own?.free();
  }
}

/**
 * A {@link DecoderBackend} running Whisper on the GPU: one encoder program per window count,
 * self-attention key/value caches per session, one-token step programs replayed per token.
 * Sessions whose sequences come window by window in equal numbers (as decoding opens them: B
 * beams or samples per window) share each window's cross-attention keys and values; any other
 * mapping encodes one window per sequence for the session.
 */
export class GpuDecoderBackend implements DecoderBackend {
  readonly info: DecoderModelInfo;

  constructor(readonly inference: WhisperInference) {
    this.info = decoderModelInfo(inference.config);
  }

  async encode(mel: Float32Array, windows: number): Promise<EncodedAudio> {
    const size = this.info.melBins * this.info.windowFrames;
    if (!Number.isInteger(windows) || windows < 1 || mel.length !== windows * size) {
      throw new DecodingError(`encode: mel has ${mel.length} values, expected ${windows} windows of [${this.info.melBins}, ${this.info.windowFrames}]`);
    }
    return new GpuEncodedAudio(this, await this.inference.encode(mel, windows));
  }

  async startSession(audio: EncodedAudio, audioIndex: readonly number[]): Promise<DecoderSession> {
    if (!(audio instanceof GpuEncodedAudio) || audio.owner !== this) throw new DecodingError('startSession: the audio was not encoded by this backend');
    checkAudioIndex(audio.windows, audioIndex);
    const perWindow = audioIndex.length / audio.windows;
    const grouped = Number.isInteger(perWindow) && audioIndex.every((w, s) => w === Math.floor(s / perWindow));
    if (grouped) {
      return new GpuDecoderSession(this.info, await this.inference.startSession(audio.encoded, { sequencesPerWindow: perWindow }), audioIndex, null);
    }
    const size = this.info.melBins * this.info.windowFrames;
    const mel = audio.encoded.mel;
    const perSequence = new Float32Array(audioIndex.length * size);
    audioIndex.forEach((w, s) => perSequence.set(mel.subarray(w * size, (w + 1) * size), s * size));
    const own = await this.inference.encode(perSequence, audioIndex.length);
    return new GpuDecoderSession(this.info, await this.inference.startSession(own), audioIndex, own);
  }

  /** Free the programs and caches (the weights stay with their owner). */
  destroy(): void {
    this.inference.destroy();
  }
}

/** Audio as decoded from a file, before any resampling or downmixing. */
export interface DecodedAudio {
  /** Samples per second per channel, as stored in the file. */
  sampleRate: number;
  /** Number of channels; `samples.length`. */
  channels: number;
  /** One array per channel (planar), full scale [-1, 1]; all of the same length. */
  samples: Float32Array[];
}

import { readFile } from 'node:fs/promises';
import { decodeAudio } from '../audio/decode.js';
import { loadAudio16k } from '../audio/resample.js';
import type { DecodedAudio } from '../audio/types.js';

// Node's file side of src/audio: the decoders take bytes (browsers pass a fetch or File result).

/** Read and decode an audio file (see `decodeAudio`); errors name `path`. */
export async function readAudioFile(path: string): Promise<DecodedAudio> {
  return decodeAudio(new Uint8Array(await readFile(path)), path);
}

/** Read an audio file as 16 kHz mono samples (see `loadAudio16k`); errors name `path`. */
export async function readAudioFile16k(path: string): Promise<Float32Array> {
  return loadAudio16k(new Uint8Array(await readFile(path)), path);
}

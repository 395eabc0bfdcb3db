import { readFileSync } from 'node:fs';
import { Whisper, WhisperFullParams, WhisperSamplingStrategy } from '@napi-rs/whisper';

// Running whisper.cpp itself (the prebuilt binary inside npm @napi-rs/whisper) on model files we
// write: the independent check that our ggml files are what whisper.cpp expects, and later the
// reference our decoder's tokens are compared with.

/** 16 kHz mono 16-bit PCM WAV samples scaled to [-1, 1), as whisper.cpp's examples read them. */
export function readWavPcm16(path: string): Float32Array {
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.toString('latin1', 0, 4) !== 'RIFF' || bytes.toString('latin1', 8, 12) !== 'WAVE') throw new Error(`${path}: not a RIFF/WAVE file`);
  let format: { channels: number; rate: number; bits: number } | undefined;
  for (let at = 12; at + 8 <= bytes.byteLength;) {
    const id = bytes.toString('latin1', at, at + 4);
    const size = view.getUint32(at + 4, true);
    if (id === 'fmt ') format = { channels: view.getUint16(at + 10, true), rate: view.getUint32(at + 12, true), bits: view.getUint16(at + 22, true) };
    if (id === 'data') {
      if (!format || format.channels !== 1 || format.rate !== 16000 || format.bits !== 16) throw new Error(`${path}: expected 16 kHz mono 16-bit PCM, got ${JSON.stringify(format)}`);
      const count = Math.floor(Math.min(size, bytes.byteLength - at - 8) / 2);
      return Float32Array.from({ length: count }, (_, i) => view.getInt16(at + 8 + 2 * i, true) / 32768);
    }
    at += 8 + size + (size % 2);
  }
  throw new Error(`${path}: no data chunk`);
}

/** What whisper.cpp reports of a model it loaded (its own reading of our hparams). */
export interface WhisperCppModelInfo {
  nVocab: number;
  nAudioCtx: number;
  nAudioState: number;
  nAudioHead: number;
  nAudioLayer: number;
  nTextCtx: number;
  nTextState: number;
  nTextHead: number;
  nTextLayer: number;
  nMels: number;
  ftype: number;
}

/** Load a model file in whisper.cpp (throws when whisper.cpp rejects it) and report its hparams. */
export function loadInWhisperCpp(modelPath: string): { whisper: Whisper; info: WhisperCppModelInfo } {
  const whisper = new Whisper(modelPath, { useGpu: false });
  const info = {
    nVocab: whisper.modelNVocab, nAudioCtx: whisper.modelNAudioCtx, nAudioState: whisper.modelNAudioState,
    nAudioHead: whisper.modelNAudioHead, nAudioLayer: whisper.modelNAudioLayer, nTextCtx: whisper.modelNTextCtx,
    nTextState: whisper.modelNTextState, nTextHead: whisper.modelNTextHead, nTextLayer: whisper.modelNTextLayer,
    nMels: whisper.modelNMels, ftype: whisper.modelFtype,
  };
  return { whisper, info };
}

/**
 * Greedy transcription by whisper.cpp without timestamps, in `language` for multilingual models.
 * Its prompt is then [<|startoftranscript|>, <|lang|>, <|transcribe|>, <|notimestamps|>]
 * (multilingual) or [<|startoftranscript|>, <|notimestamps|>] (English-only), and the text is the
 * concatenated bytes of the tokens it generates before <|endoftext|>.
 */
export function transcribeWithWhisperCpp(whisper: Whisper, samples: Float32Array, language = 'en'): string {
  const params = new WhisperFullParams(WhisperSamplingStrategy.Greedy);
  params.noTimestamps = true;
  params.language = language;
  params.nThreads = 2;
  params.printProgress = false;
  params.printRealtime = false;
  return whisper.full(params, samples);
}

// Audio for the Transcribe tab, as 16 kHz mono samples: a chosen file through the library's own
// decoders (the same bytes → samples as `dqw transcribe` under Node), or a microphone recording.
import { AudioDecodeError, DqwError, loadAudio16k, toWhisperInput } from '../../src/index.js';

/** Decode `file` (WAV, AIFF, FLAC, MP3, Ogg Opus/Vorbis/FLAC) to 16 kHz mono. */
export async function fileTo16k(file: File): Promise<Float32Array> {
  return loadAudio16k(new Uint8Array(await file.arrayBuffer()), file.name);
}

/**
 * A microphone recording in progress. MediaRecorder writes WebM/Opus (Chromium) or MP4/AAC
 * (Safari), containers the library does not read, so the recording is decoded by the browser's
 * own decodeAudioData and then downmixed and resampled to 16 kHz by the library's resampler.
 */
export class MicrophoneRecording {
  private readonly chunks: Blob[] = [];

  private constructor(
    private readonly stream: MediaStream,
    private readonly recorder: MediaRecorder,
  ) {
    recorder.addEventListener('dataavailable', (ev) => this.chunks.push(ev.data));
  }

  /** Ask for the microphone and start recording; DqwError when there is none or access is refused. */
  static async start(): Promise<MicrophoneRecording> {
    if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === 'undefined') {
      throw new DqwError('this browser cannot record audio here (no getUserMedia or MediaRecorder; recording needs https or localhost)');
    }
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (cause) {
      const why = cause instanceof DOMException && cause.name === 'NotAllowedError' ? 'permission was refused' : cause instanceof DOMException && cause.name === 'NotFoundError' ? 'no microphone was found' : String(cause);
      throw new DqwError(`could not open the microphone: ${why}`, { cause });
    }
    const recording = new MicrophoneRecording(stream, new MediaRecorder(stream));
    recording.recorder.start();
    return recording;
  }

  /** Stop, release the microphone and return the recording as 16 kHz mono samples. */
  async stop(): Promise<Float32Array> {
    const stopped = new Promise((resolve) => this.recorder.addEventListener('stop', resolve, { once: true }));
    this.recorder.stop();
    await stopped;
    for (const track of this.stream.getTracks()) track.stop();
    const blob = new Blob(this.chunks, { type: this.recorder.mimeType });
    const context = new AudioContext();
    try {
      const buffer = await context.decodeAudioData(await blob.arrayBuffer()).catch((cause: unknown) => {
        throw new AudioDecodeError(`microphone recording (${blob.type || 'unknown type'}, ${blob.size} bytes): the browser could not decode it (${String(cause)})`, 'microphone recording');
      });
      const samples = Array.from({ length: buffer.numberOfChannels }, (_, c) => buffer.getChannelData(c));
      return toWhisperInput({ sampleRate: buffer.sampleRate, channels: samples.length, samples });
    } finally {
      await context.close();
    }
  }
}

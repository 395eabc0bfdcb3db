// Errors as the page shows them: a title a person can act on, the engine's message (which names
// the kernel, tensor or file), and what to try next.
import {
  AudioDecodeError, CheckpointError, ConfigError, DeviceLostError, DqwError, GpuOutOfMemoryError, GpuValidationError, KernelBindingError, NoAdapterError, ShapeError,
} from '../../src/index.js';

export interface ErrorReport {
  title: string;
  detail: string;
  hint?: string;
}

/** What to tell the user about `err`, thrown while doing `context` (e.g. "running matmul enc fc1"). */
export function describeError(err: unknown, context?: string): ErrorReport {
  const during = context ? ` while ${context}` : '';
  const detail = err instanceof Error ? err.message : String(err);
  if (err instanceof NoAdapterError) {
    return { title: 'WebGPU is not available', detail, hint: 'Nothing on this page can run without it.' };
  }
  if (err instanceof GpuOutOfMemoryError || (err instanceof RangeError && /allocation failed|out of memory/i.test(detail))) {
    return { title: `Out of memory${during}`, detail, hint: 'Run fewer or smaller cases, close other GPU-heavy tabs, or use a device with more memory.' };
  }
  if (err instanceof DeviceLostError) {
    return { title: 'The GPU device was lost', detail, hint: 'Reload the page to get a new device.' };
  }
  if (err instanceof GpuValidationError || err instanceof KernelBindingError || err instanceof ShapeError) {
    return { title: `Engine error${during}`, detail, hint: 'This is a bug in dq-whisper or in how it was called; the message names the kernel and tensors.' };
  }
  if (err instanceof AudioDecodeError) {
    return { title: `Could not read the audio${during}`, detail, hint: 'WAV, AIFF, FLAC, MP3 and Ogg (Opus, Vorbis, FLAC) files are read; convert others first, e.g. ffmpeg -i clip.m4a clip.wav.' };
  }
  if (err instanceof CheckpointError || err instanceof ConfigError) {
    return { title: `Could not load the model${during}`, detail, hint: "Choose a Hugging Face Whisper folder's config.json with its model.safetensors (float or dq-whisper-int8), or one whisper.cpp ggml .bin file." };
  }
  if (err instanceof DqwError) return { title: `${err.name}${during}`, detail };
  return { title: `Unexpected error${during}`, detail: err instanceof Error ? `${err.name}: ${detail}` : detail };
}

/** Append a readable error box to `container` (the page's alert region). */
export function showError(container: HTMLElement, err: unknown, context?: string): void {
  const report = describeError(err, context);
  const box = document.createElement('section');
  box.className = 'error';
  box.innerHTML = '<button class="dismiss" aria-label="dismiss">×</button><h2></h2><p class="detail"></p><p class="hint"></p>';
  box.querySelector('h2')!.textContent = report.title;
  box.querySelector('.detail')!.textContent = report.detail;
  const hint = box.querySelector<HTMLElement>('.hint')!;
  if (report.hint) hint.textContent = report.hint;
  else hint.remove();
  box.querySelector('button')!.addEventListener('click', () => box.remove());
  container.append(box);
  console.error(err);
}

// Transcribe tab: load a model (files, URL, or a small random one built here), take audio from a
// file or the microphone, and transcribe it on the page's GPU with the library's long-form
// transcribe (the same steps as `dqw transcribe`), showing progress, the segments with their
// times, the real-time factor and the adapter.
import {
  formatTimestamp, formatTranscript, GpuDecoderBackend, LogMelSpectrogram, parameterCount, transcribe, TRANSCRIPT_FORMATS,
  WHISPER_LANGUAGES, WhisperInference, WhisperWeights, type Gpu, type ProgressCallback, type Transcript, type TranscriptFormat,
  type WhisperConfig, type WhisperTask, type WhisperTokenizer,
} from '../../src/index.js';
import { fileTo16k, MicrophoneRecording } from './audio-input.js';
import { readModelFiles, readModelUrl, type PageModel } from './model-source.js';
import { randomModel } from './random-model.js';
import { tableOf, type Tab } from './tabs.js';
import { fetchMelFilters, fetchTokenizer } from './whisper-assets.js';

/** A model on the GPU, ready to transcribe. */
interface ReadyModel {
  config: WhisperConfig;
  description: string;
  weights: WhisperWeights;
  backend: GpuDecoderBackend;
  logMel: LogMelSpectrogram;
  tokenizer: WhisperTokenizer;
}

/** Audio as Whisper takes it, with where it came from. */
interface ReadyAudio {
  samples: Float32Array;
  name: string;
}

const SAMPLE_RATE = 16_000;

/** Upload `model` and fetch what it needs besides its weights. */
async function prepare(gpu: Gpu, model: PageModel): Promise<ReadyModel> {
  const [tokenizer, filters] = await Promise.all([fetchTokenizer(model.config), fetchMelFilters(model.config)]);
  const weights = WhisperWeights.upload(gpu, model.config, model.weights, model.description);
  return {
    config: model.config,
    description: model.description,
    weights,
    backend: new GpuDecoderBackend(new WhisperInference(weights)),
    logMel: new LogMelSpectrogram(gpu, filters),
    tokenizer,
  };
}

function release(model: ReadyModel): void {
  model.logMel.destroy();
  model.backend.destroy();
  model.weights.destroy();
}

const modelSummary = (c: WhisperConfig) =>
  `d_model ${c.d_model}, ${c.encoder_layers}+${c.decoder_layers} layers, vocabulary ${c.vocab_size}, ` +
  `${(c.max_source_positions * 2) / 100} s windows, ${(parameterCount(c) / 1e6).toFixed(2)} M parameters`;

export const transcribeTab: Tab = {
  id: 'transcribe',
  title: 'Transcribe',
  mount(panel, { gpu, reportError }) {
    panel.innerHTML = `
      <h2>Model</h2>
      <div class="controls">
        <button id="random-model">Build a small random model</button>
        <label>seed <input id="random-seed" type="number" value="0" min="0" step="1"></label>
        <span class="note">real vocabulary and mel front end, random weights: the text is gibberish</span>
      </div>
      <div class="controls">
        <label>Files <input id="model-files" type="file" multiple accept=".json,.safetensors,.bin"></label>
        <span class="note">a Hugging Face folder's config.json + model.safetensors (float or dq-whisper-int8), or one whisper.cpp .bin</span>
      </div>
      <div class="controls">
        <input id="model-url" type="url" size="60" placeholder="URL of a Hugging Face folder or of a ggml .bin">
        <button id="load-url">Load URL</button>
      </div>
      <p id="model-status" class="model-status" aria-live="polite">No model loaded.</p>
      <h2>Audio</h2>
      <div class="controls">
        <label>File <input id="audio-file" type="file" accept="audio/*,.wav,.aiff,.flac,.mp3,.ogg,.opus"></label>
        <button id="record">Record from the microphone</button>
      </div>
      <p id="audio-status" aria-live="polite">No audio chosen.</p>
      <h2>Transcribe</h2>
      <div class="controls">
        <label>language <select id="language"><option value="">detect</option></select></label>
        <label>task <select id="task"><option value="transcribe">transcribe</option><option value="translate">translate to English</option></select></label>
        <label title="OpenAI's default: decode again at temperatures 0.2, 0.4, … 1.0 while the output is too repetitive or improbable. Off: greedy decoding at temperature 0 only (faster; a random model always falls back)."><input id="fallback" type="checkbox" checked> temperature fallback</label>
        <button id="run-transcribe" class="primary" disabled>Transcribe</button>
        <progress id="transcribe-progress" max="1" value="0" hidden></progress>
        <span id="transcribe-status" aria-live="polite"></span>
      </div>
      <div id="transcript-summary"></div>
      <p id="transcript-text" class="transcript"></p>
      <div id="segments"></div>
      <div class="controls" id="transcript-download" hidden>
        <select id="transcript-format">${TRANSCRIPT_FORMATS.map((f) => `<option>${f}</option>`).join('')}</select>
        <button id="download-transcript">Download transcript</button>
      </div>`;
    const $ = <T extends HTMLElement>(selector: string) => panel.querySelector<T>(selector)!;
    const language = $<HTMLSelectElement>('#language');
    for (const [code, name] of WHISPER_LANGUAGES) language.append(new Option(`${name} (${code})`, code));
    const runButton = $<HTMLButtonElement>('#run-transcribe');
    const modelStatus = $('#model-status');
    const audioStatus = $('#audio-status');
    const progress = $<HTMLProgressElement>('#transcribe-progress');
    const runStatus = $('#transcribe-status');
    const loadButtons = [$<HTMLButtonElement>('#random-model'), $<HTMLButtonElement>('#load-url'), $<HTMLInputElement>('#model-files')];

    let model: ReadyModel | undefined;
    let audio: ReadyAudio | undefined;
    let transcript: { result: Transcript; name: string } | undefined;
    let busy = false;
    const refresh = () => {
      runButton.disabled = busy || !model || !audio;
      for (const b of loadButtons) b.disabled = busy;
    };

    /** Replace the loaded model with the one `read` returns, reporting failures in the page. */
    const loadModel = async (what: string, read: (onProgress: ProgressCallback) => Promise<PageModel>) => {
      busy = true;
      refresh();
      modelStatus.dataset.state = 'loading';
      modelStatus.textContent = `Loading ${what}…`;
      try {
        const loaded = await read((done, total) => (modelStatus.textContent = `Loading ${what}: ${Math.round((100 * done) / Math.max(total, 1))}%`));
        if (model) release(model);
        model = undefined;
        model = await prepare(gpu, loaded);
        modelStatus.dataset.state = 'loaded';
        modelStatus.textContent = `${loaded.description}: ${modelSummary(loaded.config)}.${loaded.warnings.map((w) => ` Warning: ${w}`).join('')}`;
      } catch (err) {
        modelStatus.dataset.state = model ? 'loaded' : 'failed';
        modelStatus.textContent = model ? `Kept ${model.description}; loading ${what} failed.` : `Loading ${what} failed.`;
        reportError(err, `loading ${what}`);
      } finally {
        busy = false;
        refresh();
      }
    };

    $('#random-model').addEventListener('click', () => {
      const seed = Number($<HTMLInputElement>('#random-seed').value);
      void loadModel(`the random model (seed ${seed})`, async () => ({ ...randomModel(seed), description: `random model (seed ${seed})`, warnings: [] }));
    });
    $<HTMLInputElement>('#model-files').addEventListener('change', (ev) => {
      const files = Array.from((ev.target as HTMLInputElement).files ?? []);
      if (files.length) void loadModel(files.map((f) => f.name).join(', '), (onProgress) => readModelFiles(files, onProgress));
    });
    $('#load-url').addEventListener('click', () => {
      const url = $<HTMLInputElement>('#model-url').value.trim();
      if (url) void loadModel(url, (onProgress) => readModelUrl(url, onProgress));
    });

    const setAudio = (next: ReadyAudio | undefined, failed?: string) => {
      audio = next;
      audioStatus.dataset.state = next ? 'ready' : 'failed';
      audioStatus.textContent = next ? `${next.name}: ${(next.samples.length / SAMPLE_RATE).toFixed(2)} s at 16 kHz.` : `${failed} could not be read.`;
      refresh();
    };
    $<HTMLInputElement>('#audio-file').addEventListener('change', async (ev) => {
      const file = (ev.target as HTMLInputElement).files?.[0];
      if (!file) return;
      audioStatus.textContent = `Decoding ${file.name}…`;
      try {
        setAudio({ samples: await fileTo16k(file), name: file.name });
      } catch (err) {
        setAudio(undefined, file.name);
        reportError(err, `decoding ${file.name}`);
      }
    });
    const recordButton = $<HTMLButtonElement>('#record');
    let recording: MicrophoneRecording | undefined;
    recordButton.addEventListener('click', async () => {
      try {
        if (!recording) {
          recording = await MicrophoneRecording.start();
          recordButton.textContent = 'Stop recording';
          audioStatus.textContent = 'Recording…';
        } else {
          const current = recording;
          recording = undefined;
          recordButton.textContent = 'Record from the microphone';
          setAudio({ samples: await current.stop(), name: 'microphone recording' });
        }
      } catch (err) {
        recording = undefined;
        recordButton.textContent = 'Record from the microphone';
        setAudio(undefined, 'The microphone recording');
        reportError(err, 'recording from the microphone');
      }
    });

    runButton.addEventListener('click', async () => {
      if (!model || !audio) return;
      const { backend, logMel, tokenizer } = model;
      const input = audio;
      busy = true;
      refresh();
      progress.hidden = false;
      progress.value = 0;
      runStatus.textContent = 'computing the log-mel…';
      const segments = $('#segments');
      segments.replaceChildren();
      $('#transcript-text').textContent = '';
      $('#transcript-summary').replaceChildren();
      $('#transcript-download').hidden = true;
      delete segments.dataset.done;
      try {
        const started = performance.now();
        const { contentFrames, ...mel } = await logMel.computeForTranscription(input.samples, backend.info.windowFrames, input.name);
        progress.max = Math.max(contentFrames, 1);
        const result = await transcribe(backend, tokenizer, mel, {
          language: language.value || undefined,
          task: $<HTMLSelectElement>('#task').value as WhisperTask,
          ...($<HTMLInputElement>('#fallback').checked ? {} : { temperature: 0 }),
          contentFrames,
          onProgress: (p) => {
            progress.value = p.framesDone;
            runStatus.textContent = `${(p.framesDone / 100).toFixed(1)} of ${(p.contentFrames / 100).toFixed(1)} s`;
          },
        });
        const seconds = (performance.now() - started) / 1000;
        const audioSeconds = input.samples.length / SAMPLE_RATE;
        transcript = { result, name: input.name };
        runStatus.textContent = `done in ${seconds.toFixed(2)} s`;
        const a = gpu.adapter;
        $('#transcript-summary').replaceChildren(
          tableOf(['audio', 'length (s)', 'time (s)', 'real-time factor', 'language', 'adapter'], [[
            input.name, audioSeconds.toFixed(2), seconds.toFixed(2), (seconds / audioSeconds).toFixed(3), result.language,
            `${[a.vendor, a.architecture].filter(Boolean).join(' ') || 'adapter'} (${a.runtime})`,
          ]], [1, 2, 3]),
        );
        $('#transcript-text').textContent = result.text;
        const table = tableOf(['#', 'start', 'end', 'text'], result.segments.map((s) => [String(s.id), formatTimestamp(s.start), formatTimestamp(s.end), s.text]), [0]);
        table.id = 'segment-table';
        segments.replaceChildren(table);
        segments.dataset.done = String(result.segments.length);
        $('#transcript-download').hidden = false;
      } catch (err) {
        runStatus.textContent = 'failed';
        reportError(err, `transcribing ${input.name}`);
      } finally {
        progress.hidden = true;
        busy = false;
        refresh();
      }
    });

    $('#download-transcript').addEventListener('click', () => {
      if (!transcript) return;
      const format = $<HTMLSelectElement>('#transcript-format').value as TranscriptFormat;
      const link = document.createElement('a');
      link.href = URL.createObjectURL(new Blob([formatTranscript(transcript.result, format)], { type: 'text/plain' }));
      link.download = `${transcript.name.replace(/\.[^.]*$/, '')}.${format}`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 0);
    });
  },
};

// `dqw profile`: where the GPU time of a transcription goes. Transcribes one clip once to compile
// every program, then again with the profiler on (src/gpu/profiler.ts: timestamp queries around
// each dispatch, or each dispatch's wall time where the adapter has none), and prints the
// per-kernel and per-dispatch-label tables; --trace writes every dispatch as a Chrome trace.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { LogMelSpectrogram, N_FRAMES, N_SAMPLES, SAMPLE_RATE } from '../audio/logmel.js';
import { GpuDecoderBackend } from '../decode/gpu-backend.js';
import { transcribe } from '../decode/transcribe.js';
import { DqwError } from '../errors.js';
import { Gpu } from '../gpu/gpu.js';
import { Profiler, textTable, type ProfileEvent } from '../gpu/profiler.js';
import { readAudioFile16k } from '../io/audio-file.js';
import { loadWhisperTokenizer } from '../io/text-assets.js';
import { presetConfig, whisperPresets, type WhisperPreset } from '../model/config.js';
import { WhisperInference } from '../model/inference.js';
import { initWhisperWeights } from '../model/init.js';
import { WhisperWeights } from '../model/whisper.js';
import { loadMelFilters, loadRunnableCheckpoint, modelHeader, tokenizerRanksPath, uploadRunnable, type CommandIo } from './checkpoint.js';

export const profileUsage = `usage: dqw profile --model <dir|file|preset> [--audio <file>] [options]

  Transcribes one clip once to compile every program, then again with the GPU profiler on, and
  prints where the GPU time goes: per kernel (calls, total, share, mean, GFLOP/s, GB/s) and the
  costliest dispatch labels (layers and tensors). Times are GPU timestamps where the adapter has
  timestamp-query; elsewhere each dispatch is submitted alone and its wall time taken (slower in
  all, but the shares still say where the time goes).

  --model <m>        Hugging Face folder, whisper.cpp ggml file, dq-whisper-int8 export, or a
                     preset name (${whisperPresets.join(', ')}) with random weights
  --audio <file>     the clip (any format dqw transcribe reads; default 10 s of a 440 Hz tone)
  --language <code>  skip language detection (default: en for a preset, else detected)
  --max-tokens <n>   tokens decoded per 30 s window (default 32), greedy, no temperature fallback
  --top <n>          rows of each table (default 15)
  --trace <file>     write every profiled dispatch as Chrome trace-event JSON (ui.perfetto.dev)`;

interface ProfileArgs {
  model: string;
  audio?: string;
  language?: string;
  maxTokens: number;
  top: number;
  trace?: string;
}

function parseProfileArgs(argv: string[]): ProfileArgs {
  const fail = (message: string) => new DqwError(`dqw profile: ${message}\n\n${profileUsage}`);
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, audio: { type: 'string' }, language: { type: 'string' },
      'max-tokens': { type: 'string', default: '32' }, top: { type: 'string', default: '15' }, trace: { type: 'string' },
    },
  });
  if (!values.model) throw fail('--model is required');
  const positive = (name: string, v: string) => {
    const x = Number(v);
    if (!Number.isSafeInteger(x) || x < 1) throw fail(`--${name} must be an integer >= 1, got "${v}"`);
    return x;
  };
  return { model: values.model, audio: values.audio, language: values.language, maxTokens: positive('max-tokens', values['max-tokens']), top: positive('top', values.top), trace: values.trace };
}

/** Total time of the events per label, costliest first. */
function byLabel(events: readonly ProfileEvent[]): { label: string; kernel: string; calls: number; ns: number }[] {
  const by = new Map<string, { label: string; kernel: string; calls: number; ns: number }>();
  for (const e of events) {
    const key = `${e.label}\u0000${e.kernel}`;
    const s = by.get(key) ?? { label: e.label, kernel: e.kernel, calls: 0, ns: 0 };
    s.calls++;
    s.ns += e.durationNs;
    by.set(key, s);
  }
  return [...by.values()].sort((a, b) => b.ns - a.ns);
}

/** Random weights for a preset name, else the checkpoint at `model` (float or int8 export). */
async function loadModel(gpu: Gpu, model: string, io: CommandIo): Promise<WhisperWeights> {
  if ((whisperPresets as readonly string[]).includes(model)) {
    const config = presetConfig(model as WhisperPreset);
    return WhisperWeights.upload(gpu, config, initWhisperWeights(config, 1), `${model} preset (random weights)`);
  }
  return uploadRunnable(gpu, await loadRunnableCheckpoint(model, io.stderr));
}

/**
 * Run `dqw profile` with `argv` (the arguments after the command name): the tables on stdout, the
 * model line on stderr. Throws DqwError for bad arguments, a model or clip that cannot be loaded.
 */
export async function profileCommand(argv: string[], io: CommandIo = { stdout: process.stdout, stderr: process.stderr }): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(`${profileUsage}\n`);
    return;
  }
  const args = parseProfileArgs(argv);
  const isPreset = (whisperPresets as readonly string[]).includes(args.model);
  const samples = args.audio
    ? await readAudioFile16k(args.audio)
    : Float32Array.from({ length: 10 * SAMPLE_RATE }, (_, i) => 0.3 * Math.sin((2 * Math.PI * 440 * i) / SAMPLE_RATE));
  const gpu = await Gpu.create();
  const weights = await loadModel(gpu, args.model, io);
  const inference = new WhisperInference(weights);
  const config = weights.config;
  const logMel = new LogMelSpectrogram(gpu, await loadMelFilters(config));
  try {
    const tokenizer = await loadWhisperTokenizer(tokenizerRanksPath(config), { vocabSize: config.vocab_size });
    const language = args.language ?? (isPreset ? 'en' : undefined);
    if (language !== undefined) tokenizer.languageToken(language);
    io.stderr.write(`${modelHeader('profile', args.model, weights)}\n`);
    const backend = new GpuDecoderBackend(inference);
    const transcribeOnce = async () => {
      // As dqw transcribe: the log-mel of the clip followed by 30 s of silence.
      const mel = await logMel.compute(samples, { length: samples.length + N_SAMPLES, label: 'clip' });
      const frames = mel.length / config.num_mel_bins;
      return transcribe(backend, tokenizer, { data: mel, bins: config.num_mel_bins, frames }, {
        language, sampleLen: args.maxTokens, temperature: 0, withoutTimestamps: true, contentFrames: frames - N_FRAMES,
      });
    };
    let started = performance.now();
    await transcribeOnce();
    const warmUp = performance.now() - started;
    const profiler = new Profiler();
    gpu.profiler = profiler;
    started = performance.now();
    let transcript;
    try {
      transcript = await transcribeOnce();
    } finally {
      gpu.profiler = null;
    }
    const wall = performance.now() - started;

    const events = profiler.events;
    const totalNs = events.reduce((s, e) => s + e.durationNs, 0);
    const share = (ns: number) => `${((100 * ns) / totalNs).toFixed(1)}%`;
    const clock = events[0]?.clock === 'gpu' ? 'GPU timestamps' : 'wall time per dispatch (no timestamp-query)';
    const a = gpu.adapter;
    const lines = [
      `${a.description || a.device || 'WebGPU adapter'}: ${(samples.length / SAMPLE_RATE).toFixed(1)} s of audio, ${events.length} dispatches, ` +
        `${(totalNs / 1e6).toFixed(1)} ms of kernel time (${clock}); the profiled run took ${(wall / 1000).toFixed(2)} s, the first (compiling) ${(warmUp / 1000).toFixed(2)} s`,
      `transcript: ${JSON.stringify(transcript.text.trim().slice(0, 120))}`,
      '',
      'per kernel',
      textTable(['kernel', 'calls', 'total ms', 'share', 'mean ms', 'GFLOP/s', 'GB/s'], profiler.summary().slice(0, args.top).map((k) => [
        k.kernel, String(k.calls), k.totalMs.toFixed(2), share(k.totalMs * 1e6), k.meanMs.toFixed(3), k.gflops.toFixed(2), k.gbps.toFixed(2),
      ])),
      '',
      'per dispatch label',
      textTable(['label', 'kernel', 'calls', 'total ms', 'share'], byLabel(events).slice(0, args.top).map((l) => [
        l.label, l.kernel, String(l.calls), (l.ns / 1e6).toFixed(2), share(l.ns),
      ])),
    ];
    if (args.trace) {
      await writeFile(args.trace, JSON.stringify(profiler.toChromeTrace()));
      lines.push('', `trace: ${args.trace} (${events.length} events; open in ui.perfetto.dev or chrome://tracing)`);
    }
    io.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    logMel.destroy();
    inference.destroy();
    weights.destroy();
    gpu.destroy();
  }
}

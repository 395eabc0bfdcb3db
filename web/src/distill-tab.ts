// Distill tab: a teacher (a small random one built here, or one loaded from files or a URL), a
// student with fewer layers seeded from the teacher's (distil-whisper style), training clips with
// their transcripts, and N steps of the library's distillation Trainer on the page's GPU — the
// same loop as `dqw distill` — with the losses plotted live, the layer map shown as it changes,
// a Stop button between steps, and the student downloaded as a Hugging Face folder or a
// dq-whisper-int8 export (zipped: config.json + model.safetensors).
import { zipSync } from 'fflate';
import {
  AudioDecodeError, BatchPreparer, concatChunks, ConfigError, formatLayerMap, fullQuantizationPlan, hfCheckpointFiles, hfInt8CheckpointFiles, initStudentFromTeacher,
  initWhisperWeights, layerMapHeatmap, lossChart, parameterCount, parseJsonlManifest, quantizeCheckpoint, resolvePlan, sizeTable, tokenSequence, Trainer,
  WHISPER_LANGUAGES, WhisperWeights, type HiddenStateMatching, type LayerMapRecord, type LayerMatchingStrategy, type LearningRateDecay, type RunHistory,
  type TrainerOptions, type TrainingExample, type TrainingStepResult, type TrainRecord, type WhisperConfig,
} from '../../src/index.js';
import type { WhisperCheckpoint } from '../../src/io/whisper-inventory.js';
import { fileTo16k } from './audio-input.js';
import { readModelFiles, readModelUrl, type PageModel } from './model-source.js';
import { randomModelConfig, randomModelInit } from './random-model.js';
import { tableOf, type Tab } from './tabs.js';
import { fetchMelFilters, fetchTokenizer } from './whisper-assets.js';

/** A model on the GPU with the host copy of its weights (the teacher seeds the student from it). */
interface PageWeights {
  checkpoint: WhisperCheckpoint;
  gpu: WhisperWeights;
  description: string;
}

/** A training clip: decoded audio and the transcript and language the user gave it. */
interface Clip {
  name: string;
  samples: Float32Array;
  text: string;
  language: string;
}

const SAMPLE_RATE = 16_000;
/** One zip entry per file, stored (level 0): float tensors do not compress, and storing is instant. */
const zipLevel = 0;

const layersOf = (c: WhisperConfig) => `${c.encoder_layers}+${c.decoder_layers} layers`;
const modelSummary = (c: WhisperConfig) => `d_model ${c.d_model}, ${layersOf(c)}, ${(parameterCount(c) / 1e6).toFixed(2)} M parameters`;

/** Save `bytes` as `name` through a temporary link. */
function download(bytes: Uint8Array, name: string, type: string): void {
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type }));
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 0);
}

/** The fake-quant predicate of an int8 plan over every Linear (as `dqw distill --quant int8`; the token embedding stays float in training). */
function int8Predicate(config: WhisperConfig): (weightName: string) => { bits: number } | null {
  const bits = new Map(resolvePlan(config, fullQuantizationPlan(config, 8)).modules.map((m) => [m.weight, m.bits]));
  return (name) => (bits.has(name) ? { bits: bits.get(name)! } : null);
}

export const distillTab: Tab = {
  id: 'distill',
  title: 'Distill',
  mount(panel, { gpu, reportError }) {
    const languageOptions = WHISPER_LANGUAGES.map(([code, name]) => `<option value="${code}">${name} (${code})</option>`).join('');
    panel.innerHTML = `
      <h2>Teacher</h2>
      <div class="controls">
        <button id="random-teacher">Build a small random teacher</button>
        <label>seed <input id="teacher-seed" type="number" value="0" min="0" step="1"></label>
        <label>encoder layers <input id="teacher-encoder-layers" type="number" value="2" min="1" max="32" step="1"></label>
        <label>decoder layers <input id="teacher-decoder-layers" type="number" value="2" min="1" max="32" step="1"></label>
        <span class="note">d_model 32, Whisper's vocabulary and mel front end, 3 s windows, random weights</span>
      </div>
      <div class="controls">
        <label>Files <input id="teacher-files" type="file" multiple accept=".json,.safetensors,.bin"></label>
        <input id="teacher-url" type="url" size="50" placeholder="URL of a Hugging Face folder or of a ggml .bin">
        <button id="teacher-load-url">Load URL</button>
      </div>
      <p id="teacher-status" class="model-status" aria-live="polite">No teacher.</p>
      <h2>Student</h2>
      <div class="controls">
        <label>encoder layers <input id="student-encoder-layers" type="number" value="2" min="1" max="32" step="1"></label>
        <label>decoder layers <input id="student-decoder-layers" type="number" value="1" min="1" max="32" step="1"></label>
        <label>initialisation <select id="student-init">
          <option value="copy">copy teacher layers (maximally spaced)</option>
          <option value="random">random</option>
        </select></label>
        <button id="build-student" disabled>Build the student</button>
      </div>
      <p id="student-status" class="model-status" aria-live="polite">No student.</p>
      <h2>Training clips</h2>
      <div class="controls">
        <label>Audio files <input id="clip-files" type="file" multiple accept="audio/*,.wav,.aiff,.flac,.mp3,.ogg,.opus,.jsonl"></label>
        <span class="note">with each clip's transcript typed below, or a JSONL manifest (audio, text, language) chosen together with the clips: its rows fill the clips of the same file name</span>
      </div>
      <div id="clips"></div>
      <p id="clip-status" aria-live="polite">No clips.</p>
      <h2>Training</h2>
      <div class="controls">
        <label>steps <input id="steps" type="number" value="8" min="1" step="1"></label>
        <label>learning rate <input id="lr" type="number" value="0.01" min="0" step="any" style="width: 6rem"></label>
        <label>schedule <select id="decay"><option>constant</option><option>linear</option><option>cosine</option></select></label>
        <label>batch <input id="batch" type="number" value="2" min="1" step="1"></label>
        <label title="decoder positions per example; longer transcripts are cut">max tokens <input id="max-tokens" type="number" value="10" min="2" step="1"></label>
        <label>seed <input id="train-seed" type="number" value="0" min="0" step="1"></label>
      </div>
      <div class="controls">
        <label title="weight of the cross-entropy on the transcript">α <input id="alpha" type="number" value="0.8" min="0" step="any"></label>
        <label title="weight of the KL divergence to the teacher">β <input id="beta" type="number" value="1" min="0" step="any"></label>
        <label title="weight of the hidden-state MSE">γ <input id="gamma" type="number" value="1" min="0" step="any"></label>
        <label title="temperature of the KL">τ <input id="tau" type="number" value="2" min="0" step="any"></label>
        <label>hidden states <select id="hidden-states">
          <option>encoder+decoder</option><option>encoder</option><option>decoder</option><option>none</option>
        </select></label>
        <label>matching <select id="matching">
          <option value="dynamic">dynamic</option><option value="fixed">fixed</option><option value="window">window</option><option value="greedy">greedy</option>
        </select></label>
        <label title="for window matching: how far from the fixed map a student layer may look">window <input id="window" type="number" value="1" min="0" step="1"></label>
      </div>
      <div class="controls">
        <label title="fake-quantize every Linear weight of the student to int8 per output channel (straight-through)"><input id="fake-quant" type="checkbox"> fake-quant int8</label>
        <label title="float steps before fake-quant switches on">float warm-up steps <input id="quant-warmup" type="number" value="0" min="0" step="1"></label>
        <button id="train" class="primary" disabled>Train</button>
        <button id="stop" disabled>Stop</button>
        <progress id="train-progress" max="1" value="0" hidden></progress>
        <span id="train-status" aria-live="polite"></span>
      </div>
      <p class="note">Each run continues from the student's current weights with fresh optimizer moments; build the student again to start over.</p>
      <div id="loss-chart" class="chart"></div>
      <div id="layer-map"></div>
      <div id="layer-map-chart" class="chart"></div>
      <div id="step-table" class="scroll"></div>
      <h2>Export</h2>
      <div id="size-table"></div>
      <div class="controls">
        <button id="export-hf" disabled>Download Hugging Face float32 (.zip)</button>
        <button id="export-int8" disabled>Download dq-whisper-int8 (.zip)</button>
        <span id="export-status" aria-live="polite"></span>
      </div>`;
    const $ = <T extends HTMLElement>(selector: string) => panel.querySelector<T>(selector)!;
    const numberOf = (id: string) => Number($<HTMLInputElement>(`#${id}`).value);
    const valueOf = (id: string) => $<HTMLSelectElement | HTMLInputElement>(`#${id}`).value;
    const teacherStatus = $('#teacher-status');
    const studentStatus = $('#student-status');
    const trainStatus = $('#train-status');
    const progress = $<HTMLProgressElement>('#train-progress');
    const stopButton = $<HTMLButtonElement>('#stop');

    let teacher: PageWeights | undefined;
    let student: (PageWeights & { label: string }) | undefined;
    const clips = new Map<string, Clip>();
    let busy = false;
    let stopRequested = false;

    const refresh = () => {
      for (const id of ['random-teacher', 'teacher-load-url', 'teacher-files', 'clip-files']) $<HTMLButtonElement>(`#${id}`).disabled = busy;
      $<HTMLButtonElement>('#build-student').disabled = busy || !teacher;
      $<HTMLButtonElement>('#train').disabled = busy || !student || clips.size === 0;
      $<HTMLButtonElement>('#export-hf').disabled = busy || !student;
      $<HTMLButtonElement>('#export-int8').disabled = busy || !student;
      stopButton.disabled = !busy || stopRequested;
      $('#clip-status').textContent = clips.size ? `${clips.size} clip${clips.size > 1 ? 's' : ''}, ${[...clips.values()].reduce((s, c) => s + c.samples.length / SAMPLE_RATE, 0).toFixed(2)} s in all.` : 'No clips.';
    };
    /** Run `work` with the tab's controls disabled; failures go to the page's alert region. */
    const exclusive = async (context: string, work: () => Promise<void>, onError?: () => void) => {
      busy = true;
      refresh();
      try {
        await work();
      } catch (err) {
        onError?.();
        reportError(err, context);
      } finally {
        busy = false;
        refresh();
      }
    };

    const dropStudent = () => {
      student?.gpu.destroy();
      student = undefined;
      studentStatus.dataset.state = '';
      studentStatus.textContent = 'No student.';
      $('#size-table').replaceChildren();
    };

    // Teacher.
    const setTeacher = (model: PageModel) => {
      dropStudent();
      teacher?.gpu.destroy();
      teacher = undefined;
      teacher = { checkpoint: model, gpu: WhisperWeights.upload(gpu, model.config, model.weights, 'teacher'), description: model.description };
      teacherStatus.dataset.state = 'loaded';
      teacherStatus.textContent = `Teacher: ${model.description}: ${modelSummary(model.config)}.${model.warnings.map((w) => ` Warning: ${w}`).join('')}`;
    };
    const loadTeacher = (what: string, read: () => Promise<PageModel>) =>
      exclusive(`loading ${what}`, async () => {
        teacherStatus.dataset.state = 'loading';
        teacherStatus.textContent = `Loading ${what}…`;
        setTeacher(await read());
      }, () => {
        teacherStatus.dataset.state = teacher ? 'loaded' : 'failed';
        teacherStatus.textContent = teacher ? `Kept teacher ${teacher.description}; loading ${what} failed.` : `Loading ${what} failed.`;
      });
    $('#random-teacher').addEventListener('click', () => {
      const seed = numberOf('teacher-seed');
      const config: WhisperConfig = { ...randomModelConfig, encoder_layers: numberOf('teacher-encoder-layers'), decoder_layers: numberOf('teacher-decoder-layers') };
      const description = `random teacher (seed ${seed})`;
      void loadTeacher(description, async () => ({ config, weights: initWhisperWeights(config, seed, randomModelInit), description, warnings: [] }));
    });
    $<HTMLInputElement>('#teacher-files').addEventListener('change', (ev) => {
      const files = Array.from((ev.target as HTMLInputElement).files ?? []);
      if (files.length) void loadTeacher(files.map((f) => f.name).join(', '), () => readModelFiles(files));
    });
    $('#teacher-load-url').addEventListener('click', () => {
      const url = valueOf('teacher-url').trim();
      if (url) void loadTeacher(url, () => readModelUrl(url));
    });

    // Student: the teacher's widths and context with fewer layers.
    const showSizes = (t: WhisperConfig, s: WhisperConfig) => {
      const rows = sizeTable({ label: 'teacher (f32)', config: t }, [
        { label: 'student (f32)', config: s },
        { label: 'student (dq-whisper-int8)', config: s, plan: fullQuantizationPlan(s, 8) },
      ]);
      const table = tableOf(
        ['model', 'parameters (M)', 'tensor bytes', 'MB', '× smaller than teacher f32'],
        rows.map((r) => [r.label, (r.parameters / 1e6).toFixed(2), String(r.bytes), (r.bytes / 1e6).toFixed(2), r.compression.toFixed(2)]),
        [1, 2, 3, 4],
      );
      table.id = 'sizes';
      $('#size-table').replaceChildren(table);
    };
    $('#build-student').addEventListener('click', () => {
      if (!teacher) return;
      const t = teacher.checkpoint;
      void exclusive('building the student', async () => {
        dropStudent();
        const config: WhisperConfig = { ...t.config, encoder_layers: numberOf('student-encoder-layers'), decoder_layers: numberOf('student-decoder-layers') };
        let weights: Map<string, Float32Array>;
        let how: string;
        if (valueOf('student-init') === 'copy') {
          const seeded = initStudentFromTeacher(t.config, t.weights, config);
          weights = seeded.weights;
          how = `seeded from teacher layers: encoder ${seeded.encoderLayers.map((k) => k + 1).join(',')}, decoder ${seeded.decoderLayers.map((k) => k + 1).join(',')} (1-based)`;
        } else {
          weights = initWhisperWeights(config, numberOf('train-seed'));
          how = 'initialised at random';
        }
        student = { checkpoint: { config, weights }, gpu: WhisperWeights.upload(gpu, config, weights, 'student'), description: how, label: `student ${layersOf(config)}` };
        studentStatus.dataset.state = 'loaded';
        studentStatus.textContent = `Student: ${modelSummary(config)}, ${how}.`;
        showSizes(t.config, config);
      });
    });

    // Clips.
    const renderClips = () => {
      const table = tableOf(['clip', 'seconds', 'language', 'transcript', ''], [...clips.values()].map((c) => [c.name, (c.samples.length / SAMPLE_RATE).toFixed(2), '', '', '']), [1]);
      table.id = 'clip-table';
      [...clips.values()].forEach((clip, i) => {
        const cells = table.tBodies[0]!.rows[i]!.cells;
        const language = document.createElement('select');
        language.className = 'clip-language';
        language.innerHTML = languageOptions;
        language.value = clip.language;
        language.addEventListener('change', () => (clip.language = language.value));
        const text = document.createElement('input');
        text.className = 'clip-text';
        text.size = 60;
        text.value = clip.text;
        text.placeholder = 'what is said in the clip';
        text.addEventListener('input', () => (clip.text = text.value));
        const remove = document.createElement('button');
        remove.textContent = 'Remove';
        remove.addEventListener('click', () => {
          clips.delete(clip.name);
          renderClips();
        });
        cells[2]!.append(language);
        cells[3]!.append(text);
        cells[4]!.append(remove);
      });
      $('#clips').replaceChildren(...(clips.size ? [table] : []));
      refresh();
    };
    $<HTMLInputElement>('#clip-files').addEventListener('change', (ev) => {
      const files = Array.from((ev.target as HTMLInputElement).files ?? []);
      const manifests = files.filter((f) => f.name.endsWith('.jsonl'));
      const audio = files.filter((f) => !f.name.endsWith('.jsonl'));
      void exclusive(`reading ${files.map((f) => f.name).join(', ')}`, async () => {
        // Manifest rows by the file name of their audio (the first row of a name wins).
        const rows = new Map<string, TrainingExample>();
        for (const m of manifests) {
          const parsed = parseJsonlManifest(await m.text(), { source: m.name });
          for (const e of parsed.examples) if (!rows.has(e.audio.split('/').pop()!)) rows.set(e.audio.split('/').pop()!, e);
          if (parsed.skipped.length) reportError(new ConfigError(parsed.skipped.map((s) => `${s.source}:${s.line}: ${s.reason}`).join('\n')), `reading ${m.name}`);
        }
        for (const file of audio) {
          try {
            const row = rows.get(file.name);
            clips.set(file.name, { name: file.name, samples: await fileTo16k(file), text: row?.text ?? clips.get(file.name)?.text ?? '', language: row?.language ?? 'en' });
          } catch (err) {
            reportError(err, `decoding ${file.name}`);
          }
        }
        if (manifests.length && !audio.length) {
          for (const clip of clips.values()) {
            const row = rows.get(clip.name);
            if (row) Object.assign(clip, { text: row.text, language: row.language });
          }
        }
        renderClips();
      });
    });

    // Training.
    const lossCell = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : '–');
    const renderRun = (records: TrainRecord[], maps: LayerMapRecord[], current: { encoder: readonly number[]; decoder: readonly number[] }, results: TrainingStepResult[], teacherLayers: LayerMapRecord['teacherLayers']) => {
      const history: RunHistory = { train: records, evals: [], layerMaps: maps, checkpoints: [], resumes: [], trainingSeconds: records.at(-1)?.time ?? 0 };
      $('#loss-chart').innerHTML = lossChart(history, { width: 760, height: 300 });
      const sides = (['encoder', 'decoder'] as const).filter((s) => current[s].length);
      // The step at which a side's current map took effect (records repeat a side that did not change).
      const since = (side: 'encoder' | 'decoder') => maps.reduce<{ map: string; step?: number }>((at, m) => (m[side].join() === at.map ? at : { map: m[side].join(), step: m.step }), { map: '' }).step;
      const mapTable = tableOf(
        ['side', 'student layer → teacher layer', 'teacher layers', 'since step'],
        sides.map((s) => [s, formatLayerMap(current[s]), String(teacherLayers?.[s] ?? '?'), String(since(s) ?? '')]),
        [2, 3],
      );
      mapTable.id = 'layer-map-table';
      for (const [i, s] of sides.entries()) mapTable.tBodies[0]!.rows[i]!.dataset.map = current[s].join(',');
      $('#layer-map').replaceChildren(...(sides.length ? [mapTable] : []));
      $('#layer-map-chart').innerHTML = sides.length ? layerMapHeatmap(maps, { lastStep: records.at(-1)?.step, width: 760 }) : '';
      const steps = tableOf(
        ['step', 'total', 'CE', 'KL', 'hidden-state', 'lr', 'seconds', 'fake-quant'],
        results.map((r) => [String(r.step), lossCell(r.losses.total), lossCell(r.losses.ce), lossCell(r.losses.kl), lossCell(r.losses.hs), r.lr.toPrecision(3), r.seconds.toFixed(2), r.quantized ? 'int8' : 'float']),
        [0, 1, 2, 3, 4, 5, 6],
      );
      steps.id = 'loss-table';
      $('#step-table').replaceChildren(steps);
    };

    $('#train').addEventListener('click', () => {
      if (!teacher || !student) return;
      const t = teacher;
      const s = student;
      const steps = numberOf('steps');
      stopRequested = false;
      void exclusive('training the student', async () => {
        const config = s.checkpoint.config;
        const [tokenizer, filters] = await Promise.all([fetchTokenizer(config), fetchMelFilters(config)]);
        const chosen = [...clips.values()];
        const examples: TrainingExample[] = chosen.map((c, i) => ({ audio: c.name, text: c.text, language: c.language, line: i + 1, source: 'chosen clips', duration: c.samples.length / SAMPLE_RATE }));
        const untranscribed = examples.filter((e) => !e.text.trim()).map((e) => e.audio);
        if (untranscribed.length) throw new ConfigError(`no transcript for ${untranscribed.join(', ')}: type what is said in each clip (or choose a JSONL manifest with the clips)`);
        const longest = Math.max(...examples.map((e) => tokenSequence(tokenizer, e).length - 1));
        const tokens = Math.min(numberOf('max-tokens'), longest, config.max_target_positions);
        const decay = valueOf('decay') as LearningRateDecay;
        const options: TrainerOptions = {
          steps,
          batchSize: numberOf('batch'),
          schedule: { peak: numberOf('lr'), warmupSteps: 0, totalSteps: steps, decay },
          seed: numberOf('train-seed'),
          loss: {
            alpha: numberOf('alpha'), beta: numberOf('beta'), gamma: numberOf('gamma'), tau: numberOf('tau'),
            hiddenStates: valueOf('hidden-states') as HiddenStateMatching,
            matching: { strategy: valueOf('matching') as LayerMatchingStrategy, window: numberOf('window') },
          },
          quantize: $<HTMLInputElement>('#fake-quant').checked ? int8Predicate(config) : undefined,
          quantWarmupSteps: numberOf('quant-warmup'),
        };
        // The Trainer reads clips by name; they were decoded to 16 kHz when chosen.
        const readAudio = async (name: string) => {
          const clip = clips.get(name);
          if (!clip) throw new AudioDecodeError(`${name}: the clip was removed`, name);
          return clip.samples;
        };
        const preparer = new BatchPreparer(gpu, config, tokenizer, filters, tokens);
        let trainer: Trainer;
        try {
          trainer = new Trainer(gpu, t.gpu, s.gpu, preparer, examples, readAudio, options);
        } catch (err) {
          preparer.destroy();
          throw err;
        }
        const records: TrainRecord[] = [];
        const results: TrainingStepResult[] = [];
        const maps: LayerMapRecord[] = [];
        const current = { encoder: [] as readonly number[], decoder: [] as readonly number[] };
        const teacherLayers = { encoder: t.checkpoint.config.encoder_layers, decoder: t.checkpoint.config.decoder_layers };
        const started = performance.now();
        progress.hidden = false;
        progress.max = steps;
        progress.value = 0;
        trainStatus.dataset.state = 'running';
        trainStatus.textContent = `step 1 of ${steps}: compiling the training step…`;
        renderRun(records, maps, current, results, teacherLayers);
        try {
          while (trainer.step < steps && !stopRequested) {
            const r = await trainer.trainStep();
            results.push(r);
            records.push({
              type: 'train', step: r.step, epoch: r.epoch, time: (performance.now() - started) / 1000, lr: r.lr,
              loss: { total: r.losses.total, ce: r.losses.ce, kl: r.losses.kl, hs: r.losses.hs },
              samplesPerSecond: r.examples / r.seconds, tokensPerSecond: r.tokens / r.seconds, quantized: r.quantized,
            });
            const { encoder, decoder } = r.mapChanges;
            if (encoder) current.encoder = encoder.teacherLayers;
            if (decoder) current.decoder = decoder.teacherLayers;
            if (encoder || decoder) maps.push({ type: 'layer-map', step: r.step, encoder: current.encoder, decoder: current.decoder, teacherLayers });
            renderRun(records, maps, current, results, teacherLayers);
            progress.value = r.step;
            trainStatus.textContent = `step ${r.step} of ${steps}: loss ${r.losses.total.toFixed(4)} (${r.seconds.toFixed(2)} s)${stopRequested ? '; stopping…' : ''}`;
          }
          const seconds = (performance.now() - started) / 1000;
          trainStatus.dataset.state = stopRequested ? 'stopped' : 'done';
          trainStatus.textContent = `${stopRequested ? 'stopped after' : 'done:'} ${trainer.step} step${trainer.step === 1 ? '' : 's'} in ${seconds.toFixed(1)} s${trainer.skipped.length ? `; ${trainer.skipped.length} clips skipped: ${trainer.skipped.map((k) => k.reason).join('; ')}` : ''}`;
        } finally {
          trainer.destroy();
          progress.hidden = true;
        }
      }, () => {
        trainStatus.dataset.state = 'failed';
        trainStatus.textContent = 'failed: see the error above';
      });
    });
    stopButton.addEventListener('click', () => {
      stopRequested = true;
      trainStatus.textContent += '; stopping after this step…';
      refresh();
    });

    // Export.
    const exportStudent = (kind: 'hf' | 'int8') => {
      if (!student) return;
      const s = student;
      void exclusive('exporting the student', async () => {
        const model: WhisperCheckpoint = { config: s.checkpoint.config, weights: await s.gpu.download() };
        const files = kind === 'hf' ? hfCheckpointFiles(model) : hfInt8CheckpointFiles(quantizeCheckpoint(model, fullQuantizationPlan(model.config, 8)));
        const zip = zipSync(Object.fromEntries(files.map((f) => [f.name, [concatChunks(f), { level: zipLevel }]])));
        const name = `student-${kind === 'hf' ? 'hf-f32' : 'int8'}.zip`;
        download(zip, name, 'application/zip');
        $('#export-status').textContent = `${name}: ${files.map((f) => `${f.name} ${f.byteLength} bytes`).join(', ')}.`;
      });
    };
    $('#export-hf').addEventListener('click', () => exportStudent('hf'));
    $('#export-int8').addEventListener('click', () => exportStudent('int8'));
    refresh();
  },
};

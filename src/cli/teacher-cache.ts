// `dqw teacher-cache`: run a frozen teacher once over a manifest and store what distillation
// reads from it — per example the top-k logits of every decoder position and the hidden states
// 1..L of both stacks — so `dqw distill --teacher-cache` runs no teacher forward
// (docs/teacher-cache.md). The examples' log-mel and tokens are prepared as training prepares them.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BatchPreparer, bindingFitMessage, decoderLength, examplesPerBinding, type PreparedExample } from '../distill/batch.js';
import { TeacherForward } from '../distill/teacher-forward.js';
import { recordOfBatchRow, TEACHER_CACHE_FORMAT, TEACHER_CACHE_INDEX, TEACHER_CACHE_VERSION, type TeacherCacheEntry, type TeacherCacheIndex, type TeacherCacheStatesDtype } from '../distill/teacher-cache.js';
import { DqwError } from '../errors.js';
import { Gpu } from '../gpu/gpu.js';
import { readAudioFile16k } from '../io/audio-file.js';
import { teacherWeightsDigest, writeTeacherCacheIndex, writeTeacherCacheRecord } from '../io/teacher-cache-files.js';
import { loadWhisperTokenizer } from '../io/text-assets.js';
import { WhisperWeights } from '../model/whisper.js';
import { loadCheckpoint, loadMelFilters, progressBar, tokenizerRanksPath, type CommandIo } from './checkpoint.js';
import { formatSkippedRows, readManifestArgument } from './eval.js';

export const teacherCacheUsage = `usage: dqw teacher-cache --teacher <ckpt> --data <manifest> --out <dir> [options]

  --teacher <ckpt>    frozen float teacher (Hugging Face folder or ggml file)
  --data <manifest>   the training manifest dqw distill will read (JSONL, Common Voice, audiofolder)
  --out <dir>         cache folder: examples/*.safetensors and index.json (written last)
  --top-k <k>         logits kept per decoder position (default 64; the vocabulary size keeps all)
  --max-tokens <n>    decoder positions per example, as dqw distill --max-tokens (default: the
                      longest label sequence, as dqw distill computes it)
  --batch <n>         examples per teacher forward (default 8)
  --states-dtype <t>  f32 (default) or f16: storage of the hidden states, which dominate the
                      cache's size (f16 halves it; the effect is in docs/teacher-cache.md)
  --tau <x>           temperature of the stored logsumexp, which dqw distill's 'tail' KL form
                      reads: the distill run's --tau (default 2)
`;

/** `dqw teacher-cache`. */
export async function teacherCacheCommand(argv: string[], io: CommandIo = process): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(teacherCacheUsage);
    return;
  }
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      teacher: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' },
      'top-k': { type: 'string', default: '64' }, tau: { type: 'string', default: '2' }, 'states-dtype': { type: 'string', default: 'f32' }, 'max-tokens': { type: 'string' }, batch: { type: 'string', default: '8' },
    },
  });
  const fail = (msg: string) => new DqwError(`${msg}\n${teacherCacheUsage}`);
  if (positionals.length) throw fail(`unexpected argument "${positionals[0]}"`);
  for (const k of ['teacher', 'data', 'out'] as const) if (!values[k]) throw fail(`--${k} is required`);
  const int = (name: string, v: string | undefined, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!Number.isSafeInteger(x) || x < min) throw fail(`--${name} must be an integer >= ${min}, got "${v}"`);
    return x;
  };
  const topK = int('top-k', values['top-k'], 1)!;
  const askedBatch = int('batch', values.batch, 1)!;
  const maxTokens = int('max-tokens', values['max-tokens'], 2);
  if (!['f32', 'f16'].includes(values['states-dtype'])) throw fail(`--states-dtype must be f32 or f16, got "${values['states-dtype']}"`);
  const statesDtype: TeacherCacheStatesDtype = values['states-dtype'] === 'f16' ? 'F16' : 'F32';
  const tau = Number(values.tau);
  if (!(Number.isFinite(tau) && tau > 0)) throw fail(`--tau must be a number > 0, got "${values.tau}"`);
  const out = values.out!;
  const log = (line: string) => io.stderr.write(`${line}\n`);

  const ckpt = await loadCheckpoint(values.teacher!, io.stderr, '--teacher');
  const config = ckpt.config;
  if (topK > config.vocab_size) throw fail(`--top-k ${topK} exceeds the teacher's vocab_size ${config.vocab_size}`);
  const sha256 = teacherWeightsDigest(ckpt.weights);
  const manifest = await readManifestArgument(values.data!);
  if (manifest.skipped.length) log(formatSkippedRows(manifest.skipped, `${values.data}: ${manifest.skipped.length} rows skipped`));
  if (!manifest.examples.length) throw new DqwError(`--data ${values.data}: no usable rows`);
  const [tokenizer, melFilters] = await Promise.all([loadWhisperTokenizer(tokenizerRanksPath(config), { vocabSize: config.vocab_size }), loadMelFilters(config)]);
  const tokens = decoderLength(tokenizer, config, manifest.examples, maxTokens);
  await mkdir(out, { recursive: true });
  // A rebuild in place: the old index goes first, so an interrupted rebuild leaves no index that
  // would describe a mix of old and new example files.
  await rm(join(out, TEACHER_CACHE_INDEX), { force: true });

  const gpu = await Gpu.create();
  const teacher = WhisperWeights.upload(gpu, config, ckpt.weights, values.teacher!);
  ckpt.weights.clear();
  const preparer = new BatchPreparer(gpu, config, tokenizer, melFilters, tokens);
  const batch = Math.min(askedBatch, examplesPerBinding(tokens, config.vocab_size, gpu.limits.maxStorageBufferBindingSize));
  if (batch < askedBatch) log(bindingFitMessage(askedBatch, tokens, config.vocab_size, gpu.limits.maxStorageBufferBindingSize, `running ${batch} at a time`));
  const shape = { batch, tokens, padded: true };
  const forward = await TeacherForward.compile(gpu, teacher, shape);
  const entries: TeacherCacheEntry[] = [];
  const skipped: TeacherCacheIndex['skipped'] = [];
  log(`teacher cache of ${manifest.examples.length} examples on ${gpu.adapter.description || gpu.adapter.device || 'WebGPU'}: batch ${batch} x ${tokens} tokens, top-${topK} logits, ${config.encoder_layers}+${config.decoder_layers} layers of states`);
  const bar = progressBar(io.stderr, '[{bar}] {value}/{total} examples');
  bar.start(manifest.examples.length, 0);
  try {
    for (let i = 0; i < manifest.examples.length; i += batch) {
      const prepared: PreparedExample[] = [];
      for (const example of manifest.examples.slice(i, i + batch)) {
        const p = await preparer.load(example, readAudioFile16k);
        if ('skipped' in p) skipped.push({ line: p.skipped.line, reason: p.skipped.reason });
        else prepared.push(p);
      }
      if (prepared.length) {
        const outputs = await forward.run(preparer.assemble(prepared, batch), topK, tau);
        for (const [b, p] of prepared.entries()) {
          const positions = p.sequence.length - 1;
          const entry: TeacherCacheEntry = {
            line: p.example.line, audio: p.example.audio, text: p.example.text, language: p.example.language,
            file: `examples/${String(entries.length).padStart(6, '0')}.safetensors`, positions,
          };
          const record = recordOfBatchRow(outputs, b, positions, shape, config, topK);
          await writeTeacherCacheRecord(out, entry, record, { encoderLayers: config.encoder_layers, decoderLayers: config.decoder_layers, positions, d: config.d_model, topK, statesDtype });
          entries.push(entry);
        }
      }
      bar.update(Math.min(i + batch, manifest.examples.length));
    }
    bar.stop();
    if (!entries.length) throw new DqwError(`--data ${values.data}: no clip could be loaded (${skipped.length} skipped)`);
    await writeTeacherCacheIndex(out, {
      format: TEACHER_CACHE_FORMAT, version: TEACHER_CACHE_VERSION,
      teacher: { path: values.teacher!, config, sha256 }, manifest: values.data!,
      topK, tau, tokens, statesDtype, examples: entries, skipped,
    });
    if (skipped.length) log(`${skipped.length} clips could not be loaded and were skipped: ${skipped.map((s) => `line ${s.line} (${s.reason})`).join('; ')}`);
    log(`done: ${entries.length} examples cached in ${out}`);
  } finally {
    bar.stop();
    forward.destroy();
    preparer.destroy();
    teacher.destroy();
    gpu.destroy();
  }
}

// `dqw export`: write a checkpoint as a Hugging Face folder (float, or dq-whisper-int8 with int8
// or int4 weights) or a whisper.cpp ggml file (f32, f16 or q8_0), and print its size against the
// teacher's float32 bytes, the way the paper's table reports models.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DqwError } from '../errors.js';
import { ggmlVocabFromTiktoken, type GgmlFileType } from '../io/ggml.js';
import { saveGgmlCheckpoint, saveHfCheckpoint, saveHfInt8Checkpoint } from '../io/node-files.js';
import type { WritableDtype } from '../io/safetensors.js';
import type { WhisperConfig } from '../model/config.js';
import { quantizeCheckpoint } from '../quant/hf-int8.js';
import { parseQuantPlan, quantizationPlanOf } from '../quant/plan.js';
import { formatSizeTable, sizeTable, type SizedModel } from '../quant/size.js';
import { fullQuantizationPlan, type QuantizationPlan } from '../quant/weights.js';
import { loadTrainingCheckpoint, type LoadedTrainingCheckpoint } from '../io/training-checkpoint.js';
import { trainingFileNames } from '../io/training-checkpoint-format.js';
import { loadCheckpoint, loadMelFilters, tokenizerRanksPath, type CommandIo } from './checkpoint.js';

export const exportUsage = `usage: dqw export --model <dir|file> --format hf|ggml --output <path> [options]

  --model <dir|file>   checkpoint to export: Hugging Face folder or whisper.cpp ggml file; a
                       training checkpoint's learned scales (dqw distill --learnable-scales)
                       are used by --quant int8 / int4
  --format <fmt>       hf (a folder: config.json + model.safetensors) or ggml (one whisper.cpp file)
  --quant <q>          hf: none (default), int8 or int4 (every Linear layer and the token
                       embedding, per-channel scales; layout in README); ggml: none or q8_0
  --quant-plan <file>  hf: quantize as a quant-plan.json of dqw quant plan says (its layers at
                       int8 or int4, the rest float), instead of --quant
  --dtype <t>          float tensors: f32 (default) or f16
  --output <path>      folder (hf) or file (ggml) to write; files are replaced atomically
  --teacher <dir|file> model whose float32 bytes the size table compares with (default: --model)
`;

type Quant = 'none' | 'int8' | 'int4' | 'q8_0';

interface ExportArgs {
  model: string;
  format: 'hf' | 'ggml';
  quant: Quant;
  dtype: 'f32' | 'f16';
  output: string;
  teacher?: string;
  quantPlan?: string;
}

function parseExportArgs(argv: string[]): ExportArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      format: { type: 'string' },
      quant: { type: 'string', default: 'none' },
      dtype: { type: 'string', default: 'f32' },
      output: { type: 'string' },
      teacher: { type: 'string' },
      'quant-plan': { type: 'string' },
    },
  });
  const usageError = (msg: string) => new DqwError(`${msg}\n${exportUsage}`);
  if (positionals.length) throw usageError(`unexpected argument "${positionals[0]}"`);
  if (!values.model) throw usageError('--model is required');
  if (!values.output) throw usageError('--output is required');
  if (values.format !== 'hf' && values.format !== 'ggml') throw usageError(`--format must be hf or ggml, got "${values.format ?? ''}"`);
  const quants: Record<ExportArgs['format'], Quant[]> = { hf: ['none', 'int8', 'int4'], ggml: ['none', 'q8_0'] };
  if (!quants[values.format].includes(values.quant as Quant)) {
    throw usageError(`--quant ${values.quant} is not available with --format ${values.format} (choose ${quants[values.format].join(', ')})`);
  }
  if (values.dtype !== 'f32' && values.dtype !== 'f16') throw usageError(`--dtype must be f32 or f16, got "${values.dtype}"`);
  if (values['quant-plan'] !== undefined && (values.format !== 'hf' || values.quant !== 'none')) throw usageError('--quant-plan goes with --format hf and without --quant');
  return { model: values.model, format: values.format, quant: values.quant as Quant, dtype: values.dtype, output: values.output, teacher: values.teacher, quantPlan: values['quant-plan'] };
}

/** The quantization plan `quant` asks for (undefined: everything float). */
function planOf(config: WhisperConfig, quant: Quant): QuantizationPlan | undefined {
  if (quant === 'int8') return fullQuantizationPlan(config, 8);
  if (quant === 'int4') return fullQuantizationPlan(config, 4);
  return undefined;
}

/** The training checkpoint folder at `path` (one that holds training.json), or null. */
async function trainingCheckpointAt(path: string): Promise<LoadedTrainingCheckpoint | null> {
  const manifest = await stat(join(path, trainingFileNames.manifest)).catch(() => null);
  return manifest?.isFile() ? loadTrainingCheckpoint(path) : null;
}

/**
 * `plan` with the scales a training checkpoint learned (`<module>.weight_scale` in
 * training.safetensors) for the modules it quantizes; throws when the plan quantizes a module
 * to other bits than its scales were learned for (they would be off by 127 / 7).
 */
function withLearnedScales(plan: QuantizationPlan, training: LoadedTrainingCheckpoint): QuantizationPlan {
  const bitsOf = ((training.state as { trainer?: { scaleBits?: Record<string, number> } } | null)?.trainer?.scaleBits) ?? {};
  const scales = new Map<string, Float32Array>();
  for (const [name, values] of training.tensors) {
    if (!name.endsWith('.weight_scale')) continue;
    const module = name.slice(0, -'.weight_scale'.length);
    if (!plan.modules.includes(module)) continue;
    const learned = bitsOf[name];
    const planned = plan.moduleBits?.get(module) ?? plan.bits ?? 8;
    if (learned !== planned) {
      throw new DqwError(`${training.path}: scales "${name}" were learned for ${learned ?? 'unrecorded'}-bit weights, but the export quantizes "${module}" to ${planned} bits${learned ? `; export with --quant int${learned}` : ''}`);
    }
    scales.set(module, values);
  }
  return scales.size ? { ...plan, scales } : plan;
}

/**
 * Run `dqw export` with `argv` (the arguments after the command name): load, convert, write,
 * then print the size table (teacher first) on stdout. Throws DqwError for bad arguments.
 */
export async function exportCommand(argv: string[], io: CommandIo = { stdout: process.stdout, stderr: process.stderr }): Promise<void> {
  const args = parseExportArgs(argv);
  const teacherConfig = args.teacher ? (await loadCheckpoint(args.teacher, io.stderr, '--teacher')).config : undefined;
  const training = await trainingCheckpointAt(args.model);
  const model = training?.model ?? (await loadCheckpoint(args.model, io.stderr));
  for (const warning of model.warnings) io.stderr.write(`warning: ${warning}\n`);
  const floatDtype: WritableDtype = args.dtype === 'f16' ? 'F16' : 'F32';
  const fixedPlan = args.quantPlan
    ? quantizationPlanOf(parseQuantPlan(await readFile(args.quantPlan, 'utf8'), args.quantPlan), model.config)
    : planOf(model.config, args.quant);
  const plan = fixedPlan && training && args.format === 'hf' ? withLearnedScales(fixedPlan, training) : fixedPlan;
  if (plan?.scales) io.stderr.write(`using the learned scales of ${plan.scales.size} modules from ${join(args.model, trainingFileNames.tensors)}\n`);

  if (args.format === 'hf') {
    if (plan) await saveHfInt8Checkpoint(args.output, quantizeCheckpoint(model, plan), { dtype: floatDtype });
    else await saveHfCheckpoint(args.output, model, { dtype: floatDtype });
  } else {
    const filters = await loadMelFilters(model.config);
    const rankFile = tokenizerRanksPath(model.config);
    const vocab = ggmlVocabFromTiktoken(await readFile(rankFile, 'utf8'), rankFile);
    const fileType: GgmlFileType = args.quant === 'q8_0' ? 'q8_0' : args.dtype;
    await saveGgmlCheckpoint(args.output, model, { fileType, melFilters: { n_mel: filters.nMels, n_fft: filters.data.length / filters.nMels, data: filters.data }, vocab });
  }
  io.stderr.write(`wrote ${args.output}\n`);

  const teacher: SizedModel = { label: args.teacher ? `teacher ${args.teacher} (f32)` : `${args.model} (f32)`, config: teacherConfig ?? model.config };
  // ggml q8_0 is sized as per-channel int8 would be: the same bytes per weight to within its
  // per-32-values f16 scales.
  const exported: SizedModel = { label: `${args.output} (${args.quantPlan ? 'quant plan' : args.quant === 'none' ? args.dtype : args.quant})`, config: model.config, floatDtype, plan: plan ?? (args.quant === 'q8_0' ? fullQuantizationPlan(model.config, 8) : undefined) };
  io.stdout.write(formatSizeTable(sizeTable(teacher, [exported])));
}

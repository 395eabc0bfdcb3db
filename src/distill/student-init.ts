import { ConfigError } from '../errors.js';
import { checkWhisperWeights, elementsOf } from '../model/init.js';
import { validateWhisperConfig, whisperParameters, type WhisperConfig } from '../model/config.js';

/**
 * The teacher cannot seed the student by copying: a width (or another shape-defining field)
 * differs. `mismatches` lists each field with both values; the caller initialises randomly instead.
 */
export class WidthMismatchError extends ConfigError {
  constructor(
    message: string,
    readonly mismatches: readonly { readonly field: string; readonly student: number; readonly teacher: number }[],
  ) {
    super(message);
  }
}

/**
 * distil-whisper's maximally spaced layer choice: the 0-based teacher layers (Hugging Face
 * `layers.k` indices) whose weights seed student layers 0..studentLayers-1. First and last are
 * kept. The rule is distil-whisper's `training/create_student_model.py`
 * (github.com/huggingface/distil-whisper), `np.linspace(0, L_T - 1, L_S, dtype=int)` with the last
 * entry set to L_T - 1; reproduced here with numpy's own arithmetic (k·((L_T−1)/(L_S−1)) in float64,
 * truncated), which differs from exact rational floors in a few pairs such as (L_T 31, L_S 23).
 */
export function maximallySpacedLayers(teacherLayers: number, studentLayers: number): number[] {
  if (!Number.isInteger(teacherLayers) || !Number.isInteger(studentLayers) || teacherLayers < 1 || studentLayers < 1) {
    throw new ConfigError(`layer choice: layer counts must be positive integers, got ${studentLayers} student and ${teacherLayers} teacher layers`);
  }
  if (studentLayers > teacherLayers) {
    throw new ConfigError(`layer choice: the student has ${studentLayers} layers, more than the teacher's ${teacherLayers}; each student layer needs its own teacher layer`);
  }
  const step = (teacherLayers - 1) / (studentLayers - 1); // NaN for one layer, which then is the last
  const choice = Array.from({ length: studentLayers }, (_, k) => Math.trunc(k * step));
  choice[studentLayers - 1] = teacherLayers - 1;
  return choice;
}

/** Options of {@link initStudentFromTeacher}. */
export interface StudentFromTeacherOptions {
  /** 0-based teacher encoder layers to copy, strictly increasing; default {@link maximallySpacedLayers}. */
  encoderLayers?: readonly number[];
  /** 0-based teacher decoder layers to copy (distil-whisper's `--decoder_layers_numbers`); default maximally spaced. */
  decoderLayers?: readonly number[];
}

/** A student seeded from its teacher, and which teacher layers it took. */
export interface StudentFromTeacher {
  /** Every student tensor (Hugging Face names, {@link whisperParameters} order), fresh copies. */
  readonly weights: Map<string, Float32Array>;
  /** encoderLayers[k]: the teacher encoder layer copied into student encoder layer k (0-based). */
  readonly encoderLayers: number[];
  /** decoderLayers[k]: the teacher decoder layer copied into student decoder layer k (0-based). */
  readonly decoderLayers: number[];
}

// Fields that fix tensor shapes (or, for heads, how the copied weights are split) and must agree.
const sameFields = ['d_model', 'encoder_ffn_dim', 'decoder_ffn_dim', 'encoder_attention_heads', 'decoder_attention_heads', 'num_mel_bins', 'vocab_size'] as const;
// Position tables: a student with a shorter context takes the teacher's leading rows.
const atMostFields = ['max_source_positions', 'max_target_positions'] as const;

function checkLayerChoice(choice: readonly number[], studentLayers: number, teacherLayers: number, what: string): number[] {
  if (choice.length !== studentLayers) throw new ConfigError(`${what}: ${choice.length} teacher layers given for ${studentLayers} student layers`);
  choice.forEach((k, i) => {
    if (!Number.isInteger(k) || k < 0 || k >= teacherLayers) throw new ConfigError(`${what}: entry ${i} is ${k}, expected a teacher layer in 0..${teacherLayers - 1}`);
    if (i > 0 && k <= choice[i - 1]!) throw new ConfigError(`${what}: layers must be strictly increasing, got ${choice[i - 1]} then ${k}`);
  });
  return [...choice];
}

/**
 * Seed a student Whisper from a teacher checkpoint, distil-whisper style: student layer k of the
 * encoder (decoder) is a copy of the teacher's layer encoderLayers[k] (decoderLayers[k]), by
 * default {@link maximallySpacedLayers}; every other tensor (conv frontend, positions, token
 * embedding, final layer norms) is copied, position tables cut to the student's context when
 * shorter. Outputs are fresh arrays, bit-identical to the teacher's. Throws
 * {@link WidthMismatchError} naming each differing field when shapes disagree (d_model, FFN
 * widths, heads, mel bins, vocabulary, or a longer student context); ShapeError when the teacher
 * weights do not match their config; ConfigError for a bad layer choice.
 */
export function initStudentFromTeacher(
  teacherConfig: WhisperConfig,
  teacherWeights: ReadonlyMap<string, Float32Array>,
  studentConfig: WhisperConfig,
  opts: StudentFromTeacherOptions = {},
): StudentFromTeacher {
  validateWhisperConfig(teacherConfig, 'teacher config');
  validateWhisperConfig(studentConfig, 'student config');
  const mismatches = [
    ...sameFields.filter((f) => studentConfig[f] !== teacherConfig[f]),
    ...atMostFields.filter((f) => studentConfig[f] > teacherConfig[f]),
  ].map((field) => ({ field, student: studentConfig[field], teacher: teacherConfig[field] }));
  if (mismatches.length > 0) {
    const list = mismatches.map((m) => `${m.field} ${m.student} (student) vs ${m.teacher} (teacher)`).join(', ');
    throw new WidthMismatchError(`cannot seed the student from teacher layers: ${list}; initialise the student randomly instead`, mismatches);
  }
  checkWhisperWeights(teacherConfig, teacherWeights, 'teacher weights');
  const encoderLayers = checkLayerChoice(
    opts.encoderLayers ?? maximallySpacedLayers(teacherConfig.encoder_layers, studentConfig.encoder_layers),
    studentConfig.encoder_layers, teacherConfig.encoder_layers, 'encoder layer choice',
  );
  const decoderLayers = checkLayerChoice(
    opts.decoderLayers ?? maximallySpacedLayers(teacherConfig.decoder_layers, studentConfig.decoder_layers),
    studentConfig.decoder_layers, teacherConfig.decoder_layers, 'decoder layer choice',
  );
  const weights = new Map<string, Float32Array>();
  for (const { name, shape } of whisperParameters(studentConfig)) {
    const layer = /^model\.(encoder|decoder)\.layers\.(\d+)\.(.*)$/.exec(name);
    const teacherName = layer
      ? `model.${layer[1]}.layers.${(layer[1] === 'encoder' ? encoderLayers : decoderLayers)[Number(layer[2])]}.${layer[3]}`
      : name;
    // Same widths, so only position tables can differ in size: take their leading rows.
    weights.set(name, teacherWeights.get(teacherName)!.slice(0, elementsOf(shape)));
  }
  return { weights, encoderLayers, decoderLayers };
}

/**
 * Guided layer selection (Whisper-KDQ, see docs/method.md): which layers to quantize, chosen by
 * how much the distillation loss rises when each one alone is quantized, and the plan file
 * (`quant-plan.json`) that records the measurement and the choice.
 *
 * Pure TypeScript, no GPU and no file system: the caller supplies the loss measurement (a closure
 * that quantizes the named modules and evaluates the held-out batch) and reads or writes the file.
 *
 * quant-plan.json ({@link QuantPlanFile}; modules in selection order, `bits` null = left float):
 * ```json
 * { "version": 1, "measuredOn": "en dev, 8 clips", "measuredBits": 8, "baselineLoss": 2.31,
 *   "teacherFloatBytes": 967049216, "targetRatio": 10, "bits": 8, "mixedInt4": false,
 *   "floatDtype": "F32", "bytes": 95112768, "reachedRatio": 10.167,
 *   "modules": [ { "module": "model.encoder.layers.2.fc1", "params": 589824, "floatBytes": 2359296,
 *                  "quantBytes": 595968, "loss": 2.3102, "sensitivity": 0.0002, "bits": 8 }, ... ] }
 * ```
 * @module
 */
import { ConfigError, DqwError } from '../errors.js';
import type { WritableDtype } from '../io/safetensors.js';
import type { WhisperConfig } from '../model/config.js';
import { checkpointBytes, quantizedWeightBytes } from './size.js';
import { quantizableModules, resolvePlan, type QuantBits, type QuantizableModule, type QuantizationPlan } from './weights.js';

/** A measured loss that is not a finite number; `module` is the quantized module (null: the float baseline). */
export class LayerSensitivityError extends DqwError {
  constructor(
    message: string,
    readonly module: string | null,
  ) {
    super(message);
  }
}

/** The size target cannot be met: even quantizing every measured module leaves the model bigger. */
export class QuantTargetError extends DqwError {
  constructor(
    message: string,
    readonly targetRatio: number,
    /** The largest compression the allowed bits reach (every eligible module quantized). */
    readonly bestRatio: number,
  ) {
    super(message);
  }
}

/** A quant-plan.json that cannot be read: `source` is the file, `field` the JSON path (e.g. "modules[3].bits"). */
export class QuantPlanFileError extends DqwError {
  constructor(
    message: string,
    readonly source: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/** How much quantizing one module alone raises the loss. */
export interface LayerSensitivity {
  /** Module name, e.g. "model.encoder.layers.0.fc1". */
  readonly module: string;
  /** Parameters of its weight. */
  readonly params: number;
  /** Bytes of its weight in float32. */
  readonly floatBytes: number;
  /** Bytes of its weight quantized to {@link bits}, scales included (as checkpointBytes counts them). */
  readonly quantBytes: number;
  /** The bits it was quantized to for the measurement. */
  readonly bits: QuantBits;
  /** Loss with nothing quantized. */
  readonly baselineLoss: number;
  /** Loss with this module alone quantized. */
  readonly loss: number;
  /** loss − baselineLoss (may be negative: quantization noise can lower a batch's loss). */
  readonly sensitivity: number;
}

/** Progress of {@link measureLayerSensitivities}: `done` of `total` measurements, the last one's module (null: baseline) and loss. */
export interface SensitivityProgress {
  readonly done: number;
  readonly total: number;
  readonly module: string | null;
  readonly loss: number;
}

/**
 * Sensitivity of every module in `modules`: `measure([])` once for the float baseline, then
 * `measure([m])` for each module in turn (sequentially: each call typically holds the GPU), and
 * sensitivity = loss − baseline. `measure` quantizes the named modules to `opts.bits` and returns
 * the loss on a fixed held-out batch. Throws ConfigError for a module listed twice, and
 * LayerSensitivityError naming the module when a loss is not finite.
 */
export async function measureLayerSensitivities(
  modules: readonly QuantizableModule[],
  measure: (quantized: readonly string[]) => Promise<number>,
  opts: { bits: QuantBits; onProgress?: (p: SensitivityProgress) => void },
): Promise<LayerSensitivity[]> {
  const seen = new Set<string>();
  for (const m of modules) {
    if (seen.has(m.module)) throw new ConfigError(`measureLayerSensitivities: module "${m.module}" is listed twice`);
    seen.add(m.module);
  }
  const total = modules.length + 1;
  const measured = async (quantized: readonly string[], module: string | null, done: number): Promise<number> => {
    const loss = await measure(quantized);
    if (!Number.isFinite(loss)) {
      throw new LayerSensitivityError(`measureLayerSensitivities: the loss ${module === null ? 'of the float baseline' : `with "${module}" quantized to ${opts.bits} bits`} is ${loss}, expected a finite number`, module);
    }
    opts.onProgress?.({ done, total, module, loss });
    return loss;
  };
  const baselineLoss = await measured([], null, 1);
  const records: LayerSensitivity[] = [];
  for (const m of modules) {
    const loss = await measured([m.module], m.module, records.length + 2);
    const params = m.shape[0] * m.shape[1];
    records.push({ module: m.module, params, floatBytes: 4 * params, quantBytes: quantizedWeightBytes(m.shape, opts.bits), bits: opts.bits, baselineLoss, loss, sensitivity: loss - baselineLoss });
  }
  return records;
}

/** Options of {@link selectLayers}. */
export interface LayerSelectionOptions {
  /** The model being quantized (the student): its tensors outside any module count too. */
  readonly config: WhisperConfig;
  /** The teacher's bytes in float32 (4 × its parameters). */
  readonly teacherFloatBytes: number;
  /** Reach teacherFloatBytes / bytes ≥ this, i.e. bytes ≤ teacherFloatBytes / targetRatio. */
  readonly targetRatio: number;
  /** Bits of the quantized modules. */
  readonly bits: QuantBits;
  /** Dtype of every tensor left float (default F32). */
  readonly floatDtype?: WritableDtype;
  /**
   * With bits 8: when int8 for every measured module misses the target, go on turning modules
   * int8 → int4, cheapest first (sensitivity per byte saved), until it is met.
   */
  readonly mixedInt4?: boolean;
}

/** A quantized module and its bits. */
export interface SelectedModule {
  readonly module: string;
  readonly bits: QuantBits;
}

/** What {@link selectLayers} chose. */
export interface LayerSelection {
  /** The quantized modules in declaration order. */
  readonly modules: readonly SelectedModule[];
  /** Every measured module in the order selection quantizes them: cheapest first, the sensitivity per byte saved (see selectLayers). */
  readonly order: readonly string[];
  /** Bytes of tensor data with this selection (checkpointBytes of {@link plan}). */
  readonly bytes: number;
  /** teacherFloatBytes / bytes. */
  readonly reachedRatio: number;
  /** The options it was chosen with (floatDtype filled in). */
  readonly options: Omit<LayerSelectionOptions, 'config'> & { readonly floatDtype: WritableDtype; readonly mixedInt4: boolean };
  /** The selection as the plan export and training take. */
  readonly plan: QuantizationPlan;
}

function positive(value: number, what: string): void {
  if (!(Number.isFinite(value) && value > 0)) throw new ConfigError(`selectLayers: ${what} is ${value}, expected a positive number`);
}

/** The plan quantizing `modules` with `defaultBits` unless a module says otherwise. */
function planOf(modules: readonly SelectedModule[], defaultBits: QuantBits): QuantizationPlan {
  const others = modules.filter((m) => m.bits !== defaultBits);
  return { modules: modules.map((m) => m.module), bits: defaultBits, ...(others.length > 0 && { moduleBits: new Map(others.map((m) => [m.module, m.bits])) }) };
}

/**
 * Choose the modules to quantize so that the model's bytes (tensor data as checkpointBytes counts
 * it, the tensors outside any module included) are at most teacherFloatBytes / targetRatio.
 *
 * Rule (a greedy knapsack): the measured modules are ranked by their cost, sensitivity per byte
 * its quantization saves, ascending, so that a large module that barely moves the loss (the
 * token embedding, most of a small Whisper's bytes) goes before many small ones that move it
 * more; equal costs go to the module saving more bytes, then to declaration order; negative
 * sensitivities come first. A module whose quantization would not make the model smaller is never
 * quantized. Modules are quantized to `bits` in rank order, up to the shortest
 * prefix meeting the target (none when the float model already meets it). With `mixedInt4` (bits
 * 8 only) and every module at int8 still too big, modules then turn int4 ranked by the same cost
 * with the bytes int8 → int4 saves, after all of them at int8 (sensitivities are measured at one
 * bit width and reused). Then a trim pass undoes steps of that prefix other than its last, the
 * highest sensitivity per byte first, each one whose bytes still fit under the target (an int8
 * step only once its int4 step is undone; steps with sensitivity ≤ 0 stay), so the last step's
 * overshoot buys back the most sensitive of the earlier ones.
 *
 * Throws QuantTargetError (with the best reachable ratio) when quantizing every eligible module
 * misses the target, ConfigError for a bad option or a record that does not fit `config` (unknown
 * module, other parameter count, listed twice), LayerSensitivityError for a non-finite sensitivity.
 */
export function selectLayers(sensitivities: readonly LayerSensitivity[], opts: LayerSelectionOptions): LayerSelection {
  positive(opts.teacherFloatBytes, 'teacherFloatBytes');
  positive(opts.targetRatio, 'targetRatio');
  if (opts.bits !== 8 && opts.bits !== 4) throw new ConfigError(`selectLayers: bits is ${String(opts.bits)}, expected 8 or 4`);
  if (opts.mixedInt4 && opts.bits !== 8) throw new ConfigError('selectLayers: mixedInt4 turns int8 modules into int4, so bits must be 8');
  const floatDtype = opts.floatDtype ?? 'F32';
  const floatBytesPerValue = floatDtype === 'F16' ? 2 : 4;
  const declared = quantizableModules(opts.config);
  const index = new Map(declared.map((m, i) => [m.module, i]));
  const seen = new Set<string>();
  for (const s of sensitivities) {
    const i = index.get(s.module);
    if (i === undefined) throw new ConfigError(`selectLayers: "${s.module}" is not a quantizable module of this Whisper`);
    if (seen.has(s.module)) throw new ConfigError(`selectLayers: module "${s.module}" is listed twice`);
    seen.add(s.module);
    const [rows, cols] = declared[i]!.shape;
    if (s.params !== rows * cols) throw new ConfigError(`selectLayers: "${s.module}" was measured with ${s.params} parameters, this Whisper has ${rows * cols} ([${rows}, ${cols}]): measured on another model?`);
    if (!Number.isFinite(s.sensitivity)) throw new LayerSensitivityError(`selectLayers: "${s.module}" has sensitivity ${s.sensitivity}, expected a finite number`, s.module);
  }
  const shapeOf = (module: string) => declared[index.get(module)!]!.shape;
  const floatSaving = (module: string) => {
    const shape = shapeOf(module);
    return floatBytesPerValue * shape[0] * shape[1] - quantizedWeightBytes(shape, opts.bits);
  };
  const int4Saving = (module: string) => quantizedWeightBytes(shapeOf(module), 8) - quantizedWeightBytes(shapeOf(module), 4);
  /** Order by sensitivity per byte saved (modules saving nothing last), then bytes saved, then declaration. */
  const cheaperFirst = (saving: (module: string) => number) => (a: LayerSensitivity, b: LayerSensitivity) => {
    const [sa, sb] = [saving(a.module), saving(b.module)];
    const [ca, cb] = [sa > 0 ? a.sensitivity / sa : Infinity, sb > 0 ? b.sensitivity / sb : Infinity];
    return (ca === cb ? 0 : ca < cb ? -1 : 1) || sb - sa || index.get(a.module)! - index.get(b.module)!;
  };
  const ranked = [...sensitivities].sort(cheaperFirst(floatSaving));
  const order = ranked.map((s) => s.module);

  // Steps along which bytes only fall: each quantizes one more module, or (mixed) lowers one to int4.
  const eligible = ranked.filter((s) => floatSaving(s.module) > 0);
  const steps: { module: string; bits: QuantBits; saves: number }[] = eligible.map((s) => ({ module: s.module, bits: opts.bits, saves: floatSaving(s.module) }));
  if (opts.mixedInt4) {
    for (const { module } of [...eligible].sort(cheaperFirst(int4Saving))) {
      const saves = int4Saving(module);
      if (saves > 0) steps.push({ module, bits: 4, saves });
    }
  }
  const targetBytes = opts.teacherFloatBytes / opts.targetRatio;
  let bytes = checkpointBytes({ config: opts.config, floatDtype });
  let taken = 0;
  while (bytes > targetBytes && taken < steps.length) bytes -= steps[taken++]!.saves;
  if (bytes > targetBytes) {
    const best = opts.teacherFloatBytes / bytes;
    const eligible = steps.filter((s) => s.bits === opts.bits).length;
    throw new QuantTargetError(
      `selectLayers: a model ${opts.targetRatio}× smaller than the teacher (at most ${Math.floor(targetBytes)} bytes) is out of reach: ` +
        `quantizing all ${eligible} eligible modules to int${opts.bits}${opts.mixedInt4 ? ', then int4' : ''} leaves ${bytes} bytes, ${best.toFixed(2)}× smaller` +
        (opts.bits === 8 && !opts.mixedInt4 ? '; mixed int8/int4 or int4 go further' : ''),
      opts.targetRatio,
      best,
    );
  }
  // Trim: the prefix's last step is the one that met the target and usually overshoots it (a
  // large embedding step after many small ones), so give back earlier steps, most sensitivity
  // per byte first, while the slack covers them; an int8 step stays while its int4 step does.
  const kept = steps.slice(0, taken);
  const sensitivityOf = new Map(sensitivities.map((s) => [s.module, s.sensitivity]));
  const trimOrder = kept.slice(0, -1).filter((s) => sensitivityOf.get(s.module)! > 0)
    .sort((a, b) => sensitivityOf.get(b.module)! / b.saves - sensitivityOf.get(a.module)! / a.saves);
  for (const step of trimOrder) {
    const needed = step.bits !== 4 && kept.some((s) => s.module === step.module && s.bits === 4);
    if (needed || bytes + step.saves > targetBytes) continue;
    bytes += step.saves;
    kept.splice(kept.indexOf(step), 1);
  }
  const bitsOf = new Map<string, QuantBits>();
  for (const s of kept) bitsOf.set(s.module, s.bits);
  const modules = declared.filter((m) => bitsOf.has(m.module)).map((m) => ({ module: m.module, bits: bitsOf.get(m.module)! }));
  return {
    modules, order, bytes, reachedRatio: opts.teacherFloatBytes / bytes,
    options: { teacherFloatBytes: opts.teacherFloatBytes, targetRatio: opts.targetRatio, bits: opts.bits, floatDtype, mixedInt4: opts.mixedInt4 ?? false },
    plan: planOf(modules, opts.bits),
  };
}

/** quant-plan.json's version this code writes and reads. */
export const quantPlanVersion = 1;

/** One measured module in quant-plan.json: its measurement and the bits chosen (null: left float). */
export interface QuantPlanModule {
  readonly module: string;
  readonly params: number;
  /** Bytes of its weight in float32. */
  readonly floatBytes: number;
  /** Bytes of its weight at the measured bits, scales included. */
  readonly quantBytes: number;
  /** Loss with this module alone quantized to the measured bits. */
  readonly loss: number;
  /** loss − baselineLoss. */
  readonly sensitivity: number;
  readonly bits: QuantBits | null;
}

/**
 * quant-plan.json: the guided selection's measurement and choice. Modules are listed in the order
 * selection ranked them (cheapest first: sensitivity per byte saved), every measured module whether quantized or not.
 */
export interface QuantPlanFile {
  readonly version: typeof quantPlanVersion;
  /** What the loss was measured on (the caller's description: data, batch, teacher, checkpoint). */
  readonly measuredOn: string;
  /** Bits the modules were quantized to when measured. */
  readonly measuredBits: QuantBits;
  /** Loss with nothing quantized. */
  readonly baselineLoss: number;
  readonly teacherFloatBytes: number;
  readonly targetRatio: number;
  /** Bits of the quantized modules (the selection's `bits`; int4 ones too when mixedInt4). */
  readonly bits: QuantBits;
  readonly mixedInt4: boolean;
  /** Dtype of the tensors left float. */
  readonly floatDtype: WritableDtype;
  /** Bytes of tensor data with this plan. */
  readonly bytes: number;
  /** teacherFloatBytes / bytes. */
  readonly reachedRatio: number;
  readonly modules: readonly QuantPlanModule[];
}

/**
 * The plan file of a selection made from `sensitivities` (all measured at the same bits, with
 * the same baseline). `measuredOn` says what the loss was measured on. Throws ConfigError when the
 * records disagree on bits or baseline, or do not match the selection's modules.
 */
export function quantPlanFile(sensitivities: readonly LayerSensitivity[], selection: LayerSelection, measuredOn: string): QuantPlanFile {
  const first = sensitivities[0];
  if (!first) throw new ConfigError('quantPlanFile: no measured modules');
  const odd = sensitivities.find((s) => s.bits !== first.bits || s.baselineLoss !== first.baselineLoss);
  if (odd) throw new ConfigError(`quantPlanFile: "${odd.module}" was measured at ${odd.bits} bits from baseline ${odd.baselineLoss}, "${first.module}" at ${first.bits} bits from ${first.baselineLoss}: one plan holds one measurement`);
  const byModule = new Map(sensitivities.map((s) => [s.module, s]));
  if (selection.order.length !== byModule.size || selection.order.some((m) => !byModule.has(m))) {
    throw new ConfigError('quantPlanFile: the selection was made from other measurements than these');
  }
  const bitsOf = new Map(selection.modules.map((m) => [m.module, m.bits]));
  const { teacherFloatBytes, targetRatio, bits, mixedInt4, floatDtype } = selection.options;
  return {
    version: quantPlanVersion, measuredOn, measuredBits: first.bits, baselineLoss: first.baselineLoss,
    teacherFloatBytes, targetRatio, bits, mixedInt4, floatDtype, bytes: selection.bytes, reachedRatio: selection.reachedRatio,
    modules: selection.order.map((m) => {
      const s = byModule.get(m)!;
      return { module: m, params: s.params, floatBytes: s.floatBytes, quantBytes: s.quantBytes, loss: s.loss, sensitivity: s.sensitivity, bits: bitsOf.get(m) ?? null };
    }),
  };
}

/** quant-plan.json's text (two-space indented JSON, newline-terminated). */
export function quantPlanJson(plan: QuantPlanFile): string {
  return `${JSON.stringify(plan, null, 2)}\n`;
}

/** The measurements a plan file holds, to select again (another target) without measuring again. */
export function planSensitivities(plan: QuantPlanFile): LayerSensitivity[] {
  return plan.modules.map((m) => ({
    module: m.module, params: m.params, floatBytes: m.floatBytes, quantBytes: m.quantBytes, bits: plan.measuredBits,
    baselineLoss: plan.baselineLoss, loss: m.loss, sensitivity: m.sensitivity,
  }));
}

/**
 * Read quant-plan.json `text`; `source` names it in errors. Every field is checked; a
 * QuantPlanFileError names the first bad one (e.g. "modules[3].bits") and what was expected.
 */
export function parseQuantPlan(text: string, source: string): QuantPlanFile {
  const fail = (field: string, message: string): never => {
    throw new QuantPlanFileError(`${source}: ${field} ${message}`, source, field);
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail('(file)', `is not valid JSON (${(e as Error).message})`);
  }
  const show = (v: unknown) => (v === undefined ? 'missing' : `${JSON.stringify(v)?.slice(0, 80)}`);
  const object = (v: unknown, field: string): Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : fail(field, `is ${show(v)}, expected an object`);
  const root = object(json, '(file)');
  const field = <T>(o: Record<string, unknown>, path: string, key: string, ok: (v: unknown) => boolean, expected: string): T => {
    const v = o[key];
    return ok(v) ? (v as T) : fail(path + key, `is ${show(v)}, expected ${expected}`);
  };
  const finite = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  const positive = (v: unknown) => finite(v) && (v as number) > 0;
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  const quantBits = (v: unknown) => v === 8 || v === 4;

  const version = field<number>(root, '', 'version', finite, `${quantPlanVersion}`);
  if (version !== quantPlanVersion) fail('version', `is ${version}; this dq-whisper reads version ${quantPlanVersion}`);
  const list = field<unknown[]>(root, '', 'modules', Array.isArray, 'a list of measured modules');
  const seen = new Set<string>();
  const modules = list.map((entry, i): QuantPlanModule => {
    const path = `modules[${i}].`;
    const m = object(entry, `modules[${i}]`);
    const module = field<string>(m, path, 'module', (v) => typeof v === 'string' && v.length > 0, 'a module name');
    if (seen.has(module)) fail(`${path}module`, `"${module}" is listed twice`);
    seen.add(module);
    return {
      module,
      params: field(m, path, 'params', (v) => count(v) && (v as number) > 0, 'a positive integer'),
      floatBytes: field(m, path, 'floatBytes', count, 'a byte count'),
      quantBytes: field(m, path, 'quantBytes', count, 'a byte count'),
      loss: field(m, path, 'loss', finite, 'a finite number'),
      sensitivity: field(m, path, 'sensitivity', finite, 'a finite number'),
      bits: field(m, path, 'bits', (v) => v === null || quantBits(v), '8, 4 or null (left float)'),
    };
  });
  const plan: QuantPlanFile = {
    version: quantPlanVersion,
    measuredOn: field(root, '', 'measuredOn', (v) => typeof v === 'string', 'a string saying what the loss was measured on'),
    measuredBits: field(root, '', 'measuredBits', quantBits, '8 or 4'),
    baselineLoss: field(root, '', 'baselineLoss', finite, 'a finite number'),
    teacherFloatBytes: field(root, '', 'teacherFloatBytes', positive, 'a positive byte count'),
    targetRatio: field(root, '', 'targetRatio', positive, 'a positive number'),
    bits: field(root, '', 'bits', quantBits, '8 or 4'),
    mixedInt4: field(root, '', 'mixedInt4', (v) => typeof v === 'boolean', 'true or false'),
    floatDtype: field(root, '', 'floatDtype', (v) => v === 'F32' || v === 'F16', '"F32" or "F16"'),
    bytes: field(root, '', 'bytes', (v) => count(v) && (v as number) > 0, 'a positive byte count'),
    reachedRatio: field(root, '', 'reachedRatio', positive, 'a positive number'),
    modules,
  };
  const ratio = plan.teacherFloatBytes / plan.bytes;
  if (Math.abs(plan.reachedRatio - ratio) > 1e-9 * ratio) fail('reachedRatio', `is ${plan.reachedRatio}, but teacherFloatBytes / bytes = ${ratio}`);
  const allowed = plan.mixedInt4 ? [plan.bits, 4] : [plan.bits];
  modules.forEach((m, i) => {
    if (m.bits !== null && !allowed.includes(m.bits)) fail(`modules[${i}].bits`, `is ${m.bits}, but the plan quantizes to ${plan.bits} bits${plan.mixedInt4 ? ' or 4' : ''}`);
  });
  return plan;
}

/**
 * The plan file as the QuantizationPlan export and training take, checked against `config`:
 * every module must be a quantizable module of it with the recorded parameter count, and the
 * recorded bytes must be what checkpointBytes gives. Throws ConfigError naming the mismatch.
 */
export function quantizationPlanOf(plan: QuantPlanFile, config: WhisperConfig): QuantizationPlan {
  const declared = new Map(quantizableModules(config).map((m) => [m.module, m.shape[0] * m.shape[1]]));
  for (const m of plan.modules) {
    const params = declared.get(m.module);
    if (params === undefined) throw new ConfigError(`quant plan: "${m.module}" is not a quantizable module of this Whisper`);
    if (params !== m.params) throw new ConfigError(`quant plan: "${m.module}" has ${m.params} parameters in the plan, ${params} in this Whisper: the plan was made for another model`);
  }
  const selected = plan.modules.filter((m) => m.bits !== null).map((m) => ({ module: m.module, bits: m.bits! }));
  const { modules } = resolvePlan(config, planOf(selected, plan.bits));
  const result = planOf(modules, plan.bits);
  const bytes = checkpointBytes({ config, plan: result, floatDtype: plan.floatDtype });
  if (bytes !== plan.bytes) throw new ConfigError(`quant plan: records ${plan.bytes} bytes, but this Whisper with the plan's bits has ${bytes}: the plan was made for another model`);
  return result;
}

/** A plan file as a Markdown summary and table (module | params | sensitivity | bits), in selection order. */
export function formatQuantPlan(plan: QuantPlanFile): string {
  const quantized = plan.modules.filter((m) => m.bits !== null).length;
  const lines = [
    `Measured on ${plan.measuredOn} at int${plan.measuredBits}; baseline loss ${plan.baselineLoss.toPrecision(5)}.`,
    `${quantized} of ${plan.modules.length} modules quantized: ${(plan.bytes / 1e6).toFixed(2)} MB, ${plan.reachedRatio.toFixed(2)}× smaller than the teacher's f32 (target ${plan.targetRatio}×).`,
    '',
    '| module | params | sensitivity | bits |',
    '|---|---:|---:|---:|',
  ];
  for (const m of plan.modules) lines.push(`| ${m.module} | ${m.params} | ${m.sensitivity.toExponential(3)} | ${m.bits === null ? plan.floatDtype.toLowerCase() : `int${m.bits}`} |`);
  return `${lines.join('\n')}\n`;
}

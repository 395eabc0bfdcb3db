import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { parameterCount, whisperParameters } from '../../src/model/config.js';
import {
  formatQuantPlan, LayerSensitivityError, measureLayerSensitivities, parseQuantPlan, planSensitivities, QuantPlanFileError,
  quantizationPlanOf, quantPlanFile, quantPlanJson, QuantTargetError, selectLayers, type LayerSensitivity, type LayerSelectionOptions,
} from '../../src/quant/plan.js';
import { checkpointBytes, quantizedWeightBytes } from '../../src/quant/size.js';
import { quantizableModules, resolvePlan, type QuantBits, type QuantizableModule } from '../../src/quant/weights.js';
import { randomArray } from '../helpers.js';
import { smallConfig } from '../io/fixtures.js';

const declared = quantizableModules(smallConfig);
const teacherFloatBytes = 4 * parameterCount(smallConfig) * 3;

/** A measurement record of `m` with the given sensitivity (baseline loss 2, measured at 8 bits). */
function record(m: QuantizableModule, sensitivity: number): LayerSensitivity {
  const params = m.shape[0] * m.shape[1];
  return { module: m.module, params, floatBytes: 4 * params, quantBytes: m.shape[0] * (m.shape[1] + 4), bits: 8, baselineLoss: 2, loss: 2 + sensitivity, sensitivity };
}

/** Bytes of smallConfig with `level` per module (1: `bits`, 2: int4; others float), by checkpointBytes. */
function bytesOf(modules: readonly string[], level: readonly number[], bits: QuantBits, floatDtype: 'F32' | 'F16'): number {
  const quantized = modules.filter((_, i) => level[i]! > 0);
  const moduleBits = new Map(modules.filter((_, i) => level[i] === 2).map((m) => [m, 4]));
  return checkpointBytes({ config: smallConfig, plan: { modules: quantized, bits, moduleBits }, floatDtype });
}

/** Is `set` (a membership per record) the set of the records of least cost (costs distinct)? */
function isPrefix(set: readonly boolean[], cost: readonly number[]): boolean {
  return cost.every((a, i) => !set[i] || cost.every((b, j) => set[j] || a < b));
}

/** Bytes quantizing `m` saves: from float (`bits`, float dtype) or from int8 to int4. */
function saving(m: QuantizableModule, from: 'float' | 'int8', bits: QuantBits, floatDtype: 'F32' | 'F16'): number {
  const [rows, cols] = m.shape;
  return from === 'float' ? (floatDtype === 'F16' ? 2 : 4) * rows * cols - quantizedWeightBytes(m.shape, bits) : quantizedWeightBytes(m.shape, 8) - quantizedWeightBytes(m.shape, 4);
}

describe('guided layer selection', () => {
  it('starts from the shortest cheapest-first prefix (sensitivity per byte saved) meeting the byte target, found by brute force over every assignment (int8, int4, mixed; F32, F16), and trims it to a subset no step of which can be undone within the target', () => {
    let reached = 0;
    let unreachable = 0;
    let mixedUsedInt4 = 0;
    let trimmed = 0;
    for (let trial = 0; trial < 48; trial++) {
      const rand = randomArray(40, 1000 + trial);
      const u = (k: number) => (rand[k]! + 1) / 2; // in [0, 1)
      const n = 3 + Math.floor(u(0) * 4); // 3..6 modules: 3^6 mixed assignments at most
      const picked = [...declared].sort((a, b) => u(declared.indexOf(a) % 30 + 5) - u(declared.indexOf(b) % 30 + 5) || a.module.localeCompare(b.module)).slice(0, n);
      picked.push(...declared.filter((m) => m.module === 'model.decoder.embed_tokens' && trial % 3 === 0 && !picked.includes(m)));
      const sens = picked.map((_, i) => rand[i + 1]! * 0.1);
      expect(new Set(sens).size).toBe(sens.length);
      const records = picked.map((m, i) => record(m, sens[i]!));
      const names = picked.map((m) => m.module);
      const count = names.length;
      const mixedInt4 = trial % 4 === 3;
      const bits: QuantBits = mixedInt4 || trial % 2 === 0 ? 8 : 4;
      const floatDtype = trial % 3 === 1 ? 'F16' : 'F32';
      const floatBytes = bytesOf(names, names.map(() => 0), bits, floatDtype);
      const allBytes = bytesOf(names, names.map(() => (mixedInt4 ? 2 : 1)), bits, floatDtype);
      // Targets from below the float model's ratio to beyond the best one.
      const lo = teacherFloatBytes / floatBytes;
      const hi = teacherFloatBytes / allBytes;
      const targetRatio = lo * (hi / lo) ** (-0.15 + 1.3 * u(39));
      const opts: LayerSelectionOptions = { config: smallConfig, teacherFloatBytes, targetRatio, bits, floatDtype, mixedInt4 };

      // Every assignment float / `bits` / int4 the rule can produce, by steps taken: a prefix at `bits`
      // (no int4), or (mixed) everything at int8 and a prefix at int4; prefixes by cost.
      const cost = picked.map((m, i) => sens[i]! / saving(m, 'float', bits, floatDtype));
      const int4Cost = picked.map((m, i) => sens[i]! / saving(m, 'int8', bits, floatDtype));
      const states: { level: number[]; steps: number; bytes: number }[] = [];
      for (let code = 0; code < (mixedInt4 ? 3 : 2) ** count; code++) {
        const level = names.map((_, i) => Math.floor(code / (mixedInt4 ? 3 : 2) ** i) % (mixedInt4 ? 3 : 2));
        const ruleState = level.every((l) => l < 2)
          ? isPrefix(level.map((l) => l > 0), cost)
          : level.every((l) => l > 0) && isPrefix(level.map((l) => l === 2), int4Cost);
        if (ruleState) states.push({ level, steps: level.reduce((a, l) => a + l, 0), bytes: bytesOf(names, level, bits, floatDtype) });
      }
      expect(states.length).toBe(mixedInt4 ? 2 * count + 1 : count + 1);
      const meeting = states.filter((s) => s.bytes <= teacherFloatBytes / targetRatio).sort((a, b) => a.steps - b.steps);
      const expected = meeting[0];
      if (!expected) {
        unreachable++;
        const e = (() => {
          try {
            selectLayers(records, opts);
          } catch (err) {
            return err;
          }
        })();
        expect(e, `trial ${trial}`).toBeInstanceOf(QuantTargetError);
        expect((e as QuantTargetError).bestRatio).toBe(hi);
        expect((e as QuantTargetError).message).toContain(`leaves ${allBytes} bytes, ${hi.toFixed(2)}× smaller`);
        continue;
      }
      reached++;
      const selection = selectLayers(records, opts);
      const got = names.map((m) => {
        const s = selection.modules.find((x) => x.module === m);
        return s === undefined ? 0 : s.bits === bits ? 1 : 2;
      });
      // The trim only undoes steps of the prefix: every module at most as far as the prefix took it.
      got.forEach((l, i) => expect(l, `trial ${trial}, ${names[i]}`).toBeLessThanOrEqual(expected.level[i]!));
      if (got.some((l, i) => l < expected.level[i]!)) trimmed++;
      if (got.includes(2)) mixedUsedInt4++;
      // No shorter prefix meets the target (the brute force's minimum is where selection starts).
      expect(states.filter((s) => s.steps < expected.steps).every((s) => s.bytes > teacherFloatBytes / targetRatio)).toBe(true);
      // Trimmed as far as it goes: undoing any remaining step of positive sensitivity (int4 → int8,
      // else the module's last level; int8 only when not int4) breaks the target.
      got.forEach((l, i) => {
        if (l === 0 || sens[i]! <= 0) return;
        const undone = got.map((x, j) => (j === i ? x - 1 : x));
        expect(bytesOf(names, undone, bits, floatDtype), `trial ${trial}: undoing ${names[i]}`).toBeGreaterThan(teacherFloatBytes / targetRatio);
      });
      const planBytes = checkpointBytes({ config: smallConfig, plan: selection.plan, floatDtype });
      expect(selection.bytes).toBe(planBytes);
      expect(planBytes).toBe(bytesOf(names, got, bits, floatDtype));
      expect(planBytes).toBeGreaterThanOrEqual(expected.bytes);
      expect(selection.reachedRatio).toBe(teacherFloatBytes / planBytes);
      expect(selection.reachedRatio).toBeGreaterThanOrEqual(targetRatio);
      expect(selection.order).toEqual([...names].sort((a, b) => cost[names.indexOf(a)]! - cost[names.indexOf(b)]!));
      expect(selection.modules.map((m) => m.module)).toEqual(declared.map((m) => m.module).filter((m) => selection.modules.some((s) => s.module === m)));
    }
    // The instances exercised every branch.
    expect(reached).toBeGreaterThan(20);
    expect(unreachable).toBeGreaterThan(0);
    expect(mixedUsedInt4).toBeGreaterThan(0);
    expect(trimmed).toBeGreaterThan(0);
  });

  it('trim: the step that meets the target gives back the earlier steps its overshoot covers, the most sensitive per byte first (the embedding step after many small int4 steps)', () => {
    const byName = (name: string) => declared.find((m) => m.module === name)!;
    const embed = byName('model.decoder.embed_tokens'); // [300, 32]
    const small = ['model.encoder.layers.0.self_attn.q_proj', 'model.encoder.layers.1.self_attn.q_proj', 'model.decoder.layers.0.self_attn.q_proj'].map(byName); // [32, 32] each
    const names = [embed, ...small].map((m) => m.module);
    // int8: the embedding costs most per byte, so the prefix takes every small module before it.
    const int8Records = [record(embed, 5), ...small.map((m, i) => record(m, 0.01 * (i + 1)))];
    const pick = (targetLevels: number[], mixedInt4: boolean) => {
      const records = mixedInt4 ? [record(embed, 0.3), ...small.map((m, i) => record(m, 0.001 * (i + 1)))] : int8Records;
      const target = bytesOf(names, targetLevels, 8, 'F32');
      const selection = selectLayers(records, { config: smallConfig, teacherFloatBytes, targetRatio: teacherFloatBytes / target, bits: 8, mixedInt4 });
      return names.map((m) => {
        const s = selection.modules.find((x) => x.module === m);
        return s === undefined ? 0 : s.bits === 8 ? 1 : 2;
      });
    };
    // Room for two of the three small modules to go back to float: the two most sensitive do.
    expect(pick([1, 1, 0, 0], false)).toEqual([1, 1, 0, 0]);
    // Room for one: the most sensitive (0.03) goes back; the last step (the embedding) always stays.
    expect(pick([1, 1, 1, 0], false)).toEqual([1, 1, 1, 0]);
    // Room for one and a half: still one, never a target missed.
    const between = bytesOf(names, [1, 1, 0, 0], 8, 'F32') - 1;
    const records = int8Records;
    const selection = selectLayers(records, { config: smallConfig, teacherFloatBytes, targetRatio: teacherFloatBytes / between, bits: 8 });
    expect(selection.modules.map((m) => m.module).sort()).toEqual([embed, small[0]!, small[1]!].map((m) => m.module).sort());
    expect(selection.bytes).toBeLessThanOrEqual(between);
    // Mixed: all int8, the small modules' near-free int4 steps, then the embedding's int4 step
    // meets the target; the trim returns the small modules to int8 (the real run's 7.30× for 5.18×).
    expect(pick([2, 1, 1, 1], true)).toEqual([2, 1, 1, 1]);
  });

  it('cost per byte: of equal sensitivities the module saving more bytes first, equal costs in declaration order, negative sensitivities first', () => {
    const byName = (name: string) => declared.find((m) => m.module === name)!;
    const records = [
      record(byName('model.encoder.layers.1.self_attn.q_proj'), 0.5),
      record(byName('model.encoder.layers.0.fc1'), 0.5), // [64, 32]
      record(byName('model.encoder.layers.0.self_attn.q_proj'), 0.5), // [32, 32]
      record(byName('model.decoder.embed_tokens'), 0.5), // [300, 32]
      record(byName('model.decoder.layers.0.fc2'), -0.01),
    ];
    const selection = selectLayers(records, { config: smallConfig, teacherFloatBytes, targetRatio: 1, bits: 8 });
    expect(selection.order).toEqual([
      'model.decoder.layers.0.fc2', 'model.decoder.embed_tokens', 'model.encoder.layers.0.fc1',
      'model.encoder.layers.0.self_attn.q_proj', 'model.encoder.layers.1.self_attn.q_proj',
    ]);
    // The float model is already 3× smaller than this teacher: nothing needs quantizing.
    expect(selection.modules).toEqual([]);
    expect(selection.bytes).toBe(4 * parameterCount(smallConfig));
  });

  it('a large module costing less per byte goes first though it is the most sensitive (a small Whisper\'s token embedding)', () => {
    const byName = (name: string) => declared.find((m) => m.module === name)!;
    const embed = byName('model.decoder.embed_tokens'); // [300, 32]: 0.3 / 27600 bytes saved
    const small = ['model.encoder.layers.0.self_attn.q_proj', 'model.encoder.layers.1.self_attn.q_proj', 'model.decoder.layers.0.fc2'].map(byName);
    const records = [record(embed, 0.3), ...small.map((m, i) => record(m, 0.05 + 0.01 * i))];
    const names = [embed, ...small].map((m) => m.module);
    for (const mixedInt4 of [false, true]) {
      // Just the embedding at int8 (or, mixed, everything at int8 and just the embedding at int4) meets the target.
      const target = bytesOf(names, mixedInt4 ? [2, 1, 1, 1] : [1, 0, 0, 0], 8, 'F32');
      const selection = selectLayers(records, { config: smallConfig, teacherFloatBytes, targetRatio: teacherFloatBytes / target, bits: 8, mixedInt4 });
      expect(selection.order[0]).toBe(embed.module);
      expect(selection.bytes).toBe(target);
      expect(selection.modules.find((m) => m.module === embed.module)?.bits).toBe(mixedInt4 ? 4 : 8);
      expect(selection.modules.filter((m) => m.bits === 4).length).toBe(mixedInt4 ? 1 : 0);
    }
  });

  it('never quantizes a module whose int8 form is not smaller (4 values a row in F16: 8 bytes either way)', () => {
    const config = { ...smallConfig, d_model: 4, encoder_attention_heads: 1, decoder_attention_heads: 1 };
    const modules = quantizableModules(config);
    const records = modules.map((m, i) => record(m, i * 1e-3));
    const all = checkpointBytes({ config, floatDtype: 'F16' });
    // Only rows longer than 4 values save bytes: fc2 [4, ffn] of every layer.
    const savers = modules.filter((m) => m.shape[1] > 4);
    expect(savers.map((m) => m.module)).toEqual(['model.encoder.layers.0.fc2', 'model.encoder.layers.1.fc2', 'model.decoder.layers.0.fc2', 'model.decoder.layers.1.fc2']);
    const best = checkpointBytes({ config, floatDtype: 'F16', plan: { modules: savers.map((m) => m.module) } });
    expect(best).toBeLessThan(all);
    const selection = selectLayers(records, { config, teacherFloatBytes: best, targetRatio: 1, bits: 8, floatDtype: 'F16' });
    expect(selection.modules.map((m) => m.module)).toEqual(savers.map((m) => m.module));
    expect(() => selectLayers(records, { config, teacherFloatBytes: best - 1, targetRatio: 1, bits: 8, floatDtype: 'F16' })).toThrow(/quantizing all 4 eligible modules to int8 leaves/);
  });

  it('rejects bad options and records that do not fit the model', () => {
    const records = declared.slice(0, 3).map((m, i) => record(m, i));
    const opts: LayerSelectionOptions = { config: smallConfig, teacherFloatBytes, targetRatio: 2, bits: 8 };
    expect(() => selectLayers(records, { ...opts, targetRatio: 0 })).toThrow(/targetRatio is 0, expected a positive number/);
    expect(() => selectLayers(records, { ...opts, teacherFloatBytes: NaN })).toThrow(/teacherFloatBytes is NaN/);
    expect(() => selectLayers(records, { ...opts, bits: 4, mixedInt4: true })).toThrow(/mixedInt4 .* bits must be 8/);
    expect(() => selectLayers([...records, records[0]!], opts)).toThrow(/"model\.encoder\.layers\.0\.self_attn\.k_proj" is listed twice/);
    expect(() => selectLayers([{ ...records[1]!, params: 7 }], opts)).toThrow(/measured with 7 parameters, this Whisper has 1024 \(\[32, 32\]\): measured on another model/);
    expect(() => selectLayers([{ ...records[1]!, module: 'model.encoder.conv1' }], opts)).toThrow(ConfigError);
    expect(() => selectLayers([{ ...records[1]!, sensitivity: NaN }], opts)).toThrow(LayerSensitivityError);
    expect(() => selectLayers(records, { ...opts, targetRatio: 1e6 })).toThrow(/a model 1000000× smaller .* out of reach: quantizing all 3 eligible modules to int8 leaves \d+ bytes, [\d.]+× smaller; mixed int8\/int4 or int4 go further/);
  });
});

describe('sensitivity measurement', () => {
  // Loss with a set of modules quantized: a baseline plus a known penalty per module.
  const modules = declared.slice(0, 9);
  const penalty = new Map(modules.map((m, i) => [m.module, [0.031, 0.002, 0.5, 0.0007, 0.09, 0.011, 0.24, 0.0031, 0.06][i]!]));
  const baseline = 3.25;

  it('baseline first, then each module alone; sensitivity = the module\'s penalty; bytes per module; progress; then selection takes the smallest penalties', async () => {
    const calls: string[][] = [];
    const progress: unknown[] = [];
    const records = await measureLayerSensitivities(
      modules,
      async (quantized) => {
        calls.push([...quantized]);
        return quantized.reduce((loss, m) => loss + penalty.get(m)!, baseline);
      },
      { bits: 4, onProgress: (p) => progress.push(p) },
    );
    expect(calls).toEqual([[], ...modules.map((m) => [m.module])]);
    expect(progress).toHaveLength(10);
    expect(progress[0]).toEqual({ done: 1, total: 10, module: null, loss: baseline });
    expect(progress[9]).toEqual({ done: 10, total: 10, module: modules[8]!.module, loss: baseline + penalty.get(modules[8]!.module)! });
    for (const [i, r] of records.entries()) {
      const [rows, cols] = modules[i]!.shape;
      expect(r.module).toBe(modules[i]!.module);
      // (baseline + p) − baseline is p to within an ulp of 3.25 (4.4e-16).
      expect(Math.abs(r.sensitivity - penalty.get(r.module)!)).toBeLessThanOrEqual(1e-15);
      expect(r.baselineLoss).toBe(baseline);
      expect([r.params, r.floatBytes, r.quantBytes, r.bits]).toEqual([rows * cols, 4 * rows * cols, rows * (cols / 2 + 4), 4]);
    }
    // Enough bytes for exactly the three least-penalised modules at int4.
    const cheapest = [...modules].sort((a, b) => penalty.get(a.module)! - penalty.get(b.module)!).slice(0, 3).map((m) => m.module);
    const bytes3 = checkpointBytes({ config: smallConfig, plan: { modules: cheapest, bits: 4 } });
    const selection = selectLayers(records, { config: smallConfig, teacherFloatBytes: bytes3 * 2, targetRatio: 2, bits: 4 });
    expect(new Set(selection.modules.map((m) => m.module))).toEqual(new Set(cheapest));
    expect(selection.bytes).toBe(bytes3);
  });

  it('a non-finite loss names the module (or the baseline); a module listed twice is refused before measuring', async () => {
    const failing = (bad: string | null) => (quantized: readonly string[]) => Promise.resolve((quantized[0] ?? null) === bad ? NaN : baseline);
    await expect(measureLayerSensitivities(modules, failing(modules[4]!.module), { bits: 8 })).rejects.toThrow(
      new LayerSensitivityError(`measureLayerSensitivities: the loss with "${modules[4]!.module}" quantized to 8 bits is NaN, expected a finite number`, modules[4]!.module),
    );
    const e = await measureLayerSensitivities(modules, failing(null), { bits: 8 }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(LayerSensitivityError);
    expect((e as LayerSensitivityError).module).toBeNull();
    expect((e as Error).message).toMatch(/loss of the float baseline is NaN/);
    let called = 0;
    await expect(measureLayerSensitivities([modules[0]!, modules[0]!], async () => ++called, { bits: 8 })).rejects.toThrow(ConfigError);
    expect(called).toBe(0);
  });
});

describe('quant-plan.json', () => {
  const picked = declared.filter((_, i) => i % 3 === 1);
  const records = picked.map((m, i) => record(m, randomArray(picked.length, 77)[i]! * 0.01));
  // A target needing some int4 layers on top of int8 for all.
  const int8All = checkpointBytes({ config: smallConfig, plan: { modules: picked.map((m) => m.module), bits: 8 } });
  const selection = selectLayers(records, { config: smallConfig, teacherFloatBytes, targetRatio: (teacherFloatBytes / int8All) * 1.02, bits: 8, mixedInt4: true });
  const plan = quantPlanFile(records, selection, 'speech-samples en (8 clips), teacher small, student step 400');

  it('round trip: JSON text, parse, the same selection again from the stored measurements, the QuantizationPlan for export', () => {
    expect(selection.modules.some((m) => m.bits === 4)).toBe(true);
    expect(selection.modules.length).toBe(picked.length);
    const text = quantPlanJson(plan);
    const parsed = parseQuantPlan(text, 'quant-plan.json');
    expect(parsed).toEqual(plan);
    expect(parsed.modules.map((m) => m.module)).toEqual(selection.order);
    const again = selectLayers(planSensitivities(parsed), { config: smallConfig, ...parsed });
    expect(again.modules).toEqual(selection.modules);
    const qplan = quantizationPlanOf(parsed, smallConfig);
    expect(resolvePlan(smallConfig, qplan).modules.map((m) => [m.module, m.bits])).toEqual(selection.modules.map((m) => [m.module, m.bits]));
    expect(checkpointBytes({ config: smallConfig, plan: qplan })).toBe(parsed.bytes);
    // Counted from scratch: int4 rows of 32 values are 16 bytes + a scale; int8 32 + 4; the rest f32.
    const bitsOf = new Map(selection.modules.map((m) => [`${m.module}.weight`, m.bits]));
    const scratch = whisperParameters(smallConfig).reduce((n, p) => {
      const b = bitsOf.get(p.name);
      return n + (b === undefined ? 4 * p.shape.reduce((a, c) => a * c, 1) : p.shape[0]! * ((p.shape[1]! * b) / 8 + 4));
    }, 0);
    expect(parsed.bytes).toBe(scratch);
  });

  it('refuses a plan made for another model', () => {
    const other = { ...smallConfig, encoder_ffn_dim: 48 };
    expect(() => quantizationPlanOf(plan, other)).toThrow(/"model\.encoder\.layers\.[01]\.fc1" has 2048 parameters in the plan, 1536 in this Whisper/);
    expect(() => quantizationPlanOf({ ...plan, bytes: plan.bytes + 1 }, smallConfig)).toThrow(/records \d+ bytes, but this Whisper with the plan's bits has \d+/);
  });

  it('parse errors name the field', () => {
    const edit = (change: (json: Record<string, any>) => void): string => {
      const json = JSON.parse(quantPlanJson(plan));
      change(json);
      return JSON.stringify(json);
    };
    const cases: [string, string, RegExp][] = [
      ['{', '(file)', /plan\.json: \(file\) is not valid JSON/],
      ['[]', '(file)', /is \[\], expected an object/],
      [edit((j) => { j.version = 2; }), 'version', /version is 2; this dq-whisper reads version 1/],
      [edit((j) => { delete j.measuredOn; }), 'measuredOn', /measuredOn is missing, expected a string/],
      [edit((j) => { j.measuredBits = 16; }), 'measuredBits', /measuredBits is 16, expected 8 or 4/],
      [edit((j) => { j.floatDtype = 'BF16'; }), 'floatDtype', /floatDtype is "BF16", expected "F32" or "F16"/],
      [edit((j) => { j.modules[2].bits = 3; }), 'modules[2].bits', /modules\[2\]\.bits is 3, expected 8, 4 or null/],
      [edit((j) => { j.modules[1].sensitivity = 'high'; }), 'modules[1].sensitivity', /is "high", expected a finite number/],
      [edit((j) => { j.modules[3].module = j.modules[0].module; }), 'modules[3].module', /is listed twice/],
      [edit((j) => { j.modules[0].params = -1; }), 'modules[0].params', /expected a positive integer/],
      [edit((j) => { j.modules = {}; }), 'modules', /modules is \{\}, expected a list/],
      [edit((j) => { j.reachedRatio *= 1.01; }), 'reachedRatio', /but teacherFloatBytes \/ bytes = /],
      [edit((j) => { j.mixedInt4 = false; }), `modules[${plan.modules.findIndex((m) => m.bits === 4)}].bits`, /is 4, but the plan quantizes to 8 bits$/],
    ];
    for (const [text, field, message] of cases) {
      const e = (() => {
        try {
          parseQuantPlan(text, 'runs/a/quant-plan.json');
        } catch (err) {
          return err;
        }
      })();
      expect(e, field).toBeInstanceOf(QuantPlanFileError);
      expect((e as QuantPlanFileError).field).toBe(field);
      expect((e as QuantPlanFileError).source).toBe('runs/a/quant-plan.json');
      expect((e as Error).message).toMatch(/^runs\/a\/quant-plan\.json: /);
      expect((e as Error).message).toMatch(message);
    }
  });

  it('table: one row per module in selection order with its params, sensitivity and bits', () => {
    const lines = formatQuantPlan(plan).trimEnd().split('\n');
    expect(lines[0]).toBe(`Measured on ${plan.measuredOn} at int8; baseline loss 2.0000.`);
    expect(lines[1]).toMatch(new RegExp(`^${plan.modules.length} of ${plan.modules.length} modules quantized: [\\d.]+ MB, ${plan.reachedRatio.toFixed(2)}× smaller`));
    expect(lines.slice(3, 5)).toEqual(['| module | params | sensitivity | bits |', '|---|---:|---:|---:|']);
    const rows = lines.slice(5);
    expect(rows).toHaveLength(plan.modules.length);
    for (const [i, row] of rows.entries()) {
      const m = plan.modules[i]!;
      const cells = row.split('|').map((c) => c.trim()).slice(1, -1);
      expect(cells[0]).toBe(m.module);
      expect(Number(cells[1])).toBe(m.params);
      // Four significant digits.
      expect(Math.abs(Number(cells[2]) - m.sensitivity)).toBeLessThanOrEqual(5e-4 * Math.abs(m.sensitivity));
      expect(cells[3]).toBe(`int${m.bits}`);
    }
    const floatRows = formatQuantPlan({ ...plan, modules: plan.modules.map((m) => ({ ...m, bits: null })) }).trimEnd().split('\n').slice(5);
    expect(floatRows.every((r) => r.endsWith('| f32 |'))).toBe(true);
  });
});

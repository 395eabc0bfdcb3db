import { describe, expect, it } from 'vitest';
import { ConfigError, ShapeError } from '../../src/errors.js';
import { initStudentFromTeacher, maximallySpacedLayers, WidthMismatchError } from '../../src/distill/student-init.js';
import { checkWhisperWeights, initWhisperWeights } from '../../src/model/init.js';
import type { WhisperConfig } from '../../src/model/config.js';

// [L_T, L_S, choice] printed by numpy 2.4.6 with distil-whisper's rule:
//   m = np.linspace(0, L_T - 1, L_S, dtype=int); m[-1] = L_T - 1
// (31, 23) and (46, 34) are pairs where numpy's float64 product truncates below the exact floor.
const numpyChoices: [number, number, number[]][] = [
  [1, 1, [0]],
  [2, 1, [1]],
  [4, 1, [3]],
  [4, 2, [0, 3]],
  [4, 3, [0, 1, 3]],
  [4, 4, [0, 1, 2, 3]],
  [6, 4, [0, 1, 3, 5]],
  [12, 2, [0, 11]],
  [12, 4, [0, 3, 7, 11]],
  [12, 6, [0, 2, 4, 6, 8, 11]],
  [12, 8, [0, 1, 3, 4, 6, 7, 9, 11]],
  [24, 12, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 23]],
  [32, 2, [0, 31]],
  [32, 5, [0, 7, 15, 23, 31]],
  [32, 16, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 31]],
  [31, 23, [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 16, 17, 19, 20, 21, 23, 24, 25, 27, 28, 30]],
  [46, 34, [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 16, 17, 19, 20, 21, 23, 24, 25, 27, 28, 29, 31, 32, 34, 35, 36, 38, 39, 40, 42, 43, 45]],
  [8, 3, [0, 3, 7]],
];

function choiceOf(lt: number, ls: number): number[] {
  const row = numpyChoices.find(([t, s]) => t === lt && s === ls);
  if (!row) throw new Error(`no numpy reference for (${lt}, ${ls})`);
  return row[2];
}

function tinyConfig(encoderLayers: number, decoderLayers: number, over: Partial<WhisperConfig> = {}): WhisperConfig {
  return {
    vocab_size: 40, num_mel_bins: 4, d_model: 8,
    encoder_layers: encoderLayers, encoder_attention_heads: 2, encoder_ffn_dim: 16,
    decoder_layers: decoderLayers, decoder_attention_heads: 2, decoder_ffn_dim: 12,
    max_source_positions: 6, max_target_positions: 5,
    decoder_start_token_id: 36, eos_token_id: 35, pad_token_id: 35, bos_token_id: 35,
    ...over,
  };
}

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return ua.length === ub.length && ua.every((x, i) => x === ub[i]);
}

describe('maximallySpacedLayers', () => {
  it('equals numpy on distil-whisper\'s rule, first and last kept', () => {
    for (const [lt, ls, expected] of numpyChoices) {
      const got = maximallySpacedLayers(lt, ls);
      expect(got, `L_T ${lt}, L_S ${ls}`).toEqual(expected);
      expect(got[ls - 1]).toBe(lt - 1);
      if (ls > 1) expect(got[0]).toBe(0);
    }
  });

  it('is strictly increasing for every L_S <= L_T <= 64', () => {
    for (let lt = 1; lt <= 64; lt++) {
      for (let ls = 1; ls <= lt; ls++) {
        const c = maximallySpacedLayers(lt, ls);
        for (let k = 1; k < ls; k++) expect(c[k]!).toBeGreaterThan(c[k - 1]!);
      }
    }
  });

  it('rejects a student deeper than the teacher', () => {
    expect(() => maximallySpacedLayers(4, 6)).toThrow(/student has 6 layers, more than the teacher's 4/);
    expect(() => maximallySpacedLayers(4, 0)).toThrow(ConfigError);
  });
});

describe('initStudentFromTeacher', () => {
  const pairs: [number, number, number, number][] = [
    // teacher enc, student enc, teacher dec, student dec
    [12, 4, 12, 2],
    [6, 4, 4, 3],
    [8, 3, 12, 6],
    [4, 4, 4, 1],
  ];
  for (const [te, se, td, sd] of pairs) {
    it(`copies teacher layers bit for bit (encoder ${te} -> ${se}, decoder ${td} -> ${sd})`, () => {
      const teacherConfig = tinyConfig(te, td);
      const teacher = initWhisperWeights(teacherConfig, te * 100 + td, { randomizeAll: true });
      const studentConfig = tinyConfig(se, sd);
      const { weights, encoderLayers, decoderLayers } = initStudentFromTeacher(teacherConfig, teacher, studentConfig);
      expect(encoderLayers).toEqual(choiceOf(te, se));
      expect(decoderLayers).toEqual(choiceOf(td, sd));
      checkWhisperWeights(studentConfig, weights, 'student');
      let layerTensors = 0;
      for (const [name, values] of weights) {
        // Reference name mapping written out here: student layer k <- teacher layer choice[k].
        let source = name;
        const enc = /^model\.encoder\.layers\.(\d+)\./.exec(name);
        const dec = /^model\.decoder\.layers\.(\d+)\./.exec(name);
        if (enc) source = name.replace(`encoder.layers.${enc[1]}.`, `encoder.layers.${choiceOf(te, se)[Number(enc[1])]}.`);
        if (dec) source = name.replace(`decoder.layers.${dec[1]}.`, `decoder.layers.${choiceOf(td, sd)[Number(dec[1])]}.`);
        if (enc || dec) layerTensors++;
        const original = teacher.get(source)!;
        expect(bitsEqual(values, original), `${name} <- ${source}`).toBe(true);
        expect(values.buffer).not.toBe(original.buffer); // a copy: training the student leaves the teacher alone
      }
      expect(layerTensors).toBe(15 * se + 24 * sd); // 15 tensors per encoder layer, 24 per decoder layer
    });
  }

  it('takes the leading rows of the position tables for a shorter student context', () => {
    const teacherConfig = tinyConfig(4, 4);
    const teacher = initWhisperWeights(teacherConfig, 3, { randomizeAll: true });
    const studentConfig = tinyConfig(2, 2, { max_source_positions: 4, max_target_positions: 3 });
    const { weights } = initStudentFromTeacher(teacherConfig, teacher, studentConfig);
    const decPos = weights.get('model.decoder.embed_positions.weight')!;
    expect(decPos.length).toBe(3 * 8);
    expect(bitsEqual(decPos, teacher.get('model.decoder.embed_positions.weight')!.subarray(0, 24))).toBe(true);
    expect(weights.get('model.encoder.embed_positions.weight')!.length).toBe(4 * 8);
  });

  it('accepts an explicit layer choice and rejects a bad one', () => {
    const teacherConfig = tinyConfig(6, 6);
    const teacher = initWhisperWeights(teacherConfig, 4, { randomizeAll: true });
    const studentConfig = tinyConfig(2, 2);
    const { weights, decoderLayers } = initStudentFromTeacher(teacherConfig, teacher, studentConfig, { decoderLayers: [1, 4] });
    expect(decoderLayers).toEqual([1, 4]);
    expect(bitsEqual(weights.get('model.decoder.layers.1.fc1.weight')!, teacher.get('model.decoder.layers.4.fc1.weight')!)).toBe(true);
    expect(() => initStudentFromTeacher(teacherConfig, teacher, studentConfig, { decoderLayers: [4, 1] })).toThrow(/strictly increasing, got 4 then 1/);
    expect(() => initStudentFromTeacher(teacherConfig, teacher, studentConfig, { encoderLayers: [0, 6] })).toThrow(/entry 1 is 6, expected a teacher layer in 0..5/);
    expect(() => initStudentFromTeacher(teacherConfig, teacher, studentConfig, { encoderLayers: [0] })).toThrow(/1 teacher layers given for 2 student layers/);
  });

  it('names every width mismatch so the caller can fall back to random init', () => {
    const teacherConfig = tinyConfig(4, 4);
    const teacher = initWhisperWeights(teacherConfig, 5);
    const narrow = tinyConfig(2, 2, { d_model: 4, encoder_ffn_dim: 8, max_target_positions: 9 });
    let error: unknown;
    try {
      initStudentFromTeacher(teacherConfig, teacher, narrow);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(WidthMismatchError);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as WidthMismatchError).mismatches).toEqual([
      { field: 'd_model', student: 4, teacher: 8 },
      { field: 'encoder_ffn_dim', student: 8, teacher: 16 },
      { field: 'max_target_positions', student: 9, teacher: 5 },
    ]);
    expect((error as Error).message).toMatch(/d_model 4 \(student\) vs 8 \(teacher\), encoder_ffn_dim 8 \(student\) vs 16 \(teacher\)/);
  });

  it('rejects teacher weights that do not match the teacher config, naming the tensor', () => {
    const teacherConfig = tinyConfig(4, 4);
    const teacher = initWhisperWeights(teacherConfig, 6);
    teacher.delete('model.encoder.layers.3.fc2.bias');
    expect(() => initStudentFromTeacher(teacherConfig, teacher, tinyConfig(2, 2))).toThrow(ShapeError);
    expect(() => initStudentFromTeacher(teacherConfig, teacher, tinyConfig(2, 2))).toThrow(/teacher weights: .*missing tensor "model.encoder.layers.3.fc2.bias"/s);
  });
});

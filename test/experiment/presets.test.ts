// The built-in presets are runnable as written: the demo's committed teacher is the file its
// README names (checksums) and loads as the float Whisper the demo's students are cut from.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configOfShape, experimentPresets } from '../../src/experiment/presets.js';
import { loadHfCheckpoint } from '../../src/io/node-files.js';

const ROOT = new URL('../../', import.meta.url).pathname;

describe('experiment presets', () => {
  it('demo: the committed teacher matches its README checksums and the cpu preset\'s teacher shape', async () => {
    const dir = join(ROOT, experimentPresets.demo!.pretrainedTeacher!);
    const readme = readFileSync(join(dir, 'README.md'), 'utf8');
    for (const file of ['config.json', 'model.safetensors']) {
      const digest = createHash('sha256').update(readFileSync(join(dir, file))).digest('hex');
      expect(readme).toContain(`${digest}  ${file}`);
    }
    const teacher = await loadHfCheckpoint(dir);
    const { extra: _, ...config } = teacher.config;
    expect(config).toEqual(configOfShape(experimentPresets.cpu!.teacher.shape));
    const demo = experimentPresets.demo!;
    expect(demo.student.encoderLayers).toBeLessThan(teacher.config.encoder_layers);
    expect(demo.student.decoderLayers).toBeLessThan(teacher.config.decoder_layers);
    expect([...teacher.weights.values()].every((w) => w.every(Number.isFinite))).toBe(true);
  });
});

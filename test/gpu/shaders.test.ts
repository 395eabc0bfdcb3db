import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { shaderSources } from '../../src/shaders.gen.js';

const shaderDir = new URL('../../shaders/', import.meta.url);

describe('bundled shaders', () => {
  it('bundles every top-level shaders/*.wgsl and no shaders/lib file on its own', () => {
    const files = readdirSync(shaderDir).filter((f) => f.endsWith('.wgsl')).map((f) => f.slice(0, -5)).sort();
    expect(Object.keys(shaderSources).sort()).toEqual(files);
  });

  it('expands each // #include once, in place, with the library text', () => {
    const reduction = readFileSync(new URL('lib/reduction.wgsl', shaderDir), 'utf8').trimEnd();
    const gelu = readFileSync(new URL('lib/gelu.wgsl', shaderDir), 'utf8').trimEnd();
    for (const [name, source] of Object.entries(shaderSources)) {
      expect(source, name).not.toMatch(/^\/\/ #include/m);
      const raw = readFileSync(new URL(`${name}.wgsl`, shaderDir), 'utf8');
      for (const [lib, text] of [['lib/reduction.wgsl', reduction], ['lib/gelu.wgsl', gelu]] as const) {
        const included = raw.includes(`// #include "${lib}"`);
        expect(source.split(text).length - 1, `${name} includes ${lib}`).toBe(included ? 1 : 0);
      }
    }
    expect(shaderSources.softmax).toMatch(/fn wg_sum2/);
    expect(shaderSources.matmul).toMatch(/fn gelu_erf\(x: Erf\)/);
  });
});

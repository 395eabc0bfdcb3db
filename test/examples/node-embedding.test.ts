import { describe, it } from 'vitest';
import { exampleInputs } from '../../examples/embedding-kernels.js';
import { runNodeExample } from '../../examples/node-embedding.js';
import { expectMatchesReferences } from './embedding-check.js';

describe('examples/node-embedding.ts', () => {
  it('runs attention, int8 matmul and cross-entropy on an application-owned Dawn device and buffers, matching float64 references', async () => {
    const inputs = exampleInputs();
    expectMatchesReferences(inputs, await runNodeExample(inputs));
  });
});

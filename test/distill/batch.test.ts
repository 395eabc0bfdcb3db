import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { examplesPerBinding, splitBatchForBinding } from '../../src/distill/batch.js';

const MiB128 = 134217728; // WebGPU's default maxStorageBufferBindingSize (lavapipe, SwiftShader)
const vocab = 51865;

describe('fitting a batch\'s logits into one storage binding', () => {
  it('examplesPerBinding: the most examples whose f32 logits [examples x tokens, vocab] fit; none fitting is an error naming --max-tokens', () => {
    // 100 tokens: 20,746,000 bytes per example, 6 fit in 128 MiB and 7 do not.
    expect(examplesPerBinding(100, vocab, MiB128)).toBe(6);
    expect(6 * 4 * 100 * vocab).toBeLessThanOrEqual(MiB128);
    expect(7 * 4 * 100 * vocab).toBeGreaterThan(MiB128);
    // Exactly at the limit still fits.
    expect(examplesPerBinding(10, 100, 4 * 10 * 100 * 3)).toBe(3);
    expect(() => examplesPerBinding(448, vocab, 64 * 2 ** 20)).toThrow(ConfigError);
    expect(() => examplesPerBinding(448, vocab, 64 * 2 ** 20)).toThrow(/one example's logits \[448, 51865\] f32 need 92942080 bytes, more than one storage binding holds on this device \(67108864\); use fewer decoder positions \(--max-tokens\)/);
  });

  it('splitBatchForBinding: the largest divisor of the batch that fits, with the update\'s examples kept by more micro-batches', () => {
    const fits = { batchSize: 6, microBatches: 1 };
    expect(splitBatchForBinding(fits, 100, vocab, MiB128)).toBe(fits);
    expect(splitBatchForBinding({ batchSize: 8, microBatches: 1 }, 100, vocab, MiB128)).toEqual({ batchSize: 4, microBatches: 2 });
    expect(splitBatchForBinding({ batchSize: 8, microBatches: 3 }, 100, vocab, MiB128)).toEqual({ batchSize: 4, microBatches: 6 });
    // A prime batch above the limit can only run one example at a time.
    expect(splitBatchForBinding({ batchSize: 7, microBatches: 1 }, 100, vocab, MiB128)).toEqual({ batchSize: 1, microBatches: 7 });
    // Brute force over batches and limits: the same examples per update, the largest fitting divisor.
    for (let batch = 1; batch <= 40; batch++) {
      for (let most = 1; most <= 12; most++) {
        const limit = 4 * 10 * 100 * most + 3;
        const got = splitBatchForBinding({ batchSize: batch, microBatches: 2 }, 10, 100, limit);
        expect(got.batchSize * got.microBatches).toBe(batch * 2);
        expect(batch % got.batchSize).toBe(0);
        expect(got.batchSize).toBeLessThanOrEqual(most);
        const best = Math.max(...Array.from({ length: batch }, (_, i) => i + 1).filter((d) => batch % d === 0 && d <= most));
        expect(got.batchSize, `batch ${batch}, at most ${most}`).toBe(best);
      }
    }
  });
});

// Fused attention on Whisper base shapes (6 heads of 64, width 384): encoder self-attention over
// 1500 frames, decoder causal self-attention over 448 tokens, and decoder-to-encoder
// cross-attention, forward and backward. Operands are token-major [1, L, 384], as the q/k/v
// projections write them, so no transposes are timed or needed.
import type { Gpu } from '../../src/gpu/gpu.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { attention, attentionBackward } from '../../src/kernels/attention.js';
import type { BenchCase } from '../types.js';

const H = 6;
const D = 64;

function random(gpu: Gpu, shape: number[], label: string): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return gpu.upload(Float32Array.from({ length: n }, () => Math.random() * 2 - 1), shape, 'f32', label);
}

function attentionCase(what: string, Lq: number, Lk: number, causal: boolean, backward: boolean): BenchCase {
  // Score pairs computed: Lq * Lk, or the causal triangle (the last query sees all Lk keys).
  const pairs = H * (causal ? (Lk * (Lk + 1)) / 2 - ((Lk - Lq) * (Lk - Lq + 1)) / 2 : Lq * Lk);
  const [nq, nk] = [Lq * H * D, Lk * H * D];
  return {
    family: 'attention',
    name: `${what} Lq=${Lq} Lk=${Lk} H=${H} D=${D}${causal ? ' causal' : ''}${backward ? ' backward' : ''}`,
    // Forward: q k^T and P v, 2 flops per multiply-add. Backward as executed: the dK/dV kernel
    // recomputes S and dP and forms dV, dK (8), the dQ kernel recomputes S, dP and forms dQ (6),
    // plus the rowsum(dOut * out) pre-pass.
    flops: backward ? 14 * pairs * D + 2 * Lq * H * D : 4 * pairs * D,
    // Each operand read and each result written once (q, k, v, out, lse; backward adds dOut and
    // the three gradients, and reads the (lse, delta) scratch).
    bytes: backward ? 4 * (5 * nq + 5 * nk + 2 * Lq * H + 6 * Lq * H) : 4 * (2 * nq + 2 * nk + Lq * H),
    setup(gpu) {
      const q = random(gpu, [1, Lq, H * D], 'q');
      const k = random(gpu, [1, Lk, H * D], 'k');
      const v = random(gpu, [1, Lk, H * D], 'v');
      // The backward's cost does not depend on the saved values, so random ones stand in.
      const out = random(gpu, [1, Lq, H * D], 'out');
      const lse = random(gpu, [1, H, Lq], 'lse');
      const dOut = random(gpu, [1, Lq, H * D], 'dOut');
      const grads = { q: gpu.empty(q.shape, 'f32', 'dq'), k: gpu.empty(k.shape, 'f32', 'dk'), v: gpu.empty(v.shape, 'f32', 'dv') };
      return {
        run(rec) {
          if (backward) attentionBackward(rec, q, k, v, out, lse, dOut, grads, { causal });
          else attention(rec, q, k, v, out, lse, { causal });
        },
        dispose: () => gpu.free(q, k, v, out, lse, dOut, grads.q, grads.k, grads.v),
      };
    },
  };
}

export const cases: BenchCase[] = [
  attentionCase('encoder self-attention', 1500, 1500, false, false),
  attentionCase('encoder self-attention', 1500, 1500, false, true),
  attentionCase('decoder self-attention', 448, 448, true, false),
  attentionCase('decoder self-attention', 448, 448, true, true),
  attentionCase('cross-attention', 448, 1500, false, false),
  attentionCase('cross-attention', 448, 1500, false, true),
];

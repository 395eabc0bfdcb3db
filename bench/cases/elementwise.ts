// Whisper's audio frontend convolutions, the MLP's GELU and the token embedding, at tiny.en /
// base widths (d = 384, encoder 1500 frames from 3000 mel frames, decoder 448 tokens).
import type { Gpu } from '../../src/gpu/gpu.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { gelu, geluBackward } from '../../src/kernels/activation.js';
import { conv1d, conv1dBackward, conv1dOutLength } from '../../src/kernels/conv1d.js';
import { embedding, embeddingBackward } from '../../src/kernels/embedding.js';
import type { BenchCase } from '../types.js';

function random(gpu: Gpu, shape: number[], label: string): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return gpu.upload(Float32Array.from({ length: n }, () => Math.random() * 2 - 1), shape, 'f32', label);
}

function convCase(Cin: number, Cout: number, T: number, stride: number, backward: boolean): BenchCase {
  const Tout = conv1dOutLength(T, stride);
  const macs = Cout * Tout * Cin * 3;
  const io = Cin * T + Cout * Cin * 3 + Cout + Cout * Tout;
  return {
    family: 'conv1d',
    name: `conv${stride === 1 ? 1 : 2} [1,${Cin},${T}] -> ${Cout} stride ${stride}${backward ? ' backward (dx, dw+db)' : ' +gelu'}${stride === 2 ? ' token-major' : ''}`,
    // Backward: dx has the forward's multiply-adds, dw+db one more column of them.
    flops: backward ? 2 * macs + 2 * Cout * Tout * (Cin * 3 + 1) : 2 * macs + Cout * Tout,
    // Backward reads dy and w for dx, dy and x for dw, writes dx, dw and db.
    bytes: 4 * (backward ? 2 * Cout * Tout + Cout * Cin * 3 + Cin * T + Cin * T + Cout * Cin * 3 + Cout : io),
    setup(gpu) {
      const tokenMajor = stride === 2;
      const x = random(gpu, [1, Cin, T], 'mel');
      const w = random(gpu, [Cout, Cin, 3], 'conv.weight');
      const b = random(gpu, [Cout], 'conv.bias');
      const outShape = tokenMajor ? [1, Tout, Cout] : [1, Cout, Tout];
      const out = backward ? random(gpu, outShape, 'gy') : gpu.empty(outShape, 'f32', 'out');
      const gx = gpu.empty([1, Cin, T], 'f32', 'gx');
      const gw = gpu.empty([Cout, Cin, 3], 'f32', 'gw');
      const gb = gpu.empty([Cout], 'f32', 'gb');
      return {
        run(rec) {
          if (backward) conv1dBackward(rec, x, w, out, { x: gx, weight: gw, bias: gb }, { stride, tokenMajor });
          else conv1d(rec, x, w, b, out, { stride, tokenMajor, gelu: true });
        },
        dispose: () => gpu.free(x, w, b, out, gx, gw, gb),
      };
    },
  };
}

function geluCase(rows: number, cols: number, backward: boolean): BenchCase {
  const n = rows * cols;
  return {
    family: 'activation',
    name: `gelu${backward ? ' backward' : ''} [${rows},${cols}]`,
    flops: (backward ? 26 : 20) * n,
    bytes: (backward ? 12 : 8) * n,
    setup(gpu) {
      const x = random(gpu, [rows, cols], 'x');
      const gy = random(gpu, [rows, cols], 'gy');
      const y = gpu.empty([rows, cols], 'f32', 'y');
      return {
        run(rec) {
          if (backward) geluBackward(rec, x, gy, y);
          else gelu(rec, x, y);
        },
        dispose: () => gpu.free(x, gy, y),
      };
    },
  };
}

function embeddingCase(N: number, V: number, C: number, backward: boolean): BenchCase {
  return {
    family: 'embedding',
    // The backward accumulates, so no clear of the whole [V, C] gradient happens (it would not be timed).
    name: `token embedding ${backward ? 'backward (accumulate)' : 'gather'} ${N} ids from [${V},${C}]`,
    flops: backward ? N * C : 0,
    bytes: 4 * N + 4 * N * C * (backward ? 3 : 2),
    setup(gpu) {
      const ids = gpu.upload(Int32Array.from({ length: N }, () => Math.floor(Math.random() * V)), [1, N], 'i32', 'tokens');
      const table = random(gpu, [V, C], 'token_embedding');
      const rows = random(gpu, [1, N, C], 'rows');
      return {
        run(rec) {
          if (backward) embeddingBackward(rec, ids, rows, table, { accumulate: true });
          else embedding(rec, ids, table, rows);
        },
        dispose: () => gpu.free(ids, table, rows),
      };
    },
  };
}

export const cases: BenchCase[] = [
  convCase(80, 384, 3000, 1, false),
  convCase(384, 384, 3000, 2, false),
  convCase(384, 384, 3000, 2, true),
  geluCase(1500, 1536, false),
  geluCase(1500, 1536, true),
  embeddingCase(448, 51865, 384, false),
  embeddingCase(448, 51865, 384, true),
];

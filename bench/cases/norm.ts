// LayerNorm over the encoder's 1500 frames at tiny/base (384) and small (768) widths, softmax
// over the 51865-token vocabulary for 448 decoder positions, and the gradient-norm reduction
// over all of whisper-tiny's ~38M parameters.
import type { Gpu } from '../../src/gpu/gpu.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { layerNorm, layerNormBackward, layerNormWorkspaceShape } from '../../src/kernels/layernorm.js';
import { partialsSize, sumSquares } from '../../src/kernels/reduce.js';
import { softmax, softmaxBackward } from '../../src/kernels/softmax.js';
import type { BenchCase } from '../types.js';

function random(gpu: Gpu, shape: number[], label: string): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return gpu.upload(Float32Array.from({ length: n }, () => Math.random() * 2 - 1), shape, 'f32', label);
}

function layerNormCase(rows: number, cols: number, backward: boolean): BenchCase {
  const n = rows * cols;
  const chunks = layerNormWorkspaceShape(rows, cols)[1];
  return {
    family: 'layernorm',
    name: `layernorm ${backward ? 'backward (dx, dgamma, dbeta)' : 'forward'} [${rows},${cols}]`,
    flops: backward ? 14 * n + 5 * n + 2 * chunks * cols : 8 * n,
    // Forward: x read 3 times, y written, stats. Backward: x and dy read twice each (dx pass,
    // param pass), dx written, partials written and read.
    bytes: 4 * (backward ? 7 * n + 4 * rows + 4 * chunks * cols + 3 * cols : 4 * n + 2 * rows + 2 * cols),
    setup(gpu) {
      const x = random(gpu, [rows, cols], 'x');
      const gamma = random(gpu, [cols], 'ln.weight');
      const beta = random(gpu, [cols], 'ln.bias');
      const y = gpu.empty([rows, cols], 'f32', 'y');
      // The backward times the same work whatever stats it reads; the forward fills them anyway.
      const mean = gpu.empty([rows], 'f32', 'mean');
      const rstd = gpu.empty([rows], 'f32', 'rstd');
      const dy = random(gpu, [rows, cols], 'dy');
      const dx = gpu.empty([rows, cols], 'f32', 'dx');
      const dgamma = gpu.empty([cols], 'f32', 'dgamma');
      const dbeta = gpu.empty([cols], 'f32', 'dbeta');
      const workspace = gpu.empty(layerNormWorkspaceShape(rows, cols), 'f32', 'workspace');
      return {
        run(rec) {
          if (backward) layerNormBackward(rec, x, gamma, { mean, rstd }, dy, { dx, dgamma, dbeta, workspace });
          else layerNorm(rec, x, { gamma, beta }, { y, mean, rstd });
        },
        dispose: () => gpu.free(x, gamma, beta, y, mean, rstd, dy, dx, dgamma, dbeta, workspace),
      };
    },
  };
}

function softmaxCase(rows: number, cols: number, backward: boolean): BenchCase {
  const n = rows * cols;
  return {
    family: 'softmax',
    name: `softmax${backward ? ' backward' : ''} [${rows},${cols}]`,
    flops: (backward ? 4 : 8) * n,
    // Forward reads x twice and writes y; backward reads y and dy twice and writes dx.
    bytes: 4 * (backward ? 5 : 3) * n,
    setup(gpu) {
      const x = random(gpu, [rows, cols], 'logits');
      const y = gpu.empty([rows, cols], 'f32', 'probs');
      // The backward reads y as stored (zeros until a forward ran): the same work either way.
      const dy = random(gpu, [rows, cols], 'dprobs');
      const dx = gpu.empty([rows, cols], 'f32', 'dlogits');
      return {
        run(rec) {
          if (backward) softmaxBackward(rec, y, dy, dx);
          else softmax(rec, x, y);
        },
        dispose: () => gpu.free(x, y, dy, dx),
      };
    },
  };
}

/** Parameter shapes of whisper-tiny (d 384, 4 encoder and 4 decoder layers, 80 mels). */
function whisperTinyParams(): number[][] {
  const d = 384;
  const shapes: number[][] = [[d, 80, 3], [d], [d, d, 3], [d], [51_865, d], [448, d], [2, d], [2, d]];
  const attention = () => [[d, d], [d], [d, d], [d, d], [d], [d, d], [d], [2, d]];
  const mlp = () => [[4 * d, d], [4 * d], [d, 4 * d], [d], [2, d]];
  for (let l = 0; l < 4; l++) shapes.push(...attention(), ...mlp());
  for (let l = 0; l < 4; l++) shapes.push(...attention(), ...attention(), ...mlp());
  return shapes;
}

function sumSquaresCase(): BenchCase {
  const shapes = whisperTinyParams();
  const n = shapes.reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);
  return {
    family: 'reduce',
    name: `sumSquares over whisper-tiny's ${shapes.length} parameter tensors (${(n / 1e6).toFixed(1)}M floats)`,
    flops: 2 * n,
    bytes: 4 * n,
    setup(gpu) {
      // WebGPU zero-fills new buffers; the values do not change the work, so skip 150 MB uploads.
      const grads = shapes.map((sh, i) => gpu.empty(sh, 'f32', `grad${i}`));
      const partials = gpu.empty([partialsSize(grads)], 'f32', 'partials');
      const out = gpu.empty([1], 'f32', 'sumsq');
      return {
        run: (rec) => sumSquares(rec, grads, partials, out),
        dispose: () => gpu.free(...grads, partials, out),
      };
    },
  };
}

export const cases: BenchCase[] = [
  layerNormCase(1500, 384, false),
  layerNormCase(1500, 384, true),
  layerNormCase(1500, 768, false),
  layerNormCase(1500, 768, true),
  softmaxCase(448, 51_865, false),
  softmaxCase(448, 51_865, true),
  sumSquaresCase(),
];

// Distillation losses over Whisper's vocabulary and hidden states, the dynamic-matching distance
// matrix (student layers x teacher layers incl. the embedding output, encoder length 1500,
// width 384) and one AdamW step over all of Whisper tiny's trainable tensors.
import type { Gpu } from '../../src/gpu/gpu.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { adamwStep, type AdamWParam } from '../../src/kernels/adamw.js';
import { crossEntropy, distanceMatrix, distanceWorkspaceSizes, klDivergence, mseLoss } from '../../src/kernels/losses.js';
import type { BenchCase } from '../types.js';

const VOCAB = 51_865;

function random(gpu: Gpu, shape: number[], label: string, scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return gpu.upload(Float32Array.from({ length: n }, () => (Math.random() * 2 - 1) * scale), shape, 'f32', label);
}

/** Decoder targets with the last tenth of the rows padded (ignored). */
function targets(gpu: Gpu, rows: number): Tensor {
  return gpu.upload(Int32Array.from({ length: rows }, (_, r) => (r < rows * 0.9 ? Math.floor(Math.random() * VOCAB) : -100)), [rows], 'i32', 'targets');
}

function crossEntropyCase(rows: number): BenchCase {
  const n = rows * VOCAB;
  return {
    family: 'losses',
    name: `cross-entropy + grad [${rows},${VOCAB}]`,
    flops: 9 * n,
    // Reads the logits twice, writes the gradient.
    bytes: 4 * 3 * n,
    setup(gpu) {
      const logits = random(gpu, [rows, VOCAB], 'logits', 10);
      const y = targets(gpu, rows);
      const rowLoss = gpu.empty([rows], 'f32', 'ce');
      const grad = gpu.empty([rows, VOCAB], 'f32', 'dlogits');
      const out = gpu.empty([1], 'f32', 'loss');
      return {
        run: (rec) => crossEntropy(rec, logits, y, rowLoss, { grad, mean: { out } }),
        dispose: () => gpu.free(logits, y, rowLoss, grad, out),
      };
    },
  };
}

function klCase(rows: number, tau: number): BenchCase {
  const n = rows * VOCAB;
  return {
    family: 'losses',
    name: `KL(teacher||student) tau ${tau} + grad [${rows},${VOCAB}]`,
    flops: 24 * n,
    // Reads both logit tensors twice, writes the gradient.
    bytes: 4 * 5 * n,
    setup(gpu) {
      const student = random(gpu, [rows, VOCAB], 'student logits', 10);
      const teacher = random(gpu, [rows, VOCAB], 'teacher logits', 10);
      const y = targets(gpu, rows);
      const rowLoss = gpu.empty([rows], 'f32', 'kl');
      const grad = gpu.empty([rows, VOCAB], 'f32', 'dstudent');
      const out = gpu.empty([1], 'f32', 'loss');
      return {
        run: (rec) => klDivergence(rec, student, teacher, rowLoss, { tau, mask: { ids: y }, grad, mean: { out } }),
        dispose: () => gpu.free(student, teacher, y, rowLoss, grad, out),
      };
    },
  };
}

function mseCase(rows: number, cols: number): BenchCase {
  const n = rows * cols;
  return {
    family: 'losses',
    name: `hidden-state MSE + both grads [${rows},${cols}]`,
    flops: 7 * n,
    bytes: 4 * 4 * n,
    setup(gpu) {
      const a = random(gpu, [rows, cols], 'projected student');
      const b = random(gpu, [rows, cols], 'teacher states');
      const rowLoss = gpu.empty([rows], 'f32', 'mse');
      const gradA = gpu.empty([rows, cols], 'f32', 'da');
      const gradB = gpu.empty([rows, cols], 'f32', 'db');
      return {
        run: (rec) => mseLoss(rec, a, b, rowLoss, { gradA, gradB }),
        dispose: () => gpu.free(a, b, rowLoss, gradA, gradB),
      };
    },
  };
}

function distanceCase(ls: number, lt: number, rows: number, cols: number, layerNorm: boolean): BenchCase {
  const n = rows * cols;
  const tilesI = Math.ceil(ls / 4);
  const tilesJ = Math.ceil(lt / 8);
  return {
    family: 'losses',
    name: `distance matrix ${ls}x${lt} layers over [${rows},${cols}]${layerNorm ? ' after LayerNorm' : ''}`,
    // Subtract, multiply-add per pair and element (+ the LayerNorm stats and normalisation).
    flops: 3 * ls * lt * n + (layerNorm ? 6 * (ls + lt) * n : 0),
    // Each layer is read once per tile of the other side (+ twice more for the stats).
    bytes: 4 * ((ls * tilesJ + lt * tilesI) * n + (layerNorm ? 2 * (ls + lt) * n : 0)),
    setup(gpu) {
      const student = random(gpu, [ls, rows, cols], 'student states');
      const teacher = random(gpu, [lt, rows, cols], 'teacher states');
      const sizes = distanceWorkspaceSizes(ls, lt, rows, cols, layerNorm);
      const partials = gpu.empty([sizes.partials], 'f32', 'partials');
      const stats = layerNorm ? gpu.empty([sizes.stats], 'f32', 'stats') : undefined;
      const D = gpu.empty([ls, lt], 'f32', 'D');
      return {
        run: (rec) => distanceMatrix(rec, student, teacher, D, { partials, stats }, { layerNorm }),
        dispose: () => gpu.free(student, teacher, partials, D, ...(stats ? [stats] : [])),
      };
    },
  };
}

/** Shapes of Whisper tiny's trainable tensors (d 384, 4 + 4 layers, MLP 1536, vocab 51865). */
function whisperTinyShapes(): number[][] {
  const d = 384;
  const ffn = 4 * d;
  const ln = [[d], [d]];
  const attn = [[d, d], [d], [d, d], [d, d], [d], [d, d], [d]]; // q (w, b), k (w), v (w, b), out (w, b)
  const mlp = [[ffn, d], [ffn], [d, ffn], [d]];
  const encoder = [[d, 80, 3], [d], [d, d, 3], [d], ...Array.from({ length: 4 }, () => [...ln, ...attn, ...ln, ...mlp]).flat(), ...ln];
  const decoder = [[VOCAB, d], [448, d], ...Array.from({ length: 4 }, () => [...ln, ...attn, ...ln, ...attn, ...ln, ...mlp]).flat(), ...ln];
  return [...encoder, ...decoder];
}

function adamwCase(clip: boolean): BenchCase {
  const shapes = whisperTinyShapes();
  const n = shapes.reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);
  return {
    family: 'optimizer',
    name: `AdamW step over Whisper tiny (${shapes.length} tensors, ${(n / 1e6).toFixed(1)}M params)${clip ? ' + norm clipping' : ''}`,
    flops: 18 * n,
    bytes: 4 * 7 * n,
    setup(gpu) {
      const params: AdamWParam[] = shapes.map((shape, k) => ({
        param: random(gpu, shape, `w${k}`),
        grad: random(gpu, shape, `g${k}`, 1e-3),
        expAvg: gpu.upload(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, 'f32', `m${k}`),
        expAvgSq: gpu.upload(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, 'f32', `v${k}`),
        ...(shape.length === 1 ? { weightDecay: 0 } : {}),
      }));
      const sumSquares = gpu.upload([n * 1e-6 / 3], [1], 'f32', 'grad sumsq');
      let step = 0;
      return {
        run: (rec) => adamwStep(rec, params, { lr: 1e-4, step: ++step, ...(clip ? { clip: { sumSquares, maxNorm: 1 } } : {}) }),
        dispose: () => gpu.free(sumSquares, ...params.flatMap((p) => [p.param, p.grad, p.expAvg, p.expAvgSq])),
      };
    },
  };
}

export const cases: BenchCase[] = [
  crossEntropyCase(448),
  klCase(448, 2),
  mseCase(1500, 384),
  distanceCase(2, 5, 1500, 384, false),
  distanceCase(4, 7, 1500, 384, false),
  distanceCase(4, 13, 1500, 384, false),
  distanceCase(4, 13, 1500, 384, true),
  adamwCase(true),
];

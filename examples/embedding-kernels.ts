// What an application that already has a WebGPU device does to run dq-whisper's kernels on its
// own buffers: causal attention, an int8 linear layer and cross-entropy with its gradient. No
// dq-whisper model is involved. Used by examples/node-embedding.ts (Dawn under Node) and
// examples/browser-embedding.ts (navigator.gpu); docs/embedding.md walks through it.
// An application imports from 'dq-whisper'; the examples import the source so that they run
// from a checkout without a build.
import {
  Gpu,
  Rng,
  attention,
  crossEntropy,
  int8Matmul,
  packInt8Weights,
  packedWords,
  quantizeRows,
  type DType,
  type Int8Matrix,
  type Tensor,
} from '../src/index.js';

/** Problem sizes: small enough for a software adapter, odd enough to exercise edge tiles. */
export const exampleShapes = {
  /** Token-major q [B, Lq, H*D], k and v [B, Lk, H*D]; causal with Lq < Lk (a decoder step with a cache). */
  attention: { B: 1, H: 2, Lq: 5, Lk: 7, D: 16 },
  /** y [M, N] = x [M, K] @ w [N, K]^T + bias, both operands int8. */
  int8: { M: 6, K: 40, N: 9 },
  /** Cross-entropy over `rows` rows of `vocab` logits; target -100 marks an ignored row. */
  loss: { rows: 4, vocab: 11 },
} as const;

export interface ExampleInputs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  x: Float32Array;
  w: Float32Array;
  bias: Float32Array;
  logits: Float32Array;
  targets: Int32Array;
}

export interface ExampleOutputs {
  attention: { out: Float32Array; lse: Float32Array };
  /** y from int8Matmul; the activation scales quantizeRows computed on the GPU; the weight's (host) scales. */
  int8: { y: Float32Array; xScales: Float32Array; wScales: Float32Array };
  loss: { rowLoss: Float32Array; mean: number; validRows: number; grad: Float32Array };
}

/** Deterministic inputs (the tests recompute the references from them). */
export function exampleInputs(seed = 7): ExampleInputs {
  const rng = new Rng(seed);
  const { attention: a, int8: m, loss: l } = exampleShapes;
  const normal = (n: number, std = 1) => rng.fillNormal(new Float32Array(n), std);
  return {
    q: normal(a.B * a.Lq * a.H * a.D),
    k: normal(a.B * a.Lk * a.H * a.D),
    v: normal(a.B * a.Lk * a.H * a.D),
    x: normal(m.M * m.K),
    w: normal(m.N * m.K, 0.2),
    bias: normal(m.N, 0.1),
    logits: normal(l.rows * l.vocab, 2),
    targets: Int32Array.from({ length: l.rows }, (_, r) => (r === 2 ? -100 : (r * 5 + 3) % l.vocab)),
  };
}

/**
 * Run the three kernels on buffers the application creates on its own `device`, read the results
 * back, and release what dq-whisper allocated. The device and its other work are untouched.
 * `dot4I8Packed`: whether the WGSL language feature `packed_4x8_integer_dot_product` is there
 * (`navigator.gpu.wgslLanguageFeatures` says; a GPUDevice does not).
 */
export async function runKernelsOnAppDevice(
  device: GPUDevice,
  inputs: ExampleInputs,
  options: { runtime: 'node' | 'browser'; dot4I8Packed: boolean },
): Promise<ExampleOutputs> {
  const { attention: a, int8: m, loss: l } = exampleShapes;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const owned: GPUBuffer[] = [];

  // The application's buffers: any GPUBuffer with STORAGE usage can be bound (COPY_SRC to read it
  // back, COPY_DST to fill it). A Tensor is only a typed view: buffer, byte offset, dtype, shape.
  const write = (buffer: GPUBuffer, offset: number, data: Float32Array | Int32Array | Uint32Array) =>
    device.queue.writeBuffer(buffer, offset, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  const appBuffer = (label: string, bytes: number, data?: Float32Array | Int32Array | Uint32Array): GPUBuffer => {
    const buffer = device.createBuffer({ label, size: Math.ceil(bytes / 4) * 4, usage });
    if (data) write(buffer, 0, data);
    owned.push(buffer);
    return buffer;
  };
  const view = (buffer: GPUBuffer, dtype: DType, shape: number[], label: string, offset = 0): Tensor => ({ buffer, offset, dtype, shape, label });
  const input = (label: string, dtype: DType, shape: number[], data: Float32Array | Int32Array | Uint32Array) => view(appBuffer(label, data.byteLength, data), dtype, shape, label);
  const output = (label: string, dtype: DType, shape: number[]) => view(appBuffer(label, 4 * shape.reduce((p, d) => p * d, 1)), dtype, shape, label);

  // Attention operands, token-major as a q/k/v projection writes them, in one buffer of the
  // application (an arena) at offsets that are multiples of minStorageBufferOffsetAlignment.
  // Views of one buffer may share a dispatch only if none of them is written there (WebGPU's
  // rule; dq-whisper throws a KernelBindingError naming both bindings otherwise).
  const align = device.limits.minStorageBufferOffsetAlignment;
  const alignUp = (bytes: number) => Math.ceil(bytes / align) * align;
  const [qOffset, kOffset] = [0, alignUp(inputs.q.byteLength)];
  const vOffset = kOffset + alignUp(inputs.k.byteLength);
  const qkv = appBuffer('app.qkv_arena', vOffset + inputs.v.byteLength);
  write(qkv, qOffset, inputs.q);
  write(qkv, kOffset, inputs.k);
  write(qkv, vOffset, inputs.v);
  const q = view(qkv, 'f32', [a.B, a.Lq, a.H * a.D], 'app.q', qOffset);
  const k = view(qkv, 'f32', [a.B, a.Lk, a.H * a.D], 'app.k', kOffset);
  const v = view(qkv, 'f32', [a.B, a.Lk, a.H * a.D], 'app.v', vOffset);
  const attnOut = output('app.attn_out', 'f32', [a.B, a.Lq, a.H * a.D]);
  const lse = output('app.lse', 'f32', [a.B, a.H, a.Lq]);

  // Int8 layer: the weight quantized per output channel on the host (once, at load time), the
  // activations per row on the GPU at run time.
  const words = packedWords(m.K);
  const wq = packInt8Weights(inputs.w, m.N, m.K);
  const weight: Int8Matrix = { packed: input('app.w_int8', 'u32', [m.N, words], wq.packed), scales: input('app.w_scales', 'f32', [m.N], wq.scales), cols: m.K };
  const x = input('app.x', 'f32', [m.M, m.K], inputs.x);
  const xq: Int8Matrix = { packed: output('app.x_int8', 'u32', [m.M, words]), scales: output('app.x_scales', 'f32', [m.M]), cols: m.K };
  const bias = input('app.bias', 'f32', [m.N], inputs.bias);
  const y = output('app.y', 'f32', [m.M, m.N]);

  // Cross-entropy: per-row losses, their mean over the rows not ignored, and d(mean)/d(logits).
  const logits = input('app.logits', 'f32', [l.rows, l.vocab], inputs.logits);
  const targets = input('app.targets', 'i32', [l.rows], inputs.targets);
  const grad = output('app.dlogits', 'f32', [l.rows, l.vocab]);
  const rowLoss = output('app.row_loss', 'f32', [l.rows]);
  const lossMean = output('app.loss', 'f32', [2]); // [mean, valid rows]

  const gpu = Gpu.fromDevice(device, options);
  try {
    // One submit; dq-whisper checks every binding against the kernel's WGSL before encoding.
    await gpu.run((rec) => {
      attention(rec, q, k, v, attnOut, lse, { causal: true, label: 'app attention' });
      quantizeRows(rec, x, xq, { label: 'app activations' });
      int8Matmul(rec, xq, weight, y, { bias, label: 'app int8 layer' });
      crossEntropy(rec, logits, targets, rowLoss, { grad, mean: { out: lossMean, index: 0, countIndex: 1 }, label: 'app loss' });
    });
    const meanAndCount = await gpu.readF32(lossMean);
    return {
      attention: { out: await gpu.readF32(attnOut), lse: await gpu.readF32(lse) },
      int8: { y: await gpu.readF32(y), xScales: await gpu.readF32(xq.scales), wScales: wq.scales },
      loss: { rowLoss: await gpu.readF32(rowLoss), mean: meanAndCount[0]!, validRows: meanAndCount[1]!, grad: await gpu.readF32(grad) },
    };
  } finally {
    // Frees dq-whisper's own scratch buffers; a device from fromDevice is left alive.
    gpu.destroy();
    for (const b of owned) b.destroy();
  }
}

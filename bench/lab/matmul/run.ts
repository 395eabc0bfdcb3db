// Matmul kernel lab (llm.c dev/cuda style): times every bench/lab/matmul/vN.wgsl on the same
// problems and prints GFLOP/s, after checking each version against the float64 reference.
//   npx tsx bench/lab/matmul/run.ts [--only v1,v3] [--shapes square,fc1] [--repeat 5] [--no-tfjs] [--no-check]
// Every version has matmul.wgsl's interface (Params uniform, a, b, bias, c; TRANS_A/TRANS_B/
// HAS_BIAS/GELU overrides; entry `matmul`) and a first line `// lab: TM=<rows> TN=<cols> ...`
// giving the output tile one workgroup computes, from which the grid is sized. A line that also
// has source=<shader> times the engine's shaders/<shader>.wgsl (a wired-in winner), whose fake-
// quant scale bindings get stand-ins here.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Gpu } from '../../../src/gpu/gpu.js';
import { matmulRef } from '../../../test/ref/matmul.js';
import { loadVersions } from '../lab.js';
import { startTfjs } from '../../compare.js';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    shapes: { type: 'string' },
    repeat: { type: 'string', default: '5' },
    'no-tfjs': { type: 'boolean', default: false },
    'no-check': { type: 'boolean', default: false },
  },
});
const repeat = Math.max(1, Number(args.repeat));

interface Shape {
  key: string;
  M: number;
  K: number;
  N: number;
  transB: boolean;
}
const shapes: Shape[] = [
  { key: 'square', M: 1024, K: 1024, N: 1024, transB: false },
  { key: 'fc1', M: 1500, K: 384, N: 1536, transB: true },
  { key: 'fc2', M: 1500, K: 1536, N: 384, transB: true },
  { key: 'logits', M: 448, K: 384, N: 51865, transB: true },
].filter((s) => !args.shapes || args.shapes.split(',').includes(s.key));

interface Version {
  name: string;
  TM: number;
  TN: number;
  source: string;
  note: string;
}

const dir = dirname(fileURLToPath(import.meta.url));
const versions: Version[] = loadVersions(dir, ['TM', 'TN'], args.only).map((v) => ({
  name: v.name,
  TM: Number(v.params.TM),
  TN: Number(v.params.TN),
  source: v.source,
  note: v.note,
}));

const gpu = await Gpu.create();
const device = gpu.device;

function random(n: number, seed: number): Float32Array<ArrayBuffer> {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1);
}

function storage(data: Float32Array<ArrayBuffer> | number): GPUBuffer {
  const bytes = typeof data === 'number' ? data * 4 : data.byteLength;
  const buf = device.createBuffer({ size: Math.max(16, bytes), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  if (typeof data !== 'number') device.queue.writeBuffer(buf, 0, data);
  return buf;
}

async function compile(v: Version, consts: Record<string, number>): Promise<GPUComputePipeline> {
  const module = device.createShaderModule({ code: v.source, label: v.name });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length) throw new Error(`${v.name}: ${errors.map((e) => `${e.lineNum}:${e.linePos} ${e.message}`).join('\n')}`);
  device.pushErrorScope('validation');
  const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'matmul', constants: consts } });
  const err = await device.popErrorScope();
  if (err) throw new Error(`${v.name}: ${err.message}`);
  return pipeline;
}

interface Problem {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  bias: boolean;
  gelu: boolean;
}

/** Bind buffers for one problem; returns a function recording one dispatch into a pass. */
function bind(v: Version, pipeline: GPUComputePipeline, p: Problem, a: GPUBuffer, b: GPUBuffer, bias: GPUBuffer, c: GPUBuffer) {
  // 48 bytes fit the engine's Params too (its qmax_a, qmax_b stay 0: no fake quantization).
  const u = device.createBuffer({ size: 48, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(u, 0, new Uint32Array([p.M, p.N, p.K, 1, 0, 0, p.M * p.N, 0, 0, 0, 0, 0]));
  const scales = v.source.includes('scale_a') ? [storage(1), storage(1)] : [];
  const group = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [u, a, b, bias, c, ...scales].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  return (pass: GPUComputePassEncoder) => {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(Math.ceil(p.N / v.TN), Math.ceil(p.M / v.TM), 1);
  };
}

async function readback(buf: GPUBuffer, n: number): Promise<Float32Array> {
  const staging = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buf, 0, staging, 0, n * 4);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.destroy();
  return out;
}

const constsOf = (p: Problem) => ({ TRANS_A: +p.transA, TRANS_B: +p.transB, HAS_BIAS: +p.bias, GELU: +p.gelu });

/** Odd shapes in every transpose: a version that fails here is not timed. */
async function check(v: Version): Promise<string | null> {
  const problems: Problem[] = [
    { M: 67, N: 45, K: 37, transA: false, transB: false, bias: false, gelu: false },
    { M: 70, N: 131, K: 33, transA: false, transB: true, bias: true, gelu: true },
    { M: 5, N: 19, K: 70, transA: true, transB: false, bias: false, gelu: false },
    { M: 129, N: 7, K: 9, transA: true, transB: true, bias: false, gelu: false },
  ];
  for (const p of problems) {
    const ah = random(p.M * p.K, 1);
    const bh = random(p.K * p.N, 2);
    const biash = random(p.N, 3);
    const [a, b, bias, c] = [storage(ah), storage(bh), storage(biash), storage(p.M * p.N)];
    const record = bind(v, await compile(v, constsOf(p)), p, a, b, bias, c);
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    record(pass);
    pass.end();
    device.queue.submit([enc.finish()]);
    const got = await readback(c, p.M * p.N);
    const want = matmulRef(ah, bh, { batch: 1, ...p, batchA: false, batchB: false }, { transA: p.transA, transB: p.transB, bias: p.bias ? biash : undefined, gelu: p.gelu });
    for (const buf of [a, b, bias, c]) buf.destroy();
    for (let i = 0; i < want.length; i++) {
      if (!(Math.abs(got[i]! - want[i]!) <= 1e-4 + 1e-4 * Math.abs(want[i]!))) {
        return `${p.M}x${p.N}x${p.K} transA=${p.transA} transB=${p.transB}: element ${i} is ${got[i]}, expected ${want[i]}`;
      }
    }
  }
  return null;
}

/** GPU time of one dispatch in ms (timestamp queries around a pass holding only it). */
async function timeOnce(record: (pass: GPUComputePassEncoder) => void): Promise<number> {
  const qs = device.createQuerySet({ type: 'timestamp', count: 2 });
  const resolve = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass({ timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } });
  record(pass);
  pass.end();
  enc.resolveQuerySet(qs, 0, 2, resolve, 0);
  enc.copyBufferToBuffer(resolve, 0, read, 0, 16);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const ts = new BigUint64Array(read.getMappedRange().slice(0));
  for (const x of [read, resolve, qs]) x.destroy();
  return Number(ts[1]! - ts[0]!) / 1e6;
}

const a = gpu.adapter;
console.log(`adapter: ${a.description || a.device} (${a.vendor}, ${a.architecture}); repeats: ${repeat} (min of GPU time)`);
const gflops = (s: Shape, ms: number) => (2 * s.M * s.N * s.K) / ms / 1e6;
// Versions are timed round-robin (every version once per round, `repeat` rounds after a warm-up)
// so that load from other processes sharing the CPU hits all versions alike; the min is kept.
const correct: Version[] = [];
for (const v of versions) {
  const failure = args['no-check'] ? null : await check(v);
  if (failure) process.stderr.write(`${v.name} is wrong, not timed: ${failure}\n`);
  else correct.push(v);
}
const best = new Map<string, number>();
for (const s of shapes) {
  const p: Problem = { M: s.M, N: s.N, K: s.K, transA: false, transB: s.transB, bias: false, gelu: false };
  const bufs = [storage(random(s.M * s.K, 4)), storage(random(s.K * s.N, 5)), storage(s.N), storage(s.M * s.N)] as const;
  const runs = await Promise.all(correct.map(async (v) => bind(v, await compile(v, constsOf(p)), p, ...bufs)));
  for (let round = 0; round <= repeat; round++) {
    for (const [i, v] of correct.entries()) {
      const ms = await timeOnce(runs[i]!);
      if (round > 0) best.set(`${v.name} ${s.key}`, Math.min(ms, best.get(`${v.name} ${s.key}`) ?? Infinity));
    }
  }
  for (const v of correct) process.stderr.write(`  ${v.name} ${s.key}: ${best.get(`${v.name} ${s.key}`)!.toFixed(1)} ms\n`);
  for (const buf of bufs) buf.destroy();
}
const rows = versions.map((v) => [v.name, ...shapes.map((s) => (correct.includes(v) ? gflops(s, best.get(`${v.name} ${s.key}`)!).toFixed(1) : 'WRONG')), v.note]);
if (!args['no-tfjs']) {
  const tfjs = await startTfjs(gpu);
  const cells = [];
  for (const s of shapes) {
    const ms = await tfjs.time((t) => {
      const x = t.randomUniform([s.M, s.K]);
      const w = t.randomUniform(s.transB ? [s.N, s.K] : [s.K, s.N]);
      return { run: () => t.matMul(x, w, false, s.transB), dispose: () => t.dispose([x, w]) };
    }, repeat);
    cells.push(gflops(s, ms).toFixed(1));
  }
  tfjs.dispose();
  rows.push(['TF.js', ...cells, 'tf.matMul, WebGPU backend, same adapter']);
}
const head = ['version', ...shapes.map((s) => `${s.key} ${s.M}x${s.K}x${s.N}${s.transB ? ' (B^T)' : ''}`), 'what'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
console.log(`\nGFLOP/s (M x K x N)\n| ${head.map((h, i) => h.padEnd(widths[i]!)).join(' | ')} |`);
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const r of rows) console.log(`| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`);
gpu.destroy();
process.exit(0);

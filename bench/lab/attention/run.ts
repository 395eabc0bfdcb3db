// Attention kernel lab: times every bench/lab/attention/vN.wgsl on Whisper-tiny attention shapes,
// forward and backward, after checking each version against the float64 references.
//   npx tsx bench/lab/attention/run.ts [--only v1,v3] [--shapes enc,cross,dec] [--pass fwd,bwd]
//       [--repeat 3] [--layout head|token] [--no-tfjs] [--no-check]
// Every version has shaders/attention.wgsl's interface (Params uniform, binding names, HEAD_DIM/
// CAUSAL/HAS_KLEN overrides) and a first line `// lab: fwd=<rows> bwd=<entry>/<rows>,... <note>`:
// fwd=N: entry attention_fwd, N query rows per workgroup; bwd: the backward's entry points
// attention_bwd_<entry> in dispatch order, each with the rows it owns per workgroup (keys for
// entries named dkdv*, queries otherwise). Either may be absent. Grids are [ceil(L / rows), H, B].
// A file with `// #if subgroups` blocks (as shaders/attention.wgsl has) and `variants=plain,subgroups`
// is timed in both variants, the subgroup one as vNsg, which takes sg_fwd=/sg_bwd= when given.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type * as tfTypes from '@tensorflow/tfjs-core';
import { Gpu, type Recorder } from '../../../src/gpu/gpu.js';
import type { ShaderVariant } from '../../../src/gpu/kernel.js';
import { Profiler } from '../../../src/gpu/profiler.js';
import type { Tensor } from '../../../src/gpu/tensor.js';
import { shaderSources } from '../../../src/shaders.gen.js';
import { attentionBackwardRef, attentionRef, toTokenMajor, type AttentionMask, type AttentionShape } from '../../../test/ref/attention.js';
import { startTfjs } from '../../compare.js';
import { loadVersions, markdownTable, roundRobin, type LabVersion } from '../lab.js';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    shapes: { type: 'string' },
    pass: { type: 'string', default: 'fwd,bwd' },
    repeat: { type: 'string', default: '3' },
    layout: { type: 'string', default: 'head' },
    'no-tfjs': { type: 'boolean', default: false },
    'no-check': { type: 'boolean', default: false },
  },
});
const repeat = Math.max(1, Number(args.repeat));
const passes = args.pass!.split(',') as ('fwd' | 'bwd')[];
const tokenMajor = args.layout === 'token';
const NEG_MAX = -3.4028234663852886e38;

interface Shape extends AttentionShape {
  key: string;
  causal: boolean;
}
// Whisper tiny: 6 heads of 64. Encoder self-attention, decoder-to-encoder cross-attention,
// decoder causal self-attention.
const shapes: Shape[] = [
  { key: 'enc', B: 1, H: 6, Lq: 1500, Lk: 1500, D: 64, causal: false },
  { key: 'cross', B: 1, H: 6, Lq: 448, Lk: 1500, D: 64, causal: false },
  { key: 'dec', B: 1, H: 6, Lq: 448, Lk: 448, D: 64, causal: true },
].filter((s) => !args.shapes || args.shapes.split(',').includes(s.key));

interface Entry {
  entry: string;
  rows: number;
}
interface Version extends LabVersion {
  /** Registered shader name: lab-attention-<file name>. */
  shader: string;
  variant?: ShaderVariant;
  fwd: Entry | null;
  bwd: Entry[] | null;
}

const dir = dirname(fileURLToPath(import.meta.url));
const files = loadVersions(dir, [], args.only);
const versions: Version[] = files.flatMap((v) => {
  const entries = (prefix: string): Pick<Version, 'fwd' | 'bwd'> => {
    const fwd = v.params[`${prefix}fwd`] ?? v.params.fwd;
    const bwd = v.params[`${prefix}bwd`] ?? v.params.bwd;
    return {
      fwd: fwd ? { entry: 'attention_fwd', rows: Number(fwd) } : null,
      bwd: bwd
        ? bwd.split(',').map((e) => {
            const [name, rows] = e.split('/') as [string, string];
            return { entry: `attention_bwd_${name}`, rows: Number(rows) };
          })
        : null,
    };
  };
  const shader = `lab-attention-${v.name}`;
  const variants = v.params.variants?.split(',') ?? ['plain'];
  return variants.map((variant) =>
    variant === 'subgroups' ? { ...v, name: `${v.name}sg`, shader, variant: { enable: ['subgroups'] }, ...entries('sg_') } : { ...v, shader, ...entries('') },
  );
});
// Lab versions are compiled through the engine's kernel cache (bindings reflected from the WGSL,
// as for shaders/) under the name lab-attention-vN.
for (const v of files) (shaderSources as Record<string, string>)[`lab-attention-${v.name}`] = v.source;

const gpu = await Gpu.create({ limits: 'webgpu-defaults' });

function random(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1);
}

/** Params uniform values for a problem in the chosen layout (as src/kernels/attention.ts sets them). */
function uniforms(s: AttentionShape, scale: number, token: boolean): Record<string, number> {
  const { H, Lq, Lk, D } = s;
  const strides = (L: number) => (token ? [L * H * D, D, H * D] : [H * L * D, L * D, D]);
  const u: Record<string, number> = { heads: H, lq: Lq, lk: Lk, scale, causal_offset: Lk - Lq };
  for (const [name, L] of [['q', Lq], ['k', Lk], ['v', Lk], ['o', Lq]] as const) {
    const [sb, sh, sl] = strides(L);
    Object.assign(u, { [`${name}_sb`]: sb, [`${name}_sh`]: sh, [`${name}_sl`]: sl });
  }
  return u;
}

interface Operands {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  klen: Tensor;
  out: Tensor;
  lse: Tensor;
  d_out: Tensor;
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
}

/** Record one entry point of a version over a problem; tensors are bound by WGSL name. */
function dispatch(rec: Recorder, v: Version, e: Entry, s: AttentionShape, mask: AttentionMask, u: Record<string, number>, t: Operands): void {
  const spec = { shader: v.shader, entry: e.entry, constants: { HEAD_DIM: s.D, CAUSAL: +!!mask.causal, HAS_KLEN: +!!mask.keyLengths }, ...(v.variant ? { variant: v.variant } : {}) };
  const kernel = gpu.kernels.get(spec);
  // The (lse, delta) scratch lives in dq: `stats` and `saved_*` are the same tensors seen read-only.
  const byName: Record<string, Tensor> = { ...t, stats: t.dq, saved_out: t.out, saved_lse: t.lse };
  const tensors = Object.fromEntries(kernel.bindings.filter((b) => b.kind === 'storage').map((b) => [b.name, byName[b.name]!]));
  const L = e.entry.includes('dkdv') ? s.Lk : s.Lq;
  rec.dispatch(kernel, { tensors, uniforms: u, workgroups: [Math.ceil(L / e.rows), s.H, s.B] });
}

function upload(x: Float32Array, s: AttentionShape, L: number, token: boolean, label: string): Tensor {
  const { B, H, D } = s;
  return token ? gpu.upload(toTokenMajor(x, B, H, L, D), [B, L, H * D], 'f32', label) : gpu.upload(x, [B, H, L, D], 'f32', label);
}

async function readHeadMajor(t: Tensor, s: AttentionShape, L: number, token: boolean): Promise<Float32Array> {
  const x = await gpu.readF32(t);
  if (!token) return x;
  const { B, H, D } = s;
  const y = new Float32Array(x.length);
  for (let b = 0; b < B; b++) for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) y[((b * H + h) * L + l) * D + d] = x[((b * L + l) * H + h) * D + d]!;
  return y;
}

/** Device operands of a problem; out and lse hold `saved` (the forward's results) when given. */
function operands(s: AttentionShape, token: boolean, x: { q: Float32Array; k: Float32Array; v: Float32Array; gy: Float32Array }, klen: number[] | undefined, saved?: { out: Float32Array; lse: Float32Array }): Operands {
  const { B, H, Lq, Lk } = s;
  const empty = (L: number, label: string) => upload(new Float32Array(B * H * L * s.D), s, L, token, label);
  return {
    q: upload(x.q, s, Lq, token, 'q'),
    k: upload(x.k, s, Lk, token, 'k'),
    v: upload(x.v, s, Lk, token, 'v'),
    klen: gpu.upload(Uint32Array.from(klen ?? Array(B).fill(Lk)), [B], 'u32', 'klen'),
    out: saved ? upload(saved.out, s, Lq, token, 'out') : empty(Lq, 'out'),
    lse: gpu.upload(saved?.lse ?? new Float32Array(B * H * Lq), [B, H, Lq], 'f32', 'lse'),
    d_out: upload(x.gy, s, Lq, token, 'dOut'),
    dq: empty(Lq, 'dq'),
    dk: empty(Lk, 'dk'),
    dv: empty(Lk, 'dv'),
  };
}

const free = (t: Operands) => gpu.free(...Object.values(t));

/** Small odd problems in both layouts with every mask: a version failing any is not timed. */
async function check(v: Version): Promise<string | null> {
  const cases: (AttentionShape & { mask: AttentionMask; token: boolean })[] = [
    { B: 2, H: 3, Lq: 37, Lk: 70, D: 64, mask: { keyLengths: [70, 29] }, token: false },
    { B: 1, H: 2, Lq: 45, Lk: 45, D: 64, mask: { causal: true }, token: true },
    { B: 2, H: 1, Lq: 13, Lk: 131, D: 64, mask: { causal: true, keyLengths: [131, 0] }, token: false },
    { B: 1, H: 2, Lq: 20, Lk: 9, D: 40, mask: { causal: true }, token: true },
  ];
  for (const [n, c] of cases.entries()) {
    const { B, H, Lq, Lk, D } = c;
    const x = { q: random(B * H * Lq * D, 10 * n + 1), k: random(B * H * Lk * D, 10 * n + 2), v: random(B * H * Lk * D, 10 * n + 3), gy: random(B * H * Lq * D, 10 * n + 4) };
    const scale = 1 / Math.sqrt(D);
    const ref = attentionRef(x.q, x.k, x.v, c, scale, c.mask);
    const saved = { out: Float32Array.from(ref.out), lse: Float32Array.from(ref.lse, (l) => (l === -Infinity ? NEG_MAX : l)) };
    const t = operands(c, c.token, x, c.mask.keyLengths as number[] | undefined, v.fwd ? undefined : saved);
    const u = uniforms(c, scale, c.token);
    const what = `B=${B} H=${H} Lq=${Lq} Lk=${Lk} D=${D} ${JSON.stringify(c.mask)}${c.token ? ' token-major' : ''}`;
    const compare = (got: Float32Array, want: Float64Array, name: string) => {
      for (let i = 0; i < want.length; i++) {
        if (!(Math.abs(got[i]! - want[i]!) <= 2e-5 + 1e-4 * Math.abs(want[i]!))) return `${what}: ${name}[${i}] is ${got[i]}, expected ${want[i]}`;
      }
      return null;
    };
    try {
      await gpu.run((rec) => {
        if (v.fwd) dispatch(rec, v, v.fwd, c, c.mask, u, t);
        for (const e of v.bwd ?? []) dispatch(rec, v, e, c, c.mask, u, t);
      });
      if (v.fwd) {
        const lse = await gpu.readF32(t.lse);
        const bad =
          compare(await readHeadMajor(t.out, c, Lq, c.token), ref.out, 'out') ??
          compare(lse, Float64Array.from(ref.lse, (l) => (l === -Infinity ? NEG_MAX : l)), 'lse');
        if (bad) return bad;
      }
      if (v.bwd) {
        const g = attentionBackwardRef(x.q, x.k, x.v, x.gy, c, scale, c.mask);
        const bad =
          compare(await readHeadMajor(t.dq, c, Lq, c.token), g.dq, 'dq') ??
          compare(await readHeadMajor(t.dk, c, Lk, c.token), g.dk, 'dk') ??
          compare(await readHeadMajor(t.dv, c, Lk, c.token), g.dv, 'dv');
        if (bad) return bad;
      }
    } finally {
      free(t);
    }
  }
  return null;
}

/** GPU time (ms) of each recorded dispatch of one run (timestamp intervals). */
async function timeRun(record: (rec: Recorder) => void): Promise<number[]> {
  const profiler = new Profiler();
  gpu.profiler = profiler;
  try {
    await gpu.run(record);
  } finally {
    gpu.profiler = null;
  }
  return profiler.events.map((e) => e.durationNs / 1e6);
}

/** Score pairs (i, j) a problem visits: all, or the causal triangle. */
const pairs = (s: Shape) => s.B * s.H * (s.causal ? (s.Lk * (s.Lk + 1)) / 2 - ((s.Lk - s.Lq) * (s.Lk - s.Lq + 1)) / 2 : s.Lq * s.Lk);
// Nominal flops: forward q k^T and P v; backward recomputed q k^T, dOut v^T, P^T dOut, dS^T q and
// dS k (FlashAttention-2's count), whatever a version actually recomputes.
const flops = (s: Shape, pass: 'fwd' | 'bwd') => (pass === 'fwd' ? 4 : 10) * pairs(s) * s.D;

const adapter = gpu.adapter;
console.log(`adapter: ${adapter.description || adapter.device} (${adapter.vendor}); ${tokenMajor ? 'token' : 'head'}-major operands; min of ${repeat} round-robin repeats`);
const correct: Version[] = [];
for (const v of versions) {
  const failure = args['no-check'] ? null : await check(v);
  if (failure) process.stderr.write(`${v.name} is wrong, not timed: ${failure}\n`);
  else correct.push(v);
}

const results = new Map<string, number>(); // `${version} ${shape} ${pass}` -> ms
for (const s of shapes) {
  const x = { q: random(s.H * s.Lq * s.D, 1), k: random(s.H * s.Lk * s.D, 2), v: random(s.H * s.Lk * s.D, 3), gy: random(s.H * s.Lq * s.D, 4) };
  // The backward's cost does not depend on the saved values: random outputs and an lse of the
  // right size (log Lk, scores are small) keep exp(s - lse) in range.
  const saved = { out: random(s.H * s.Lq * s.D, 5), lse: new Float32Array(s.H * s.Lq).fill(Math.log(s.Lk)) };
  const t = operands(s, tokenMajor, x, undefined, saved);
  const u = uniforms(s, 1 / Math.sqrt(s.D), tokenMajor);
  const mask = { causal: s.causal };
  for (const pass of passes) {
    const timed = correct.filter((v) => (pass === 'fwd' ? v.fwd : v.bwd));
    // Each run's total is what is compared; the split over entry points is kept from the same run.
    const split = new Map<Version, number[]>();
    const jobs = timed.map((v) => async () => {
      const parts = await timeRun((rec) => {
        for (const e of pass === 'fwd' ? [v.fwd!] : v.bwd!) dispatch(rec, v, e, s, mask, u, t);
      });
      const total = parts.reduce((a, b) => a + b, 0);
      if (total < (split.get(v)?.reduce((a, b) => a + b, 0) ?? Infinity)) split.set(v, parts);
      return total;
    });
    const best = await roundRobin(jobs, repeat);
    for (const [i, v] of timed.entries()) {
      results.set(`${v.name} ${s.key} ${pass}`, best[i]!);
      const parts = pass === 'bwd' ? ` (${v.bwd!.map((e, n) => `${e.entry.replace('attention_bwd_', '')} ${split.get(v)![n]!.toFixed(1)}`).join(', ')})` : '';
      process.stderr.write(`  ${v.name} ${s.key} ${pass}: ${best[i]!.toFixed(1)} ms${parts}\n`);
    }
  }
  free(t);
}

const tfjsMs = new Map<string, number>();
if (!args['no-tfjs']) {
  const tfjs = await startTfjs(gpu);
  for (const s of shapes) {
    // The composition TF.js users write: matMul, scale, (mask), softmax, matMul; head-major [H, L, D].
    // The backward is composed the same way (tf.grads needs gradient registrations that tfjs-core's
    // Node bundle lacks): recompute P, then dV = P^T dOut, dS = P (dOut V^T - rowsum(dOut * out)),
    // dQ = scale dS K, dK = scale dS^T Q.
    const scale = 1 / Math.sqrt(s.D);
    for (const pass of passes) {
      const ms = await tfjs.time((t) => {
        const [q, k, v, gy, out] = [s.Lq, s.Lk, s.Lk, s.Lq, s.Lq].map((L) => t.randomUniform([s.H, L, s.D]));
        const mask = s.causal ? t.tensor2d(Float32Array.from({ length: s.Lq * s.Lk }, (_, n) => (n % s.Lk > Math.floor(n / s.Lk) + s.Lk - s.Lq ? -1e9 : 0)), [s.Lq, s.Lk]) : null;
        const probs = () => {
          const scores = t.mul(t.matMul(q!, k!, false, true), scale);
          return t.softmax(mask ? t.add(scores, mask) : scores);
        };
        const forward = () => t.tidy(() => t.matMul(probs(), v!));
        const backward = () =>
          t.tidy(() => {
            const p = probs();
            const dv = t.matMul(p, gy!, true, false);
            const delta = t.sum(t.mul(gy!, out!), -1, true);
            const ds = t.mul(p, t.sub(t.matMul(gy!, v!, false, true), delta));
            const dq = t.mul(t.matMul(ds, k!), scale);
            const dk = t.mul(t.matMul(ds, q!, true, false), scale);
            return t.concat([dq, dk, dv], 1);
          });
        return { run: pass === 'fwd' ? forward : backward, dispose: () => t.dispose([q!, k!, v!, gy!, out!, ...(mask ? [mask] : [])]) };
      }, repeat);
      tfjsMs.set(`${s.key} ${pass}`, ms);
      process.stderr.write(`  TF.js ${s.key} ${pass}: ${ms.toFixed(1)} ms\n`);
    }
  }
  tfjs.dispose();
}

for (const pass of passes) {
  const head = ['version', ...shapes.map((s) => `${s.key} Lq=${s.Lq} Lk=${s.Lk}${s.causal ? ' causal' : ''}`), 'what'];
  const cell = (ms: number | undefined, s: Shape) => {
    if (ms === undefined) return '-';
    const tf = tfjsMs.get(`${s.key} ${pass}`);
    return `${ms.toFixed(0)} ms, ${(flops(s, pass) / ms / 1e6).toFixed(2)} GF/s${tf ? `, ${(tf / ms).toFixed(2)}x` : ''}`;
  };
  const rows = versions
    .filter((v) => (pass === 'fwd' ? v.fwd : v.bwd))
    .map((v) => [v.name, ...shapes.map((s) => (correct.includes(v) ? cell(results.get(`${v.name} ${s.key} ${pass}`), s) : 'WRONG')), v.note]);
  if (tfjsMs.size) rows.push(['TF.js', ...shapes.map((s) => cell(tfjsMs.get(`${s.key} ${pass}`), s).replace(/, [\d.]+x$/, '')), pass === 'fwd' ? 'matMul, softmax, matMul (WebGPU backend, same adapter)' : 'the same composed by hand: P recomputed, 5 matMuls']);
  console.log(`\n${pass === 'fwd' ? 'Forward' : 'Backward'}: ms, GFLOP/s (${pass === 'fwd' ? 4 : 10} * pairs * D), speed-up over TF.js\n${markdownTable(head, rows)}`);
}
gpu.destroy();
process.exit(0);

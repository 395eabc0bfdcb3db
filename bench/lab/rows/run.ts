// Row-kernel lab (layer norm and softmax, forward and backward): times every
// bench/lab/rows/vN.wgsl on Whisper's row shapes after checking it against the float64 references.
//   npx tsx bench/lab/rows/run.ts [--only v1,v3,v3@plain,v4@LANES=32] [--ops ln_fwd,sm_fwd]
//       [--shapes 1500x384,9000x1500] [--repeat 3] [--no-tfjs] [--no-check]
// A version's first line `// lab: <op>=<plan> ... <note>` names the ops it implements:
//   ln_fwd=R       entry layernorm_forward, R rows per workgroup;
//   ln_bwd=split/R layernorm_backward_dx (R rows per workgroup), then layernorm_param_grad_partial
//                  (64 columns x 32-row chunks per workgroup) and layernorm_param_grad_final;
//   ln_bwd=fused/R layernorm_backward writes dx and the dgamma/dbeta partials of its R rows
//                  ([2, ceil(rows / R), C]), then layernorm_param_grad_final;
//   sm_fwd=R, sm_bwd=R  entries softmax_forward / softmax_backward, R rows per workgroup.
// Bindings and uniform members are those of shaders/layernorm.wgsl and shaders/softmax.wgsl
// (softmax's y_in may sit at any binding); a version declares the ones it uses and the runner
// binds by name. Row grids are x/y (groups_x) as in the engine. Versions compile with the
// subgroups variant where the device has it (`// #if subgroups` blocks as in shaders/);
// `vN@plain` compiles the plain half, `vN@vec4` rewrites `alias V = f32;` to vec4f (timed and
// checked on rows of a multiple of 4 columns only), and `vN@NAME=value` sets an override constant, so one file
// can be timed in several configurations (a ROWS constant also sets the LayerNorm plans' R).
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Gpu, type Recorder } from '../../../src/gpu/gpu.js';
import type { KernelSpec } from '../../../src/gpu/kernel.js';
import type { Tensor } from '../../../src/gpu/tensor.js';
import { layerNormBackwardRef, layerNormRef, softmaxBackwardRef, softmaxRef } from '../../../test/ref/norm.js';
import { comparisons, startTfjs } from '../../compare.js';
import { loadVersions, markdownTable, registerLabShaders, roundRobin, timeDispatches, type LabVersion } from '../lab.js';

const OPS = ['ln_fwd', 'ln_bwd', 'sm_fwd', 'sm_bwd'] as const;
type Op = (typeof OPS)[number];

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    ops: { type: 'string', default: OPS.join(',') },
    shapes: { type: 'string' },
    repeat: { type: 'string', default: '3' },
    'no-tfjs': { type: 'boolean', default: false },
    'no-check': { type: 'boolean', default: false },
  },
});
const repeat = Math.max(1, Number(args.repeat));
const ops = args.ops!.split(',') as Op[];
for (const op of ops) if (!OPS.includes(op)) throw new Error(`--ops: unknown op ${op} (known: ${OPS.join(', ')})`);

const EPS = 1e-5;
/** Rows per chunk of v1's layernorm_param_grad_partial (its ROWS_PER_CHUNK). */
const SPLIT_CHUNK_ROWS = 32;

interface Problem {
  rows: number;
  cols: number;
}
const timedShapes: Record<Op, Problem[]> = {
  ln_fwd: [{ rows: 1500, cols: 384 }, { rows: 1500, cols: 768 }],
  ln_bwd: [{ rows: 1500, cols: 384 }, { rows: 1500, cols: 768 }],
  sm_fwd: [{ rows: 448, cols: 51865 }, { rows: 9000, cols: 1500 }],
  sm_bwd: [{ rows: 448, cols: 51865 }, { rows: 9000, cols: 1500 }],
};
const supports = (c: Config, p: Problem) => !c.vec4 || p.cols % 4 === 0;
const shapeKey = (p: Problem) => `${p.rows}x${p.cols}`;
const wantedShape = (p: Problem) => !args.shapes || args.shapes.split(',').includes(shapeKey(p));

/** One configuration to time: a version file, its variant and override constants. */
interface Config {
  /** As given to --only, e.g. 'v3@plain'. */
  name: string;
  version: LabVersion;
  plain: boolean;
  /** Storage element type vec4f (`alias V = f32;` rewritten): rows of a multiple of 4 columns only. */
  vec4: boolean;
  constants: Record<string, number>;
  plans: Partial<Record<Op, { kind: 'rows' | 'split' | 'fused'; rows: number }>>;
}

const dir = dirname(fileURLToPath(import.meta.url));
const requested = args.only?.split(',');
const versions = loadVersions(dir, [], requested ? requested.map((r) => r.split('@')[0]!).join(',') : undefined);
registerLabShaders('rows', versions);

function configOf(name: string): Config {
  const [file, ...options] = name.split('@');
  const version = versions.find((v) => v.name === file);
  if (!version) throw new Error(`--only: no ${file}.wgsl in ${dir}`);
  const constants: Record<string, number> = {};
  for (const o of options.filter((o) => o !== 'plain' && o !== 'vec4')) {
    const [k, v] = o.split('=');
    if (!k || v === undefined || !Number.isFinite(Number(v))) throw new Error(`--only ${name}: "@${o}" is none of "plain", "vec4", NAME=number`);
    constants[k] = Number(v);
  }
  const plans: Config['plans'] = {};
  for (const op of OPS) {
    const p = version.params[op];
    if (!p) continue;
    const m = /^(?:(split|fused)\/)?(\d+)$/.exec(p);
    if (!m || (op === 'ln_bwd') !== !!m[1]) throw new Error(`${version.name}.wgsl: bad plan ${op}=${p}`);
    // A ROWS override (vN@ROWS=4) changes the rows per workgroup of the LayerNorm plans.
    const rows = op.startsWith('ln') && constants.ROWS !== undefined ? constants.ROWS : Number(m[2]);
    plans[op] = { kind: (m[1] as 'split' | 'fused' | undefined) ?? 'rows', rows };
  }
  return { name, version, plain: options.includes('plain'), vec4: options.includes('vec4'), constants, plans };
}
const configs = (requested ?? versions.map((v) => v.name)).map(configOf);

const gpu = await Gpu.create({ limits: 'webgpu-defaults' });

function random(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => (((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1) * scale + offset);
}

/** x/y grid of `groups` workgroups within the per-dimension limit, as src/kernels/reduce.ts rowGrid. */
function grid(groups: number): { workgroups: [number, number]; groups_x: number } {
  const x = Math.max(1, Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension));
  return { workgroups: [x, Math.ceil(groups / x)], groups_x: x };
}

/** The device operands of a problem. */
interface Operands {
  x: Tensor;
  gamma: Tensor;
  beta: Tensor;
  y: Tensor;
  mean: Tensor;
  rstd: Tensor;
  dy: Tensor;
  dx: Tensor;
  partials: Tensor;
  dgamma: Tensor;
  dbeta: Tensor;
}
/** What one op binds, by WGSL name. */
type Bound = Record<string, Tensor>;

function dispatch(rec: Recorder, c: Config, entry: string, t: Bound, uniforms: Record<string, number>, workgroups: readonly [number, number?], extra: Record<string, number> = {}): void {
  const spec: KernelSpec = {
    shader: `lab-rows-${c.version.name}`,
    entry,
    variant: { ...(gpu.features.subgroups && !c.plain ? { enable: ['subgroups'] } : {}), ...(c.vec4 ? { aliases: { V: 'vec4f' } } : {}) },
    constants: { ...extra, ...c.constants },
  };
  const kernel = gpu.kernels.get(spec);
  const tensors = Object.fromEntries(kernel.bindings.filter((b) => b.kind === 'storage').map((b) => [b.name, t[b.name]!]));
  const members = new Set(kernel.uniform?.members.map((m) => m.name));
  rec.dispatch(kernel, { tensors, uniforms: Object.fromEntries(Object.entries(uniforms).filter(([k]) => members.has(k))), workgroups });
}

/** Record `op` of configuration `c` on problem `p`. */
function record(rec: Recorder, c: Config, op: Op, p: Problem, t: Bound, affine: boolean): void {
  const plan = c.plans[op]!;
  const g = grid(Math.ceil(p.rows / plan.rows));
  const u = { rows: p.rows, cols: p.cols, eps: EPS, groups_x: g.groups_x, accumulate: 0 };
  const AFFINE = +affine;
  if (op === 'ln_fwd') dispatch(rec, c, 'layernorm_forward', t, u, g.workgroups, { AFFINE });
  else if (op === 'sm_fwd') dispatch(rec, c, 'softmax_forward', t, u, g.workgroups);
  else if (op === 'sm_bwd') dispatch(rec, c, 'softmax_backward', t, u, g.workgroups);
  else {
    const colGroups = Math.ceil(p.cols / 64);
    let chunks: number;
    if (plan.kind === 'split') {
      dispatch(rec, c, 'layernorm_backward_dx', t, u, g.workgroups, { AFFINE });
      chunks = Math.ceil(p.rows / SPLIT_CHUNK_ROWS);
      dispatch(rec, c, 'layernorm_param_grad_partial', t, { ...u, chunks }, [colGroups, chunks]);
    } else {
      chunks = Math.ceil(p.rows / plan.rows);
      dispatch(rec, c, 'layernorm_backward', t, { ...u, chunks }, g.workgroups, { AFFINE });
    }
    dispatch(rec, c, 'layernorm_param_grad_final', t, { ...u, chunks }, [colGroups]);
  }
}

/** Device operands for a problem; host copies of the inputs for the checks. */
function operands(p: Problem, seed: number, layerNorm = true) {
  const n = p.rows * p.cols;
  // LayerNorm rows sit away from 0 like hidden states (a naive one-pass variance loses precision);
  // softmax logits are offset by 100 so a missing max subtraction overflows exp.
  const h = {
    lnX: random(n, seed, 2, 3),
    smX: random(n, seed + 1, 8, 100),
    dy: random(n, seed + 2),
    gamma: random(p.cols, seed + 3, 0.5, 1),
    beta: random(p.cols, seed + 4, 0.5),
  };
  const shape = [p.rows, p.cols];
  const t: Operands = {
    x: gpu.upload(h.lnX, shape, 'f32', 'x'),
    gamma: gpu.upload(h.gamma, [p.cols], 'f32', 'gamma'),
    beta: gpu.upload(h.beta, [p.cols], 'f32', 'beta'),
    y: gpu.empty(shape, 'f32', 'y'),
    mean: gpu.empty([p.rows], 'f32', 'mean'),
    rstd: gpu.empty([p.rows], 'f32', 'rstd'),
    dy: gpu.upload(h.dy, shape, 'f32', 'dy'),
    dx: gpu.empty(shape, 'f32', 'dx'),
    // dgamma/dbeta partials for down to 1 row per workgroup (LayerNorm widths only).
    partials: gpu.empty(layerNorm ? [2, p.rows, p.cols] : [1], 'f32', 'partials'),
    dgamma: gpu.empty([p.cols], 'f32', 'dgamma'),
    dbeta: gpu.empty([p.cols], 'f32', 'dbeta'),
  };
  return { h, t };
}

/** The tensors each op reads, bound under the names the WGSL uses. */
function bindingsFor(op: Op, t: Operands, smX: Tensor, affine: boolean): Bound {
  const common: Bound = affine ? { ...t } : { ...t, gamma: t.x, beta: t.x };
  if (op === 'sm_fwd') return { ...common, x: smX };
  if (op === 'sm_bwd') return { ...common, y_in: t.y, y4: t.y, dy4: t.dy, dx4: t.dx };
  return { ...common, mean_in: t.mean, rstd_in: t.rstd, partials_in: t.partials };
}

/** Odd shapes, rows that do not fill the last workgroup, 1 column: a configuration failing any is not timed. */
async function check(c: Config): Promise<string | null> {
  const shapes: Problem[] = [
    { rows: 5, cols: 37 },
    { rows: 13, cols: 100 },
    { rows: 3, cols: 1280 },
    { rows: 33, cols: 384 },
    { rows: 1, cols: 1 },
    { rows: 2, cols: 5001 },
  ];
  for (const [k, p] of shapes.entries()) {
    if (!supports(c, p)) continue;
    for (const affine of [true, false]) {
      const { h, t } = operands(p, 10 * k + 1);
      const smX = gpu.upload(h.smX, [p.rows, p.cols], 'f32', 'logits');
      const what = `${shapeKey(p)}${affine ? '' : ' without affine'}`;
      const compare = (got: Float32Array, want: Float64Array, name: string, tol: { atol: number; rtol: number }) => {
        for (let i = 0; i < want.length; i++) {
          if (!(Math.abs(got[i]! - want[i]!) <= tol.atol + tol.rtol * Math.abs(want[i]!))) return `${what}: ${name}[${i}] is ${got[i]}, expected ${want[i]}`;
        }
        return null;
      };
      try {
        const ref = layerNormRef(h.lnX, p.rows, p.cols, EPS, affine ? h : undefined);
        let bad: string | null = null;
        if (c.plans.ln_fwd && ops.includes('ln_fwd')) {
          await gpu.run((rec) => record(rec, c, 'ln_fwd', p, bindingsFor('ln_fwd', t, smX, affine), affine));
          bad ??= compare(await gpu.readF32(t.y), ref.y, 'y', { atol: 4e-6, rtol: 4e-6 });
          bad ??= compare(await gpu.readF32(t.mean), ref.mean, 'mean', { atol: 1e-6, rtol: 1e-6 });
          bad ??= compare(await gpu.readF32(t.rstd), ref.rstd, 'rstd', { atol: 0, rtol: 4e-6 });
        }
        if (c.plans.ln_bwd && ops.includes('ln_bwd')) {
          // The backward reads the reference statistics, so it is checked on its own.
          gpu.write(t.mean, Float32Array.from(ref.mean));
          gpu.write(t.rstd, Float32Array.from(ref.rstd));
          await gpu.run((rec) => record(rec, c, 'ln_bwd', p, bindingsFor('ln_bwd', t, smX, affine), affine));
          const g = layerNormBackwardRef(h.lnX, h.dy, p.rows, p.cols, EPS, affine ? h.gamma : undefined);
          const tol = (terms: number) => ({ atol: 2e-6 + terms * 2 ** -24 * 8, rtol: 1e-5 });
          bad ??= compare(await gpu.readF32(t.dx), g.dx, 'dx', tol(p.cols));
          if (affine) {
            bad ??= compare(await gpu.readF32(t.dgamma), g.dgamma, 'dgamma', tol(p.rows));
            bad ??= compare(await gpu.readF32(t.dbeta), g.dbeta, 'dbeta', tol(p.rows));
          }
        }
        if (affine && c.plans.sm_fwd && ops.includes('sm_fwd')) {
          await gpu.run((rec) => record(rec, c, 'sm_fwd', p, bindingsFor('sm_fwd', t, smX, affine), affine));
          bad ??= compare(await gpu.readF32(t.y), softmaxRef(h.smX, p.rows, p.cols), 'softmax y', { atol: 1e-7, rtol: 4e-6 });
        }
        if (affine && c.plans.sm_bwd && ops.includes('sm_bwd')) {
          // y from the reference softmax, so the backward is checked on its own.
          const y = Float32Array.from(softmaxRef(h.smX, p.rows, p.cols));
          gpu.write(t.y, y);
          await gpu.run((rec) => record(rec, c, 'sm_bwd', p, bindingsFor('sm_bwd', t, smX, affine), affine));
          bad ??= compare(await gpu.readF32(t.dx), softmaxBackwardRef(y, h.dy, p.rows, p.cols), 'softmax dx', { atol: 2e-7 + Math.sqrt(p.cols) * 2 ** -24, rtol: 1e-5 });
        }
        if (bad) return bad;
      } catch (err) {
        return `${what}: ${(err as Error).message.split('\n')[0]}`;
      } finally {
        gpu.free(smX, ...Object.values(t));
      }
    }
  }
  return null;
}

const adapter = gpu.adapter;
console.log(`adapter: ${adapter.description || adapter.device} (${adapter.vendor}); min of ${repeat} round-robin repeats`);
const correct: Config[] = [];
for (const c of configs) {
  const failure = args['no-check'] ? null : await check(c);
  if (failure) process.stderr.write(`${c.name} is wrong, not timed: ${failure}\n`);
  else correct.push(c);
}

const results = new Map<string, number>(); // `${config} ${op} ${shape}` -> ms
for (const op of ops) {
  for (const p of timedShapes[op].filter(wantedShape)) {
    const { t } = operands(p, 1, op.startsWith('ln'));
    const smX = gpu.upload(random(p.rows * p.cols, 7, 8), [p.rows, p.cols], 'f32', 'logits');
    const bound = bindingsFor(op, t, smX, true);
    const timed = correct.filter((c) => c.plans[op] && supports(c, p));
    // The split over dispatches is kept from each configuration's fastest run.
    const split = new Map<Config, number[]>();
    const jobs = timed.map((c) => async () => {
      const parts = await timeDispatches(gpu, (rec) => record(rec, c, op, p, bound, true));
      const total = parts.reduce((a, b) => a + b, 0);
      if (total < (split.get(c)?.reduce((a, b) => a + b, 0) ?? Infinity)) split.set(c, parts);
      return total;
    });
    const best = await roundRobin(jobs, repeat);
    for (const [i, c] of timed.entries()) {
      results.set(`${c.name} ${op} ${shapeKey(p)}`, best[i]!);
      const parts = split.get(c)!;
      process.stderr.write(`  ${c.name} ${op} ${shapeKey(p)}: ${best[i]!.toFixed(1)} ms${parts.length > 1 ? ` (${parts.map((t) => t.toFixed(1)).join(' + ')})` : ''}\n`);
    }
    gpu.free(smX, ...Object.values(t));
  }
}

// TF.js composes the forwards as bench/compare.ts does (the same comparisons, matched by shape).
const tfjsMs = new Map<string, number>();
if (!args['no-tfjs']) {
  const tfjs = await startTfjs(gpu);
  for (const op of ops.filter((o) => o.endsWith('fwd'))) {
    for (const p of timedShapes[op].filter(wantedShape)) {
      const cmp = comparisons.find((c) => c.name.startsWith(op === 'ln_fwd' ? 'layernorm' : 'softmax') && c.name.endsWith(`[${p.rows}, ${p.cols}]`));
      if (!cmp) continue;
      const ms = await tfjs.time(cmp.tfjs, repeat);
      tfjsMs.set(`${op} ${shapeKey(p)}`, ms);
      process.stderr.write(`  TF.js ${op} ${shapeKey(p)}: ${ms.toFixed(1)} ms\n`);
    }
  }
  tfjs.dispose();
}

for (const op of ops) {
  const shapes = timedShapes[op].filter(wantedShape);
  const cell = (ms: number | undefined, p: Problem) => {
    if (ms === undefined) return '-';
    const tf = tfjsMs.get(`${op} ${shapeKey(p)}`);
    return `${ms.toFixed(1)}${tf ? ` (${(tf / ms).toFixed(2)}x)` : ''}`;
  };
  const rows = configs
    .filter((c) => c.plans[op])
    .map((c) => [c.name, ...shapes.map((p) => (correct.includes(c) ? cell(results.get(`${c.name} ${op} ${shapeKey(p)}`), p) : 'WRONG')), c.version.note]);
  if (shapes.some((p) => tfjsMs.has(`${op} ${shapeKey(p)}`))) rows.push(['TF.js', ...shapes.map((p) => tfjsMs.get(`${op} ${shapeKey(p)}`)?.toFixed(1) ?? '-'), 'bench/compare.ts composition, WebGPU backend, same adapter']);
  console.log(`\n${op}: ms (speed-up over TF.js)\n${markdownTable(['version', ...shapes.map(shapeKey), 'what'], rows)}`);
}
gpu.destroy();
process.exit(0);

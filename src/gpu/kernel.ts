import { WgslReflect, ResourceType } from 'wgsl_reflect/wgsl_reflect.module.js';
import type { VariableInfo } from 'wgsl_reflect';
import { KernelBindingError } from '../errors.js';
import { shaderSources } from '../shaders.gen.js';
import type { GpuDevice } from './device.js';
import { dtypeBytes, numel, type DType, type Tensor } from './tensor.js';

/**
 * How a shader module is specialised before compilation. Shaders name their storage element
 * type through an alias (`alias S = f32;`); the f16 variant rewrites that line and enables f16,
 * so one WGSL text serves both precisions instead of two near-copies.
 */
export interface ShaderVariant {
  /** `enable` directives to prepend, e.g. ['f16'] or ['subgroups']. */
  enable?: readonly string[];
  /**
   * WGSL language features (`requires` directives) to prepend, e.g.
   * ['packed_4x8_integer_dot_product']; like `enable`, they select `// #if` blocks.
   */
  requires?: readonly string[];
  /** Type aliases to rewrite: `{ S: 'f16' }` turns `alias S = f32;` into `alias S = f16;`. */
  aliases?: Readonly<Record<string, string>>;
}

export interface KernelSpec {
  /** File name in shaders/ without `.wgsl`, e.g. 'matmul'. */
  shader: string;
  /** The `@compute` entry point. */
  entry: string;
  variant?: ShaderVariant;
  /** Values for WGSL `override` constants. */
  constants?: Readonly<Record<string, number>>;
}

type ScalarType = 'f32' | 'f16' | 'i32' | 'u32';

/** One binding of an entry point as declared in WGSL. */
export interface BindingInfo {
  name: string;
  binding: number;
  kind: 'uniform' | 'storage';
  access: 'read' | 'read_write';
  /** Scalar element type of a storage array (atomic<u32> counts as u32). */
  scalar: ScalarType | null;
  /** Lanes per array element (4 for vec4<f32>). */
  lanes: number;
}

export interface UniformMember {
  name: string;
  type: ScalarType;
  offset: number;
}

/** A compiled, reflected kernel: pipeline plus the binding contract read from its WGSL. */
export interface Kernel {
  /** "shader.entry" plus variant/constants, used in errors and traces. */
  readonly name: string;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  readonly bindings: readonly BindingInfo[];
  /** Layout of the `var<uniform>` struct, if the entry uses one. */
  readonly uniform: { readonly binding: number; readonly size: number; readonly members: readonly UniformMember[] } | null;
  readonly workgroupSize: readonly [number, number, number];
}

/**
 * Keep the `// #if <extension>` half of each (unnested) conditional block when the variant
 * enables that extension, else its `// #else` half. A module that mentions subgroup builtins
 * compiles only with `enable subgroups;`, so this is how one shader holds a subgroup path beside
 * its plain fallback. Dropped lines become blank so compiler line numbers still match the file.
 */
export function selectConditionalBlocks(source: string, enabled: readonly string[]): string {
  const blank = (text: string) => text.replace(/[^\n]/g, '');
  return source.replace(
    /^\/\/ #if (\w+)\n([\s\S]*?)(?:^\/\/ #else\n([\s\S]*?))?^\/\/ #endif$/gm,
    (_block, ext: string, kept: string, otherwise: string | undefined) => {
      const use = enabled.includes(ext);
      return `\n${use ? kept : blank(kept)}${otherwise === undefined ? '' : `\n${use ? blank(otherwise) : otherwise}`}`;
    },
  );
}

/** Apply a variant to WGSL source; throws if an alias to rewrite is not declared. */
export function specializeSource(shader: string, source: string, variant: ShaderVariant | undefined): string {
  let out = selectConditionalBlocks(source, [...(variant?.enable ?? []), ...(variant?.requires ?? [])]);
  if (!variant) return out;
  for (const [alias, type] of Object.entries(variant.aliases ?? {})) {
    const re = new RegExp(`^alias\\s+${alias}\\s*=\\s*[^;]+;`, 'm');
    if (!re.test(out)) throw new KernelBindingError(`shader "${shader}" declares no "alias ${alias} = ...;" to specialise to ${type}`);
    out = out.replace(re, `alias ${alias} = ${type};`);
  }
  const enables = (variant.enable ?? []).map((e) => `enable ${e};\n`).join('');
  const requires = (variant.requires ?? []).map((r) => `requires ${r};\n`).join('');
  return enables + requires + out;
}

function variantKey(spec: KernelSpec): string {
  const v = spec.variant;
  const parts = [
    ...(v?.enable ?? []).map((e) => `+${e}`),
    ...(v?.requires ?? []).map((r) => `+${r}`),
    ...Object.entries(v?.aliases ?? {}).map(([a, t]) => `${a}=${t}`),
    ...Object.entries(spec.constants ?? {}).map(([k, n]) => `${k}=${n}`),
  ];
  return parts.length ? `[${parts.join(',')}]` : '';
}

function scalarOf(name: string | undefined): ScalarType | null {
  return name === 'f32' || name === 'f16' || name === 'i32' || name === 'u32' ? name : null;
}

function describeBinding(v: VariableInfo): BindingInfo {
  if (v.resourceType === ResourceType.Uniform) {
    return { name: v.name, binding: v.binding, kind: 'uniform', access: 'read', scalar: null, lanes: 0 };
  }
  // array<T>, array<vecN<T>> or array<atomic<T>>
  const elem = v.type.isArray ? (v.type as unknown as { format: { name: string; format?: { name: string } } }).format : null;
  let scalar = scalarOf(elem?.name);
  let lanes = 1;
  if (!scalar && elem?.format) {
    scalar = scalarOf(elem.format.name);
    const m = /^vec([234])/.exec(elem.name);
    lanes = m ? Number(m[1]) : 1;
  }
  return { name: v.name, binding: v.binding, kind: 'storage', access: v.access === 'read' ? 'read' : 'read_write', scalar, lanes };
}

/**
 * Compiles kernels from the bundled WGSL on first use and caches them by shader, entry point,
 * variant and override constants. Bind-group layouts are derived from the WGSL itself.
 */
export class KernelCache {
  private readonly kernels = new Map<string, Kernel>();
  private readonly reflections = new Map<string, WgslReflect>();

  constructor(private readonly gpu: GpuDevice) {}

  get(spec: KernelSpec): Kernel {
    const name = `${spec.shader}.${spec.entry}${variantKey(spec)}`;
    const cached = this.kernels.get(name);
    if (cached) return cached;
    const kernel = this.compile(spec, name);
    this.kernels.set(name, kernel);
    return kernel;
  }

  get size(): number {
    return this.kernels.size;
  }

  private compile(spec: KernelSpec, name: string): Kernel {
    const base = shaderSources[spec.shader];
    if (base === undefined) {
      throw new KernelBindingError(`no shader "${spec.shader}.wgsl" in shaders/ (known: ${Object.keys(shaderSources).join(', ')})`);
    }
    const source = specializeSource(spec.shader, base, spec.variant);
    const moduleKey = `${spec.shader}${variantKey({ ...spec, constants: {} })}`;
    let reflect = this.reflections.get(moduleKey);
    if (!reflect) {
      reflect = new WgslReflect(source);
      this.reflections.set(moduleKey, reflect);
    }
    const fn = reflect.entry.compute.find((f) => f.name === spec.entry);
    if (!fn) throw new KernelBindingError(`shader "${spec.shader}.wgsl" has no @compute entry point "${spec.entry}"`);
    const resources = [...fn.resources].sort((a, b) => a.binding - b.binding);
    for (const r of resources) {
      if (r.group !== 0) throw new KernelBindingError(`${name}: binding "${r.name}" is in @group(${r.group}); kernels use group 0 only`);
    }
    const bindings = resources.map(describeBinding);
    const storageCount = bindings.filter((b) => b.kind === 'storage').length;
    if (storageCount > this.gpu.limits.maxStorageBuffersPerShaderStage) {
      throw new KernelBindingError(`${name}: uses ${storageCount} storage buffers, the device allows ${this.gpu.limits.maxStorageBuffersPerShaderStage}`);
    }
    const uniformVar = resources.find((r) => r.resourceType === ResourceType.Uniform);
    let uniform: Kernel['uniform'] = null;
    if (uniformVar) {
      const members = (uniformVar.members ?? []).map((m) => {
        const type = scalarOf(m.type.name);
        if (!type) throw new KernelBindingError(`${name}: uniform member "${m.name}" has type ${m.type.name}; only f32/u32/i32 scalars are supported`);
        return { name: m.name, type, offset: m.offset };
      });
      uniform = { binding: uniformVar.binding, size: Math.max(16, Math.ceil(uniformVar.size / 16) * 16), members };
    }
    const device = this.gpu.device;
    const layout = device.createBindGroupLayout({
      label: name,
      entries: bindings.map((b) => ({
        binding: b.binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: b.kind === 'uniform' ? 'uniform' : b.access === 'read' ? 'read-only-storage' : 'storage' },
      })),
    });
    const module = device.createShaderModule({ label: `${spec.shader}.wgsl${variantKey({ ...spec, constants: {} })}`, code: source });
    const pipeline = device.createComputePipeline({
      label: name,
      layout: device.createPipelineLayout({ label: name, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: spec.entry, ...(spec.constants ? { constants: { ...spec.constants } } : {}) },
    });
    const wg = fn.workgroupSize ?? [1, 1, 1];
    return { name, pipeline, layout, bindings, uniform, workgroupSize: [wg[0], wg[1], wg[2]] };
  }
}

/** What a dispatch binds: tensors by WGSL variable name, and the uniform struct's members by name. */
export interface DispatchArgs {
  tensors: Readonly<Record<string, Tensor>>;
  uniforms?: Readonly<Record<string, number>>;
  /** Minimum element count each tensor binding must hold, by name (checked before dispatch). */
  sizes?: Readonly<Record<string, number>>;
  workgroups: readonly [number, number?, number?];
  /** Work done, for the profiler's GFLOP/s and GB/s. */
  flops?: number;
  bytes?: number;
}

/** Check `args` against the kernel's WGSL contract; throws KernelBindingError naming what is wrong. */
export function checkBindings(kernel: Kernel, args: DispatchArgs): void {
  const given = new Set(Object.keys(args.tensors));
  for (const b of kernel.bindings) {
    if (b.kind === 'uniform') continue;
    const t = args.tensors[b.name];
    if (!t) throw new KernelBindingError(`${kernel.name}: binding "${b.name}" (${b.scalar ?? '?'}) was not given a tensor`);
    given.delete(b.name);
    if (b.scalar && !compatible(b.scalar, t.dtype)) {
      throw new KernelBindingError(`${kernel.name}: binding "${b.name}" expects ${b.scalar} elements, tensor "${t.label}" is ${t.dtype}`);
    }
    const need = args.sizes?.[b.name];
    if (need !== undefined && numel(t.shape) < need) {
      throw new KernelBindingError(
        `${kernel.name}: binding "${b.name}" needs at least ${need} ${t.dtype} elements (${need * dtypeBytes[t.dtype]} bytes), tensor "${t.label}" has ${numel(t.shape)} (shape [${t.shape.join(', ')}])`,
      );
    }
  }
  if (given.size) throw new KernelBindingError(`${kernel.name}: no binding named ${[...given].map((g) => `"${g}"`).join(', ')} in the WGSL`);
  const members = kernel.uniform?.members ?? [];
  const u = args.uniforms ?? {};
  for (const m of members) {
    const v = u[m.name];
    if (v === undefined) throw new KernelBindingError(`${kernel.name}: uniform "${m.name}" was not given`);
    if (m.type !== 'f32' && (!Number.isInteger(v) || (m.type === 'u32' && v < 0))) {
      throw new KernelBindingError(`${kernel.name}: uniform "${m.name}" is ${m.type}, got ${v}`);
    }
  }
  for (const k of Object.keys(u)) {
    if (!members.some((m) => m.name === k)) throw new KernelBindingError(`${kernel.name}: no uniform member named "${k}" in the WGSL`);
  }
}

function compatible(scalar: ScalarType, dtype: DType): boolean {
  return scalar === dtype;
}

/** Write a kernel's uniform struct into `view` at `base`. */
export function writeUniforms(kernel: Kernel, values: Readonly<Record<string, number>>, view: DataView, base: number): void {
  for (const m of kernel.uniform?.members ?? []) {
    const v = values[m.name] ?? 0;
    if (m.type === 'f32') view.setFloat32(base + m.offset, v, true);
    else if (m.type === 'i32') view.setInt32(base + m.offset, v, true);
    else view.setUint32(base + m.offset, v, true);
  }
}

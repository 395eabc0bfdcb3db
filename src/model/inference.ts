// Whisper inference on the GPU with key/value caches. Three kinds of compiled programs, each
// recorded once per shape and replayed:
// - the encoder of a batch of 30 s windows, forward only (activations freed by the memory plan),
//   ending with every decoder layer's cross-attention keys and values, kept for decoding;
// - a prefill of P tokens per sequence at positions [0, P): the decoder over the prompt, causal
//   self-attention over its own keys, whose rows it also writes into the self-attention caches;
// - a step of one token per sequence at the position given as a uniform value: its key/value
//   rows are written into the caches at that row, attention runs over the cached rows (key
//   lengths are GPU data), and only the last position's logits come back.
// Sequences are audio-major (the sequences of window a are a*n .. a*n + n-1), so the n beams of
// a window share its cross keys and values: their queries attend as n rows of one batch entry.
import { ShapeError } from '../errors.js';
import type { Gpu, Program, Recorder } from '../gpu/gpu.js';
import type { Tensor } from '../gpu/tensor.js';
import { compileGraph, type CompiledGraph } from '../graph/compile.js';
import { Graph, type Bindings, type GraphTensor } from '../graph/graph.js';
import { add } from '../graph/ops.js';
import { validateIds } from '../kernels/embedding.js';
import { copyRows, gatherSequences, validateParents } from '../kernels/kvcache.js';
import { melFrames, type WhisperConfig } from './config.js';
import { WhisperBlocks, type WhisperBlockOptions, type WhisperWeights } from './whisper.js';

/** The step scalar holding the decoding position of a step program. */
const POSITION = 'position';
type RowIndex = number | typeof POSITION;

/** Add a node copying rows (copyRows) at fixed rows or at the step's position. */
function moveRows(g: Graph, src: GraphTensor, dst: GraphTensor, o: { count: number; srcStart?: RowIndex; dstStart?: RowIndex; label: string }): void {
  const at = (i: RowIndex | undefined, b: Bindings) => (i === POSITION ? b.scalar(POSITION) : (i ?? 0));
  g.add({
    name: 'copyRows',
    label: o.label,
    reads: [src],
    writes: [dst],
    scalars: o.srcStart === POSITION || o.dstStart === POSITION ? [POSITION] : undefined,
    record: (rec, b) => copyRows(rec, b.tensor(src), b.tensor(dst), { count: o.count, srcStart: at(o.srcStart, b), dstStart: at(o.dstStart, b), label: o.label }),
  });
}

/**
 * Self-attention keys and values of every decoder layer for `sequences` sequences, as groups
 * [sequences, rows, d] (group 2l: layer l's keys, 2l + 1: its values) packed into as few
 * buffers as one storage binding allows. `rows` is at least the session's token limit, rounded
 * up so that each group starts on a binding-aligned offset; rows past the current length are
 * never visible (key lengths mask them).
 */
class SelfAttentionCache {
  readonly rows: number;
  /** [groups, sequences, rows, d] blocks of consecutive groups. */
  readonly chunks: Tensor[] = [];
  private readonly groupsPerChunk: number;
  /** Gather target as big as the largest chunk, made on the first beam reorder. */
  private scratch: Tensor | null = null;

  constructor(
    private readonly gpu: Gpu,
    config: WhisperConfig,
    readonly sequences: number,
    maxTokens: number,
  ) {
    const d = config.d_model;
    const alignFloats = gpu.limits.minStorageBufferOffsetAlignment / 4;
    let rows = maxTokens;
    while ((sequences * rows * d) % alignFloats !== 0) rows++;
    this.rows = rows;
    const groupBytes = 4 * sequences * rows * d;
    const groups = 2 * config.decoder_layers;
    this.groupsPerChunk = Math.min(groups, Math.floor(gpu.limits.maxStorageBufferBindingSize / groupBytes));
    if (this.groupsPerChunk < 1) {
      throw new ShapeError(`self-attention cache: ${sequences} sequences x ${rows} rows x ${d} floats (${groupBytes} bytes) exceed one storage binding (${gpu.limits.maxStorageBufferBindingSize} bytes); use fewer sequences or tokens`);
    }
    // Zeroed once: rows past a sequence's length are masked out of attention with weight 0, but
    // attention_subgroups.wgsl still loads their values (fma(0, v)), and a pooled buffer may hold
    // NaN bit patterns (e.g. of int8 words), which 0 * NaN would spread into the output.
    const clear = gpu.device.createCommandEncoder({ label: 'self-attention cache clear' });
    for (let first = 0; first < groups; first += this.groupsPerChunk) {
      const n = Math.min(this.groupsPerChunk, groups - first);
      const chunk = gpu.empty([n, sequences, rows, d], 'f32', `self-attention cache groups ${first}..${first + n - 1}`);
      clear.clearBuffer(chunk.buffer, chunk.offset, n * groupBytes);
      this.chunks.push(chunk);
    }
    gpu.device.queue.submit([clear.finish()]);
  }

  /** Layer `layer`'s keys or values: a [sequences, rows, d] view. */
  group(layer: number, which: 'keys' | 'values'): Tensor {
    const index = 2 * layer + (which === 'keys' ? 0 : 1);
    const chunk = this.chunks[Math.floor(index / this.groupsPerChunk)]!;
    const [, S, R, d] = chunk.shape as [number, number, number, number];
    const groupBytes = 4 * S * R * d;
    return { buffer: chunk.buffer, offset: chunk.offset + (index % this.groupsPerChunk) * groupBytes, dtype: 'f32', shape: [S, R, d], label: `dec${layer} self-attn ${which} cache` };
  }

  /** Record the reorder: every chunk gathered by `parents` into the scratch and copied back. */
  recordReorder(rec: Recorder, parents: Tensor, rows: number): void {
    this.scratch ??= this.gpu.empty(this.chunks[0]!.shape, 'f32', 'self-attention cache reorder scratch');
    for (const chunk of this.chunks) {
      const scratch: Tensor = { ...this.scratch, shape: chunk.shape, label: `${this.scratch.label} (${chunk.label})` };
      gatherSequences(rec, chunk, scratch, parents, { rows, label: `reorder ${chunk.label}` });
      rec.copy(scratch, chunk);
    }
  }

  destroy(): void {
    this.gpu.free(...this.chunks, ...(this.scratch ? [this.scratch] : []));
  }
}

/** A compiled decoder program whose last-position logits [sequences, vocab] are copied into a mappable buffer in the same submit. */
interface LogitsProgram {
  compiled: CompiledGraph;
  /** i32 [sequences, tokens] input ids. */
  tokens: GraphTensor;
  /** u32 [sequences] visible cache rows (step programs only). */
  keyLengths: GraphTensor | null;
  readback: GPUBuffer;
}

function destroyLogitsProgram(lp: LogitsProgram): void {
  lp.compiled.destroy();
  lp.readback.destroy();
}

/** The encoder program of one window count, with the cross keys/values it leaves for decoding. */
interface EncoderSlot {
  compiled: CompiledGraph;
  mel: GraphTensor;
  /** Per decoder layer, [windows, max_source_positions, d] (kept outputs of `compiled`). */
  crossKeys: Tensor[];
  crossValues: Tensor[];
  /** The audio whose keys/values the slot holds now. */
  loaded: EncodedWindows | null;
}

/**
 * Encoded audio windows: the handle a decoding session attends to. Their cross-attention keys
 * and values live in the backend's slot for this window count; when a later encode of as many
 * windows took the slot, they are encoded again from the kept log-mel before they are used.
 */
export class EncodedWindows {
  private melData: Float32Array | null;

  /** @internal Made by WhisperInference.encode. */
  constructor(
    /** Number of 30 s windows. */
    readonly windows: number,
    mel: Float32Array,
  ) {
    this.melData = mel;
  }

  /** @internal The log-mel, f32 [windows, num_mel_bins, frames]. */
  get mel(): Float32Array {
    if (!this.melData) throw new ShapeError('encoded audio was used after free()');
    return this.melData;
  }

  /** Drop the kept log-mel; sessions can no longer use this audio. */
  free(): void {
    this.melData = null;
  }
}

/** Options of a decoding session. */
export interface SessionOptions {
  /** Sequences decoded per window (beam size; default 1). */
  sequencesPerWindow?: number;
  /** Most tokens (prompt included) a sequence may reach; default max_target_positions. */
  maxTokens?: number;
}

/** Everything compiled for one session shape; shared by the sessions of that shape, one at a time. */
interface SessionPrograms {
  windows: number;
  sequencesPerWindow: number;
  maxTokens: number;
  cache: SelfAttentionCache;
  step: LogitsProgram | null;
  prefills: Map<number, LogitsProgram>;
  reorder: { program: Program; parents: Tensor; rows: number } | null;
  owner: DecodingSession | null;
}

/** Options of {@link WhisperInference}. */
export interface InferenceOptions {
  /**
   * Fake-quantize float layers as WhisperGraphOptions.quantize says (e.g. weights and, with
   * `activations`, inputs per token: the float simulation of an int8 model). Quantized weights
   * (WhisperWeights.uploadQuantized) run on the int8 kernels whatever this says.
   */
  quantize?: WhisperBlockOptions['quantize'];
}

/**
 * Whisper on the GPU for decoding: encode batches of windows once, then decode any number of
 * sequences per window with key/value caches. Programs are compiled on first use per shape
 * (window count; sequences, token limit and prompt length) and replayed afterwards. Layers whose
 * weights are quantized run on the int8 kernels, the others in f32.
 */
export class WhisperInference {
  private readonly encoders = new Map<number, EncoderSlot>();
  private readonly sessions = new Map<string, SessionPrograms>();
  private destroyed = false;

  constructor(
    readonly weights: WhisperWeights,
    private readonly opts: InferenceOptions = {},
  ) {}

  get gpu(): Gpu {
    return this.weights.gpu;
  }

  get config(): WhisperConfig {
    return this.weights.config;
  }

  /**
   * Run the encoder on `windows` log-mel windows, f32 [windows, num_mel_bins,
   * 2 * max_source_positions], and compute every decoder layer's cross-attention keys and values.
   */
  async encode(mel: Float32Array, windows = 1): Promise<EncodedWindows> {
    this.checkAlive();
    const c = this.config;
    if (!Number.isInteger(windows) || windows < 1) throw new ShapeError(`encode: windows must be a positive integer, got ${windows}`);
    const expected = windows * c.num_mel_bins * melFrames(c);
    if (mel.length !== expected) {
      throw new ShapeError(`encode: mel has ${mel.length} values, expected ${windows} x ${c.num_mel_bins} mel bins x ${melFrames(c)} frames = ${expected}`);
    }
    const audio = new EncodedWindows(windows, mel.slice());
    await this.load(audio);
    return audio;
  }

  /**
   * Start decoding `audio`: `sequencesPerWindow` sequences per window with empty caches. A later
   * session of the same shape reuses (and so ends) this one's caches.
   */
  async startSession(audio: EncodedWindows, opts: SessionOptions = {}): Promise<DecodingSession> {
    this.checkAlive();
    const n = opts.sequencesPerWindow ?? 1;
    const maxTokens = opts.maxTokens ?? this.config.max_target_positions;
    if (!Number.isInteger(n) || n < 1) throw new ShapeError(`startSession: sequencesPerWindow must be a positive integer, got ${n}`);
    if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > this.config.max_target_positions) {
      throw new ShapeError(`startSession: maxTokens must be 1..${this.config.max_target_positions} (max_target_positions), got ${maxTokens}`);
    }
    const key = `${audio.windows}x${n}x${maxTokens}`;
    let programs = this.sessions.get(key);
    if (!programs) {
      programs = {
        windows: audio.windows,
        sequencesPerWindow: n,
        maxTokens,
        cache: new SelfAttentionCache(this.gpu, this.config, audio.windows * n, maxTokens),
        step: null,
        prefills: new Map(),
        reorder: null,
        owner: null,
      };
      this.sessions.set(key, programs);
    }
    const session = new DecodingSession(this, audio, programs);
    programs.owner = session;
    return session;
  }

  /** Free every program, cache and kept tensor (the weights stay with their owner). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const slot of this.encoders.values()) slot.compiled.destroy();
    for (const p of this.sessions.values()) {
      p.cache.destroy();
      for (const lp of [p.step, ...p.prefills.values()]) if (lp) destroyLogitsProgram(lp);
      if (p.reorder) {
        p.reorder.program.destroy();
        this.gpu.free(p.reorder.parents);
      }
    }
    this.encoders.clear();
    this.sessions.clear();
  }

  /** @internal Make sure the encoder slot of `audio`'s window count holds its keys/values. */
  async load(audio: EncodedWindows): Promise<EncoderSlot> {
    const mel = audio.mel;
    const slot = this.encoders.get(audio.windows) ?? (await this.compileEncoder(audio.windows));
    if (slot.loaded !== audio) {
      slot.compiled.write(slot.mel, mel);
      await slot.compiled.run();
      slot.loaded = audio;
    }
    return slot;
  }

  private async compileEncoder(windows: number): Promise<EncoderSlot> {
    const c = this.config;
    const g = new Graph();
    const blocks = new WhisperBlocks(g, this.weights, { quantize: this.opts.quantize });
    const mel = g.input([windows, c.num_mel_bins, melFrames(c)], 'f32', 'mel');
    const { out } = blocks.encoder(mel);
    const kv = Array.from({ length: c.decoder_layers }, (_, l) => blocks.crossKeysValues(out, l));
    for (const { k, v } of kv) {
      g.keep(k);
      g.keep(v);
    }
    const compiled = await compileGraph(this.gpu, g);
    const slot: EncoderSlot = { compiled, mel, crossKeys: kv.map(({ k }) => compiled.tensor(k)), crossValues: kv.map(({ v }) => compiled.tensor(v)), loaded: null };
    this.encoders.set(windows, slot);
    return slot;
  }

  /**
   * @internal The prefill program for `tokens` prompt tokens per sequence, compiled on first use;
   * the least recently used one goes once more than `maxPrefillPrograms` exist (prompt lengths
   * vary in long-form decoding).
   */
  async prefillProgram(p: SessionPrograms, tokens: number): Promise<LogitsProgram> {
    let lp = p.prefills.get(tokens);
    if (lp) {
      p.prefills.delete(tokens);
    } else {
      lp = await this.compileDecoder(p, tokens);
      const [oldest] = p.prefills.keys();
      if (oldest !== undefined && p.prefills.size >= WhisperInference.maxPrefillPrograms) {
        destroyLogitsProgram(p.prefills.get(oldest)!);
        p.prefills.delete(oldest);
      }
    }
    p.prefills.set(tokens, lp);
    return lp;
  }

  /** Prefill programs kept per session shape. */
  static readonly maxPrefillPrograms = 4;

  /** @internal The one-token step program (compiled on first use). */
  async stepProgram(p: SessionPrograms): Promise<LogitsProgram> {
    p.step ??= await this.compileDecoder(p, 'step');
    return p.step;
  }

  /** @internal The reorder program and its parents input (compiled on first use), rewritten for `rows` rows. */
  async reorderProgram(p: SessionPrograms, rows: number): Promise<{ program: Program; parents: Tensor }> {
    if (!p.reorder) {
      const parents = this.gpu.empty([p.cache.sequences], 'u32', 'beam parents');
      const program = await this.gpu.compile((rec) => p.cache.recordReorder(rec, parents, rows));
      p.reorder = { program, parents, rows };
    } else if (p.reorder.rows !== rows) {
      const { parents } = p.reorder;
      p.reorder.program.rewrite(0, (rec) => p.cache.recordReorder(rec, parents, rows));
      p.reorder.rows = rows;
    }
    return p.reorder;
  }

  /**
   * Decoder graph for `mode`: a prefill of that many tokens from position 0 (causal attention
   * over its own keys, rows written to the cache), or a one-token step at the POSITION scalar
   * (row written, attention over the cache with key lengths).
   */
  private async compileDecoder(p: SessionPrograms, mode: number | 'step'): Promise<LogitsProgram> {
    const c = this.config;
    const d = c.d_model;
    const S = p.cache.sequences;
    const T = mode === 'step' ? 1 : mode;
    const slot = this.encoders.get(p.windows)!;
    const g = new Graph();
    const blocks = new WhisperBlocks(g, this.weights, { quantize: this.opts.quantize });
    const tokens = g.input([S, T], 'i32', 'tokens');
    const table = blocks.param('model.decoder.embed_positions.weight');
    let positions: GraphTensor;
    let keyLengths: GraphTensor | null = null;
    if (mode === 'step') {
      g.scalar(POSITION, 0);
      keyLengths = g.input([S], 'u32', 'key lengths');
      const row = g.temp([1, 1, d], 'decoder position');
      moveRows(g, g.view(table, [1, c.max_target_positions, d], 0, 'decoder positions'), row, { count: 1, srcStart: POSITION, label: 'decoder position' });
      positions = g.view(row, [1, d]);
    } else {
      positions = g.view(table, [T, d], 0, `decoder positions [0, ${T})`);
    }
    const y0 = add(g, blocks.embedTokens(tokens), positions, { label: 'decoder positions' });
    const { hidden } = blocks.decoder(y0, {
      self: (l, q, k, v) => {
        const keys = g.external(p.cache.group(l, 'keys'));
        const values = g.external(p.cache.group(l, 'values'));
        const dstStart = mode === 'step' ? POSITION : 0;
        moveRows(g, k, keys, { count: T, dstStart, label: `dec${l} self-attn keys to cache` });
        moveRows(g, v, values, { count: T, dstStart, label: `dec${l} self-attn values to cache` });
        const label = `dec${l} self-attn`;
        return mode === 'step' ? blocks.attend(q, keys, values, label, { keyLengths }) : blocks.attend(q, k, v, label, { causal: true });
      },
      cross: (l, q) => {
        // The n sequences of a window query its keys as n * T rows of one batch entry.
        const perWindow = g.view(q, [p.windows, p.sequencesPerWindow * T, d], 0, `${q.label} by window`);
        const out = blocks.attend(perWindow, g.external(slot.crossKeys[l]!), g.external(slot.crossValues[l]!), `dec${l} cross-attn`);
        return g.view(out, [S, T, d], 0, `${out.label} by sequence`);
      },
    });
    let last = hidden[hidden.length - 1]!;
    if (T > 1) {
      const picked = g.temp([S, 1, d], 'decoder ln last position');
      moveRows(g, last, picked, { count: 1, srcStart: T - 1, label: 'last position' });
      last = picked;
    }
    const logits = g.keep(blocks.logits(last));
    const readback = this.gpu.device.createBuffer({ label: 'logits readback', size: logits.bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const readbackTensor: Tensor = { buffer: readback, offset: 0, dtype: 'f32', shape: logits.shape, label: 'logits readback' };
    g.add({ name: 'readback', label: 'logits readback', reads: [logits], writes: [], record: (rec, b) => rec.copy(b.tensor(logits), readbackTensor) });
    return { compiled: await compileGraph(this.gpu, g), tokens, keyLengths, readback };
  }

  private checkAlive(): void {
    if (this.destroyed) throw new ShapeError('WhisperInference was destroyed');
  }
}

/**
 * Decoding of `sequencesPerWindow` sequences per encoded window with self-attention caches:
 * `step` feeds the prompt, then new tokens; beam search reorders the sequences with `reorder`.
 * Sequence s belongs to window floor(s / sequencesPerWindow).
 */
export class DecodingSession {
  private tokens = 0;
  private busy = false;

  /** @internal Made by WhisperInference.startSession. */
  constructor(
    private readonly inference: WhisperInference,
    readonly audio: EncodedWindows,
    private readonly programs: SessionPrograms,
  ) {}

  /** Number of sequences (windows x sequences per window). */
  get sequences(): number {
    return this.programs.cache.sequences;
  }

  /** Tokens each sequence has in its cache: the position the next token is written at. */
  get length(): number {
    return this.tokens;
  }

  /**
   * Feed `tokens[s]` to sequence s at positions length .. length + n - 1 (the same n >= 1 for
   * every sequence) and return the logits after the last of them, f32 [sequences, vocab_size]
   * (a new array). The first call runs the prefill program over all n tokens at once; later
   * calls run the one-token step program n times.
   */
  step(tokens: readonly (readonly number[])[]): Promise<Float32Array> {
    return this.exclusive('step', async () => {
      const S = this.sequences;
      if (tokens.length !== S) throw new ShapeError(`step: ${tokens.length} token sequences for ${S} sequences`);
      const n = tokens[0]?.length ?? 0;
      if (n < 1 || tokens.some((t) => t.length !== n)) throw new ShapeError(`step: every sequence needs the same positive number of tokens, got ${tokens.map((t) => t.length).join(', ')}`);
      const limit = this.programs.maxTokens;
      if (this.tokens + n > limit) throw new ShapeError(`step: ${this.tokens} + ${n} tokens exceed the session's ${limit} tokens (maxTokens)`);
      const ids = Int32Array.from(tokens.flat());
      validateIds(ids, this.inference.config.vocab_size, 'step tokens');
      await this.inference.load(this.audio);
      if (this.tokens === 0) {
        const lp = await this.inference.prefillProgram(this.programs, n);
        lp.compiled.write(lp.tokens, ids);
        const logits = await this.readLogits(lp, {});
        this.tokens = n;
        return logits;
      }
      const lp = await this.inference.stepProgram(this.programs);
      let logits: Float32Array | null = null;
      for (let j = 0; j < n; j++) {
        lp.compiled.write(lp.tokens, Int32Array.from(tokens, (t) => t[j]!));
        lp.compiled.write(lp.keyLengths!, new Uint32Array(S).fill(this.tokens + 1));
        logits = await this.readLogits(lp, { [POSITION]: this.tokens });
        this.tokens++;
      }
      return logits!;
    });
  }

  /**
   * Beam search: sequence s continues the cached history of sequence parents[s] (several may
   * share a parent). Rows in use are gathered on the GPU. Only the self-attention history moves:
   * sequence s still attends to its own window, so beam search passes parents of the same window.
   */
  reorder(parents: ArrayLike<number>): Promise<void> {
    return this.exclusive('reorder', async () => {
      validateParents(parents, this.sequences, 'reorder parents');
      if (Array.from(parents).every((p, s) => p === s) || this.tokens === 0) return;
      const { program, parents: parentsTensor } = await this.inference.reorderProgram(this.programs, this.tokens);
      this.inference.gpu.write(parentsTensor, Uint32Array.from(parents));
      await program.run();
    });
  }

  /** End the session: its caches go to the next session of the same shape. */
  free(): void {
    if (this.programs.owner === this) this.programs.owner = null;
  }

  private async readLogits(lp: LogitsProgram, scalars: Record<string, number>): Promise<Float32Array> {
    // With the Gpu's profiler set (dqw profile), run() times each dispatch; submit() does not wait.
    if (this.inference.gpu.profiler) await lp.compiled.run(scalars);
    else lp.compiled.submit(scalars);
    await lp.readback.mapAsync(GPUMapMode.READ);
    const logits = new Float32Array(lp.readback.getMappedRange().slice(0));
    lp.readback.unmap();
    this.inference.gpu.gpuDevice.throwIfFailed();
    return logits;
  }

  /** Run `fn` unless another call of this session is in flight or the session ended. */
  private async exclusive<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.programs.owner !== this) throw new ShapeError(`${what}: this session was freed, or a newer session of the same shape took its caches`);
    if (this.busy) throw new ShapeError(`${what}: the previous call of this session has not finished`);
    this.busy = true;
    try {
      return await fn();
    } finally {
      this.busy = false;
    }
  }
}

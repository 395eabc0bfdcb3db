// An independent reference of the DQ-Whisper distillation loss (docs/method.md "Losses") on
// TF.js (CPU, float32) with autodiff: teacher and student forwards by whisperForwardTf, the
// student's weights fake-quantized with the straight-through estimator, CE + τ²·KL + hidden-state
// MSE through projections, over a batch of examples; gradients of every student weight and
// projection. The layer maps are given (the test checks the GPU's choice separately).
import type * as TF from '@tensorflow/tfjs-core';
import { whisperParameters, type WhisperConfig } from '../../src/model/config.js';
import { tfCpu } from './tf.js';
import { whisperForwardTf, type WhisperRefWeights } from './whisper.js';

export interface DistillRefExample {
  mel: ArrayLike<number>;
  tokens: readonly number[];
  /** -100 where no loss is wanted. */
  labels: readonly number[];
}

export interface DistillRefOptions {
  alpha: number;
  beta: number;
  gamma: number;
  tau: number;
  /** 1-based teacher layer per student layer (method.md numbering); null leaves that side out. */
  encoderMap: readonly number[] | null;
  decoderMap: readonly number[] | null;
  /** Projections [d_T, d_S] by student layer (1-based index - 1), per side; absent when widths agree. */
  projections?: { encoder?: readonly Float32Array[]; decoder?: readonly Float32Array[] };
  quantize?: (weightName: string) => number | null;
  quantizeInputs?: (weightName: string) => boolean;
  /** Learnable scales of quantized student weights, by weight name (see WhisperTfOptions.weightScale); their gradients come back in scaleGrads. */
  scales?: ReadonlyMap<string, Float32Array>;
  /** Student cross-attends to the teacher's encoder output (student encoder unused). */
  frozenEncoder?: boolean;
}

export interface DistillRefResult {
  total: number;
  ce: number;
  kl: number;
  hsEncoder: number;
  hsDecoder: number;
  /** d total / d student weight, by Hugging Face name. */
  grads: Map<string, Float32Array>;
  /** d total / d projection, per side and student layer. */
  projectionGrads: { encoder: Float32Array[]; decoder: Float32Array[] };
  /** d total / d learnable scales (LSQ, without its gradient scale), by weight name. */
  scaleGrads: Map<string, Float32Array>;
  /** Per example: teacher and student hidden states [layer][rows * d] (layers 1..L), for distances. */
  hidden: { teacherEncoder: Float32Array[]; studentEncoder: Float32Array[]; teacherDecoder: Float32Array[]; studentDecoder: Float32Array[] }[];
}

export async function distillLossGradTf(
  teacherConfig: WhisperConfig,
  teacherWeights: WhisperRefWeights,
  studentConfig: WhisperConfig,
  studentWeights: WhisperRefWeights,
  examples: readonly DistillRefExample[],
  o: DistillRefOptions,
): Promise<DistillRefResult> {
  const tf = await tfCpu();
  const tSpecs = whisperParameters(teacherConfig);
  // A frozen encoder's weights are not variables (the loss does not depend on them).
  const sSpecs = whisperParameters(studentConfig).filter((s) => !(o.frozenEncoder && s.name.startsWith('model.encoder.')));
  const dS = studentConfig.d_model;
  const dT = teacherConfig.d_model;
  const kept = examples.map((e) => e.labels.map((l) => l !== -100));
  const count = kept.flat().filter(Boolean).length;
  const encProj = o.projections?.encoder ?? [];
  const decProj = o.projections?.decoder ?? [];
  const parts = (o.encoderMap ? 1 : 0) + (o.decoderMap ? 1 : 0);
  const scaleNames = [...(o.scales?.keys() ?? [])];
  const out: DistillRefResult = {
    total: NaN, ce: NaN, kl: NaN, hsEncoder: 0, hsDecoder: 0, grads: new Map(), projectionGrads: { encoder: [], decoder: [] }, scaleGrads: new Map(), hidden: [],
  };
  tf.tidy(() => {
    const teacherParams = new Map(tSpecs.map((s) => [s.name, tf.tensor(Float32Array.from(teacherWeights.get(s.name)!), [...s.shape])]));
    const teacher = examples.map((e) => whisperForwardTf(tf, teacherConfig, (n) => teacherParams.get(n)!, e.mel, e.tokens));
    const variables = [
      ...sSpecs.map((s) => tf.tensor(Float32Array.from(studentWeights.get(s.name)!), [...s.shape])),
      ...encProj.map((p) => tf.tensor2d(p, [dT, dS])),
      ...decProj.map((p) => tf.tensor2d(p, [dT, dS])),
      ...scaleNames.map((n) => tf.tensor1d(o.scales!.get(n)!)),
    ];
    const lossOf = (...vs: TF.Tensor[]): TF.Scalar => {
      const param = (name: string) => vs[sSpecs.findIndex((s) => s.name === name)]!;
      const eP = vs.slice(sSpecs.length, sSpecs.length + encProj.length);
      const dP = vs.slice(sSpecs.length + encProj.length, sSpecs.length + encProj.length + decProj.length);
      const scaleOf = (name: string) => {
        const i = scaleNames.indexOf(name);
        return i < 0 ? null : vs[sSpecs.length + encProj.length + decProj.length + i]!;
      };
      const project = (h: TF.Tensor2D, p: TF.Tensor | undefined) => (p ? tf.matMul(h, p, false, true) : h);
      let ce: TF.Tensor = tf.scalar(0);
      let kl: TF.Tensor = tf.scalar(0);
      let hsEnc: TF.Tensor = tf.scalar(0);
      let hsDec: TF.Tensor = tf.scalar(0);
      out.hidden = [];
      examples.forEach((e, b) => {
        const t = teacher[b]!;
        const s = whisperForwardTf(tf, studentConfig, param, e.mel, e.tokens, {
          quantize: o.quantize,
          quantizeInputs: o.quantizeInputs,
          weightScale: scaleOf,
          encoder: o.frozenEncoder ? { out: t.encoderHidden[t.encoderHidden.length - 1]!, hidden: t.encoderHidden } : undefined,
        });
        const rowMask = tf.tensor2d(kept[b]!.map((k) => (k ? 1 : 0)), [e.tokens.length, 1]);
        const targets = tf.mul(tf.oneHot(tf.tensor1d(e.labels.map((l, i) => (kept[b]![i] ? l : 0)), 'int32'), studentConfig.vocab_size), rowMask);
        ce = tf.add(ce, tf.neg(tf.sum(tf.mul(tf.logSoftmax(s.logits), targets))));
        const logPT = tf.logSoftmax(tf.div(t.logits, o.tau));
        const logPS = tf.logSoftmax(tf.div(s.logits, o.tau));
        kl = tf.add(kl, tf.sum(tf.mul(rowMask, tf.mul(tf.exp(logPT), tf.sub(logPT, logPS)))));
        if (o.encoderMap) {
          o.encoderMap.forEach((m, i) => {
            const diff = tf.sub(project(s.encoderHidden[i + 1]!, eP[i]), t.encoderHidden[m]!);
            hsEnc = tf.add(hsEnc, tf.sum(tf.square(diff)));
          });
        }
        if (o.decoderMap) {
          o.decoderMap.forEach((m, i) => {
            const diff = tf.mul(rowMask, tf.sub(project(s.decoderHidden[i + 1]!, dP[i]), t.decoderHidden[m]!));
            hsDec = tf.add(hsDec, tf.sum(tf.square(diff)));
          });
        }
        const data = (hs: TF.Tensor2D[]) => hs.slice(1).map((h) => (h.dataSync() as Float32Array).slice());
        out.hidden.push({
          teacherEncoder: data(t.encoderHidden),
          studentEncoder: o.encoderMap ? o.encoderMap.map((_, i) => (project(s.encoderHidden[i + 1]!, eP[i]).dataSync() as Float32Array).slice()) : [],
          teacherDecoder: data(t.decoderHidden),
          studentDecoder: o.decoderMap ? o.decoderMap.map((_, i) => (project(s.decoderHidden[i + 1]!, dP[i]).dataSync() as Float32Array).slice()) : [],
        });
      });
      const ctx = studentConfig.max_source_positions;
      ce = tf.div(ce, count);
      kl = tf.mul(tf.div(kl, count), o.tau * o.tau);
      if (o.encoderMap) hsEnc = tf.div(hsEnc, o.encoderMap.length * examples.length * ctx * dT);
      if (o.decoderMap) hsDec = tf.div(hsDec, o.decoderMap.length * count * dT);
      out.ce = ce.dataSync()[0]!;
      out.kl = kl.dataSync()[0]!;
      out.hsEncoder = hsEnc.dataSync()[0]!;
      out.hsDecoder = hsDec.dataSync()[0]!;
      const hs = parts ? tf.div(tf.add(hsEnc, hsDec), parts) : tf.scalar(0);
      return tf.add(tf.add(tf.mul(ce, o.alpha), tf.mul(kl, o.beta)), tf.mul(hs, o.gamma)) as TF.Scalar;
    };
    const result = tf.valueAndGrads(lossOf)(variables);
    out.total = result.value.dataSync()[0]!;
    const g = result.grads.map((t) => (t.dataSync() as Float32Array).slice());
    sSpecs.forEach((s, i) => out.grads.set(s.name, g[i]!));
    out.projectionGrads.encoder = g.slice(sSpecs.length, sSpecs.length + encProj.length);
    out.projectionGrads.decoder = g.slice(sSpecs.length + encProj.length, sSpecs.length + encProj.length + decProj.length);
    scaleNames.forEach((n, i) => out.scaleGrads.set(n, g[sSpecs.length + encProj.length + decProj.length + i]!));
  });
  return out;
}

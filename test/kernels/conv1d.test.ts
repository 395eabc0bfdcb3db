import { describe, expect, it } from 'vitest';
import type * as tfTypes from '@tensorflow/tfjs-core';
import { conv1d, conv1dBackward, conv1dOutLength } from '../../src/kernels/conv1d.js';
import { ShapeError } from '../../src/errors.js';
import { expectClose, finiteDifference, randomArray, useGpu } from '../helpers.js';
import { conv1dRef, convOutLength, type ConvShape } from '../ref/elementwise.js';
import { tfCpu } from '../ref/tf.js';

const gpu = useGpu();
// f32 accumulation of 3*Cin (<= 69 here) products of values in [-1, 1] plus a bias: ~sqrt(K) ulps.
const tol = { atol: 1e-5, rtol: 1e-5 };

/** Loss L = sum(gy * conv(x, w) + bias) in float64, whose gradient w.r.t. the output is gy. */
function convLoss(x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number>, s: ConvShape, gy: ArrayLike<number>, tokenMajor: boolean): number {
  return conv1dRef(x, w, bias, s, { tokenMajor }).reduce((acc, v, i) => acc + v * gy[i]!, 0);
}

/** The same convolution in TF.js: NWC input padded by one step each side, 'valid' conv, filter [3, Cin, Cout]. Returns [B, Tout, Cout]. */
function tfConv(tf: typeof tfTypes, x: tfTypes.Tensor, w: tfTypes.Tensor, bias: tfTypes.Tensor, stride: number): tfTypes.Tensor {
  const nwc = tf.pad(tf.transpose(x, [0, 2, 1]), [
    [0, 0],
    [1, 1],
    [0, 0],
  ]) as tfTypes.Tensor3D;
  const filter = tf.transpose(w, [2, 1, 0]) as tfTypes.Tensor3D;
  return tf.add(tf.conv1d(nwc, filter, stride, 'valid'), bias);
}

describe('conv1d forward vs float64 reference', () => {
  const cases: (ConvShape & { tokenMajor?: boolean; gelu?: boolean })[] = [];
  for (const T of [11, 10]) for (const stride of [1, 2]) cases.push({ B: 2, Cin: 5, Cout: 7, T, stride }, { B: 2, Cin: 5, Cout: 7, T, stride, tokenMajor: true });
  // Several tiles in every direction, K = 69 not a multiple of 16, fused GELU.
  cases.push({ B: 1, Cin: 23, Cout: 70, T: 150, stride: 2, gelu: true }, { B: 2, Cin: 23, Cout: 70, T: 131, stride: 1, tokenMajor: true, gelu: true });
  for (const c of cases) {
    const name = `B=${c.B} Cin=${c.Cin} Cout=${c.Cout} T=${c.T} stride=${c.stride}${c.tokenMajor ? ' token-major' : ''}${c.gelu ? ' +gelu' : ''}`;
    it(name, async () => {
      const g = gpu();
      const Tout = convOutLength(c.T, c.stride);
      expect(conv1dOutLength(c.T, c.stride)).toBe(Tout);
      const xHost = randomArray(c.B * c.Cin * c.T, 41);
      const wHost = randomArray(c.Cout * c.Cin * 3, 42);
      const bHost = randomArray(c.Cout, 43);
      const out = g.empty(c.tokenMajor ? [c.B, Tout, c.Cout] : [c.B, c.Cout, Tout], 'f32', 'out');
      await g.run((rec) =>
        conv1d(rec, g.upload(xHost, [c.B, c.Cin, c.T], 'f32', 'x'), g.upload(wHost, [c.Cout, c.Cin, 3], 'f32', 'w'), g.upload(bHost, [c.Cout], 'f32', 'b'), out, {
          stride: c.stride,
          tokenMajor: c.tokenMajor,
          gelu: c.gelu,
        }),
      );
      expectClose(await g.readF32(out), conv1dRef(xHost, wHost, bHost, c, c.tokenMajor || c.gelu ? { tokenMajor: c.tokenMajor, gelu: c.gelu } : {}), tol, name);
    });
  }

  it('matches TF.js conv1d (pad then valid) on token-major output', async () => {
    const g = gpu();
    const tf = await tfCpu();
    const s = { B: 2, Cin: 5, Cout: 7, T: 10, stride: 2 };
    const Tout = convOutLength(s.T, s.stride);
    const xHost = randomArray(s.B * s.Cin * s.T, 44);
    const wHost = randomArray(s.Cout * s.Cin * 3, 45);
    const bHost = randomArray(s.Cout, 46);
    const out = g.empty([s.B, Tout, s.Cout]);
    await g.run((rec) => conv1d(rec, g.upload(xHost, [s.B, s.Cin, s.T]), g.upload(wHost, [s.Cout, s.Cin, 3]), g.upload(bHost, [s.Cout]), out, { stride: 2, tokenMajor: true }));
    const ref = tfConv(tf, tf.tensor3d(xHost, [s.B, s.Cin, s.T]), tf.tensor3d(wHost, [s.Cout, s.Cin, 3]), tf.tensor1d(bHost), 2);
    expectClose(await g.readF32(out), await ref.data(), tol, 'vs TF.js');
  });
});

describe('conv1d backward', () => {
  for (const T of [11, 10]) {
    for (const stride of [1, 2]) {
      for (const tokenMajor of [false, true]) {
        it(`dx, dw, db vs finite differences and TF.js (T=${T}, stride=${stride}${tokenMajor ? ', token-major' : ''})`, async () => {
          const g = gpu();
          const s = { B: 2, Cin: 5, Cout: 7, T, stride };
          const Tout = convOutLength(T, stride);
          const xHost = randomArray(s.B * s.Cin * T, 51);
          const wHost = randomArray(s.Cout * s.Cin * 3, 52);
          const bHost = randomArray(s.Cout, 53);
          const gyHost = randomArray(s.B * s.Cout * Tout, 54);
          const outShape = tokenMajor ? [s.B, Tout, s.Cout] : [s.B, s.Cout, Tout];
          const x = g.upload(xHost, [s.B, s.Cin, T], 'f32', 'x');
          const w = g.upload(wHost, [s.Cout, s.Cin, 3], 'f32', 'w');
          const gx = g.empty([s.B, s.Cin, T], 'f32', 'gx');
          const gw = g.empty([s.Cout, s.Cin, 3], 'f32', 'gw');
          const gb = g.empty([s.Cout], 'f32', 'gb');
          await g.run((rec) => conv1dBackward(rec, x, w, g.upload(gyHost, outShape, 'f32', 'gy'), { x: gx, weight: gw, bias: gb }, { stride, tokenMajor }));
          const [gxGpu, gwGpu, gbGpu] = [await g.readF32(gx), await g.readF32(gw), await g.readF32(gb)];

          // The loss is linear in each argument, so central differences are exact up to float64 rounding.
          const fdTol = { atol: 1e-5, rtol: 1e-5 };
          expectClose(gxGpu, finiteDifference((v) => convLoss(v, wHost, bHost, s, gyHost, tokenMajor), xHost), fdTol, 'dx vs finite differences');
          expectClose(gwGpu, finiteDifference((v) => convLoss(xHost, v, bHost, s, gyHost, tokenMajor), wHost), fdTol, 'dw vs finite differences');
          expectClose(gbGpu, finiteDifference((v) => convLoss(xHost, wHost, v, s, gyHost, tokenMajor), bHost), fdTol, 'db vs finite differences');

          const tf = await tfCpu();
          const gyTokenMajor = tokenMajor ? tf.tensor3d(gyHost, [s.B, Tout, s.Cout]) : tf.transpose(tf.tensor3d(gyHost, [s.B, s.Cout, Tout]), [0, 2, 1]);
          const [tx, tw, tb] = tf.grads((xv: tfTypes.Tensor, wv: tfTypes.Tensor, bv: tfTypes.Tensor) => tf.sum(tf.mul(tfConv(tf, xv, wv, bv, stride), gyTokenMajor)))([
            tf.tensor3d(xHost, [s.B, s.Cin, T]),
            tf.tensor3d(wHost, [s.Cout, s.Cin, 3]),
            tf.tensor1d(bHost),
          ]);
          expectClose(gxGpu, await tx!.data(), fdTol, 'dx vs TF.js');
          expectClose(gwGpu, await tw!.data(), fdTol, 'dw vs TF.js');
          expectClose(gbGpu, await tb!.data(), fdTol, 'db vs TF.js');
        });
      }
    }
  }

  it('accumulates into existing gradients over several tiles (Cin=23, Cout=70, T=150, stride 2)', async () => {
    const g = gpu();
    const s = { B: 2, Cin: 23, Cout: 70, T: 150, stride: 2 };
    const Tout = convOutLength(s.T, s.stride);
    const xHost = randomArray(s.B * s.Cin * s.T, 61);
    const wHost = randomArray(s.Cout * s.Cin * 3, 62);
    const gyHost = randomArray(s.B * s.Cout * Tout, 63);
    const init = { x: randomArray(xHost.length, 64), w: randomArray(wHost.length, 65), b: randomArray(s.Cout, 66) };
    const gx = g.upload(init.x, [s.B, s.Cin, s.T]);
    const gw = g.upload(init.w, [s.Cout, s.Cin, 3]);
    const gb = g.upload(init.b, [s.Cout]);
    const x = g.upload(xHost, [s.B, s.Cin, s.T]);
    await g.run((rec) => conv1dBackward(rec, x, g.upload(wHost, [s.Cout, s.Cin, 3]), g.upload(gyHost, [s.B, s.Cout, Tout]), { x: gx, weight: gw, bias: gb }, { stride: 2, accumulate: true }));
    // Analytic float64 gradients of the linear loss: d/dx, d/dw by linearity through conv1dRef.
    const zeros = new Float64Array(s.Cout);
    const dxRef = new Float64Array(xHost.length);
    const dwRef = new Float64Array(wHost.length);
    const dbRef = new Float64Array(s.Cout);
    for (let b = 0; b < s.B; b++)
      for (let co = 0; co < s.Cout; co++)
        for (let t = 0; t < Tout; t++) {
          const gy = gyHost[(b * s.Cout + co) * Tout + t]!;
          dbRef[co]! += gy;
          for (let ci = 0; ci < s.Cin; ci++)
            for (let k = 0; k < 3; k++) {
              const p = t * s.stride + k - 1;
              if (p < 0 || p >= s.T) continue;
              dxRef[(b * s.Cin + ci) * s.T + p]! += gy * wHost[(co * s.Cin + ci) * 3 + k]!;
              dwRef[(co * s.Cin + ci) * 3 + k]! += gy * xHost[(b * s.Cin + ci) * s.T + p]!;
            }
        }
    // Sanity of the hand-written reference against the forward reference at one coordinate.
    const fd = finiteDifference((v) => convLoss(xHost, v, zeros, s, gyHost, false), wHost, 1e-3, [100]);
    expect(Math.abs(fd[100]! - dwRef[100]!)).toBeLessThan(1e-9);
    // dw sums B*Tout = 150 products: a little more rounding than the forward.
    const accTol = { atol: 2e-5, rtol: 1e-5 };
    expectClose(await g.readF32(gx), dxRef.map((v, i) => v + init.x[i]!), accTol, 'dx accumulated');
    expectClose(await g.readF32(gw), dwRef.map((v, i) => v + init.w[i]!), accTol, 'dw accumulated');
    expectClose(await g.readF32(gb), dbRef.map((v, i) => v + init.b[i]!), accTol, 'db accumulated');
  });
});

describe('conv1d argument checks', () => {
  it('names the tensors on bad shapes, strides and half-given gradients', () => {
    const g = gpu();
    const rec = g.record();
    const x = g.empty([2, 5, 11], 'f32', 'mel');
    const w = g.empty([7, 5, 3], 'f32', 'conv1.weight');
    const b = g.empty([7], 'f32', 'conv1.bias');
    expect(() => conv1d(rec, x, g.empty([7, 4, 3], 'f32', 'wrong.weight'), b, g.empty([2, 7, 11]))).toThrow(ShapeError);
    expect(() => conv1d(rec, x, g.empty([7, 4, 3], 'f32', 'wrong.weight'), b, g.empty([2, 7, 11]))).toThrow(/"wrong.weight" must be \[Cout, 5, 3\] for input "mel"/);
    expect(() => conv1d(rec, x, w, b, g.empty([2, 7, 11], 'f32', 'h'), { stride: 2 })).toThrow(/"h" has shape \[2, 7, 11\], expected \[2, 7, 6\]/);
    expect(() => conv1d(rec, x, w, b, g.empty([2, 7, 11], 'f32', 'h'), { tokenMajor: true })).toThrow(/"h" has shape \[2, 7, 11\], expected \[2, 11, 7\]/);
    expect(() => conv1d(rec, x, w, b, g.empty([2, 7, 4]), { stride: 3 })).toThrow(/stride must be 1 or 2/);
    expect(() => conv1dBackward(rec, x, w, g.empty([2, 7, 11], 'f32', 'gy'), { weight: g.empty([7, 5, 3], 'f32', 'gw') })).toThrow(/give both \(got only "gw"\)/);
  });
});

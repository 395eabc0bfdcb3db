// TF.js on its CPU backend: an independent autodiff to check our backward kernels against.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// tfjs-core registers no gradient functions by itself; tf.grad needs them.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';

let ready: Promise<typeof tf> | null = null;

/** TF.js with the CPU backend selected (float32 arithmetic). */
export function tfCpu(): Promise<typeof tf> {
  ready ??= tf.setBackend('cpu').then(() => tf);
  return ready;
}

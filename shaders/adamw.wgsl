// One AdamW step over a flat f32 parameter tensor, in the order and form of torch.optim.AdamW's
// single-tensor path (amsgrad off, maximize off), element-wise:
//   g = grad * grad_scale * clip
//   p = p * (1 - lr * weight_decay)                       decoupled weight decay first
//   m = m + (1 - beta1) * (g - m)                         (exp_avg.lerp_(grad, 1 - beta1))
//   v = beta2 * v + (1 - beta2) * g^2
//   p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Scalars that PyTorch computes in Python floats (1 - lr * wd, lr / (1 - beta1^t),
// sqrt(1 - beta2^t), 1 - beta) are computed on the host in float64 and passed in.
// Gradient clipping as torch.nn.utils.clip_grad_norm_: with CLIP, the sum of squares of all
// (unscaled) gradients is read from grad_sumsq[norm_index], the norm of the scaled gradients is
// |grad_scale| * sqrt(sumsq), and clip = min(1, max_norm / (norm + 1e-6)); without CLIP, clip = 1.
// Reading the norm here means no readback between the reduction and the step.

struct Params {
  n: u32, groups_x: u32, norm_index: u32,
  one_minus_beta1: f32, beta2: f32, one_minus_beta2: f32, eps: f32,
  decay: f32, step_size: f32, bias_correction2_sqrt: f32,
  grad_scale: f32, max_norm: f32,
}
override CLIP: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> exp_avg: array<f32>;
@group(0) @binding(4) var<storage, read_write> exp_avg_sq: array<f32>;
@group(0) @binding(5) var<storage, read> grad_sumsq: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn adamw_step(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * params.groups_x + wg.x) * WG + lid;
  if (i >= params.n) { return; }
  var g = grad[i] * params.grad_scale;
  if (CLIP) {
    let norm = abs(params.grad_scale) * sqrt(grad_sumsq[params.norm_index]);
    g *= min(1.0, params.max_norm / (norm + 1e-6));
  }
  let m0 = exp_avg[i];
  let m = m0 + params.one_minus_beta1 * (g - m0);
  let v = params.beta2 * exp_avg_sq[i] + params.one_minus_beta2 * g * g;
  exp_avg[i] = m;
  exp_avg_sq[i] = v;
  let p = param[i] * params.decay;
  let denom = sqrt(v) / params.bias_correction2_sqrt + params.eps;
  param[i] = p - params.step_size * m / denom;
}

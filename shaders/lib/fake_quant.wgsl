// Symmetric per-row fake quantization shared by the kernels that apply it as they load
// (lib/matmul.wgsl, embedding.wgsl) and the straight-through estimator's mask. round() is WGSL's
// round-half-to-even; int8 export rounds the same way.

/** clamp(round(x / s), -qmax, qmax) * s; a scale s <= 0 (all-zero row) gives 0, never NaN. */
fn fake_quant(x: f32, s: f32, qmax: f32) -> f32 {
  return clamp(round(x / select(1.0, s, s > 0.0)), -qmax, qmax) * max(s, 0.0);
}

/** Whether the straight-through estimator passes x's gradient: s > 0 and the clamp did not saturate. */
fn fake_quant_passes(x: f32, s: f32, qmax: f32) -> bool {
  return s > 0.0 && abs(round(x / s)) <= qmax;
}

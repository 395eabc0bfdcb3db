// Exact (erf) GELU, as PyTorch's nn.GELU() in Whisper. WGSL has no erf and no generics: the
// including shader declares `alias Erf = f32;` (or a vector type) before the include.

// erf with |error| < 1.2e-7 (Numerical Recipes erfc, Chebyshev fit).
fn erf_approx(x: Erf) -> Erf {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
          t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
          t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= Erf(0.0));
}

// Standard normal CDF Phi(x).
fn normal_cdf(x: Erf) -> Erf {
  return 0.5 * (1.0 + erf_approx(x * 0.7071067811865476));
}

// x * Phi(x).
fn gelu_erf(x: Erf) -> Erf {
  return x * normal_cdf(x);
}

// float64 reference of Whisper's log_mel_spectrogram (whisper/audio.py), written from the
// definitions rather than from src/audio/logmel.ts: the signal zero-padded/trimmed to `length`,
// reflect-padded by 200 each side, periodic Hann window, DFT (FFT checked against the definition),
// last frame dropped,
// power, mel filterbank, log10(max(x, 1e-10)), clamp to max - 8, (x + 4) / 4.

const N_FFT = 400;
const HOP = 160;
const BINS = N_FFT / 2 + 1;

/** cos/sin(2 pi e / 400) for e < 400, exact to f64 rounding. */
const COS = Float64Array.from({ length: N_FFT }, (_, e) => Math.cos((2 * Math.PI * e) / N_FFT));
const SIN = Float64Array.from({ length: N_FFT }, (_, e) => Math.sin((2 * Math.PI * e) / N_FFT));

/** |DFT(frame)|^2 for bins 0..200 of a 400-sample real frame, straight from the definition. */
export function powerSpectrumDirect(frame: ArrayLike<number>): Float64Array {
  const power = new Float64Array(BINS);
  for (let f = 0; f < BINS; f++) {
    let re = 0;
    let im = 0;
    for (let k = 0; k < N_FFT; k++) {
      re += frame[k]! * COS[(f * k) % N_FFT]!;
      im -= frame[k]! * SIN[(f * k) % N_FFT]!;
    }
    power[f] = re * re + im * im;
  }
  return power;
}

/**
 * The same power spectrum by a recursive mixed-radix Cooley-Tukey FFT (400 = 2^4 * 5^2), about
 * ten times faster than the definition, so the reference can run over every clip; checked
 * against powerSpectrumDirect in test/audio/logmel.test.ts.
 */
export function powerSpectrumFft(frame: ArrayLike<number>): Float64Array {
  const re = new Float64Array(N_FFT);
  const im = new Float64Array(N_FFT);
  fft(Float64Array.from(frame), new Float64Array(N_FFT), 0, 1, N_FFT, re, im, 0);
  return Float64Array.from({ length: BINS }, (_, f) => re[f]! * re[f]! + im[f]! * im[f]!);
}

// Butterfly inputs of one combination step (p <= 5); no recursion happens while they are in use.
const scratchRe = new Float64Array(5);
const scratchIm = new Float64Array(5);

/**
 * y[yOff .. yOff + n) = DFT of the n inputs x[xOff + i * stride], n dividing 400: the DFTs of the
 * p interleaved sub-sequences go to consecutive blocks of y, then each k < n/p combines
 * X[k + s * m] = sum_q exp(-2 pi i q (k + s m) / n) * Y_q[k] in place (the p values read are
 * exactly the p written).
 */
function fft(xr: Float64Array, xi: Float64Array, xOff: number, stride: number, n: number, yr: Float64Array, yi: Float64Array, yOff: number): void {
  if (n === 1) {
    yr[yOff] = xr[xOff]!;
    yi[yOff] = xi[xOff]!;
    return;
  }
  const p = n % 2 === 0 ? 2 : n % 5 === 0 ? 5 : n;
  const m = n / p;
  for (let q = 0; q < p; q++) fft(xr, xi, xOff + q * stride, stride * p, m, yr, yi, yOff + q * m);
  const step = N_FFT / n;
  const tr = scratchRe;
  const ti = scratchIm;
  for (let k = 0; k < m; k++) {
    for (let q = 0; q < p; q++) {
      tr[q] = yr[yOff + q * m + k]!;
      ti[q] = yi[yOff + q * m + k]!;
    }
    for (let s = 0; s < p; s++) {
      const j = k + s * m;
      let sr = 0;
      let si = 0;
      // e runs over q * j * step mod 400 without a division.
      const de = (j * step) % N_FFT;
      for (let q = 0, e = 0; q < p; q++, e = (e + de) % N_FFT) {
        const c = COS[e]!;
        const w = -SIN[e]!;
        sr += tr[q]! * c - ti[q]! * w;
        si += tr[q]! * w + ti[q]! * c;
      }
      yr[yOff + j] = sr;
      yi[yOff + j] = si;
    }
  }
}

/**
 * Log-mel of `samples` analysed as a signal of `length` samples: Float64Array [nMels, length/160].
 * filters: [nMels, 201] row-major. Frames whose windowed samples are all zero (padding) have a
 * zero spectrum; they skip the DFT, which changes no value.
 */
export function logMelRef(samples: ArrayLike<number>, filters: ArrayLike<number>, nMels: number, length = samples.length): Float64Array {
  const x = (i: number) => (i < samples.length ? samples[i]! : 0);
  const reflect = (j: number) => (j < 0 ? -j : j >= length ? 2 * (length - 1) - j : j);
  const frames = Math.floor(length / HOP);
  const window = Float64Array.from({ length: N_FFT }, (_, k) => 0.5 - 0.5 * Math.cos((2 * Math.PI * k) / N_FFT));
  const mel = new Float64Array(nMels * frames);
  const frame = new Float64Array(N_FFT);
  // Each triangular filter is zero outside a few bins; summing only its nonzero span changes nothing.
  const spans = Array.from({ length: nMels }, (_, m) => {
    const row = Array.from({ length: BINS }, (_, f) => filters[m * BINS + f]!);
    return [row.findIndex((w) => w !== 0), BINS - [...row].reverse().findIndex((w) => w !== 0)] as const;
  });
  for (let t = 0; t < frames; t++) {
    let nonzero = false;
    for (let k = 0; k < N_FFT; k++) {
      frame[k] = window[k]! * x(reflect(t * HOP + k - N_FFT / 2));
      nonzero ||= frame[k] !== 0;
    }
    if (!nonzero) continue;
    const power = powerSpectrumFft(frame);
    for (let m = 0; m < nMels; m++) {
      let s = 0;
      const [first, end] = spans[m]!;
      for (let f = Math.max(first, 0); f < end; f++) s += filters[m * BINS + f]! * power[f]!;
      mel[m * frames + t] = s;
    }
  }
  let max = -Infinity;
  for (let i = 0; i < mel.length; i++) {
    mel[i] = Math.log10(Math.max(mel[i]!, 1e-10));
    max = Math.max(max, mel[i]!);
  }
  for (let i = 0; i < mel.length; i++) mel[i] = (Math.max(mel[i]!, max - 8) + 4) / 4;
  return mel;
}

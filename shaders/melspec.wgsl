// Whisper's log-mel front end (whisper/audio.py log_mel_spectrogram), as kernels around two
// matmuls (shaders/matmul.wgsl) and a max reduction (shaders/reduce.wgsl); src/audio/logmel.ts
// records the sequence:
//   frame_window   frames[t, k] = hann[k] * x[reflect(t * HOP + k - N_FFT / 2)]
//                  (torch.stft center=True: the signal is reflect-padded by N_FFT / 2 each side)
//   matmul         spectrum = frames @ basis^T; basis rows 0..200 are cos, 201..401 sin of the
//                  DFT bins 0..N_FFT/2, so the DFT is one [frames, 400] x [400, 402] product
//   power          power[t, f] = spectrum[t, f]^2 + spectrum[t, 201 + f]^2
//   matmul         mel = filters @ power^T, [n_mels, frames]
//   row max twice  the global max of mel
//   log_normalize  mel = (max(log10(max(mel, 1e-10)), log10(max(gmax, 1e-10)) - 8) + 4) / 4
// log10 is monotone, so the max of the log is the log of the max and the reduction runs on the
// linear mel energies before the single log pass.

const WG: u32 = 256u;
const N_FFT: u32 = 400u;
const HOP: u32 = 160u;
const N_BINS: u32 = 201u;

// Element index of this invocation in a 1-D range laid over an x/y grid of workgroups (big
// ranges exceed the 65535-workgroups-per-dimension limit in x alone).
fn flat_index(wg: vec3u, lid: u32, groups_x: u32) -> u32 {
  return (wg.y * groups_x + wg.x) * WG + lid;
}

struct FrameParams {
  // Length of the signal being analysed: the audio, zero-padded or trimmed to this length.
  length: u32,
  // Samples of the audio binding that lie inside the signal: min(audio length, length).
  available: u32,
  // Frames written: length / HOP (torch.stft's last frame is dropped, as Whisper does).
  frames: u32,
  groups_x: u32,
}
@group(0) @binding(0) var<uniform> fp: FrameParams;
@group(0) @binding(1) var<storage, read> audio: array<f32>;
@group(0) @binding(2) var<storage, read> hann: array<f32>;
@group(0) @binding(3) var<storage, read_write> frames: array<f32>;

// frames[t, k] for t < frames, k < N_FFT: the windowed samples of frame t, one per invocation.
@compute @workgroup_size(WG)
fn frame_window(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wg, lid, fp.groups_x);
  if (i >= fp.frames * N_FFT) { return; }
  let t = i / N_FFT;
  let k = i % N_FFT;
  // Position in the signal; reflect (without repeating the edge sample) past either end.
  var j = i32(t * HOP + k) - i32(N_FFT / 2u);
  let last = i32(fp.length) - 1;
  if (j < 0) { j = -j; }
  if (j > last) { j = 2 * last - j; }
  let x = select(0.0, audio[u32(j)], u32(j) < fp.available);
  frames[i] = hann[k] * x;
}

struct PowerParams { frames: u32, groups_x: u32 }
@group(0) @binding(0) var<uniform> pp: PowerParams;
@group(0) @binding(1) var<storage, read> spectrum: array<f32>;
@group(0) @binding(2) var<storage, read_write> power: array<f32>;

// power[t, f] = |X_t(f)|^2 from spectrum [frames, 2 * N_BINS] (real parts, then imaginary parts).
@compute @workgroup_size(WG)
fn power_spectrum(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wg, lid, pp.groups_x);
  if (i >= pp.frames * N_BINS) { return; }
  let t = i / N_BINS;
  let f = i % N_BINS;
  let re = spectrum[t * 2u * N_BINS + f];
  let im = spectrum[t * 2u * N_BINS + N_BINS + f];
  power[i] = re * re + im * im;
}

struct NormalizeParams { count: u32, groups_x: u32 }
@group(0) @binding(0) var<uniform> np: NormalizeParams;
@group(0) @binding(1) var<storage, read_write> mel: array<f32>;
@group(0) @binding(2) var<storage, read> mel_max: array<f32>;

// In place over all count elements of mel: Whisper's log10, dynamic-range clamp and scaling.
@compute @workgroup_size(WG)
fn log_normalize(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wg, lid, np.groups_x);
  if (i >= np.count) { return; }
  let floor_db = log10_clamped(mel_max[0]) - 8.0;
  mel[i] = (max(log10_clamped(mel[i]), floor_db) + 4.0) / 4.0;
}

// log10(max(x, 1e-10)); WGSL has only the natural and base-2 logarithms.
fn log10_clamped(x: f32) -> f32 {
  return log2(max(x, 1e-10)) * 0.30102999566398120;
}

// CPU references of the cache row moves (shaders/kvcache.wgsl): plain index arithmetic.

/** dst with rows [dstStart, dstStart + count) of each sequence replaced by src's rows from srcStart. */
export function copyRowsRef(
  src: ArrayLike<number>, dst: ArrayLike<number>,
  dims: { S: number; Ls: number; Ld: number; W: number }, count: number, srcStart: number, dstStart: number,
): Float64Array {
  const { S, Ls, Ld, W } = dims;
  const out = Float64Array.from(dst);
  for (let s = 0; s < S; s++) {
    for (let r = 0; r < count; r++) {
      for (let c = 0; c < W; c++) out[(s * Ld + dstStart + r) * W + c] = src[(s * Ls + srcStart + r) * W + c]!;
    }
  }
  return out;
}

/** dst with the first `rows` rows of sequence s of each group taken from sequence parents[s] of src. */
export function gatherSequencesRef(
  src: ArrayLike<number>, dst: ArrayLike<number>,
  dims: { G: number; S: number; R: number; W: number }, parents: readonly number[], rows: number,
): Float64Array {
  const { G, S, R, W } = dims;
  const out = Float64Array.from(dst);
  for (let g = 0; g < G; g++) {
    for (let s = 0; s < S; s++) {
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < W; c++) out[((g * S + s) * R + r) * W + c] = src[((g * S + parents[s]!) * R + r) * W + c]!;
      }
    }
  }
  return out;
}

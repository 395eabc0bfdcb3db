import { describe, expect, it } from 'vitest';
import { CheckpointError } from '../../src/errors.js';
import { blobSource, bufferSource, concatChunks, type ByteSource } from '../../src/io/byte-source.js';
import { encodeSafetensors, readSafetensorsHeader, readSafetensorsTensor } from '../../src/io/safetensors.js';
import { randomArray } from '../helpers.js';

/**
 * A safetensors file built by hand from the format's definition (u64 little-endian header length,
 * JSON header, data), independently of the encoder under test.
 */
function handBuilt(header: Record<string, unknown>, data: number[], padTo = 1): Uint8Array<ArrayBuffer> {
  let json = JSON.stringify(header);
  while (json.length % padTo !== 0) json += ' ';
  const out = new Uint8Array(8 + json.length + data.length);
  let n = json.length;
  for (let i = 0; i < 8; i++) {
    out[i] = n % 256;
    n = Math.floor(n / 256);
  }
  for (let i = 0; i < json.length; i++) out[8 + i] = json.charCodeAt(i);
  out.set(data, 8 + json.length);
  return out;
}

const le16 = (v: number) => [v & 0xff, v >> 8];
const f32le = (v: number) => [...new Uint8Array(new Float32Array([v]).buffer)];

// IEEE binary16 and bfloat16 bit patterns from their definitions (independent of the codecs).
const f16Cases: [number, number][] = [[0x3c00, 1], [0xc000, -2], [0x3800, 0.5], [0x7bff, 65504], [0x0001, 2 ** -24], [0x7c00, Infinity], [0x8000, -0]];
const bf16Cases: [number, number][] = [[0x3f80, 1], [0xc000, -2], [0x4049, 3.140625], [0x0001, 2 ** -133]];

function sample(): Uint8Array<ArrayBuffer> {
  const data = [
    ...f32le(1.5), ...f32le(-3.25), ...f32le(1e-30), ...f32le(7),
    ...f16Cases.flatMap(([bits]) => le16(bits)),
    ...bf16Cases.flatMap(([bits]) => le16(bits)),
  ];
  return handBuilt({
    __metadata__: { format: 'pt', note: 'hand built' },
    a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
    h: { dtype: 'F16', shape: [f16Cases.length], data_offsets: [16, 16 + 2 * f16Cases.length] },
    b: { dtype: 'BF16', shape: [1, bf16Cases.length], data_offsets: [16 + 2 * f16Cases.length, data.length] },
  }, data);
}

/** Records every read, to show that tensors are read range by range. */
function counting(source: ByteSource): { source: ByteSource; reads: [number, number][] } {
  const reads: [number, number][] = [];
  return { reads, source: { name: source.name, size: source.size, read: (o, l, into) => (reads.push([o, l]), source.read(o, l, into)) } };
}

async function expectCheckpointError(promise: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<CheckpointError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(CheckpointError);
  for (const part of parts) expect((error as Error).message).toMatch(part);
  return error as CheckpointError;
}

describe('safetensors reader', () => {
  it('reads F32, F16 and BF16 tensors of a hand-built file exactly, from memory and from a Blob', async () => {
    for (const source of [bufferSource(sample(), 'sample.safetensors'), blobSource(new Blob([sample()]), 'sample.safetensors')]) {
      const header = await readSafetensorsHeader(source);
      expect(header.metadata).toEqual({ format: 'pt', note: 'hand built' });
      expect(header.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([['a', 'F32', [2, 2]], ['h', 'F16', [7]], ['b', 'BF16', [1, 4]]]);
      const [a, h, b] = await Promise.all(header.tensors.map((t) => readSafetensorsTensor(source, t)));
      expect([...a!]).toEqual([1.5, -3.25, Math.fround(1e-30), 7]);
      expect([...h!]).toEqual(f16Cases.map(([, v]) => v));
      expect(Object.is(h![6], -0)).toBe(true);
      expect([...b!]).toEqual(bf16Cases.map(([, v]) => v));
    }
  });

  it('reads only the header and then each tensor\'s own byte range', async () => {
    const bytes = sample();
    const { source, reads } = counting(bufferSource(bytes, 'sample.safetensors'));
    const header = await readSafetensorsHeader(source);
    const headerReads = reads.length;
    for (const t of header.tensors) await readSafetensorsTensor(source, t);
    expect(reads.slice(headerReads)).toEqual(header.tensors.map((t) => [t.begin, t.byteLength]));
    expect(reads.slice(0, headerReads).reduce((n, [, l]) => n + l, 0)).toBe(header.tensors[0]!.begin);
  });

  it('rejects truncation, overlaps, holes, bad sizes and bad JSON with the file and tensor named', async () => {
    const good = sample();
    await expectCheckpointError(readSafetensorsHeader(bufferSource(good.subarray(0, good.length - 3), 'cut.safetensors')), 'cut.safetensors', 'tensor "b"', /truncated/);
    await expectCheckpointError(readSafetensorsHeader(bufferSource(good.subarray(0, 40), 'short.safetensors')), 'short.safetensors', /header length \d+ runs past the end/);
    const overlap = handBuilt({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Array(12).fill(0));
    await expectCheckpointError(readSafetensorsHeader(bufferSource(overlap, 'o.safetensors')), 'o.safetensors', 'tensor "y"', /overlaps tensor "x"/);
    const hole = handBuilt({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, y: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, new Array(12).fill(0));
    await expectCheckpointError(readSafetensorsHeader(bufferSource(hole, 'h.safetensors')), 'tensor "y"', /hole after tensor "x"/);
    const wrongSize = handBuilt({ x: { dtype: 'F16', shape: [3], data_offsets: [0, 4] } }, [0, 0, 0, 0]);
    await expectCheckpointError(readSafetensorsHeader(bufferSource(wrongSize, 'w.safetensors')), 'tensor "x"', /hold 4 bytes, expected 6 for F16 \[3\]/);
    const badDtype = handBuilt({ x: { dtype: 'F12', shape: [1], data_offsets: [0, 2] } }, [0, 0]);
    await expectCheckpointError(readSafetensorsHeader(bufferSource(badDtype, 'd.safetensors')), 'tensor "x"', /dtype "F12" is not a safetensors dtype/);
    const badJson = new Uint8Array([...handBuilt({}, []).subarray(0, 8).map((v, i) => (i === 0 ? 3 : v)), 0x7b, 0x22, 0x20]);
    await expectCheckpointError(readSafetensorsHeader(bufferSource(badJson, 'j.safetensors')), 'j.safetensors', /not valid UTF-8 JSON/);
    const trailing = new Uint8Array([...handBuilt({ x: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, [1]), 9]);
    await expectCheckpointError(readSafetensorsHeader(bufferSource(trailing, 't.safetensors')), /1 bytes after the last tensor/);
  });

  it('refuses to widen non-float dtypes', async () => {
    const ints = handBuilt({ n: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Array(8).fill(0));
    const source = bufferSource(ints, 'i.safetensors');
    const header = await readSafetensorsHeader(source);
    await expectCheckpointError(readSafetensorsTensor(source, header.tensors[0]!), 'tensor "n"', /dtype I64 is not supported; expected F32, F16 or BF16/);
  });
});

describe('safetensors writer', () => {
  it('lays out the format: u64 header length, JSON padded with spaces to 8 bytes, data in order', () => {
    const x = Float32Array.from([1, -2, 0.5]);
    const y = Float32Array.from([3]);
    const bytes = concatChunks(encodeSafetensors('out.safetensors', [{ name: 'x', shape: [3], data: x }, { name: 'y', shape: [1, 1], data: y }], 'F32'));
    const view = new DataView(bytes.buffer);
    const headerLength = view.getUint32(0, true);
    expect(view.getUint32(4, true)).toBe(0);
    expect(headerLength % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    expect(text).toMatch(/^\{"__metadata__":\{"format":"pt"\},"x":/);
    expect(text.trimEnd().length).toBeGreaterThan(headerLength - 8);
    expect(JSON.parse(text)).toEqual({
      __metadata__: { format: 'pt' },
      x: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
      y: { dtype: 'F32', shape: [1, 1], data_offsets: [12, 16] },
    });
    expect([...bytes.subarray(8 + headerLength)]).toEqual([...f32le(1), ...f32le(-2), ...f32le(0.5), ...f32le(3)]);
  });

  it('writes F16 rounded to nearest even, matching the binary16 bit patterns', () => {
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1); 1 + 3·2^-11 ties up to 1 + 2^-9.
    const values = [1, -2, 0.5, 65504, 2 ** -24, 1e6, 1 + 2 ** -11, 1 + 3 * 2 ** -11];
    const expected = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00, 0x3c00, 0x3c02];
    const bytes = concatChunks(encodeSafetensors('h.safetensors', [{ name: 'h', shape: [values.length], data: Float32Array.from(values) }], 'F16'));
    const headerLength = new DataView(bytes.buffer).getUint32(0, true);
    expect([...bytes.subarray(8 + headerLength)]).toEqual(expected.flatMap(le16));
  });

  it('round-trips F32 bit-exactly (NaN payloads, -0, subnormals included) through its own reader', async () => {
    const data = randomArray(1000, 3, 10);
    data[0] = -0;
    data[1] = NaN;
    data[2] = 1e-40;
    data[3] = -Infinity;
    const bytes = concatChunks(encodeSafetensors('r.safetensors', [{ name: 'w', shape: [10, 100], data }], 'F32'));
    const source = bufferSource(bytes, 'r.safetensors');
    const [entry] = (await readSafetensorsHeader(source)).tensors;
    const back = await readSafetensorsTensor(source, entry!);
    expect(Buffer.compare(new Uint8Array(back.buffer), new Uint8Array(data.buffer))).toBe(0);
  });

  it('rejects values that do not fill the declared shape', () => {
    expect(() => encodeSafetensors('bad.safetensors', [{ name: 'w', shape: [2, 3], data: new Float32Array(5) }], 'F32'))
      .toThrow(/bad\.safetensors: tensor "w": has 5 values, expected 6 for shape \[2, 3\]/);
  });
});

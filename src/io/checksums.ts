import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';

/** A published digest of a released checkpoint file. */
export interface PublishedDigest {
  /** The file name it is published under. */
  readonly file: string;
  readonly model: string;
  readonly algorithm: 'sha1' | 'sha256';
  readonly digest: string;
}

/**
 * Digests of the released files, copied from the project's shared/assets/whisper/README.md:
 * OpenAI's .pt sha256 are those in the download URLs of openai/whisper's `whisper/__init__.py`
 * (`_MODELS`); the ggml sha1 are those of whisper.cpp's models/README.md.
 */
export const publishedDigests: readonly PublishedDigest[] = [
  { file: 'tiny.pt', model: 'tiny', algorithm: 'sha256', digest: '65147644a518d12f04e32d6f3b26facc3f8dd46e5390956a9424a650c0ce22b9' },
  { file: 'base.pt', model: 'base', algorithm: 'sha256', digest: 'ed3a0b6b1c0edf879ad9b11b1af5a0e6ab5db9205f891f668f8b0e6c6326e34e' },
  { file: 'small.pt', model: 'small', algorithm: 'sha256', digest: '9ecf779972d90ba49c06d968637d720dd632c55bbf19d441fb42bf17a411e794' },
  { file: 'ggml-tiny.bin', model: 'tiny', algorithm: 'sha1', digest: 'bd577a113a864445d4c299885e0cb97d4ba92b5f' },
  { file: 'ggml-base.bin', model: 'base', algorithm: 'sha1', digest: '465707469ff3a37a2b9b8d8f89f2f99de7299dac' },
  { file: 'ggml-small.bin', model: 'small', algorithm: 'sha1', digest: '55356645c2b361a969dfd0ef2c5a50d530afd8d5' },
];

/** The outcome of {@link verifyKnownCheckpoint}. */
export interface ChecksumResult extends PublishedDigest {
  /** Digest of the file as read, lowercase hex. */
  readonly actual: string;
  readonly matches: boolean;
  /** Set when the digest differs: what to tell the user. */
  readonly warning?: string;
}

/**
 * When the file's name is one a released checkpoint is published under (ggml-tiny.bin, tiny.pt,
 * ...), hash it (streaming, never held in memory) and compare with the published digest. Returns
 * undefined for other names. A mismatch is returned as a warning, not thrown: a fine-tuned or
 * re-converted model may well keep the released name.
 */
export async function verifyKnownCheckpoint(path: string): Promise<ChecksumResult | undefined> {
  const known = publishedDigests.find((d) => d.file === basename(path));
  if (!known) return undefined;
  const hash = createHash(known.algorithm);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  const actual = hash.digest('hex');
  const matches = actual === known.digest;
  return {
    ...known,
    actual,
    matches,
    ...(matches ? {} : {
      warning: `${path}: ${known.algorithm} ${actual} differs from the published ${known.digest} of OpenAI Whisper ${known.model} (${known.file}); ` +
        'the file is not the released checkpoint (modified, re-converted or damaged)',
    }),
  };
}

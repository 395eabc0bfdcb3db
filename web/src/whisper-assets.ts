// The Whisper data files a model needs besides its weights (tokenizer ranks, mel filterbanks),
// taken from the package's assets/ folder as the CLI does (src/cli/checkpoint.ts). Vite turns each
// `new URL('<literal path>', import.meta.url)` into a served file in dev and an emitted, hashed
// file in the build; the page fetches one only when a model needs it, and once.
import { DqwError, readMelFilters, tiktokenFileFor, WhisperTokenizer, type MelFilters, type WhisperConfig } from '../../src/index.js';

const assetUrls = {
  'multilingual.tiktoken': new URL('../../assets/multilingual.tiktoken', import.meta.url),
  'gpt2.tiktoken': new URL('../../assets/gpt2.tiktoken', import.meta.url),
  'mel_filters.npz': new URL('../../assets/mel_filters.npz', import.meta.url),
} as const;

type AssetName = keyof typeof assetUrls;
const fetched = new Map<AssetName, Promise<ArrayBuffer>>();

/** The bytes of one asset; a failed fetch is not cached, so a retry fetches again. */
function fetchAsset(name: AssetName): Promise<ArrayBuffer> {
  let bytes = fetched.get(name);
  if (!bytes) {
    const url = assetUrls[name];
    bytes = fetch(url).then(async (response) => {
      if (!response.ok) throw new DqwError(`${name}: fetching ${url.href} gave HTTP ${response.status} ${response.statusText}`);
      return response.arrayBuffer();
    });
    bytes.catch(() => fetched.delete(name));
    fetched.set(name, bytes);
  }
  return bytes;
}

const tokenizers = new Map<number, Promise<WhisperTokenizer>>();

/** The tokenizer of `config`'s vocabulary (multilingual or English-only ranks), built once per vocabulary size. */
export function fetchTokenizer(config: WhisperConfig): Promise<WhisperTokenizer> {
  const vocabSize = config.vocab_size;
  let tokenizer = tokenizers.get(vocabSize);
  if (!tokenizer) {
    const file = tiktokenFileFor(vocabSize);
    tokenizer = fetchAsset(file).then((bytes) => WhisperTokenizer.fromTiktoken(new TextDecoder().decode(bytes), { vocabSize, source: file }));
    tokenizer.catch(() => tokenizers.delete(vocabSize));
    tokenizers.set(vocabSize, tokenizer);
  }
  return tokenizer;
}

/** The mel filterbank of `config`'s num_mel_bins (80, or 128 for large-v3). */
export async function fetchMelFilters(config: WhisperConfig): Promise<MelFilters> {
  const file = 'mel_filters.npz';
  const filters = readMelFilters(new Uint8Array(await fetchAsset(file)), file).get(config.num_mel_bins);
  if (!filters) throw new DqwError(`${file} has no filterbank of ${config.num_mel_bins} mel bins (the model's num_mel_bins)`);
  return filters;
}

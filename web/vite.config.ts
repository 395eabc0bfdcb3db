import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The demo page. It imports the library's source (../src), as bench/cases and examples/ do, so
// all three share one copy of every module; the repository root is therefore served too.
const repo = fileURLToPath(new URL('..', import.meta.url));

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  server: { host: '127.0.0.1', fs: { allow: [repo] } },
  preview: { host: '127.0.0.1' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 1024,
    // As scripts/build-browser.mjs: ogg-opus-decoder imports its 4 MB neural speech enhancer only
    // when asked for it, and src/audio never asks, so it is not emitted.
    rolldownOptions: { external: ['@wasm-audio-decoders/opus-ml'] },
  },
});

// Node-only additions to the public API (file system, hashing): `import ... from 'dq-whisper/node'`.
// Everything in src/index.ts is also re-exported, so Node programs need only this entry.
export * from './index.js';
export * from './io/node-files.js';
export * from './io/checksums.js';
export * from './io/text-assets.js';
export * from './io/audio-file.js';
export * from './io/manifest-files.js';
export * from './io/training-checkpoint.js';
export * from './io/training-report-files.js';
export * from './data/synth/corpus.js';
export * from './data/synth/languages.js';
export * from './data/synth/sources.js';
export * from './data/synth/debian.js';

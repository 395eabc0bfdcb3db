import { defineConfig } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';
import { chromiumArgs, requireChromium } from './test/browser/chromium.js';

// `npm run test:browser`: the GPU and kernel test files run inside Chromium (Debian's package,
// WebGPU on SwiftShader), driven by Playwright, against the same float64 CPU references as under
// Node. Left out, and why:
// - test/gpu/shaders.test.ts compares src/shaders.gen.ts with shaders/*.wgsl read from disk: a
//   check of the build step, not of the device; it runs under Node.
// - the tests below, by name: each dispatches more than 65535 workgroups to check that grids are
//   folded into 2-D: SwiftShader took about 50 s per such test here (lavapipe under Node: 2-4 s).
//   The folding is host arithmetic plus the same WGSL, covered by the Node run.
const leftOut = [
  'row reductions keep leading dims and spread > 65535 rows over a 2-D grid',
  'folds grids past 65535 workgroups into 2-D and still covers every element',
];
const escape = (name: string) => name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export default defineConfig({
  test: {
    include: ['test/kernels/**/*.test.ts', 'test/gpu/**/*.test.ts'],
    exclude: ['test/gpu/shaders.test.ts'],
    testNamePattern: new RegExp(`^(?!.*(?:${leftOut.map(escape).join('|')}))`),
    globalSetup: ['test/global-setup.ts'],
    // One file at a time: each creates its own device, and SwiftShader already uses every core.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 60_000,
    browser: {
      enabled: true,
      headless: true,
      provider: playwright({ launchOptions: { executablePath: requireChromium(), args: [...chromiumArgs] } }),
      instances: [{ browser: 'chromium' }],
      // Served on 127.0.0.1 only: a secure context (WebGPU needs one) that nothing outside can reach.
      api: { host: '127.0.0.1' },
      screenshotFailures: false,
    },
  },
  optimizeDeps: {
    // Pre-bundled up front so that discovering them mid-run does not reload the test page.
    include: ['wgsl_reflect/wgsl_reflect.module.js', 'js-tiktoken/lite', '@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-cpu'],
  },
});

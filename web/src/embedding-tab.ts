// Embedding tab: runs examples/browser-embedding.ts, an application that brings its own
// GPUDevice and buffers and calls dq-whisper's attention, int8 matmul and loss kernels on them.
import { runBrowserExample } from '../../examples/browser-embedding.js';
import type { ExampleOutputs } from '../../examples/embedding-kernels.js';
import { tableOf, type Tab } from './tabs.js';

/** Typed arrays as plain number arrays, so the result reads as JSON. */
function plain(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
}

export const embeddingTab: Tab = {
  id: 'embedding',
  title: 'Embedding',
  mount(panel, { reportError }) {
    panel.innerHTML = `
      <p>An application with its own <code>GPUDevice</code> and buffers calling dq-whisper's kernels
      (<code>examples/browser-embedding.ts</code>; see <code>docs/embedding.md</code>). It requests its own device with
      WebGPU's default limits, separate from the page's.</p>
      <div class="controls"><button id="run-embedding" class="primary">Run the example</button><span id="embedding-status" aria-live="polite"></span></div>
      <div id="embedding-summary"></div>
      <details><summary>All outputs (JSON)</summary><pre id="embedding-result"></pre></details>`;
    const button = panel.querySelector<HTMLButtonElement>('#run-embedding')!;
    const status = panel.querySelector<HTMLElement>('#embedding-status')!;
    button.addEventListener('click', async () => {
      button.disabled = true;
      status.textContent = 'running…';
      try {
        const started = performance.now();
        const out: ExampleOutputs = await runBrowserExample();
        const head = (a: Float32Array) => [...a.slice(0, 4)].map((v) => v.toFixed(4)).join(', ') + ', …';
        panel.querySelector('#embedding-summary')!.replaceChildren(
          tableOf(['kernel', 'output'], [
            ['attention (causal, q/k/v at offsets of one app buffer)', `out ${head(out.attention.out)}  lse ${head(out.attention.lse)}`],
            ['quantizeRows + int8Matmul (+bias)', `y ${head(out.int8.y)}`],
            ['crossEntropy (+grad, mean)', `mean ${out.loss.mean.toFixed(4)} over ${out.loss.validRows} rows`],
          ]),
        );
        panel.querySelector('#embedding-result')!.textContent = JSON.stringify(plain(out));
        status.textContent = `done in ${((performance.now() - started) / 1000).toFixed(1)} s`;
      } catch (err) {
        status.textContent = 'failed';
        reportError(err, 'running the embedding example');
      } finally {
        button.disabled = false;
      }
    });
  },
};

// The demo page: acquire the engine's device, then mount the tabs. Every failure ends up in the
// page's alert region as a readable message (errors.ts), not only in the console.
import { DeviceLostError, Gpu } from '../../src/index.js';
import { deviceTab } from './device-tab.js';
import { distillTab } from './distill-tab.js';
import { embeddingTab } from './embedding-tab.js';
import { showError } from './errors.js';
import { profileTab } from './profile-tab.js';
import { transcribeTab } from './transcribe-tab.js';
import type { PageContext, Tab } from './tabs.js';

const tabs: readonly Tab[] = [deviceTab, transcribeTab, distillTab, profileTab, embeddingTab];

const status = document.querySelector<HTMLElement>('#status')!;
const errors = document.querySelector<HTMLElement>('#errors')!;
const reportError = (err: unknown, context?: string) => showError(errors, err, context);
addEventListener('error', (ev) => reportError(ev.error ?? ev.message));
addEventListener('unhandledrejection', (ev) => reportError(ev.reason));

function mountTabs(ctx: PageContext): void {
  const nav = document.querySelector<HTMLElement>('#tabs')!;
  const panels = document.querySelector<HTMLElement>('#panels')!;
  const select = (id: string) => {
    nav.querySelectorAll<HTMLButtonElement>('button').forEach((b) => b.setAttribute('aria-selected', String(b.dataset.tab === id)));
    panels.querySelectorAll<HTMLElement>('[role=tabpanel]').forEach((p) => (p.hidden = p.id !== `panel-${id}`));
  };
  for (const tab of tabs) {
    const button = document.createElement('button');
    button.role = 'tab';
    button.dataset.tab = tab.id;
    button.id = `tab-${tab.id}`;
    button.textContent = tab.title;
    button.addEventListener('click', () => select(tab.id));
    nav.append(button);
    const panel = document.createElement('section');
    panel.role = 'tabpanel';
    panel.id = `panel-${tab.id}`;
    panels.append(panel);
    try {
      tab.mount(panel, ctx);
    } catch (err) {
      reportError(err, `building the ${tab.title} tab`);
    }
  }
  select(tabs[0]!.id);
}

try {
  const gpu = await Gpu.create();
  gpu.device.lost.then((info) => {
    if (info.reason !== 'destroyed') reportError(new DeviceLostError(`GPU device lost (${info.reason}): ${info.message || 'no message'}`, info.reason));
  });
  const a = gpu.adapter;
  status.textContent = `WebGPU ready: ${[a.vendor, a.architecture].filter(Boolean).join(' ') || 'adapter'}`;
  status.dataset.state = 'ready';
  mountTabs({ gpu, reportError });
} catch (err) {
  status.textContent = 'WebGPU unavailable';
  status.dataset.state = 'failed';
  reportError(err, 'starting WebGPU');
}

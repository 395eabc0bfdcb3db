// How the browser tests launch Chromium: Debian's own package (never a Playwright browser
// download), with WebGPU on. Without a GPU, Chromium's WebGPU runs on its bundled SwiftShader
// (Vulkan on the CPU); see docs/browser.md for what that adapter offers.
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import sirv from 'sirv';

/** Debian's chromium (`apt-get install chromium`, done by scripts/setup.sh), or $CHROMIUM_PATH. */
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Flags for every launch. The sandbox is off because CI runs as root in a container;
 * --enable-unsafe-webgpu exposes navigator.gpu on Linux; the rest keep Chromium from reaching
 * the network or doing first-run work. Playwright adds --headless (Chromium's new headless mode).
 */
export const chromiumArgs: readonly string[] = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The executable path, or an error that says how to install it. */
export function requireChromium(): string {
  if (!existsSync(chromiumPath)) {
    throw new Error(`Chromium not found at ${chromiumPath}: run \`bash scripts/setup.sh\` (installs Debian's chromium) or set CHROMIUM_PATH`);
  }
  return chromiumPath;
}

/** Launch headless Chromium with the flags above (the Node-driven page tests). */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: requireChromium(), headless: true, args: [...chromiumArgs] });
}

/** Serve `dir` on 127.0.0.1 (a secure context, so WebGPU is exposed) at a free port. */
export async function serveDir(dir: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer(sirv(dir, { dev: true, etag: false }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

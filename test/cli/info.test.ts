import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

// Runs the CLI as a child process, so it needs Node (moved here from test/gpu/recorder.test.ts,
// which also runs inside Chromium under `npm run test:browser`).
describe('dqw info', () => {
  it('prints the adapter, features and limits as JSON', () => {
    const out = execFileSync('npx', ['tsx', 'src/cli/main.ts', 'info', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const report = JSON.parse(out) as { adapter: { runtime: string }; features: Record<string, boolean>; limits: Record<string, number> };
    expect(report.adapter.runtime).toBe('node');
    expect(Object.keys(report.features).sort()).toEqual(['dot4I8Packed', 'shaderF16', 'subgroups', 'timestampQuery']);
    expect(report.limits.maxStorageBuffersPerShaderStage).toBeGreaterThanOrEqual(8);
  });

  it('rejects an unknown command with exit code 2', () => {
    let status = 0;
    try {
      execFileSync('npx', ['tsx', 'src/cli/main.ts', 'frobnicate'], { stdio: 'ignore' });
    } catch (err) {
      status = (err as { status: number }).status;
    }
    expect(status).toBe(2);
  });
});

// The Node side: writeTrainingReport (src/io) and `dqw report` (src/cli) on a run folder.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportCommand } from '../../src/cli/report.js';
import { writeTrainingReport } from '../../src/io/training-report-files.js';
import { renderTrainingReport } from '../../src/report/html.js';
import { MetricsError } from '../../src/report/metrics.js';
import { sampleMetricsText } from './sample-run.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dqw-report-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const collect = () => {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString()));
  return { stream, text: () => text };
};

describe('writeTrainingReport', () => {
  it('writes the four files of the run into the run folder, exactly as rendered, and no temporary file', async () => {
    const run = join(dir, 'run');
    await mkdir(run);
    await writeFile(join(run, 'metrics.jsonl'), sampleMetricsText());
    const { paths, skipped } = await writeTrainingReport(run);
    expect(paths).toEqual(['loss.svg', 'cer.svg', 'layer-map.svg', 'report.html'].map((n) => join(run, n)));
    expect(skipped).toEqual([]);
    const expected = renderTrainingReport(sampleMetricsText(), join(run, 'metrics.jsonl'));
    for (const f of expected.files) expect(await readFile(join(run, f.name), 'utf8')).toBe(f.text);
    expect((await readdir(run)).sort()).toEqual(['cer.svg', 'layer-map.svg', 'loss.svg', 'metrics.jsonl', 'report.html']);
  });

  it('throws MetricsError naming the file when metrics.jsonl is missing or holds no record', async () => {
    const missing = join(dir, 'nothing-here');
    await expect(writeTrainingReport(missing)).rejects.toThrow(MetricsError);
    await expect(writeTrainingReport(missing)).rejects.toThrow(`${join(missing, 'metrics.jsonl')}: no such file`);
    const bad = join(dir, 'bad');
    await mkdir(bad);
    await writeFile(join(bad, 'metrics.jsonl'), '\n{"type":"train"\n');
    await expect(writeTrainingReport(bad)).rejects.toThrow(`${join(bad, 'metrics.jsonl')}: no record (line 2: not JSON`);
  });
});

describe('dqw report', () => {
  it('writes into --out, prints the paths, and warns about unreadable lines on stderr', async () => {
    const run = join(dir, 'cli-run');
    const out = join(dir, 'cli-out', 'nested');
    await mkdir(run);
    await writeFile(join(run, 'metrics.jsonl'), `${sampleMetricsText()}not json\n`);
    const stdout = collect();
    const stderr = collect();
    await reportCommand(['--run', run, '--out', out], { stdout: stdout.stream, stderr: stderr.stream });
    expect(stdout.text().trim().split('\n')).toEqual(['loss.svg', 'cer.svg', 'layer-map.svg', 'report.html'].map((n) => join(out, n)));
    const line = sampleMetricsText().trim().split('\n').length + 1;
    expect(stderr.text()).toContain(`${join(run, 'metrics.jsonl')}:${line}: not JSON`);
    expect(await readFile(join(out, 'report.html'), 'utf8')).toContain('<h1>Training report</h1>');
  });

  it('requires --run', async () => {
    const io = { stdout: collect().stream, stderr: collect().stream };
    await expect(reportCommand([], io)).rejects.toThrow(/--run is required/);
  });
});

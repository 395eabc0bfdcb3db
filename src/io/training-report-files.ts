// Node's side of the training report: read a run folder's metrics.jsonl, write the charts and the
// page next to it (or elsewhere), each file atomically so a browser open on report.html while
// training rewrites it never sees half a file.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SkippedRow } from '../data/examples.js';
import { renderTrainingReport } from '../report/html.js';
import { MetricsError } from '../report/metrics.js';
import { textFile } from './byte-source.js';
import { writeFileAtomic } from './node-files.js';

/** What {@link writeTrainingReport} wrote, and the lines of metrics.jsonl it could not read. */
export interface WrittenTrainingReport {
  /** loss.svg, cer.svg, layer-map.svg and report.html, in that order. */
  readonly paths: string[];
  readonly skipped: SkippedRow[];
}

/**
 * Writes the report of the run in `runDir` (its metrics.jsonl) into `outDir` (default: the run
 * folder, created if needed). Throws MetricsError when metrics.jsonl is missing or holds no
 * record; lines that are not records are returned (and listed in the page), not thrown.
 */
export async function writeTrainingReport(runDir: string, outDir = runDir): Promise<WrittenTrainingReport> {
  const metricsPath = join(runDir, 'metrics.jsonl');
  const text = await readFile(metricsPath, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw new MetricsError(`${metricsPath}: no such file; --run must name a training run folder`, metricsPath);
    throw e;
  });
  const report = renderTrainingReport(text, metricsPath);
  if (report.recordCount === 0) {
    const first = report.skipped[0];
    throw new MetricsError(`${metricsPath}: no record${first ? ` (line ${first.line}: ${first.reason})` : '; the file is empty'}`, metricsPath);
  }
  await mkdir(outDir, { recursive: true });
  const paths: string[] = [];
  for (const { name, text: content } of report.files) {
    const path = join(outDir, name);
    await writeFileAtomic(path, textFile(name, content));
    paths.push(path);
  }
  return { paths, skipped: report.skipped };
}

// A tab of the demo page. A new tab (Distill, next) plugs in the same way: add a module exporting
// a Tab and list it in main.ts.
import type { Gpu } from '../../src/index.js';

export interface PageContext {
  /** The page's engine device (Gpu.create() on navigator.gpu). */
  gpu: Gpu;
  /** Show an error in the page's alert region; `context` says what was being done. */
  reportError(err: unknown, context?: string): void;
}

export interface Tab {
  id: string;
  title: string;
  /** Build the tab's content into `panel` (called once, at start-up). */
  mount(panel: HTMLElement, ctx: PageContext): void;
}

/** A table element from a header row and body rows (cells as text); `numeric` columns are right-aligned. */
export function tableOf(head: readonly string[], rows: readonly (readonly string[])[], numeric: readonly number[] = []): HTMLTableElement {
  const table = document.createElement('table');
  const tr = (cells: readonly string[], tag: 'th' | 'td') => {
    const row = document.createElement('tr');
    cells.forEach((c, i) => {
      const cell = document.createElement(tag);
      cell.textContent = c;
      if (numeric.includes(i)) cell.className = 'num';
      row.append(cell);
    });
    return row;
  };
  table.createTHead().append(tr(head, 'th'));
  const body = table.createTBody();
  for (const r of rows) body.append(tr(r, 'td'));
  return table;
}

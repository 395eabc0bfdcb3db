// Python behaviours that OpenAI's decoding and writers rely on and JavaScript spells differently.

/** Python's round() on floats: halves go to the even neighbour (round(0.5) = 0, round(2.5) = 2). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Python's str.strip() with no argument: removes the characters str.isspace() accepts. JavaScript's
 * trim() differs (it strips U+FEFF and keeps U+001C..U+001F and U+0085).
 */
export function pythonStrip(text: string): string {
  return text.replace(PY_SPACE_START, '').replace(PY_SPACE_END, '');
}
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACE_START = new RegExp(`^[${PY_SPACE}]+`, 'u');
const PY_SPACE_END = new RegExp(`[${PY_SPACE}]+$`, 'u');

/** Python's `items[-count:]`: the last `count` items, where count ≤ 0 slices from index −count (so 0 keeps all). */
export function pythonTail<T>(items: readonly T[], count: number): T[] {
  return count > 0 ? items.slice(Math.max(0, items.length - count)) : items.slice(-count);
}

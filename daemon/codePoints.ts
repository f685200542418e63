/**
 * Compares strings in Unicode code-point order (the order the export promises), which is
 * not JavaScript's UTF-16 code-unit order once characters above U+FFFF meet U+E000-U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) return fixup(x) - fixup(y);
    return x - y;
  }
  return a.length - b.length;
}

/** Moves surrogates (which encode code points above U+FFFF) above U+E000-U+FFFF. */
function fixup(unit: number): number {
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}

/**
 * Timestamps. The native SQLite schema stores text in two forms (ISO 8601 UTC with `T`/`Z`
 * and SQLite's `YYYY-MM-DD HH:MM:SS`); the selection compares them after normalising both to
 * `YYYY-MM-DDTHH:MM:SS.SSSZ`, which sorts correctly as text. PostgreSQL and MariaDB return
 * Date objects.
 */

/** Text forms accepted in SQLite columns, read as UTC. */
const TEXT_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?Z?$/;

/** Parses a stored timestamp; returns undefined when it cannot be read. */
export function parseStoredTimestamp(value: unknown): Date | undefined {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value;
  if (typeof value !== 'string') return undefined;
  const match = TEXT_TIMESTAMP.exec(value);
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s = '0', frac = '0'] = match;
  const ms = Number(frac.padEnd(3, '0').slice(0, 3));
  const date = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms));
  // Date.UTC silently rolls 2026-02-30 over into March: refuse instead of guessing.
  if (date.getUTCFullYear() !== Number(y) || date.getUTCMonth() !== Number(mo) - 1 || date.getUTCDate() !== Number(d)
    || date.getUTCHours() !== Number(h) || date.getUTCMinutes() !== Number(mi) || date.getUTCSeconds() !== Number(s)) {
    return undefined;
  }
  return date;
}

/** UTC ISO 8601 to the second with `Z`, as the export writes timestamps. */
export function formatExportTimestamp(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** `YYYYMMDDTHHMMSSZ`, used in run ids. */
export function compactTimestamp(date: Date): string {
  return formatExportTimestamp(date).replace(/[-:]/g, '');
}

/** Parses `--now`: an ISO 8601 timestamp with an explicit zone, or a date (midnight UTC). */
export function parseNowOption(text: string): Date | undefined {
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(text)) return undefined;
  const date = new Date(text.length === 10 ? `${text}T00:00:00Z` : text);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

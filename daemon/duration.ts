import type { JsonSchema } from './ruleApi';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** Parses `500ms`, `5s`, `10m`, `1.5h`, `30d` into milliseconds. */
export function parseDuration(text: string): number {
  const match = DURATION.exec(text.trim());
  if (!match) throw new RangeError(`"${text}" is not a duration (use a number with ms, s, m, h or d, like "5s" or "10m")`);
  return Math.round(Number(match[1]) * UNIT_MS[match[2]!]!);
}

/** JSON Schema of a duration option. */
export function durationSchema(defaultValue: string, description: string): JsonSchema {
  return {
    type: 'string',
    pattern: '^\\d+(\\.\\d+)?(ms|s|m|h|d)$',
    patternHint: 'must be a duration like "500ms", "5s", "10m", "1h" or "30d"',
    default: defaultValue,
    description,
  };
}

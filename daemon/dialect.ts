import type { Knex } from 'knex';
import type { DialectName } from './database';

/**
 * What differs between the SQL dialects in the selection. Rules and the selection use these
 * helpers instead of writing dialect-specific SQL themselves.
 */
export interface Dialect {
  readonly name: DialectName;
  /** A column as a value that compares correctly with `timestampValue` (and sorts in time order). */
  timestamp(column: string): Knex.Raw;
  /** The bound value a timestamp column is compared with. */
  timestampValue(date: Date): Knex.Value;
  /** An expression that sorts text in Unicode code-point order. */
  codePointOrder(expression: Knex.Raw): Knex.Raw;
}

export function dialectFor(name: DialectName, knex: Knex): Dialect {
  switch (name) {
    case 'sqlite':
      return {
        name,
        // Both stored forms (ISO 8601 `T`/`Z` and `YYYY-MM-DD HH:MM:SS`) normalise to one
        // fixed-width UTC text that compares like the instant it names.
        timestamp: (column) => knex.raw(`strftime('%Y-%m-%dT%H:%M:%fZ', ??)`, [column]),
        timestampValue: (date) => date.toISOString(),
        // SQLite's BINARY collation compares UTF-8 bytes: code-point order already.
        codePointOrder: (expression) => expression,
      };
    case 'pg':
      return {
        name,
        timestamp: (column) => knex.raw('??', [column]),
        timestampValue: (date) => date,
        codePointOrder: (expression) => knex.raw('? collate "C"', [expression]),
      };
    case 'mysql':
      return {
        name,
        timestamp: (column) => knex.raw('??', [column]),
        timestampValue: (date) => date,
        codePointOrder: (expression) => knex.raw('cast(? as binary)', [expression]),
      };
  }
}

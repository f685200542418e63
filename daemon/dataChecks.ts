import type { Knex } from 'knex';
import type { Dialect } from './dialect';
import { SbeError } from './errors';

/** The timestamp columns the selection reads, and which rows of them it reads. */
const CHECKED_COLUMNS: readonly { table: string; column: string }[] = [
  { table: 'user_blocks', column: 'created_at' },
  { table: 'user_blocks', column: 'expires_at' },
  { table: 'fines_fees', column: 'created_at' },
];

/**
 * SQLite stores timestamps as text. Its date functions return NULL for text they cannot read
 * and roll over impossible dates (2026-02-30 becomes March 2), and a NULL in a comparison
 * silently drops a row. So before a run every ACTIVE row's timestamps are checked: readable
 * means `YYYY-MM-DD HH:MM[:SS[.fff]]` with `T` or a space and an optional `Z`, naming a real
 * date and time. The first bad rows are reported with table, column and id (exit 3).
 */
export async function checkSqliteTimestamps(knex: Knex, dialect: Dialect): Promise<void> {
  if (dialect.name !== 'sqlite') return; // native timestamp columns cannot hold unreadable values
  const problems: string[] = [];
  for (const { table, column } of CHECKED_COLUMNS) {
    const readable = `(typeof(c) = 'text'
      and c glob '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][T ][0-9][0-9]:[0-9][0-9]*'
      and c not glob '*[^0-9:. TZ-]*'
      and substr(c, 11) not glob '*-*'
      and strftime('%Y-%m-%dT%H:%M:%fZ', c) is not null
      and strftime('%Y-%m-%d %H:%M', c) = replace(substr(c, 1, 16), 'T', ' '))`.replace(/\bc\b/g, `"${column}"`);
    const rows = (await knex.raw(
      `select id, "${column}" as value from "${table}" where status = 'ACTIVE' and "${column}" is not null and not ${readable} order by id limit 5`,
    )) as { id: number; value: unknown }[];
    for (const row of rows) problems.push(`${table}.${column} of row id ${row.id}: ${JSON.stringify(row.value)}`);
  }
  if (problems.length > 0) {
    throw new SbeError('SOURCE_DATA', `unreadable timestamps in the source database (fix these rows; accepted forms are 2026-11-01T10:00:00Z, 2026-11-01T10:00:00.000Z and 2026-11-01 10:00:00, all UTC):\n  ${problems.join('\n  ')}`);
  }
}

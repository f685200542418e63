import { checkSqliteTimestamps } from '../dataChecks';
import { SbeError } from '../errors';
import { defineSource } from './sourceApi';

export const NATIVE_TABLES = ['users', 'user_identifiers', 'user_blocks', 'fines_fees'] as const;

/** The native schema of SPEC 2 (`db migrate`): the identity adapter. */
export default defineSource({
  id: 'native',
  description: 'The native schema of sis-block-export (created by `db migrate`), on SQLite, PostgreSQL or MariaDB.',
  dialects: ['sqlite', 'pg', 'mysql'],
  relation: (_knex, name, alias) => `${name} as ${alias}`,
  async check(db, dialect, target) {
    const missing: string[] = [];
    for (const table of NATIVE_TABLES) if (!(await db.schema.hasTable(table))) missing.push(table);
    if (missing.length > 0) {
      throw new SbeError('SOURCE_QUERY', `${target.redacted} lacks the table(s) ${missing.join(', ')} of the native schema (run "sis-block-export db migrate --database URL" to create them)`);
    }
    await checkSqliteTimestamps(db, dialect);
  },
});

import type { Knex } from 'knex';
import type { DatabaseTarget } from '../database';
import { SbeError } from '../errors';
import { minorDigits } from '../money';
import { defineSource } from './sourceApi';

/**
 * The Koha tables and columns the adapter reads (Koha 22.11 or later: `restriction_types`
 * and `borrower_debarments.type` as a foreign key to it), for `check()` and the grants.
 * Names as in Koha's installer/data/mysql/kohastructure.sql.
 */
export const KOHA_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  accountlines: ['accountlines_id', 'borrowernumber', 'amountoutstanding', 'date'],
  borrower_attributes: ['id', 'borrowernumber', 'code', 'attribute'],
  borrower_debarments: ['borrower_debarment_id', 'borrowernumber', 'type', 'comment', 'created', 'expiration'],
  borrowers: ['borrowernumber', 'cardnumber', 'userid', 'firstname', 'surname', 'categorycode'],
  categories: ['categorycode', 'description', 'category_type'],
  restriction_types: ['code', 'display_text'],
};

/** Match ID types built from `borrowers` columns; attribute codes with these names are ignored. */
export const KOHA_BUILTIN_ID_TYPES = ['cardnumber', 'userid', 'borrowernumber'] as const;

/**
 * A Koha TIMESTAMP column as a UTC DATETIME, whatever the session time zone: MariaDB and
 * MySQL return TIMESTAMP values converted to the session zone, but UNIX_TIMESTAMP() of a
 * TIMESTAMP column is its stored UTC instant, unconverted.
 */
function utcTimestamp(knex: Knex, column: string): Knex.Raw {
  return knex.raw(`(cast('1970-01-01 00:00:00' as datetime) + interval unix_timestamp(??) second)`, [column]);
}

/**
 * `amountoutstanding` (decimal(28,6), major units) as an integer of minor units of the
 * profile currency: DECIMAL arithmetic throughout, rounded half away from zero (MariaDB's
 * ROUND of an exact value) when Koha holds more decimals than the currency has.
 */
function minorUnits(knex: Knex, column: string, currency: string): Knex.Raw {
  const scale = 10 ** minorDigits(currency);
  return knex.raw(`cast(round(?? * ${scale}) as signed)`, [column]);
}

function users(knex: Knex): Knex.QueryBuilder {
  return knex
    .from('borrowers as kb')
    .leftJoin('categories as kc', 'kc.categorycode', 'kb.categorycode')
    .select(
      'kb.borrowernumber as id',
      // primary_id is NOT NULL; Koha's cardnumber may be NULL (or empty).
      knex.raw(`coalesce(nullif(??, ''), nullif(??, ''), concat('', ??)) as primary_id`, ['kb.cardnumber', 'kb.userid', 'kb.borrowernumber']),
      'kb.firstname as first_name',
      'kb.surname as last_name',
      knex.raw(`nullif(??, '') as user_group`, ['kb.categorycode']),
      knex.raw(`case when ?? = 'S' then 'INTERNAL' else 'EXTERNAL' end as account_type`, ['kc.category_type']),
      knex.raw(`'ACTIVE' as status`),
    );
}

function userIdentifiers(knex: Knex): Knex.QueryBuilder {
  const fromBorrowers = (idType: string, value: Knex.Raw) => knex.from('borrowers as kb').select('kb.borrowernumber as user_id', knex.raw('? as id_type', [idType]), knex.raw('? as value', [value]));
  const column = (name: string) => knex.raw('??', [name]);
  // A repeatable attribute contributes its first value (lowest id): one identifier per type.
  const firstAttribute = knex
    .from('borrower_attributes')
    .whereNotNull('attribute')
    .whereNot('attribute', '')
    .whereNotIn('code', [...KOHA_BUILTIN_ID_TYPES])
    .groupBy('borrowernumber', 'code')
    .select(knex.raw('min(id) as id'));
  const attributes = knex
    .from('borrower_attributes as ka')
    .join(firstAttribute.as('kf'), 'kf.id', 'ka.id')
    .select('ka.borrowernumber as user_id', 'ka.code as id_type', 'ka.attribute as value');
  return fromBorrowers('cardnumber', column('kb.cardnumber'))
    .whereRaw(`nullif(??, '') is not null`, ['kb.cardnumber'])
    .unionAll([
      fromBorrowers('userid', column('kb.userid')).whereRaw(`nullif(??, '') is not null`, ['kb.userid']),
      fromBorrowers('borrowernumber', knex.raw(`concat('', ??)`, ['kb.borrowernumber'])),
      attributes,
    ]);
}

function userBlocks(knex: Knex): Knex.QueryBuilder {
  return knex
    .from('borrower_debarments as kd')
    .select(
      'kd.borrower_debarment_id as id',
      'kd.borrowernumber as user_id',
      'kd.type as block_type',
      'kd.comment as description',
      knex.raw('null as note'),
      knex.raw(`'ACTIVE' as status`),
      knex.raw('? as created_at', [utcTimestamp(knex, 'kd.created')]),
      // A DATE: midnight UTC of that day. "Later than now" is then Koha's own
      // `expiration > CURRENT_DATE()`, with the run date taken in UTC.
      knex.raw('cast(?? as datetime) as expires_at', ['kd.expiration']),
    );
}

function finesFees(knex: Knex, currency: string): Knex.QueryBuilder {
  return knex
    .from('accountlines as ka')
    .whereNotNull('ka.borrowernumber')
    .where('ka.amountoutstanding', '<>', 0)
    .select(
      'ka.accountlines_id as id',
      'ka.borrowernumber as user_id',
      knex.raw(`'ACTIVE' as status`),
      knex.raw('? as balance_minor', [minorUnits(knex, 'ka.amountoutstanding', currency)]),
      knex.raw('? as created_at', [utcTimestamp(knex, 'ka.date')]),
    );
}

function quoteMysqlIdentifier(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

/**
 * The read-only grants the adapter needs, for the database and user of `target`: column
 * grants, because `borrowers` also holds password hashes and 2FA secrets.
 */
export function kohaGrants(target: DatabaseTarget, tables: readonly string[] = Object.keys(KOHA_COLUMNS)): string[] {
  const connection = target.knexConfig.connection as { database?: string; user?: string };
  const database = quoteMysqlIdentifier(connection.database ?? 'koha');
  const user = (connection.user ?? 'sis_block_export').replace(/'/g, "''");
  return [...tables].sort().map((table) => {
    const columns = (KOHA_COLUMNS[table] ?? []).map(quoteMysqlIdentifier).join(', ');
    return `GRANT SELECT (${columns}) ON ${database}.${quoteMysqlIdentifier(table)} TO '${user}'@'<this host>';`;
  });
}

async function checkColumns(db: Knex, target: DatabaseTarget): Promise<void> {
  // information_schema lists only what this user may read: "missing" may mean "not granted".
  const rows = (await db('information_schema.columns')
    .whereRaw('table_schema = database()')
    .whereIn('table_name', Object.keys(KOHA_COLUMNS))
    .select('table_name as table', 'column_name as column')) as { table: string; column: string }[];
  const present = new Set(rows.map((row) => `${String(row.table).toLowerCase()}.${String(row.column).toLowerCase()}`));
  const missing: string[] = [];
  const tables = new Set<string>();
  for (const [table, columns] of Object.entries(KOHA_COLUMNS)) {
    for (const column of columns) {
      if (!present.has(`${table}.${column}`)) {
        missing.push(`${table}.${column}`);
        tables.add(table);
      }
    }
  }
  if (missing.length === 0) return;
  throw new SbeError(
    'SOURCE_QUERY',
    `${target.redacted} is not a readable Koha database (22.11 or later): these columns are missing or not readable: ${missing.join(', ')}.\n`
      + `Check the database name, and ask the DBA for read-only access:\n  ${kohaGrants(target, [...tables]).join('\n  ')}`,
  );
}

/** Outstanding lines without a creation date cannot be aged: a data error, never a silent skip. */
async function checkAccountlineDates(db: Knex): Promise<void> {
  const rows = (await db('accountlines')
    .whereNotNull('borrowernumber')
    .where('amountoutstanding', '<>', 0)
    .whereNull('date')
    .orderBy('accountlines_id')
    .limit(5)
    .select('accountlines_id')) as { accountlines_id: number }[];
  if (rows.length > 0) {
    throw new SbeError(
      'SOURCE_DATA',
      `Koha accountlines with an outstanding amount but no date (the fine-age rule cannot age them): accountlines_id ${rows.map((row) => row.accountlines_id).join(', ')}. `
        + 'Give them their creation date in Koha (for instance the value of their `timestamp` column).',
    );
  }
}

/** Koha (MariaDB/MySQL): patrons, patron restrictions and account lines. See docs/sources/koha.md. */
export default defineSource({
  id: 'koha',
  description: 'Koha ILS (22.11 or later) on MariaDB/MySQL: borrowers, borrower_debarments (restrictions) and accountlines, read only.',
  dialects: ['mysql'],
  relation(knex, name, alias, { currency }) {
    switch (name) {
      case 'users':
        return users(knex).as(alias);
      case 'user_identifiers':
        return knex.from(userIdentifiers(knex).as('kid')).select('*').as(alias);
      case 'user_blocks':
        return userBlocks(knex).as(alias);
      case 'fines_fees':
        return finesFees(knex, currency).as(alias);
      case 'user_groups':
        return knex.from('categories').select('categorycode as code', 'description').as(alias);
      case 'block_types':
        return knex.from('restriction_types').select('code', 'display_text as description').as(alias);
    }
  },
  async check(db, _dialect, target) {
    await checkColumns(db, target);
    await checkAccountlineDates(db);
  },
});

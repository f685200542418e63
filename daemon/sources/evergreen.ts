import type { Knex } from 'knex';
import type { DatabaseTarget } from '../database';
import { SbeError } from '../errors';
import { minorDigits } from '../money';
import { defineSource } from './sourceApi';

/**
 * The Evergreen tables and columns the adapter reads (Evergreen 3.10 or later: penalty notes
 * live in actor.usr_message, referenced by actor.usr_standing_penalty.usr_message), for
 * `check()` and the grants. Names as in Open-ILS/src/sql/Pg/*.sql.
 */
export const EVERGREEN_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  'actor.card': ['id', 'barcode'],
  'actor.usr': ['id', 'card', 'profile', 'usrname', 'ident_value', 'ident_value2', 'first_given_name', 'family_name', 'active', 'deleted'],
  'actor.usr_message': ['id', 'message', 'deleted'],
  'actor.usr_standing_penalty': ['id', 'usr', 'standing_penalty', 'set_date', 'stop_date', 'usr_message'],
  'config.standing_penalty': ['id', 'name', 'label', 'block_list'],
  'money.materialized_billable_xact_summary': ['id', 'usr', 'xact_start', 'xact_finish', 'balance_owed'],
  'permission.grp_tree': ['id', 'name', 'parent', 'description'],
};

/** The permission group whose subtree makes a user INTERNAL (stock Evergreen: id 3). */
export const EVERGREEN_STAFF_GROUP = 'Staff';

/** A penalty blocks something only when its block_list names an action (notes and alerts do not). */
function blocking(knex: Knex, column: string): Knex.Raw {
  return knex.raw(`nullif(btrim(??), '') is not null`, [column]);
}

function staffGroups(knex: Knex): Knex.QueryBuilder {
  // UNION (not UNION ALL) ends the recursion even if a broken tree has a cycle.
  return knex
    .withRecursive('staff_tree', ['id'], (qb) => {
      qb.select('id').from('permission.grp_tree').where('name', EVERGREEN_STAFF_GROUP)
        .union((sub) => sub.select('g.id').from('permission.grp_tree as g').join('staff_tree as s', 'g.parent', 's.id'));
    })
    .select('id')
    .from('staff_tree');
}

function users(knex: Knex): Knex.QueryBuilder {
  return knex
    .from('actor.usr as eu')
    .leftJoin('actor.card as ec', 'ec.id', 'eu.card')
    .leftJoin('permission.grp_tree as eg', 'eg.id', 'eu.profile')
    .leftJoin(staffGroups(knex).as('es'), 'es.id', 'eu.profile')
    .where('eu.deleted', false)
    .where('eu.active', true)
    .select(
      'eu.id',
      knex.raw(`coalesce(nullif(??, ''), ??) as primary_id`, ['ec.barcode', 'eu.usrname']),
      'eu.first_given_name as first_name',
      'eu.family_name as last_name',
      'eg.name as user_group',
      knex.raw(`case when ?? is not null then 'INTERNAL' else 'EXTERNAL' end as account_type`, ['es.id']),
      knex.raw(`'ACTIVE' as status`),
    );
}

function userIdentifiers(knex: Knex): Knex.QueryBuilder {
  const column = (idType: string, name: string) => knex
    .from('actor.usr as eu')
    .whereRaw(`nullif(btrim(??), '') is not null`, [`eu.${name}`])
    .select('eu.id as user_id', knex.raw('?::text as id_type', [idType]), `eu.${name} as value`);
  const barcode = knex
    .from('actor.usr as eu')
    .join('actor.card as ec', 'ec.id', 'eu.card')
    .whereRaw(`nullif(btrim(??), '') is not null`, ['ec.barcode'])
    .select('eu.id as user_id', knex.raw(`'barcode'::text as id_type`), 'ec.barcode as value');
  const id = knex.from('actor.usr as eu').select('eu.id as user_id', knex.raw(`'id'::text as id_type`), knex.raw('??::text as value', ['eu.id']));
  return barcode.unionAll([column('usrname', 'usrname'), column('ident_value', 'ident_value'), column('ident_value2', 'ident_value2'), id]);
}

function userBlocks(knex: Knex): Knex.QueryBuilder {
  return knex
    .from('actor.usr_standing_penalty as ep')
    .join('config.standing_penalty as esp', 'esp.id', 'ep.standing_penalty')
    // Since Evergreen 3.10 a penalty's note is an actor.usr_message (upgrade 1288).
    .leftJoin('actor.usr_message as em', (join) => join.on('em.id', '=', 'ep.usr_message').andOnVal('em.deleted', '=', false))
    .where(blocking(knex, 'esp.block_list'))
    .select(
      'ep.id',
      'ep.usr as user_id',
      'esp.name as block_type',
      'esp.label as description',
      'em.message as note',
      knex.raw(`'ACTIVE' as status`),
      'ep.set_date as created_at',
      'ep.stop_date as expires_at',
    );
}

function finesFees(knex: Knex, currency: string): Knex.QueryBuilder {
  const scale = 10 ** minorDigits(currency);
  return knex
    .from('money.materialized_billable_xact_summary as ex')
    .whereNull('ex.xact_finish')
    .where('ex.balance_owed', '<>', 0)
    .select(
      'ex.id',
      'ex.usr as user_id',
      knex.raw(`'ACTIVE' as status`),
      // numeric arithmetic; round() of a numeric rounds half away from zero.
      knex.raw(`round(?? * ${scale})::bigint as balance_minor`, ['ex.balance_owed']),
      'ex.xact_start as created_at',
    );
}

function quotePgIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * The read-only grants the adapter needs, for the user of `target`: column grants, because
 * actor.usr also holds the (legacy) password column and much personal data.
 */
export function evergreenGrants(target: DatabaseTarget, tables: readonly string[] = Object.keys(EVERGREEN_COLUMNS)): string[] {
  const user = quotePgIdentifier((target.knexConfig.connection as { user?: string }).user ?? 'sis_block_export');
  const sorted = [...tables].sort();
  const schemas = [...new Set(sorted.map((table) => table.split('.')[0]!))];
  return [
    `GRANT USAGE ON SCHEMA ${schemas.join(', ')} TO ${user};`,
    ...sorted.map((table) => `GRANT SELECT (${(EVERGREEN_COLUMNS[table] ?? []).join(', ')}) ON ${table} TO ${user};`),
  ];
}

interface ColumnRow {
  table: string;
  column: string;
  readable: boolean;
}

async function checkColumns(db: Knex, target: DatabaseTarget): Promise<void> {
  const wanted = Object.keys(EVERGREEN_COLUMNS);
  // pg_catalog shows every table, granted or not, so "missing" and "not granted" differ.
  const rows = (await db.raw(
    `select n.nspname || '.' || c.relname as "table", a.attname as "column",
            has_schema_privilege(n.oid, 'USAGE') and has_column_privilege(c.oid, a.attnum, 'SELECT') as readable
       from pg_catalog.pg_class c
       join pg_catalog.pg_namespace n on n.oid = c.relnamespace
       join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      where n.nspname || '.' || c.relname = any(?) and c.relkind in ('r', 'p', 'v', 'm', 'f')`,
    [wanted],
  )).rows as ColumnRow[];
  const found = new Map(rows.map((row) => [`${row.table}.${row.column}`, row.readable]));
  const missing: string[] = [];
  const unreadable: string[] = [];
  const grantTables = new Set<string>();
  for (const [table, columns] of Object.entries(EVERGREEN_COLUMNS)) {
    for (const column of columns) {
      const readable = found.get(`${table}.${column}`);
      if (readable === undefined) missing.push(`${table}.${column}`);
      else if (!readable) {
        unreadable.push(`${table}.${column}`);
        grantTables.add(table);
      }
    }
  }
  const problems: string[] = [];
  if (missing.length > 0) {
    problems.push(`these columns do not exist: ${missing.join(', ')} (check the database name; Evergreen 3.10 or later is needed)`);
  }
  if (unreadable.length > 0) {
    problems.push(`these columns exist but cannot be read by this user: ${unreadable.join(', ')}; ask the DBA for read-only access:\n  ${evergreenGrants(target, [...grantTables]).join('\n  ')}`);
  }
  if (problems.length > 0) throw new SbeError('SOURCE_QUERY', `${target.redacted} is not a readable Evergreen database: ${problems.join('; ')}`);
}

/** Rows the selection would read without the timestamp a block or a fine needs: a data error. */
async function checkTimestamps(db: Knex): Promise<void> {
  const problems: string[] = [];
  const penalties = (await db('actor.usr_standing_penalty as ep')
    .join('config.standing_penalty as esp', 'esp.id', 'ep.standing_penalty')
    .where(blocking(db, 'esp.block_list'))
    .whereNull('ep.set_date')
    .where((w) => w.whereNull('ep.stop_date').orWhere('ep.stop_date', '>', db.fn.now()))
    .orderBy('ep.id')
    .limit(5)
    .select('ep.id')) as { id: number }[];
  if (penalties.length > 0) problems.push(`actor.usr_standing_penalty without set_date: id ${penalties.map((row) => row.id).join(', ')}`);
  const transactions = (await db('money.materialized_billable_xact_summary')
    .whereNull('xact_finish')
    .where('balance_owed', '<>', 0)
    .whereNull('xact_start')
    .orderBy('id')
    .limit(5)
    .select('id')) as { id: string }[];
  if (transactions.length > 0) problems.push(`money.materialized_billable_xact_summary without xact_start: id ${transactions.map((row) => row.id).join(', ')}`);
  if (problems.length > 0) {
    throw new SbeError('SOURCE_DATA', `Evergreen rows without the timestamp the export needs (fix them in Evergreen):\n  ${problems.join('\n  ')}`);
  }
}

/** Evergreen (PostgreSQL): users, standing penalties and open billable transactions. See docs/sources/evergreen.md. */
export default defineSource({
  id: 'evergreen',
  description: 'Evergreen ILS (3.10 or later) on PostgreSQL: actor.usr, blocking standing penalties and open billable transactions, read only.',
  dialects: ['pg'],
  relation(knex, name, alias, { currency }) {
    switch (name) {
      case 'users':
        return users(knex).as(alias);
      case 'user_identifiers':
        return knex.from(userIdentifiers(knex).as('eid')).select('*').as(alias);
      case 'user_blocks':
        return userBlocks(knex).as(alias);
      case 'fines_fees':
        return finesFees(knex, currency).as(alias);
      case 'user_groups':
        return knex.from('permission.grp_tree').select('name as code', 'description').as(alias);
      case 'block_types':
        return knex.from('config.standing_penalty as esp').where(blocking(knex, 'esp.block_list')).select('esp.name as code', 'esp.label as description').as(alias);
    }
  },
  async check(db, _dialect, target) {
    await checkColumns(db, target);
    await checkTimestamps(db);
  },
});

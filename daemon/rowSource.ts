import type { Knex } from 'knex';
import type { Dialect } from './dialect';
import { SbeError } from './errors';
import type { SelectionRow } from './selection';

const SQLITE_PAGE_ROWS = 2000;
const SQLITE_TABLE = 'sbe_selection';

/**
 * Streams the rows of `query` in its order, holding at most one page in memory.
 *
 * PostgreSQL and MariaDB stream through Knex (a server-side cursor with pg-query-stream, a
 * row stream with mysql2), with backpressure. Knex's SQLite "stream" reads the whole result
 * into an array first, so on SQLite the selection runs once into a temporary table (in the
 * connection's temp store, never in the source) and is read back in rowid pages.
 */
export async function* streamRows(knex: Knex, dialect: Dialect, query: Knex.QueryBuilder): AsyncGenerator<SelectionRow> {
  if (dialect.name !== 'sqlite') {
    const stream = query.stream();
    try {
      for await (const row of stream) yield row as SelectionRow;
    } finally {
      stream.destroy();
    }
    return;
  }
  const trx = await knex.transaction();
  try {
    const { sql, bindings } = query.toSQL().toNative();
    await trx.raw(`drop table if exists temp.${SQLITE_TABLE}`);
    await trx.raw(`create temp table ${SQLITE_TABLE} as select * from (${sql}) limit 0`, bindings as Knex.RawBinding[]);
    // INSERT ... SELECT ... ORDER BY assigns rowids in the order the rows are produced.
    await trx.raw(`insert into temp.${SQLITE_TABLE} ${sql}`, bindings as Knex.RawBinding[]);
    let last = 0;
    for (;;) {
      const page = (await trx.raw(`select rowid as sbe_seq, * from temp.${SQLITE_TABLE} where rowid > ? order by rowid limit ?`, [last, SQLITE_PAGE_ROWS])) as (SelectionRow & { sbe_seq: number })[];
      for (const row of page) yield row;
      if (page.length < SQLITE_PAGE_ROWS) break;
      last = page[page.length - 1]!.sbe_seq;
    }
  } catch (error) {
    throw error instanceof SbeError ? error : new SbeError('SOURCE_QUERY', `reading the selection: ${(error as Error).message}`, { cause: error });
  } finally {
    // Rolling back drops the temporary table with everything else.
    await trx.rollback().catch(() => undefined);
  }
}

export interface SelectedBlock {
  id: string;
  blockType: string;
  description: string | null;
  note: string | null;
  createdAt: string | Date;
  expiresAt: string | Date | null;
}

export interface SelectedUser {
  pk: string;
  userId: string | null;
  primaryId: string;
  firstName: string | null;
  lastName: string | null;
  userGroup: string | null;
  accountType: string;
  activeMinor: unknown;
  blocks: SelectedBlock[];
}

/** Folds consecutive rows of one user into one user with its blocks. Holds one user at a time. */
export async function* groupUsers(rows: AsyncIterable<SelectionRow>): AsyncGenerator<SelectedUser> {
  let current: SelectedUser | undefined;
  for await (const row of rows) {
    const pk = String(row.user_pk);
    if (!current || current.pk !== pk) {
      if (current) yield current;
      current = {
        pk,
        userId: row.user_id_value === null || row.user_id_value === undefined ? null : String(row.user_id_value),
        primaryId: String(row.primary_id),
        firstName: row.first_name,
        lastName: row.last_name,
        userGroup: row.user_group,
        accountType: row.account_type,
        activeMinor: row.active_minor,
        blocks: [],
      };
    }
    if (row.block_id !== null && row.block_id !== undefined) {
      current.blocks.push({
        id: String(row.block_id),
        blockType: String(row.block_type),
        description: row.block_description,
        note: row.block_note,
        createdAt: row.block_created_at!,
        expiresAt: row.block_expires_at,
      });
    }
  }
  if (current) yield current;
}

import type { Knex } from 'knex';
import type { DatabaseTarget, DialectName } from '../database';
import type { Dialect } from '../dialect';
import type { CanonicalRelation } from '../ruleApi';

/**
 * A source adapter maps a library system's own tables onto the canonical relations the
 * rules and the selection work on, as Knex subqueries, so every rule works on every source.
 *
 * Canonical columns (what `relation(name, alias)` must provide, with these names):
 * - users: id, primary_id, first_name, last_name, user_group, account_type ('INTERNAL' | 'EXTERNAL'), status
 * - user_identifiers: user_id, id_type, value
 * - user_blocks: id, user_id, block_type, description, note, status ('ACTIVE' | 'INACTIVE'), created_at, expires_at
 * - fines_fees: id, user_id, status ('ACTIVE' | 'CLOSED'), balance_minor (integer minor units, exact), created_at
 * - user_groups, block_types: code, description
 */
export interface SourceAdapter {
  /** The profile's `source:` value; kebab-case; equals the file name. */
  readonly id: string;
  readonly description: string;
  /** Dialects the adapter supports (e.g. Koha: mysql; Evergreen: pg). */
  readonly dialects: readonly DialectName[];
  /** The canonical relation `name` under `alias`: a table name or an aliased subquery. */
  relation(knex: Knex, name: CanonicalRelation, alias: string, context: { currency: string; now: Date }): Knex.QueryBuilder | string;
  /**
   * Checks before a run that the source can be read: tables exist, data is readable.
   * Throws SbeError SOURCE_QUERY / SOURCE_DATA with a message that names what is wrong.
   */
  check(db: Knex, dialect: Dialect, target: DatabaseTarget): Promise<void>;
}

export function defineSource(adapter: SourceAdapter): SourceAdapter {
  return Object.freeze(adapter);
}

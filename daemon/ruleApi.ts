import type { Knex } from 'knex';
import type { Dialect } from './dialect';

/**
 * The stage of the selection a rule refines (SPEC 4):
 * - `users`: the user rows (alias `u`); a rule adds `where` clauses on user columns.
 * - `identity`: decides `userId`; adds the join, the `user_id_value` column and its order.
 * - `blocks`: the blocks that count (alias `b`); adds `where` clauses.
 * - `fines`: the fine/fee rows that make up the qualifying balance (alias `f`).
 * - `qualification`: the final condition on a user (refs `cb` for counted blocks and
 *   `q.qualifying_minor`).
 */
export const STAGES = ['users', 'identity', 'blocks', 'fines', 'qualification'] as const;
export type Stage = (typeof STAGES)[number];

/** A JSON Schema (draft 7, as Ajv reads it). Kept loose on purpose: Ajv checks it. */
export type JsonSchema = Record<string, unknown>;

export interface RuleContext {
  readonly knex: Knex;
  readonly dialect: Dialect;
  /** The run time: the scheduled time or `--now`. */
  readonly now: Date;
  readonly currency: string;
  /** A canonical relation (`users`, `user_identifiers`, `user_blocks`, `fines_fees`, ...) under an alias. */
  relation(name: CanonicalRelation, alias: string): Knex.QueryBuilder | string;
}

export type CanonicalRelation = 'users' | 'user_identifiers' | 'user_groups' | 'block_types' | 'user_blocks' | 'fines_fees';

export interface RuleDefinition<Options = Record<string, unknown>> {
  /** kebab-case; equals the file name. */
  readonly id: string;
  readonly description: string;
  readonly stage: Stage;
  /** JSON Schema of `with`, `additionalProperties: false`, with defaults. */
  readonly schema: JsonSchema;
  /** Example `with` values; the documentation shows them and a test validates each. */
  readonly examples: readonly Options[];
  /** Adds clauses to `qb`. Never runs a query. `options` has been validated, defaults applied. */
  apply(qb: Knex.QueryBuilder, options: Options, ctx: RuleContext): void;
  /**
   * Checks what a schema cannot (e.g. an amount against the profile currency). Returns a
   * message for the person editing the profile, or undefined when the options are fine.
   */
  check?(options: Options, profile: { currency: string }): string | undefined;
}

export type AnyRule = RuleDefinition<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Identity function that gives a rule module its type. */
export function defineRule<Options>(rule: RuleDefinition<Options>): RuleDefinition<Options> {
  return Object.freeze(rule);
}

import type { Knex } from 'knex';
import type { Dialect } from './dialect';
import type { ResolvedRule } from './profiles';
import type { CanonicalRelation, RuleContext, Stage } from './ruleApi';

/** Where the canonical relations come from: the native tables, or a source adapter's subqueries. */
export interface RelationSource {
  relation(knex: Knex, name: CanonicalRelation, alias: string, context: { currency: string; now: Date }): Knex.QueryBuilder | string;
}


export interface SelectionInput {
  knex: Knex;
  dialect: Dialect;
  relations: RelationSource;
  rules: readonly ResolvedRule[];
  now: Date;
  currency: string;
}

/**
 * The columns of one selection row: a user, repeated for each block that counts (block
 * columns are NULL for a user with none).
 */
export interface SelectionRow {
  user_pk: number | string;
  user_id_value: string | null;
  primary_id: string;
  first_name: string | null;
  last_name: string | null;
  user_group: string | null;
  account_type: string;
  active_minor: number | string | bigint | null;
  block_id: number | string | null;
  block_type: string | null;
  block_description: string | null;
  block_note: string | null;
  block_created_at: string | Date | null;
  block_expires_at: string | Date | null;
}

function applyStage(stage: Stage, qb: Knex.QueryBuilder, rules: readonly ResolvedRule[], ctx: RuleContext): void {
  for (const { rule, options } of rules) if (rule.stage === stage) rule.apply(qb, options, ctx);
}

/**
 * Composes the selection of SPEC 3 from the rules, as one query:
 *
 *   users u                                    -- users-stage rules filter u
 *   left join (active fines, summed) ab        -- active balance: every ACTIVE row
 *   left join (counting fines, summed) q       -- fines-stage rules filter f
 *   left join (blocks that count) cb           -- ACTIVE, not expired at now; blocks-stage rules filter b
 *   [identity rule joins the match id]         -- and orders by userId in code-point order
 *   where [qualification: a block counts or q > threshold]
 *   order by userId, u.id, block created, block id
 */
export function composeSelection(input: SelectionInput): Knex.QueryBuilder {
  const { knex, dialect, relations, rules, now, currency } = input;
  const ctx: RuleContext = {
    knex,
    dialect,
    now,
    currency,
    relation: (name, alias) => relations.relation(knex, name, alias, { currency, now }),
  };
  const activeBalance = knex
    .from(ctx.relation('fines_fees', 'fa'))
    .where('fa.status', 'ACTIVE')
    .groupBy('fa.user_id')
    .select('fa.user_id', knex.raw('sum(??) as ??', ['fa.balance_minor', 'active_minor']));

  const qualifying = knex
    .from(ctx.relation('fines_fees', 'f'))
    .where('f.status', 'ACTIVE')
    .groupBy('f.user_id')
    .select('f.user_id', knex.raw('sum(??) as ??', ['f.balance_minor', 'qualifying_minor']));
  applyStage('fines', qualifying, rules, ctx);

  const countedBlocks = knex
    .from(ctx.relation('user_blocks', 'b'))
    .where('b.status', 'ACTIVE')
    .where((w) => w.whereNull('b.expires_at').orWhere(dialect.timestamp('b.expires_at'), '>', dialect.timestampValue(now)))
    .select('b.id', 'b.user_id', 'b.block_type', 'b.description', 'b.note', 'b.created_at', 'b.expires_at');
  applyStage('blocks', countedBlocks, rules, ctx);

  const query = knex
    .from(ctx.relation('users', 'u'))
    .leftJoin(activeBalance.as('ab'), 'ab.user_id', 'u.id')
    .leftJoin(qualifying.as('q'), 'q.user_id', 'u.id')
    .leftJoin(dialect.materialize(countedBlocks).as('cb'), 'cb.user_id', 'u.id')
    .select(
      'u.id as user_pk',
      'u.primary_id',
      'u.first_name',
      'u.last_name',
      'u.user_group',
      'u.account_type',
      knex.raw('coalesce(??, 0) as ??', ['ab.active_minor', 'active_minor']),
      'cb.id as block_id',
      'cb.block_type',
      'cb.description as block_description',
      'cb.note as block_note',
      knex.raw('? as ??', [dialect.timestamp('cb.created_at'), 'block_created_at']),
      knex.raw('? as ??', [dialect.timestamp('cb.expires_at'), 'block_expires_at']),
    );
  applyStage('users', query, rules, ctx);
  applyStage('identity', query, rules, ctx);
  applyStage('qualification', query, rules, ctx);
  // The identity rule ordered by userId first; ties and blocks follow.
  query.orderBy('u.id').orderByRaw('?', [dialect.timestamp('cb.created_at')]).orderBy('cb.id');
  return query;
}

/** The match ID type the profile's identity rule exports, for the root attribute. */
export function matchIdTypeOf(rules: readonly ResolvedRule[]): string {
  const identity = rules.find(({ rule }) => rule.stage === 'identity');
  const idType = identity?.options.idType;
  return typeof idType === 'string' ? idType : 'primary';
}

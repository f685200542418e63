import type { Knex } from 'knex';
import type { JsonSchema } from '../daemon/ruleApi';

/** Shared option shape of the code-list rules (`user-groups`, `block-types`). Not a rule itself. */
export interface IncludeExclude {
  include?: string[];
  exclude?: string[];
}

export function includeExcludeSchema(what: string): JsonSchema {
  const list = (description: string) => ({
    type: 'array',
    minItems: 1,
    uniqueItems: true,
    items: { type: 'string', minLength: 1 },
    description,
  });
  return {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    properties: {
      include: list(`Each ${what} that passes.`),
      exclude: list(`Each ${what} that does not pass.`),
    },
  };
}

export function whereIncludeExclude(qb: Knex.QueryBuilder, column: string, { include, exclude }: IncludeExclude): void {
  if (include) qb.whereIn(column, include);
  // NOT IN is unknown for NULL; a row without a code is not excluded by an exclude list.
  if (exclude) qb.where((w) => w.whereNull(column).orWhereNotIn(column, exclude));
}

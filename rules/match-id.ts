import { defineRule } from '../daemon/ruleApi';

export interface MatchIdOptions {
  idType: string;
  missing: 'skip' | 'primary';
}

export default defineRule<MatchIdOptions>({
  id: 'match-id',
  description:
    'Chooses the identifier the SIS and the library share, written as `userId`: the user identifier of type `idType` '
    + '(`primary` means the primary id). A user without one is skipped and counted (`missing: skip`) or exported '
    + 'with the primary id (`missing: primary`).',
  stage: 'identity',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      idType: { type: 'string', minLength: 1, maxLength: 64, default: 'primary', description: 'Identifier type, or `primary`.' },
      missing: { enum: ['skip', 'primary'], default: 'skip', description: 'What to do with a user who has no identifier of that type.' },
    },
  },
  examples: [{ idType: 'STUDENT_ID', missing: 'skip' }, { idType: 'primary', missing: 'skip' }],
  apply(qb, { idType, missing }, ctx) {
    const { knex } = ctx;
    let userId;
    if (idType === 'primary') {
      userId = knex.raw('??', ['u.primary_id']);
    } else {
      qb.leftJoin(ctx.relation('user_identifiers', 'mid'), (join) => {
        join.on('mid.user_id', '=', 'u.id').andOn('mid.id_type', '=', knex.raw('?', [idType]));
      });
      userId = missing === 'primary' ? knex.raw('coalesce(??, ??)', ['mid.value', 'u.primary_id']) : knex.raw('??', ['mid.value']);
    }
    qb.select(knex.raw('? as ??', [userId, 'user_id_value'])).orderByRaw('?', [ctx.dialect.codePointOrder(userId)]);
  },
});
